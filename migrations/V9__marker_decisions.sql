-- V9: where the Lambda's auto mode chose to load each marker's batch, and why.
-- One row per decision (a retried or duplicate event that decides again adds a row): the batch's
-- size as listed (files, bytes; nothing read), the estimate and the limits it was held against,
-- and the choice: loaded here (the run itself is in load_runs / processed_markers under the same
-- marker) or handed off (to which queue or Data Pipeline, and whether the hand-off was sent).
CREATE TABLE IF NOT EXISTS marker_decisions (
    id              bigserial PRIMARY KEY,
    marker          text NOT NULL,
    decided_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    choice          text NOT NULL CHECK (choice IN ('direct', 'handoff')),
    handed_to       text,
    sent            boolean NOT NULL,
    files           integer NOT NULL,
    bytes           bigint NOT NULL,
    estimated_secs  double precision NOT NULL,
    estimated_mib   double precision NOT NULL,
    remaining_secs  double precision,
    memory_mib      integer,
    reason          text NOT NULL,
    error           text
);
CREATE INDEX IF NOT EXISTS marker_decisions_marker ON marker_decisions (marker);

COMMENT ON TABLE marker_decisions IS
    'The Lambda''s auto-mode decisions: load a marker''s batch in the function (direct) or hand it off '
    '(SQS queue of a long-running `stockload watch --queue`, or Data Pipeline). The load itself is '
    'recorded by its run (load_runs, processed_markers.marker = marker_decisions.marker).';
COMMENT ON COLUMN marker_decisions.sent IS
    'direct: always true (the run was started). handoff: whether the message or pipeline start went '
    'through; false rows keep the error, the invocation failed and loaded nothing.';
COMMENT ON COLUMN marker_decisions.reason IS
    'The decision as logged and notified, e.g. "7,192 files, 983 MB: handed to queue …, estimated '
    '1.5 min on the loader".';
