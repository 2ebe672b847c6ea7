-- The other sessions holding locks on historical_stocks_data, one line each, for the error of a
-- load that could not take its strong lock in time (its own wait is over, so pg_blocking_pids has
-- nothing to say by then: the holders are read from pg_locks instead).
SELECT 'session ' || a.pid
       || coalesce(' (' || nullif(a.usename, '') || ')', '')
       || coalesce(' application ' || quote_literal(nullif(a.application_name, '')), '')
       || ', ' || coalesce(a.state, 'unknown state')
       || coalesce(' since ' || date_trunc('second', a.xact_start)::text, '')
FROM pg_locks AS l
JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.relation = to_regclass('historical_stocks_data')
  AND l.granted
  AND l.pid <> pg_backend_pid()
GROUP BY a.pid, a.usename, a.application_name, a.state, a.xact_start
ORDER BY a.pid
