-- The runs the ledger shows as running, with the session that marks each alive.
SELECT id, backend_pid, backend_started FROM load_runs WHERE status = 'running'
