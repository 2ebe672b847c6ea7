-- The load's transaction takes its run's row (opened and committed by the run's ledger session)
-- before its first statement on historical_stocks_data: the row stays locked until the load
-- commits or rolls back, and on Citus the reference table load_runs is then modified before any
-- parallel operation on the distributed tables (Citus refuses it after them). $1 run id.
UPDATE load_runs SET status = status WHERE id = $1
