-- Claims a trigger marker for this run; returns no row when an earlier run already had it.
-- $1 marker, $2 run id.
INSERT INTO processed_markers (marker, run_id)
VALUES ($1, $2)
ON CONFLICT (marker) DO NOTHING
RETURNING marker
