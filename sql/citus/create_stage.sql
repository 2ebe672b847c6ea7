-- citus/create_stage.sql — step 1 of a load on Citus, before COPY (instead of create_stage.sql).
-- Reads: nothing. Writes: empties stockload_stage and stockload_scope, the distributed tables
-- made by citus/distribute.sql (temporary tables cannot be distributed). Inside the load's
-- transaction and under its advisory lock: no other load sees or touches them meanwhile, and a
-- failed load gives back whatever the last one left. stockload COPYs every row it read into
-- stockload_stage; Citus routes each row to the shard of its company.
TRUNCATE stockload_stage, stockload_scope;
