-- quality_checks.sql — the last step of a load (after the transform scripts, in its transaction),
-- or standalone from psql/pgAdmin/Data Pipeline for one run, like recompute_changes.sql.
-- Reads: load_run_scope (each company's first loaded day of the run), historical_stocks_data,
-- quality_flags; the run from setting stockload.quality_run, else stockload.run_id (set by the
-- load), else the last succeeded run; settings stockload.load_path and stockload.change_basis
-- (set by the load: they choose how the rows to check are found, below); on a first load
-- stockload_work.run_scope and run_days (the staging session's counts, stage_scope.sql).
-- Writes: quality_flags — the current flags of the rows the run touched and of the rows whose
-- verdict depends on them (a fixed row loses its flag; a flag the run confirms keeps the run that
-- raised it); quality_run_counts — per check, the flags on the run's days and the flags it
-- cleared.
-- Never changes historical_stocks_data.
--
-- Which rows: per company of the run, the days from its first loaded day on, plus the
-- split_persist_days stored days before it (their verdicts look ahead); read with
-- volatility_days + split_persist_days + 2 stored days more before those, as context only. So a
-- daily append checks its own days against stored history (index range scans per company): the
-- cost grows with the batch, not with the table. A batch that reaches back into stored days
-- re-checks its companies from there to their last day.
-- How they are found — two finders, one verdict:
--   rows-read       (a daily append, standalone runs): every row above is read; the calendar is
--                   learned from them; each evaluated row is checked.
--   stored-changes  (the first load into an empty table, previous-close basis: the table holds
--                   this run's rows only, with the daily_percent_change the load just computed):
--                   the staging session counted the bars per day (the calendar) and per company
--                   (who misses sessions) in each chunk; one parallel scan of the table, no sort
--                   and no window, finds the suspects: bars a row-local check could flag, or
--                   whose move from the previous close is large enough for a move-based check
--                   (bounds derived from the settings below, so never tighter than the checks).
--                   Only the suspects, and the rows of the companies that miss sessions, are
--                   then checked, each read with the volatility_days + 1 days before it and the
--                   day after as context.
--   Both finders fill the same tables (stockload_quality_bars, _calendar); the checks below read
--   only those, so both give the same flags (the tests compare them, and a Citus load too).
-- The checks (one CTE each, unioned at the end) read one window pass over those rows
-- (PARTITION BY company_name ORDER BY stock_date), so on Citus each company stays on its shard.
-- Robust volatility, as in yfinance's price repair (_fix_prices_sudden_change leaves the outliers
-- out of its estimate of the normal daily change): the mean absolute daily log return over the
-- preceding volatility_days days, leaving out moves beyond normal_move_factor (a split, a 100×
-- error or a crash is not the stock's normal volatility). Kept as whole micro-units so the sliding
-- sum is exact and cheap (bigint sums slide without re-adding the frame).
DROP TABLE IF EXISTS stockload_quality_settings, stockload_quality_split_ratios,
                     stockload_quality_scope, stockload_quality_days, stockload_quality_calendar,
                     stockload_quality_off_days, stockload_quality_company_bars,
                     stockload_quality_candidates, stockload_quality_bars, stockload_quality_found,
                     stockload_quality_cleared;
DROP VIEW IF EXISTS stockload_quality_rows;

-- The thresholds, one row of named settings. volatility_days and split_persist_days are also
-- written in the window pass below (a window frame or lead() offset takes no column).
CREATE TEMPORARY TABLE stockload_quality_settings AS
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
       1             AS missing_min_sessions,     -- sessions missing before a bar to flag it
       -- the finder: stored-changes only where the table holds just this run's rows (the load
       -- says so) and their stored changes are close - previous close
       CASE WHEN nullif(current_setting('stockload.quality_run', true), '') IS NULL
                 AND current_setting('stockload.load_path', true) = 'empty'
                 AND current_setting('stockload.change_basis', true) = 'previous-close'
            THEN 'stored-changes' ELSE 'rows-read' END AS finder;

-- The split ratios the split check knows (shares after per share before).
CREATE TEMPORARY TABLE stockload_quality_split_ratios (label, shares_per_share) AS
VALUES ('2:1', 2::float8), ('3:2', 1.5), ('3:1', 3), ('4:1', 4), ('5:1', 5), ('10:1', 10),
       ('1:2 reverse', 0.5), ('2:3 reverse', 2 / 3::float8), ('1:3 reverse', 1 / 3::float8),
       ('1:4 reverse', 0.25), ('1:5 reverse', 0.2), ('1:10 reverse', 0.1);

-- The finder as a transaction-local setting: each statement below that belongs to one finder
-- tests it as a one-time filter, and reads nothing when the other finder runs.
SELECT set_config('stockload.quality_finder', finder, true) FROM stockload_quality_settings;

-- Per company of the run: first loaded day, the first day re-evaluated, the first day read, the
-- last day.
CREATE TEMPORARY TABLE stockload_quality_scope AS
SELECT sc.company_name,
       sc.first_date,
       coalesce(back.eval_from, sc.first_date) AS eval_from,
       coalesce(back.read_from, sc.first_date) AS read_from,
       (SELECT max(h.stock_date) FROM historical_stocks_data AS h
        WHERE h.company_name = sc.company_name) AS last_date
FROM stockload_quality_settings AS s
JOIN load_run_scope AS sc ON sc.run_id = s.run_id
CROSS JOIN LATERAL (
    SELECT min(p.stock_date) FILTER (WHERE p.n <= s.split_persist_days) AS eval_from,
           min(p.stock_date) AS read_from
    FROM (SELECT h.stock_date, row_number() OVER (ORDER BY h.stock_date DESC) AS n
          FROM historical_stocks_data AS h
          WHERE h.company_name = sc.company_name
            AND h.stock_date < sc.first_date
          ORDER BY h.stock_date DESC
          LIMIT s.split_persist_days + s.volatility_days + 2) AS p) AS back;

ANALYZE stockload_quality_settings, stockload_quality_scope;

-- A stored row as the checks read it, narrow: open and close as float8 for the ratios and logs
-- below (only those two: a numeric's conversion is not free), and the stored values only on a
-- bar the row-local checks will flag (odd_bar; NULL on every other day, so the sort and the
-- windows carry little). A price outside 1e-150 .. 1e150 (a numeric can hold it, a float8 ratio
-- of two might not) has no float: such a day gets no move-based verdict.
CREATE TEMPORARY VIEW stockload_quality_rows AS
SELECT h.company_name, h.stock_date,
       CASE WHEN h.open_value BETWEEN 1e-150 AND 1e150 THEN h.open_value::float8 END AS open,
       CASE WHEN h.close_value BETWEEN 1e-150 AND 1e150 THEN h.close_value::float8 END AS close,
       CASE WHEN h.low_value > h.high_value OR h.open_value < h.low_value
                 OR h.open_value > h.high_value OR h.close_value < h.low_value
                 OR h.close_value > h.high_value
                 OR least(h.open_value, h.high_value, h.low_value, h.close_value) <= 0
                 OR h.volume_traded = 0
            THEN ARRAY[h.open_value, h.high_value, h.low_value, h.close_value,
                       h.volume_traded] END AS odd_bar
FROM historical_stocks_data AS h;

-- rows-read: the rows the checks read, each evaluated from its company's eval_from on. Read per
-- company (an index range scan each): the cost follows the scope, whatever the planner believes
-- about the table's size. (stored-changes adds its rows further down.)
CREATE TEMPORARY TABLE stockload_quality_bars AS
SELECT h.company_name, h.stock_date, h.open, h.close, h.stock_date >= sc.eval_from AS evaluated,
       h.odd_bar
FROM stockload_quality_scope AS sc
CROSS JOIN LATERAL (SELECT * FROM stockload_quality_rows AS x
                    WHERE x.company_name = sc.company_name AND x.stock_date >= sc.read_from
                    OFFSET 0) AS h
WHERE current_setting('stockload.quality_finder') = 'rows-read';

-- The bars per day, for the calendar: rows-read counts the rows read; stored-changes sums what
-- the staging session counted in each chunk of the load (stage_scope.sql). stockload_work is
-- named only in statements run for stored-changes (EXECUTE): a standalone run needs no access
-- to it.
CREATE TEMPORARY TABLE stockload_quality_days AS
SELECT b.stock_date, count(*) AS bars
FROM stockload_quality_bars AS b
GROUP BY b.stock_date;

DO $$
BEGIN
    IF current_setting('stockload.quality_finder') = 'stored-changes' THEN
        EXECUTE $counted$
            INSERT INTO stockload_quality_days (stock_date, bars)
            SELECT d.stock_date, sum(d.bars)
            FROM stockload_work.run_days AS d
            WHERE d.run_id = (SELECT run_id FROM stockload_quality_settings)
            GROUP BY d.stock_date
        $counted$;
    END IF;
END
$$;

-- The trading calendar, learned from those bars: a session is a day on which at least
-- calendar_share of the companies whose read range spans it have a bar (and at least
-- calendar_min_companies do). sessions_through counts the sessions up to each day.
CREATE TEMPORARY TABLE stockload_quality_calendar AS
SELECT c.stock_date, c.with_bar, c.is_session,
       sum(c.is_session) OVER (ORDER BY c.stock_date) AS sessions_through
FROM (SELECT e.stock_date, sum(e.with_bar) AS with_bar,
             CASE WHEN sum(e.with_bar) >= s.calendar_min_companies
                   AND sum(e.with_bar) >= s.calendar_share
                                          * sum(sum(e.spans)) OVER (ORDER BY e.stock_date)
                  THEN 1 ELSE 0 END AS is_session
      FROM (SELECT stock_date, bars AS with_bar, 0 AS spans FROM stockload_quality_days
            UNION ALL
            SELECT read_from, 0, 1 FROM stockload_quality_scope
            UNION ALL
            SELECT last_date + 1, 0, -1 FROM stockload_quality_scope) AS e
      CROSS JOIN stockload_quality_settings AS s
      GROUP BY e.stock_date, s.calendar_min_companies, s.calendar_share) AS c;

CREATE UNIQUE INDEX ON stockload_quality_calendar (stock_date);
ANALYZE stockload_quality_calendar;

-- stored-changes: the days with bars that are no session (usually none).
CREATE TEMPORARY TABLE stockload_quality_off_days AS
SELECT c.stock_date FROM stockload_quality_calendar AS c
WHERE c.is_session = 0 AND c.with_bar > 0
  AND current_setting('stockload.quality_finder') = 'stored-changes';

-- stored-changes: two parallel scans of the table, without sort or window.
--   The bars per company on days that are no session, only when there are such days: with the
--   bars per company stage_scope.sql counted, a company misses sessions where its span holds
--   more sessions than its bars on sessions.
--   The suspects: a bar a row-local check could flag (not low > 0 and open, close within
--   [low, high]; or no volume), or a move from the previous close (daily_percent_change, which
--   the load just computed from it) of at least jump_move — price_jump needs
--   ln(jump_min_factor), unit_error ln(unit_factor / unit_tolerance) — or of at least
--   split_move with an open at least ln(jump_min_factor) from the previous close
--   (suspected_split). split_move: a split's gap is within ln(split_ratio_tolerance) +
--   split_ratio_scale_multiple × scale of a ratio's size S and at least jump_scale_multiple ×
--   scale, and its close stays within split_persist_share × S of its open; so its move is at
--   least (S - ln(tolerance)) / (1 + scale_multiple / jump_scale_multiple) - persist_share × S
--   for some ratio (0 if the settings allow less). Most rows cost two comparisons for the moves
--   (the smaller bound first). The percent bounds are widened by 0.001 (the stored change is
--   rounded to 6 decimals) and the gap factor by a millionth: never tighter than the checks.
-- The days and bounds are written into the statements as constants (format()): the planner
-- runs a scan in parallel only with constants (a value read per row from a setting, or a
-- temporary table, would keep it on one core). It also expects most rows to pass the suspects'
-- filter (it cannot know how the columns relate), so passing rows between processes is priced
-- at nothing for these statements.
DO $$
DECLARE
    k record;
    tuple_cost_before text := current_setting('parallel_tuple_cost');
BEGIN
    SELECT s.run_id, s.finder = 'stored-changes' AS stored_changes,
           least(j.jump_move, j.split_move) AS min_move, j.jump_move,
           ln(s.jump_min_factor) AS gap_move,
           (SELECT coalesce(array_agg(d.stock_date), '{}') FROM stockload_quality_off_days AS d)
               AS off_days
    INTO k
    FROM stockload_quality_settings AS s
    CROSS JOIN LATERAL (
        SELECT greatest(least(ln(s.jump_min_factor), ln(s.unit_factor / s.unit_tolerance)), 0)
                   AS jump_move,
               CASE WHEN s.jump_scale_multiple > 0 AND s.split_ratio_scale_multiple >= 0
                    THEN greatest((SELECT min((abs(ln(q.shares_per_share))
                                               - ln(s.split_ratio_tolerance))
                                              / (1 + s.split_ratio_scale_multiple
                                                     / s.jump_scale_multiple)
                                              - s.split_persist_share
                                                * abs(ln(q.shares_per_share)))
                                   FROM stockload_quality_split_ratios AS q), 0)
                    ELSE 0 END AS split_move) AS j;
    IF NOT k.stored_changes THEN
        CREATE TEMPORARY TABLE stockload_quality_company_bars
            (company_name text COLLATE "C", bars bigint, off_session_bars bigint);
        CREATE TEMPORARY TABLE stockload_quality_candidates
            (company_name text COLLATE "C", stock_date date);
        RETURN;
    END IF;
    PERFORM set_config('parallel_tuple_cost', '0', true);
    EXECUTE format($scan$
        CREATE TEMPORARY TABLE stockload_quality_company_bars AS
        SELECT w.company_name, w.bars, coalesce(off.bars, 0) AS off_session_bars
        FROM stockload_work.run_scope AS w
        LEFT JOIN (SELECT h.company_name, count(*) AS bars
                   FROM historical_stocks_data AS h
                   WHERE %s
                   GROUP BY h.company_name) AS off ON off.company_name = w.company_name
        WHERE w.run_id = %s
        $scan$,
        CASE WHEN k.off_days = '{}' THEN 'false'
             ELSE format('h.stock_date = ANY (%L::date[])', k.off_days) END,
        coalesce(k.run_id, 0));
    EXECUTE format($scan$
        CREATE TEMPORARY TABLE stockload_quality_candidates AS
        SELECT h.company_name, h.stock_date
        FROM historical_stocks_data AS h
        WHERE NOT (h.low_value > 0 AND h.open_value BETWEEN h.low_value AND h.high_value
                   AND h.close_value BETWEEN h.low_value AND h.high_value)
           OR h.volume_traded = 0
           OR (h.daily_percent_change >= %1$s OR h.daily_percent_change <= %2$s)
              AND (h.daily_percent_change >= %3$s OR h.daily_percent_change <= %4$s
                   OR h.open_value > (h.close_value - h.value_change) * %5$s
                   OR h.open_value * %5$s < h.close_value - h.value_change)
        $scan$,
        round((100 * (exp(k.min_move) - 1) - 0.001)::numeric, 6),
        round((100 * (exp(-k.min_move) - 1) + 0.001)::numeric, 6),
        round((100 * (exp(k.jump_move) - 1) - 0.001)::numeric, 6),
        round((100 * (exp(-k.jump_move) - 1) + 0.001)::numeric, 6),
        round((exp(k.gap_move) * (1 - 1e-6))::numeric, 9));
    PERFORM set_config('parallel_tuple_cost', tuple_cost_before, true);
END
$$;

-- stored-changes: the rows after missed sessions, in the companies that miss any (a window pass
-- over those companies only).
INSERT INTO stockload_quality_candidates (company_name, stock_date)
SELECT cb.company_name, r.stock_date
FROM stockload_quality_settings AS s
CROSS JOIN stockload_quality_company_bars AS cb
JOIN stockload_quality_scope AS sc ON sc.company_name = cb.company_name
JOIN stockload_quality_calendar AS first_day ON first_day.stock_date = sc.read_from
JOIN stockload_quality_calendar AS last_day ON last_day.stock_date = sc.last_date
CROSS JOIN LATERAL (
    SELECT x.stock_date,
           c.sessions_through - c.is_session
               - lag(c.sessions_through) OVER (ORDER BY x.stock_date) AS missing
    FROM historical_stocks_data AS x
    JOIN stockload_quality_calendar AS c ON c.stock_date = x.stock_date
    WHERE x.company_name = cb.company_name) AS r
WHERE last_day.sessions_through - first_day.sessions_through + first_day.is_session
          > cb.bars - cb.off_session_bars
  AND r.missing >= s.missing_min_sessions;

-- stored-changes: each suspect with its context — the volatility_days + 1 days before it (the
-- volatility frame and the moves in it) and the day after — read by index range scans from the
-- suspect; a day in the context of several suspects is kept once, evaluated if it is a suspect.
INSERT INTO stockload_quality_bars (company_name, stock_date, open, close, evaluated, odd_bar)
SELECT DISTINCT ON (k.company_name, k.stock_date)
       k.company_name, k.stock_date, k.open, k.close, k.evaluated, k.odd_bar
FROM (SELECT r.company_name, r.stock_date, r.open, r.close,
             r.stock_date = c.stock_date AS evaluated, r.odd_bar
      FROM stockload_quality_candidates AS c
      CROSS JOIN stockload_quality_settings AS s
      CROSS JOIN LATERAL (SELECT * FROM stockload_quality_rows AS x
                          WHERE x.company_name = c.company_name
                            AND x.stock_date <= c.stock_date
                          ORDER BY x.stock_date DESC
                          LIMIT s.volatility_days + 2) AS r
      UNION ALL
      SELECT r.company_name, r.stock_date, r.open, r.close, false, r.odd_bar
      FROM stockload_quality_candidates AS c
      CROSS JOIN LATERAL (SELECT * FROM stockload_quality_rows AS x
                          WHERE x.company_name = c.company_name
                            AND x.stock_date > c.stock_date
                          ORDER BY x.stock_date
                          LIMIT 1) AS r) AS k
ORDER BY k.company_name, k.stock_date, k.evaluated DESC;

ANALYZE stockload_quality_bars;

CREATE TEMPORARY TABLE stockload_quality_found AS
WITH settings AS (
    SELECT * FROM stockload_quality_settings
),
-- Each day beside its neighbours: previous day and close, the close two days back (is the
-- previous day a 100× error?), the next close, and the sessions missing since the previous bar.
-- (What the split check needs of the following days it reads for its few candidates only.)
neighbours AS (
    SELECT b.company_name, b.stock_date, b.evaluated, b.odd_bar, b.open, b.close,
           lag(b.stock_date) OVER w AS prev_date,
           lag(b.close) OVER w AS prev_close,
           lag(b.close, 2) OVER w AS prev2_close,
           lead(b.close) OVER w AS next_close,
           CASE WHEN b.close > 0 AND lag(b.close) OVER w > 0
                THEN ln(b.close / lag(b.close) OVER w) END AS move,
           CASE WHEN b.open > 0 AND lag(b.close) OVER w > 0
                THEN ln(b.open / lag(b.close) OVER w) END AS gap,
           c.sessions_through - c.is_session - lag(c.sessions_through) OVER w AS missing
    FROM stockload_quality_bars AS b
    JOIN stockload_quality_calendar AS c ON c.stock_date = b.stock_date
    WINDOW w AS (PARTITION BY b.company_name ORDER BY b.stock_date)
),
-- The company's recent normal volatility: sum and count of its normal moves in the frame. (In
-- the window pass the settings are read once, as scalar subqueries, not joined to every row.)
recent AS (
    SELECT n.*,
           sum(CASE WHEN abs(n.move) <= (SELECT ln(normal_move_factor) FROM settings)
                    THEN round(abs(n.move) * 1e6)::bigint END) OVER prior AS normal_micro_sum,
           count(CASE WHEN abs(n.move) <= (SELECT ln(normal_move_factor) FROM settings)
                      THEN 1 END) OVER prior AS normal_days
    FROM neighbours AS n
    WINDOW prior AS (PARTITION BY n.company_name ORDER BY n.stock_date
                     ROWS BETWEEN 60 PRECEDING AND 1 PRECEDING)         -- volatility_days
),
-- The evaluated rows that any check could flag (most rows fall out here, cheaply).
suspects AS (
    SELECT r.company_name, r.stock_date,
           r.odd_bar[1] AS open_value, r.odd_bar[2] AS high_value, r.odd_bar[3] AS low_value,
           r.odd_bar[4] AS close_value, r.odd_bar[5] AS volume_traded,
           r.open, r.close, r.prev_date, r.prev_close, r.prev2_close, r.next_close,
           r.move, r.gap, r.missing,
           CASE WHEN r.normal_days >= s.min_volatility_days
                THEN r.normal_micro_sum / 1e6 / r.normal_days END AS scale,
           coalesce(stockload_unit_error(r.prev_close, r.close, r.next_close, s.unit_factor,
                                         s.unit_tolerance, s.unit_neighbours_agree), false)
               AS unit_off,
           coalesce(stockload_unit_error(r.prev2_close, r.prev_close, r.close, s.unit_factor,
                                         s.unit_tolerance, s.unit_neighbours_agree), false)
               AS after_unit_off
    FROM recent AS r
    CROSS JOIN settings AS s            -- joined after the filter, which reads none of it
    WHERE r.evaluated
      AND (r.odd_bar IS NOT NULL
           OR abs(r.move) >= (SELECT ln(jump_min_factor) FROM settings)
           OR abs(r.gap) >= (SELECT ln(jump_min_factor) FROM settings)
           OR r.missing >= (SELECT missing_min_sessions FROM settings))
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
    FROM suspects AS x
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
    FROM suspects AS x
    WHERE least(x.open_value, x.high_value, x.low_value, x.close_value) <= 0
),
unit_error AS (
    SELECT x.company_name, x.stock_date, 'unit_error', 'error',
           format('closes %s between closes of %s and %s: about %s× off (cents for dollars?)',
                  x.close, x.prev_close, x.next_close,
                  CASE WHEN x.close > x.prev_close THEN s.unit_factor::text
                       ELSE '1/' || s.unit_factor END)
    FROM suspects AS x
    CROSS JOIN settings AS s
    WHERE x.unit_off
),
suspected_split AS (
    SELECT x.company_name, x.stock_date, 'suspected_split', 'warning',
           format('opens %s after a close of %s: looks like an unadjusted %s split',
                  x.open, x.prev_close, r.label)
    FROM suspects AS x
    CROSS JOIN settings AS s
    CROSS JOIN LATERAL (SELECT q.label, ln(q.shares_per_share) AS size
                        FROM stockload_quality_split_ratios AS q
                        ORDER BY abs(x.gap + ln(q.shares_per_share))
                        LIMIT 1) AS r
    -- the range of the closes from this day to split_persist_days on (an index probe each)
    CROSS JOIN LATERAL (SELECT max(a.close) AS max_close, min(a.close) AS min_close
                        FROM (SELECT CASE WHEN y.close_value BETWEEN 1e-150 AND 1e150
                                          THEN y.close_value::float8 END AS close
                              FROM historical_stocks_data AS y
                              WHERE y.company_name = x.company_name
                                AND y.stock_date >= x.stock_date
                              ORDER BY y.stock_date
                              LIMIT s.split_persist_days + 1) AS a) AS ahead
    WHERE abs(x.gap) >= ln(s.jump_min_factor)
      AND abs(x.gap) >= s.jump_scale_multiple * x.scale
      AND NOT x.unit_off
      AND abs(x.gap + r.size) <= ln(s.split_ratio_tolerance) + s.split_ratio_scale_multiple * x.scale
      -- the new level holds: this day's and the next days' closes stay near the open (CASE:
      -- no logarithm of a zero price is ever taken)
      AND CASE WHEN ahead.min_close > 0 AND x.open > 0
               THEN ln(ahead.max_close / x.open) <= s.split_persist_share * abs(r.size)
                    AND ln(x.open / ahead.min_close) <= s.split_persist_share * abs(r.size)
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
    FROM suspects AS x
    CROSS JOIN settings AS s
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
    FROM suspects AS x
    WHERE x.volume_traded = 0 AND x.open_value = x.high_value AND x.high_value = x.low_value
      AND x.low_value = x.close_value
),
missing_sessions AS (
    SELECT x.company_name, x.stock_date, 'missing_sessions', 'warning',
           format('%s sessions missing since the previous bar (%s): days on which nearly all of '
                  'the batch''s companies have a bar', x.missing, x.prev_date)
    FROM suspects AS x
    CROSS JOIN settings AS s
    WHERE x.missing >= s.missing_min_sessions
)
SELECT * FROM ohlc_inconsistent
UNION ALL SELECT * FROM nonpositive_price
UNION ALL SELECT * FROM unit_error
UNION ALL SELECT * FROM suspected_split
UNION ALL SELECT * FROM price_jump
UNION ALL SELECT * FROM stale_bar
UNION ALL SELECT * FROM missing_sessions;

-- The flags of the re-evaluated rows that the new verdicts no longer raise.
CREATE TEMPORARY TABLE stockload_quality_cleared AS
SELECT f.company_name, f.stock_date, f.check_name
FROM stockload_quality_scope AS sc
JOIN quality_flags AS f
  ON f.company_name = sc.company_name AND f.stock_date >= sc.eval_from
WHERE NOT EXISTS (SELECT 1 FROM stockload_quality_found AS n
                  WHERE n.company_name = f.company_name AND n.stock_date = f.stock_date
                    AND n.check_name = f.check_name);

DELETE FROM quality_flags AS f
USING stockload_quality_cleared AS c
WHERE f.company_name = c.company_name AND f.stock_date = c.stock_date
  AND f.check_name = c.check_name;

-- New flags, and flags whose detail changed, are this run's; a confirmed flag keeps its run.
INSERT INTO quality_flags AS f (company_name, stock_date, check_name, severity, run_id, detail)
SELECT n.company_name, n.stock_date, n.check_name, n.severity, s.run_id, n.detail
FROM stockload_quality_found AS n
CROSS JOIN stockload_quality_settings AS s
ON CONFLICT (company_name, stock_date, check_name) DO UPDATE
SET severity = EXCLUDED.severity, run_id = EXCLUDED.run_id, detail = EXCLUDED.detail
WHERE f.detail IS DISTINCT FROM EXCLUDED.detail OR f.severity IS DISTINCT FROM EXCLUDED.severity;

-- Per check (all seven, zeros included): flags on the run's days, flags it cleared.
DELETE FROM quality_run_counts
WHERE run_id = (SELECT run_id FROM stockload_quality_settings);

INSERT INTO quality_run_counts (run_id, check_name, severity, flags, cleared)
SELECT s.run_id, k.check_name, k.severity,
       (SELECT count(*) FROM stockload_quality_found AS n
        JOIN stockload_quality_scope AS sc
          ON sc.company_name = n.company_name AND n.stock_date >= sc.first_date
        WHERE n.check_name = k.check_name),
       (SELECT count(*) FROM stockload_quality_cleared AS c WHERE c.check_name = k.check_name)
FROM stockload_quality_settings AS s
CROSS JOIN (VALUES ('ohlc_inconsistent', 'error'), ('nonpositive_price', 'error'),
                   ('unit_error', 'error'), ('suspected_split', 'warning'),
                   ('price_jump', 'warning'), ('stale_bar', 'warning'),
                   ('missing_sessions', 'warning')) AS k (check_name, severity)
WHERE s.run_id IS NOT NULL;

DROP VIEW stockload_quality_rows;
DROP TABLE stockload_quality_settings, stockload_quality_split_ratios, stockload_quality_scope,
           stockload_quality_days, stockload_quality_calendar, stockload_quality_off_days,
           stockload_quality_company_bars,
           stockload_quality_candidates, stockload_quality_bars,
           stockload_quality_found, stockload_quality_cleared;
