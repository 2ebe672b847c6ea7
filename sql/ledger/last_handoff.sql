-- The latest hand-off that went through for any of a marker's ids (reads marker_decisions):
-- a duplicate event for a marker already handed off is not sent again.
-- $1 marker ids (text[]). Returns handed_to, decided_at as text; no row when none.
SELECT handed_to, decided_at::text
FROM marker_decisions
WHERE marker = ANY($1) AND choice = 'handoff' AND sent
ORDER BY decided_at DESC
LIMIT 1
