-- citus/quality_checks.sql — the quality checks on Citus (instead of quality_checks.sql): the
-- last step of a load, or standalone for one run. Same checks, settings and results as
-- quality_checks.sql (read it for what each check does); what differs is where the work happens.
-- Reads: load_run_scope, historical_stocks_data, quality_flags; the run from setting
-- stockload.quality_run, else stockload.run_id, else the last succeeded run.
-- Writes: quality_flags and quality_run_counts, as quality_checks.sql; the work tables
-- stockload_quality_* made by citus/distribute.sql (temporary tables cannot be distributed),
-- emptied here at the start and at the end, inside the load's transaction (runs take turns under
-- the advisory lock). The window pass runs on the workers, shard by shard (every window is
-- PARTITION BY company_name and every join is on it); only the calendar (one row per day, a
-- reference table), the flags (the checks read just the suspect rows) and the counts per check
-- go through the coordinator.
-- The settings below must stay those of quality_checks.sql (a unit test compares them).
TRUNCATE stockload_quality_settings, stockload_quality_scope, stockload_quality_calendar,
         stockload_quality_suspects, stockload_quality_found;

INSERT INTO stockload_quality_settings
SELECT coalesce(nullif(current_setting('stockload.quality_run', true), '')::bigint,
                nullif(current_setting('stockload.run_id', true), '')::bigint,
                (SELECT max(l.id) FROM load_runs AS l WHERE l.status = 'succeeded'))
                     AS run_id,
       -- the scale: the mean absolute daily log return over this many preceding days ...
       60            AS volatility_days,
       20            AS min_volatility_days,      -- ... at least this many, else no jump/split
       1.25::float8  AS normal_move_factor,       -- moves beyond ×/÷ 1.25 are not volatility
       10::float8    AS jump_scale_multiple,      -- a jump: a move beyond 10× the scale ...
       1.15::float8  AS jump_min_factor,          -- ... and beyond ×/÷ 1.15
       1.04::float8  AS split_ratio_tolerance,    -- a split: the open within ×/÷ 1.04 of a ratio,
       3::float8     AS split_ratio_scale_multiple, -- widened by 3× the scale (the day's news),
       5             AS split_persist_days,       -- and the closes of this day and the next 5
       0.5::float8   AS split_persist_share,      -- nearer the new level than the old
       100::float8   AS unit_factor,              -- a unit error: cents for dollars, a day
       2::float8     AS unit_tolerance,           -- within ×/÷ 2 of 100× both neighbours,
       1.5::float8   AS unit_neighbours_agree,    -- which agree within ×/÷ 1.5
       0.9::float8   AS calendar_share,           -- a session: this share of the companies trade
       3             AS calendar_min_companies,   -- and at least this many
       1             AS missing_min_sessions;     -- sessions missing before a bar to flag it;

INSERT INTO stockload_quality_scope (company_name, first_date)
SELECT sc.company_name, sc.first_date
FROM load_run_scope AS sc
JOIN stockload_quality_settings AS s ON sc.run_id = s.run_id;

-- The first day re-evaluated (split_persist_days stored days back) and the first day read
-- (volatility_days + 2 more), per company, by index probes on its shard.
UPDATE stockload_quality_scope AS sc
SET eval_from = coalesce((SELECT min(p.stock_date)
                          FROM (SELECT h.stock_date FROM historical_stocks_data AS h
                                WHERE h.company_name = sc.company_name
                                  AND h.stock_date < sc.first_date
                                ORDER BY h.stock_date DESC
                                LIMIT 5) AS p),                  -- split_persist_days
                         sc.first_date),
    read_from = coalesce((SELECT min(p.stock_date)
                          FROM (SELECT h.stock_date FROM historical_stocks_data AS h
                                WHERE h.company_name = sc.company_name
                                  AND h.stock_date < sc.first_date
                                ORDER BY h.stock_date DESC
                                LIMIT 67) AS p),  -- split_persist_days + volatility_days + 2
                         sc.first_date);

-- The calendar first (the one step across companies): per-day counts from the shards, then the
-- running sums on the coordinator.
INSERT INTO stockload_quality_calendar (stock_date, is_session, sessions_through)
WITH bars AS MATERIALIZED (
    SELECT h.company_name, h.stock_date
    FROM stockload_quality_scope AS sc
    JOIN historical_stocks_data AS h
      ON h.company_name = sc.company_name AND h.stock_date >= sc.read_from
),
days AS MATERIALIZED (
    SELECT stock_date, count(*) AS with_bar, 0 AS spans FROM bars GROUP BY stock_date
    UNION ALL
    SELECT min(stock_date), 0, 1 FROM bars GROUP BY company_name
    UNION ALL
    SELECT max(stock_date) + 1, 0, -1 FROM bars GROUP BY company_name
)
SELECT c.stock_date, c.is_session, sum(c.is_session) OVER (ORDER BY c.stock_date)
FROM (SELECT e.stock_date,
             CASE WHEN sum(e.with_bar) >= s.calendar_min_companies
                   AND sum(e.with_bar) >= s.calendar_share
                                          * sum(sum(e.spans)) OVER (ORDER BY e.stock_date)
                  THEN 1 ELSE 0 END AS is_session
      FROM days AS e
      CROSS JOIN stockload_quality_settings AS s
      GROUP BY e.stock_date, s.calendar_min_companies, s.calendar_share) AS c;

-- The window pass, on the workers: the rows any check could flag.
INSERT INTO stockload_quality_suspects
WITH -- The rows read, narrow: open and close as float8 for the ratios and logs below (only those two:
-- a numeric's conversion is not free), and the stored values only on a bar the row-local checks
-- will flag (odd_bar; NULL on every other day, so the sort and the windows carry little). A
-- price outside 1e-150 .. 1e150 (a numeric can hold it, a float8 ratio of two might not) has no
-- float: such a day gets no move-based verdict. Read per company (an index range scan each): the
-- cost follows the scope, whatever the planner believes about the table's size.
bars AS (
    SELECT h.company_name, h.stock_date,
           CASE WHEN h.open_value BETWEEN 1e-150 AND 1e150 THEN h.open_value::float8 END AS open,
           CASE WHEN h.close_value BETWEEN 1e-150 AND 1e150 THEN h.close_value::float8 END
               AS close,
           h.stock_date >= sc.eval_from AS evaluated,
           CASE WHEN h.low_value > h.high_value OR h.open_value < h.low_value
                     OR h.open_value > h.high_value OR h.close_value < h.low_value
                     OR h.close_value > h.high_value
                     OR least(h.open_value, h.high_value, h.low_value, h.close_value) <= 0
                     OR h.volume_traded = 0
                THEN ARRAY[h.open_value, h.high_value, h.low_value, h.close_value,
                           h.volume_traded] END AS odd_bar
    FROM stockload_quality_scope AS sc
    CROSS JOIN LATERAL (SELECT * FROM historical_stocks_data AS x
                        WHERE x.company_name = sc.company_name AND x.stock_date >= sc.read_from
                        OFFSET 0) AS h
),
-- Each day beside its neighbours: previous day and close, the close two days back (is the
-- previous day a 100× error?), the next close, the range of the closes from this day to
-- split_persist_days on (lead(), not a max() frame: a frame max is recomputed per row), and the
-- sessions missing since the previous bar.
neighbours AS (
    SELECT b.company_name, b.stock_date, b.evaluated, b.odd_bar, b.open, b.close,
           lag(b.stock_date) OVER w AS prev_date,
           lag(b.close) OVER w AS prev_close,
           lag(b.close, 2) OVER w AS prev2_close,
           lead(b.close) OVER w AS next_close,
           greatest(b.close, lead(b.close) OVER w, lead(b.close, 2) OVER w,
                    lead(b.close, 3) OVER w, lead(b.close, 4) OVER w,
                    lead(b.close, 5) OVER w) AS ahead_max_close,      -- split_persist_days
           least(b.close, lead(b.close) OVER w, lead(b.close, 2) OVER w,
                 lead(b.close, 3) OVER w, lead(b.close, 4) OVER w,
                 lead(b.close, 5) OVER w) AS ahead_min_close,
           CASE WHEN b.close > 0 AND lag(b.close) OVER w > 0
                THEN ln(b.close / lag(b.close) OVER w) END AS move,
           CASE WHEN b.open > 0 AND lag(b.close) OVER w > 0
                THEN ln(b.open / lag(b.close) OVER w) END AS gap,
           c.sessions_through - c.is_session - lag(c.sessions_through) OVER w AS missing
    FROM bars AS b
    JOIN stockload_quality_calendar AS c ON c.stock_date = b.stock_date
    WINDOW w AS (PARTITION BY b.company_name ORDER BY b.stock_date)
),
-- The company's recent normal volatility: sum and count of its normal moves in the frame.
recent AS (
    SELECT n.*,
           sum(CASE WHEN abs(n.move) <= ln(s.normal_move_factor)
                    THEN round(abs(n.move) * 1e6)::bigint END) OVER prior AS normal_micro_sum,
           count(CASE WHEN abs(n.move) <= ln(s.normal_move_factor) THEN 1 END) OVER prior
               AS normal_days
    FROM neighbours AS n
    CROSS JOIN stockload_quality_settings AS s
    WINDOW prior AS (PARTITION BY n.company_name ORDER BY n.stock_date
                     ROWS BETWEEN 60 PRECEDING AND 1 PRECEDING)         -- volatility_days
),
-- The evaluated rows that any check could flag (most rows fall out here, cheaply).
suspects AS (
    SELECT r.company_name, r.stock_date,
           r.odd_bar[1] AS open_value, r.odd_bar[2] AS high_value, r.odd_bar[3] AS low_value,
           r.odd_bar[4] AS close_value, r.odd_bar[5] AS volume_traded,
           r.open, r.close, r.prev_date, r.prev_close, r.prev2_close, r.next_close,
           r.ahead_max_close, r.ahead_min_close, r.move, r.gap, r.missing,
           CASE WHEN r.normal_days >= s.min_volatility_days
                THEN r.normal_micro_sum / 1e6 / r.normal_days END AS scale,
           coalesce(stockload_unit_error(r.prev_close, r.close, r.next_close, s.unit_factor,
                                         s.unit_tolerance, s.unit_neighbours_agree), false)
               AS unit_off,
           coalesce(stockload_unit_error(r.prev2_close, r.prev_close, r.close, s.unit_factor,
                                         s.unit_tolerance, s.unit_neighbours_agree), false)
               AS after_unit_off
    FROM recent AS r
    CROSS JOIN stockload_quality_settings AS s
    WHERE r.evaluated
      AND (r.odd_bar IS NOT NULL
           OR abs(r.move) >= ln(s.jump_min_factor)
           OR abs(r.gap) >= ln(s.jump_min_factor)
           OR r.missing >= s.missing_min_sessions)
)
SELECT * FROM suspects;

INSERT INTO stockload_quality_found (company_name, stock_date, check_name, severity, detail)
WITH split_ratios (label, shares_per_share) AS (
    VALUES ('2:1', 2::float8), ('3:2', 1.5), ('3:1', 3), ('4:1', 4), ('5:1', 5), ('10:1', 10),
           ('1:2 reverse', 0.5), ('2:3 reverse', 2 / 3::float8), ('1:3 reverse', 1 / 3::float8),
           ('1:4 reverse', 0.25), ('1:5 reverse', 0.2), ('1:10 reverse', 0.1)
),
ohlc_inconsistent AS (
    SELECT x.company_name, x.stock_date, 'ohlc_inconsistent' AS check_name, 'error' AS severity,
           concat_ws('; ',
                     CASE WHEN x.low_value > x.high_value
                          THEN format('low %s is above high %s', x.low_value, x.high_value) END,
                     CASE WHEN x.open_value < x.low_value OR x.open_value > x.high_value
                          THEN format('open %s is outside low %s .. high %s',
                                      x.open_value, x.low_value, x.high_value) END,
                     CASE WHEN x.close_value < x.low_value OR x.close_value > x.high_value
                          THEN format('close %s is outside low %s .. high %s',
                                      x.close_value, x.low_value, x.high_value) END)
               AS detail
    FROM stockload_quality_suspects AS x
    WHERE x.low_value > x.high_value OR x.open_value < x.low_value
       OR x.open_value > x.high_value OR x.close_value < x.low_value
       OR x.close_value > x.high_value
),
nonpositive_price AS (
    SELECT x.company_name, x.stock_date, 'nonpositive_price', 'error',
           concat_ws(', ', CASE WHEN x.open_value <= 0 THEN 'open' END,
                           CASE WHEN x.high_value <= 0 THEN 'high' END,
                           CASE WHEN x.low_value <= 0 THEN 'low' END,
                           CASE WHEN x.close_value <= 0 THEN 'close' END) || ' 0'
    FROM stockload_quality_suspects AS x
    WHERE least(x.open_value, x.high_value, x.low_value, x.close_value) <= 0
),
unit_error AS (
    SELECT x.company_name, x.stock_date, 'unit_error', 'error',
           format('closes %s between closes of %s and %s: about %s× off (cents for dollars?)',
                  x.close, x.prev_close, x.next_close,
                  CASE WHEN x.close > x.prev_close THEN s.unit_factor::text
                       ELSE '1/' || s.unit_factor END)
    FROM stockload_quality_suspects AS x
    CROSS JOIN stockload_quality_settings AS s
    WHERE x.unit_off
),
suspected_split AS (
    SELECT x.company_name, x.stock_date, 'suspected_split', 'warning',
           format('opens %s after a close of %s: looks like an unadjusted %s split',
                  x.open, x.prev_close, r.label)
    FROM stockload_quality_suspects AS x
    CROSS JOIN stockload_quality_settings AS s
    CROSS JOIN LATERAL (SELECT q.label, ln(q.shares_per_share) AS size
                        FROM split_ratios AS q
                        ORDER BY abs(x.gap + ln(q.shares_per_share))
                        LIMIT 1) AS r
    WHERE abs(x.gap) >= ln(s.jump_min_factor)
      AND abs(x.gap) >= s.jump_scale_multiple * x.scale
      AND NOT x.unit_off
      AND abs(x.gap + r.size) <= ln(s.split_ratio_tolerance) + s.split_ratio_scale_multiple * x.scale
      -- the new level holds: this day's and the next days' closes stay near the open (CASE:
      -- no logarithm of a zero price is ever taken)
      AND CASE WHEN x.ahead_min_close > 0 AND x.open > 0
               THEN ln(x.ahead_max_close / x.open) <= s.split_persist_share * abs(r.size)
                    AND ln(x.open / x.ahead_min_close) <= s.split_persist_share * abs(r.size)
               ELSE false END
      -- a one-day move and its way back is no split: the close two days before is not at the
      -- new level
      AND CASE WHEN x.prev2_close > 0 AND x.open > 0
               THEN abs(ln(x.open / x.prev2_close)) > s.split_persist_share * abs(r.size)
               ELSE true END
),
price_jump AS (
    SELECT x.company_name, x.stock_date, 'price_jump', 'warning',
           format('closes %s after %s (%s%%): %s times its usual daily move of %s%%',
                  x.close, x.prev_close, round(((exp(x.move) - 1) * 100)::numeric, 1),
                  coalesce(round((abs(x.move) / nullif(x.scale, 0))::numeric)::text, 'countless'),
                  round((x.scale * 100)::numeric, 2))
    FROM stockload_quality_suspects AS x
    CROSS JOIN stockload_quality_settings AS s
    WHERE abs(x.move) >= ln(s.jump_min_factor)
      AND abs(x.move) >= s.jump_scale_multiple * x.scale
      AND NOT x.unit_off
      AND NOT x.after_unit_off
      AND NOT EXISTS (SELECT 1 FROM suspected_split AS t
                      WHERE t.company_name = x.company_name AND t.stock_date = x.stock_date)
),
stale_bar AS (
    SELECT x.company_name, x.stock_date, 'stale_bar', 'warning',
           format('no trading recorded: volume 0 and open = high = low = close = %s', x.close_value)
    FROM stockload_quality_suspects AS x
    WHERE x.volume_traded = 0 AND x.open_value = x.high_value AND x.high_value = x.low_value
      AND x.low_value = x.close_value
),
missing_sessions AS (
    SELECT x.company_name, x.stock_date, 'missing_sessions', 'warning',
           format('%s sessions missing since the previous bar (%s): days on which nearly all of '
                  'the batch''s companies have a bar', x.missing, x.prev_date)
    FROM stockload_quality_suspects AS x
    CROSS JOIN stockload_quality_settings AS s
    WHERE x.missing >= s.missing_min_sessions
)
SELECT * FROM ohlc_inconsistent
UNION ALL SELECT * FROM nonpositive_price
UNION ALL SELECT * FROM unit_error
UNION ALL SELECT * FROM suspected_split
UNION ALL SELECT * FROM price_jump
UNION ALL SELECT * FROM stale_bar
UNION ALL SELECT * FROM missing_sessions;;

-- Counts per check before the flags change: flags on the run's days, flags to clear.
INSERT INTO quality_run_counts (run_id, check_name, severity, flags, cleared)
WITH found AS MATERIALIZED (
    SELECT n.check_name, count(*) AS flags
    FROM stockload_quality_found AS n
    JOIN stockload_quality_scope AS sc
      ON sc.company_name = n.company_name AND n.stock_date >= sc.first_date
    GROUP BY n.check_name
),
cleared AS MATERIALIZED (
    SELECT f.check_name, count(*) AS cleared
    FROM quality_flags AS f
    JOIN stockload_quality_scope AS sc
      ON sc.company_name = f.company_name AND f.stock_date >= sc.eval_from
    WHERE NOT EXISTS (SELECT 1 FROM stockload_quality_found AS n
                      WHERE n.company_name = f.company_name AND n.stock_date = f.stock_date
                        AND n.check_name = f.check_name)
    GROUP BY f.check_name
),
run AS MATERIALIZED (
    SELECT run_id FROM stockload_quality_settings WHERE run_id IS NOT NULL
)
SELECT run.run_id, k.check_name, k.severity, coalesce(found.flags, 0),
       coalesce(cleared.cleared, 0)
FROM run
CROSS JOIN (VALUES ('ohlc_inconsistent', 'error'), ('nonpositive_price', 'error'),
                   ('unit_error', 'error'), ('suspected_split', 'warning'),
                   ('price_jump', 'warning'), ('stale_bar', 'warning'),
                   ('missing_sessions', 'warning')) AS k (check_name, severity)
LEFT JOIN found ON found.check_name = k.check_name
LEFT JOIN cleared ON cleared.check_name = k.check_name
ON CONFLICT (run_id, check_name) DO UPDATE
SET flags = EXCLUDED.flags, cleared = EXCLUDED.cleared;

DELETE FROM quality_flags AS f
USING stockload_quality_scope AS sc
WHERE sc.company_name = f.company_name AND f.stock_date >= sc.eval_from
  AND NOT EXISTS (SELECT 1 FROM stockload_quality_found AS n
                  WHERE n.company_name = f.company_name AND n.stock_date = f.stock_date
                    AND n.check_name = f.check_name);

INSERT INTO quality_flags AS f (company_name, stock_date, check_name, severity, run_id, detail)
SELECT n.company_name, n.stock_date, n.check_name, n.severity, s.run_id, n.detail
FROM stockload_quality_found AS n
CROSS JOIN stockload_quality_settings AS s
ON CONFLICT (company_name, stock_date, check_name) DO UPDATE
SET severity = EXCLUDED.severity, run_id = EXCLUDED.run_id, detail = EXCLUDED.detail
WHERE f.detail IS DISTINCT FROM EXCLUDED.detail OR f.severity IS DISTINCT FROM EXCLUDED.severity;

TRUNCATE stockload_quality_settings, stockload_quality_scope, stockload_quality_calendar,
         stockload_quality_suspects, stockload_quality_found;
