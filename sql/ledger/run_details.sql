-- Completes a run's load_runs row: the stockload version that ran it. $1 run id, $2 version.
UPDATE load_runs SET stockload_version = $2 WHERE id = $1
