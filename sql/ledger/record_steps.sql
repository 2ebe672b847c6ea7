-- Records a run's steps in load_run_steps, numbered in the order given.
-- $1 run id, $2 step names, $3 checksums, $4 rows, $5 milliseconds (arrays of one length).
INSERT INTO load_run_steps (run_id, position, step, checksum, rows, millis)
SELECT $1, s.position, s.step, nullif(s.checksum, ''), s.rows, s.millis
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[])
     WITH ORDINALITY AS s (step, checksum, rows, millis, position)
