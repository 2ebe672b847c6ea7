-- citus/clear_stage.sql — last step of a load on Citus, after update_changes.sql.
-- Reads: nothing. Writes: empties stockload_stage and stockload_scope again, in the load's
-- transaction, so the batch's staged rows do not stay on the workers' disks until the next load
-- (a failed load rolls back to the empty tables the last load left).
TRUNCATE stockload_stage, stockload_scope;
