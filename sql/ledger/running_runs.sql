-- The runs the ledger shows as running, with when they started and the session that marks each
-- alive.
SELECT id, started_at::text, backend_pid, backend_started::text
FROM load_runs
WHERE status = 'running'
