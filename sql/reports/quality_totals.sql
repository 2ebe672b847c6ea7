-- The current quality flags per check (for `stockload stats`), one text line, e.g.
-- "2 errors, 5 warnings (ohlc_inconsistent 2, price_jump 5)"; "none" without flags.
SELECT coalesce(sum(n) FILTER (WHERE severity = 'error'), 0) || ' errors, '
       || coalesce(sum(n) FILTER (WHERE severity = 'warning'), 0) || ' warnings'
       || coalesce(' (' || string_agg(check_name || ' ' || n, ', ' ORDER BY severity, check_name)
                   || ')', '')
FROM (SELECT check_name, severity, count(*) AS n
      FROM quality_flags
      GROUP BY check_name, severity) AS c
