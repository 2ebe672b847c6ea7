-- Records one auto-mode decision for a marker (reads nothing; writes marker_decisions).
-- $1 marker, $2 choice ('direct'|'handoff'), $3 handed_to, $4 sent, $5 files, $6 bytes,
-- $7 estimated_secs, $8 estimated_mib, $9 remaining_secs, $10 memory_mib, $11 reason, $12 error.
INSERT INTO marker_decisions (marker, choice, handed_to, sent, files, bytes, estimated_secs,
                              estimated_mib, remaining_secs, memory_mib, reason, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
