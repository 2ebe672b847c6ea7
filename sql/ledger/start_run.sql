-- Opens a run in load_runs. $1 source, $2 companies file, $3 change basis, $4 status (running).
-- Returns its id.
INSERT INTO load_runs (source, companies_file, change_basis, status)
VALUES ($1, $2, $3, $4)
RETURNING id
