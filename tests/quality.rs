//! The data-quality checks against a real database: generated companies with each fault planted
//! at a known row (and look-alikes that are not that fault), flagged exactly there; the same flags
//! from one batch, from the batch split by date, from both load paths; corrections clear flags;
//! `--fail-on-quality-errors` loads nothing.

use std::collections::BTreeSet;

use chrono::{Datelike, NaiveDate, Weekday};
use stockload::load::RunStatus;
use stockload::plan::ChangeBasis;

use crate::support::{stockload, url_as, Batch, TestDb};

/// (company, day, check) of a flag.
type FlagKey = (String, String, String);

/// One bar: day, open, high, low, close, volume.
#[derive(Clone, Debug)]
struct Bar {
    date: NaiveDate,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    volume: u64,
}

/// The row a fault is planted at (enough history before it for a volatility estimate).
const AT: usize = 150;
/// Trading days per company.
const DAYS: usize = 300;

/// The shared calendar: weekdays from 2020-01-02, without every 37th (holidays all companies share).
fn calendar() -> Vec<NaiveDate> {
    let mut days = Vec::new();
    let mut day = NaiveDate::from_ymd_opt(2020, 1, 2).unwrap();
    let mut weekday_no = 0;
    while days.len() < DAYS {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            weekday_no += 1;
            if weekday_no % 37 != 0 {
                days.push(day);
            }
        }
        day = day.succ_opt().unwrap();
    }
    days
}

/// A normal draw (Box-Muller).
fn normal(rng: &mut fastrand::Rng) -> f64 {
    let (u, v) = (rng.f64().max(1e-12), rng.f64());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// A clean company: a random walk with daily volatility `sigma`, consistent OHLC bars.
fn clean(rng: &mut fastrand::Rng, sigma: f64) -> Vec<Bar> {
    let mut close = 20.0 + rng.f64() * 180.0;
    calendar()
        .into_iter()
        .map(|date| {
            let open = close * (normal(rng) * sigma / 3.0).exp();
            close = open * (normal(rng) * sigma).exp();
            let top = open.max(close) * (1.0 + rng.f64() * sigma / 2.0);
            let bottom = open.min(close) * (1.0 - rng.f64() * sigma / 2.0);
            Bar {
                date,
                open,
                high: top,
                low: bottom,
                close,
                volume: 100_000 + rng.u64(0..900_000),
            }
        })
        .collect()
}

fn scale(bar: &mut Bar, factor: f64) {
    bar.open *= factor;
    bar.high *= factor;
    bar.low *= factor;
    bar.close *= factor;
}

/// A generated batch: companies with their bars, and the flags each must raise.
struct Planted {
    companies: Vec<(String, Vec<Bar>)>,
    expected: BTreeSet<FlagKey>,
}

impl Planted {
    fn expect(&mut self, company: &str, row: usize, check: &str) {
        let bars = &self.companies.iter().find(|(n, _)| n == company).unwrap().1;
        let date = bars[row].date.to_string();
        self.expected.insert((company.into(), date, check.into()));
    }

    fn add(&mut self, name: &str, bars: Vec<Bar>) {
        self.companies.push((name.into(), bars));
    }
}

/// Clean companies, one company per planted fault (at row AT), and the look-alikes.
fn planted(seed: u64) -> Planted {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut p = Planted {
        companies: Vec::new(),
        expected: BTreeSet::new(),
    };
    for i in 0..4 {
        let sigma = 0.008 + rng.f64() * 0.017;
        p.add(&format!("CLEAN{i}"), clean(&mut rng, sigma));
    }
    // Listed later: its first day is not a gap.
    let late = clean(&mut rng, 0.015).split_off(100);
    p.add("LATE", late);

    let mut bars = clean(&mut rng, 0.015);
    bars[AT].low = bars[AT].high * 1.01;
    p.add("OHLC", bars);
    p.expect("OHLC", AT, "ohlc_inconsistent");

    let mut bars = clean(&mut rng, 0.015);
    scale(&mut bars[AT], 0.0);
    p.add("ZERO", bars);
    p.expect("ZERO", AT, "nonpositive_price");

    let mut bars = clean(&mut rng, 0.015);
    scale(&mut bars[AT], 100.0);
    p.add("CENTS", bars);
    p.expect("CENTS", AT, "unit_error");

    let mut bars = clean(&mut rng, 0.015);
    scale(&mut bars[AT], 0.01);
    p.add("HUNDREDTH", bars);
    p.expect("HUNDREDTH", AT, "unit_error");

    for (name, factor) in [("SPLIT2", 0.5), ("SPLIT32", 1.0 / 1.5), ("REVERSE10", 10.0)] {
        let mut bars = clean(&mut rng, 0.012);
        bars[AT..].iter_mut().for_each(|b| scale(b, factor));
        p.add(name, bars);
        p.expect(name, AT, "suspected_split");
    }

    // Look-alike: a genuine crash of 42 % that persists (no split ratio near 0.58).
    let mut bars = clean(&mut rng, 0.012);
    bars[AT..].iter_mut().for_each(|b| scale(b, 0.58));
    p.add("CRASH", bars);
    p.expect("CRASH", AT, "price_jump");

    // Look-alike: a split-sized move that does not persist (back the next day): two jumps.
    let mut bars = clean(&mut rng, 0.012);
    scale(&mut bars[AT], 0.5);
    p.add("BLIP", bars);
    p.expect("BLIP", AT, "price_jump");
    p.expect("BLIP", AT + 1, "price_jump");

    let mut bars = clean(&mut rng, 0.015);
    let level = bars[AT - 1].close;
    bars[AT] = Bar {
        open: level,
        high: level,
        low: level,
        close: level,
        volume: 0,
        ..bars[AT].clone()
    };
    p.add("STALE", bars);
    p.expect("STALE", AT, "stale_bar");

    // Ten sessions missing (a calm stock, so the move across the gap is no jump).
    let mut bars = clean(&mut rng, 0.006);
    bars.drain(AT..AT + 10);
    p.add("GAP", bars);
    p.expect("GAP", AT, "missing_sessions");
    p
}

fn csv_of(bars: &[Bar]) -> String {
    let mut text = String::from("Date,Open,High,Low,Close,Volume,OpenInt\n");
    for b in bars {
        text.push_str(&format!(
            "{},{:.4},{:.4},{:.4},{:.4},{},0\n",
            b.date, b.open, b.high, b.low, b.close, b.volume
        ));
    }
    text
}

/// A batch of the companies' bars on days in `from..to`.
fn batch(p: &Planted, from: NaiveDate, to: NaiveDate) -> Batch {
    let files: Vec<(String, String)> = p
        .companies
        .iter()
        .map(|(name, bars)| {
            let part: Vec<Bar> = bars
                .iter()
                .filter(|b| b.date >= from && b.date < to)
                .cloned()
                .collect();
            (format!("{name}.csv"), csv_of(&part))
        })
        .filter(|(_, text)| text.lines().count() > 1)
        .collect();
    listed_batch(&files)
}

/// A batch of these (file name, text) files, every one listed.
fn listed_batch(files: &[(String, String)]) -> Batch {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let index = files
        .iter()
        .map(|(n, _)| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Batch::new(&refs, &index)
}

fn all_days() -> (NaiveDate, NaiveDate) {
    (
        NaiveDate::from_ymd_opt(2000, 1, 1).unwrap(),
        NaiveDate::from_ymd_opt(2100, 1, 1).unwrap(),
    )
}

async fn flags(db: &TestDb) -> BTreeSet<FlagKey> {
    let mut conn = db.conn().await;
    sqlx::query_as::<_, FlagKey>(
        "SELECT company_name, stock_date::text, check_name FROM quality_flags",
    )
    .fetch_all(&mut conn)
    .await
    .expect("reading quality_flags")
    .into_iter()
    .collect()
}

async fn load_ok(db: &TestDb, batch: &Batch) -> stockload::load::Report {
    let report = db.load(batch, ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.summary.status, RunStatus::Succeeded);
    report
}

fn date(p: &Planted, row: usize) -> NaiveDate {
    p.companies[0].1[row].date
}

#[tokio::test]
async fn every_planted_fault_is_flagged_exactly_there_and_nothing_else() {
    for seed in 11..=18 {
        let p = planted(seed);
        let db = TestDb::new().await;
        let (from, to) = all_days();
        let report = load_ok(&db, &batch(&p, from, to)).await;
        assert_eq!(flags(&db).await, p.expected, "seed {seed}");
        // The summary counts what the table holds, per check, all seven listed.
        let counts = &report.summary.quality;
        assert_eq!(counts.len(), 7, "{counts:?}");
        for count in counts {
            let expected = p
                .expected
                .iter()
                .filter(|k| k.2 == count.check_name)
                .count();
            assert_eq!(count.flags, expected as u64, "{count:?} (seed {seed})");
        }
        let text = report.summary.to_string();
        assert!(text.contains("quality:   4 errors, 8 warnings"), "{text}");
    }
}

#[tokio::test]
async fn split_batches_and_both_load_paths_give_the_same_flags() {
    let p = planted(21);
    let (from, to) = all_days();
    // Cut right after the faults: the 100× days' next neighbours, the splits' persistence and
    // the gap's end come with a later batch, their context from stored rows.
    let cuts = [date(&p, 100), date(&p, AT + 1), to];

    let one = TestDb::new().await;
    load_ok(&one, &batch(&p, from, to)).await;
    let expected = flags(&one).await;
    assert_eq!(expected, p.expected);

    let split = TestDb::new().await;
    let mut start = from;
    for cut in cuts {
        load_ok(&split, &batch(&p, start, cut)).await;
        start = cut;
    }
    assert_eq!(
        flags(&split).await,
        expected,
        "split by date into three batches"
    );

    // The append path: the table already holds another company.
    let append = TestDb::new().await;
    let other = Batch::new(
        &[(
            "OTHER.csv",
            &csv_of(&clean(&mut fastrand::Rng::with_seed(5), 0.01)),
        )],
        "'OTHER.csv'",
    );
    load_ok(&append, &other).await;
    load_ok(&append, &batch(&p, from, to)).await;
    assert_eq!(flags(&append).await, expected, "append path");
    assert_eq!(split.rows().await, one.rows().await);
}

#[tokio::test]
async fn a_correction_clears_the_fixed_rows_flags_and_keeps_the_others() {
    let p = planted(31);
    let (from, to) = all_days();
    let db = TestDb::new().await;
    load_ok(&db, &batch(&p, from, to)).await;
    // Reload OHLC and CENTS with their faulty days as the clean generator made them.
    let fixed = planted_clean_rows(&p, 31);
    let report = load_ok(&db, &fixed).await;
    let mut expected = p.expected.clone();
    expected.retain(|k| k.0 != "OHLC" && k.0 != "CENTS");
    assert_eq!(flags(&db).await, expected);
    let cleared: u64 = report.summary.quality.iter().map(|c| c.cleared).sum();
    assert_eq!(cleared, 2, "{:?}", report.summary.quality);
    assert!(report.summary.to_string().contains("2 cleared"));
    // A flag a later run confirms keeps the run that raised it.
    assert_eq!(
        db.scalar("SELECT string_agg(DISTINCT run_id::text, ',') FROM quality_flags")
            .await
            .as_deref(),
        Some("1")
    );
}

/// A batch with the faulty day of OHLC and CENTS, regenerated clean (same seed, same draws).
fn planted_clean_rows(p: &Planted, seed: u64) -> Batch {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..4 {
        let sigma = 0.008 + rng.f64() * 0.017;
        clean(&mut rng, sigma);
    }
    clean(&mut rng, 0.015); // LATE
    let ohlc = clean(&mut rng, 0.015);
    clean(&mut rng, 0.015); // ZERO
    let cents = clean(&mut rng, 0.015);
    assert_eq!(ohlc[AT].date, p.companies[0].1[AT].date);
    Batch::new(
        &[
            ("OHLC.csv", &csv_of(&ohlc[AT..=AT])),
            ("CENTS.csv", &csv_of(&cents[AT..=AT])),
        ],
        "'OHLC.csv', 'CENTS.csv'",
    )
}

#[tokio::test]
async fn too_many_error_flags_fail_the_run_and_load_nothing() {
    let p = planted(41);
    let (from, to) = all_days();
    let db = TestDb::new().await;
    let faulty = batch(&p, from, to);
    let mut plan = faulty.plan();
    // 4 error rows of 4,990: 0.08 %.
    plan.fail_on_quality_errors = Some(0.0005);
    let report = db.load_plan(&plan).await;
    assert_eq!(report.summary.status, RunStatus::Failed);
    let error = report.error.expect("the run fails").to_string();
    assert!(
        error.contains("4 error flags") && error.contains("--fail-on-quality-errors 0.0005"),
        "{error}"
    );
    assert!(
        error.contains("OHLC") && error.contains("ohlc_inconsistent"),
        "{error}"
    );
    assert!(db.rows().await.is_empty(), "a failed run loads nothing");
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM quality_flags").await,
        Some("0".into())
    );
    assert_eq!(
        report.summary.quality.len(),
        7,
        "the summary still says what was found"
    );

    plan.fail_on_quality_errors = Some(0.01);
    let report = db.load_plan(&plan).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(flags(&db).await, p.expected);
}

#[tokio::test]
async fn the_script_runs_on_its_own_and_the_cli_lists_the_flags() {
    let p = planted(51);
    let (from, to) = all_days();
    let db = TestDb::new().await;
    load_ok(&db, &batch(&p, from, to)).await;
    let mut conn = db.conn().await;
    // Standalone, as from psql: the last succeeded run, by a role that may read the data and
    // write the flags, and nothing else (no access to stockload_work).
    let name = url::Url::parse(&db.url).unwrap().path()[1..].to_string();
    let (role, password) = (format!("checker_{name}"), "checker-pw-41c2");
    for statement in [
        "DELETE FROM quality_flags".to_string(),
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        format!("GRANT SELECT ON historical_stocks_data, load_runs, load_run_scope TO {role}"),
        format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON quality_flags, quality_run_counts TO {role}"
        ),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let mut checker =
        <sqlx::PgConnection as sqlx::Connection>::connect(&url_as(&db, &role, password))
            .await
            .unwrap();
    let text = stockload::transform::embedded("quality_checks.sql").unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(text.to_string()))
        .execute(&mut checker)
        .await
        .expect("quality_checks.sql runs on its own");
    assert_eq!(flags(&db).await, p.expected);

    let out = stockload()
        .args([
            "quality",
            "--run",
            "1",
            "--check",
            "suspected_split",
            "--json",
        ])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let details: Vec<&str> = json["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["detail"].as_str().unwrap())
        .collect();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(details
        .iter()
        .any(|d| d.contains("unadjusted 1:10 reverse split")));
    assert!(details.iter().any(|d| d.contains("unadjusted 2:1 split")));
    assert!(details.iter().any(|d| d.contains("unadjusted 3:2 split")));
    assert_eq!(json["counts"].as_array().unwrap().len(), 7);

    let out = stockload()
        .args(["quality", "--check", "no_such_check"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing_sessions"));

    let out = stockload()
        .args(["stats"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(
        stats.contains("quality flags:     4 errors, 8 warnings"),
        "{stats}"
    );
}

#[tokio::test]
async fn citus_gives_the_single_node_flags() {
    let Some(cluster) = crate::citus::cluster() else {
        return;
    };
    let p = planted(61);
    let (from, to) = all_days();
    let single = TestDb::new().await;
    load_ok(&single, &batch(&p, from, to)).await;
    assert_eq!(flags(&single).await, p.expected);
    // On Citus in two batches cut after the faults (the append path, context from the shards).
    let citus = crate::citus::citus_db(cluster).await;
    let cut = date(&p, AT + 1);
    load_ok(&citus, &batch(&p, from, cut)).await;
    let report = load_ok(&citus, &batch(&p, cut, to)).await;
    assert!(report
        .summary
        .scripts
        .iter()
        .any(|s| s.name == "citus/quality_checks.sql"));
    assert_eq!(flags(&citus).await, p.expected);
    let details = "SELECT string_agg(company_name || stock_date || check_name || detail, ',' \
                   ORDER BY company_name, stock_date, check_name) FROM quality_flags";
    assert_eq!(citus.scalar(details).await, single.scalar(details).await);

    // The statements that read or write every row of the batch run on the workers, one task
    // per shard, nothing pulled back (the checks themselves read only the suspects and send
    // their flags through the coordinator).
    let text = stockload::transform::embedded("citus/quality_checks.sql").unwrap();
    let code: String = text
        .lines()
        .map(|line| line.split(" --").next().unwrap_or_default())
        .filter(|line| !line.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut conn = citus.conn().await;
    for start in [
        "INSERT INTO stockload_quality_suspects",
        "DELETE FROM quality_flags",
        "INSERT INTO quality_flags",
    ] {
        let statement = code
            .split(";\n")
            .map(str::trim)
            .find(|s| s.starts_with(start))
            .unwrap_or_else(|| panic!("no statement {start}"));
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (COSTS OFF) {statement}"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{start}: {e}"));
        let plan = plan.join("\n");
        assert!(plan.contains("Task Count: 32"), "{start}:\n{plan}");
        for bad in ["repartition", "pull to coordinator"] {
            assert!(!plan.contains(bad), "{start}: {bad}\n{plan}");
        }
    }
}

#[tokio::test]
async fn extreme_prices_load_and_get_no_move_verdicts() {
    let db = TestDb::new().await;
    let text = "Date,Open,High,Low,Close,Volume,OpenInt\n\
                2020-01-02,1,1,1,1,100,0\n\
                2020-01-03,1e200,1e200,1e200,1e200,100,0\n\
                2020-01-06,1e-200,1e-200,1e-200,1e-200,100,0\n\
                2020-01-07,0.5,0.5,0.5,0.5,100,0\n\
                2020-01-08,1e300,2e300,1e300,2e300,100,0\n\
                2020-01-09,1e-300,1e-300,1e-300,1e-300,100,0\n";
    let batch = Batch::new(&[("HUGE.csv", text)], "'HUGE.csv'");
    let report = load_ok(&db, &batch).await;
    assert_eq!(report.summary.rows_loaded, 6);
    assert!(flags(&db).await.is_empty(), "{:?}", flags(&db).await);
}

/// A fault the finder test plants (at a row of a company's bars).
#[derive(Debug, Clone)]
enum Fault {
    /// One bar scaled (a 100× day, a one-day halving, a random move).
    Day(usize, f64),
    /// Every bar from the row on scaled (a split, a crash, a rally that holds).
    From(usize, f64),
    Zero(usize),
    LowAboveHigh(usize),
    OpenAboveHigh(usize),
    Stale(usize),
    /// Bars removed from the row on: missing sessions.
    Drop(usize, usize),
}

impl Fault {
    /// The fault with its row no later than `last`.
    fn at_most(self, last: usize) -> Fault {
        match self {
            Fault::Day(r, f) => Fault::Day(r.min(last), f),
            Fault::From(r, f) => Fault::From(r.min(last), f),
            Fault::Zero(r) => Fault::Zero(r.min(last)),
            Fault::LowAboveHigh(r) => Fault::LowAboveHigh(r.min(last)),
            Fault::OpenAboveHigh(r) => Fault::OpenAboveHigh(r.min(last)),
            Fault::Stale(r) => Fault::Stale(r.min(last)),
            Fault::Drop(r, n) => Fault::Drop(r.min(last), n),
        }
    }
}

/// A company of the finder test: its volatility, its first row (a late listing) and faults.
#[derive(Debug, Clone)]
struct Company {
    sigma: f64,
    start: usize,
    faults: Vec<Fault>,
}

fn fault() -> impl proptest::strategy::Strategy<Value = Fault> {
    use proptest::prelude::*;
    let factor = prop_oneof![
        Just(100.0),
        Just(0.01),
        Just(0.5),
        Just(2.0),
        Just(1.0 / 1.5),
        Just(1.5),
        Just(3.0),
        Just(0.1),
        Just(10.0),
        0.3f64..3.0,
        0.85f64..1.18,
    ];
    let row = 0..DAYS;
    prop_oneof![
        (row.clone(), factor.clone()).prop_map(|(r, f)| Fault::Day(r, f)),
        (row.clone(), factor).prop_map(|(r, f)| Fault::From(r, f)),
        row.clone().prop_map(Fault::Zero),
        row.clone().prop_map(Fault::LowAboveHigh),
        row.clone().prop_map(Fault::OpenAboveHigh),
        row.clone().prop_map(Fault::Stale),
        (row, 1usize..12).prop_map(|(r, n)| Fault::Drop(r, n)),
    ]
}

fn company() -> impl proptest::strategy::Strategy<Value = Company> {
    use proptest::prelude::*;
    (
        prop_oneof![0.002f64..0.01, 0.01f64..0.07],
        prop_oneof![3 => Just(0usize), 1 => 0usize..250],
        proptest::collection::vec(fault(), 0..3),
    )
        .prop_map(|(sigma, start, faults)| Company {
            sigma,
            start,
            faults,
        })
}

fn faulty_bars(rng: &mut fastrand::Rng, c: &Company) -> Vec<Bar> {
    let mut bars = clean(rng, c.sigma);
    for f in &c.faults {
        // Rows are drawn for the full calendar; an earlier Drop may have shortened it.
        let last = bars.len() - 1;
        match f.clone().at_most(last) {
            Fault::Day(r, factor) => scale(&mut bars[r], factor),
            Fault::From(r, factor) => bars[r..].iter_mut().for_each(|b| scale(b, factor)),
            Fault::Zero(r) => scale(&mut bars[r], 0.0),
            Fault::LowAboveHigh(r) => bars[r].low = bars[r].high * 1.02,
            Fault::OpenAboveHigh(r) => bars[r].open = bars[r].high * 1.02,
            Fault::Stale(r) => {
                let level = bars[r].close;
                bars[r] = Bar {
                    open: level,
                    high: level,
                    low: level,
                    volume: 0,
                    ..bars[r].clone()
                };
            }
            Fault::Drop(r, n) => {
                let end = (r + n).min(bars.len() - 1);
                if r < end {
                    bars.drain(r..end);
                }
            }
        }
    }
    let start = c.start.min(bars.len() - 1);
    bars.split_off(start)
}

/// (company, day, check, severity, detail) of every flag.
type FlagRow = (String, String, String, String, String);

async fn flag_rows(conn: &mut sqlx::PgConnection) -> BTreeSet<FlagRow> {
    sqlx::query_as::<_, FlagRow>(
        "SELECT company_name, stock_date::text, check_name, severity, detail FROM quality_flags",
    )
    .fetch_all(conn)
    .await
    .expect("reading quality_flags")
    .into_iter()
    .collect()
}

/// Runs quality_checks.sql for `run_id` as the load named `path` would (in a transaction rolled
/// back after): the finder it chose and the flags it raised from none.
async fn checks_as(db: &TestDb, run_id: i64, path: &str) -> (String, BTreeSet<FlagRow>) {
    use sqlx::Connection;
    let mut conn = db.conn().await;
    let mut tx = conn.begin().await.unwrap();
    sqlx::query(
        "SELECT set_config('stockload.run_id', $1, true), \
                set_config('stockload.load_path', $2, true), \
                set_config('stockload.change_basis', 'previous-close', true)",
    )
    .bind(run_id.to_string())
    .bind(path)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::raw_sql("DELETE FROM quality_flags")
        .execute(&mut *tx)
        .await
        .unwrap();
    let text = stockload::transform::embedded("quality_checks.sql").unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(text.to_string()))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("quality_checks.sql as the {path} path: {e}"));
    let finder: String = sqlx::query_scalar("SELECT current_setting('stockload.quality_finder')")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let flags = flag_rows(&mut tx).await;
    tx.rollback().await.unwrap();
    (finder, flags)
}

/// The scripts as embedded, but the staging counts kept after the load (clear_staged.sql does
/// nothing), so the checks can run again as the first load ran them.
fn scripts_keeping_the_counts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("citus")).unwrap();
    for name in stockload::transform::list() {
        let text = stockload::transform::embedded(name).unwrap();
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(
        dir.path().join("clear_staged.sql"),
        "-- kept for the test: Reads nothing, writes nothing.\nSELECT 1;\n",
    )
    .unwrap();
    dir
}

/// The first load finds the rows to check from the changes it stored and the staging session's
/// counts (stored-changes: a scan for suspects, then only those checked); every other run reads
/// every row of its scope (rows-read). On generated companies with generated faults — any
/// volatility, late listings, splits, crashes, 100× days, broken bars, missing sessions, faults
/// side by side or on the first and last rows — both finders give the same flags, word for word,
/// and those are the flags the load itself raised.
#[test]
fn the_first_loads_finder_gives_the_flags_of_reading_every_row() {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scripts = scripts_keeping_the_counts();
    let mut runner = crate::support::proptest_runner(24);
    // At least 10 companies: a day one of them misses is still a session (calendar_share 0.9).
    let strategy = (any::<u64>(), proptest::collection::vec(company(), 10..16));
    let result = runner.run(&strategy, |(seed, companies)| {
        let mut rng = fastrand::Rng::with_seed(seed);
        let files: Vec<(String, String)> = companies
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("C{i}.csv"), csv_of(&faulty_bars(&mut rng, c))))
            .collect();
        let batch = listed_batch(&files);
        runtime.block_on(async {
            let db = TestDb::new().await;
            let mut plan = batch.plan();
            plan.sql_dir = Some(scripts.path().to_path_buf());
            let report = db.load_plan(&plan).await;
            prop_assert!(report.error.is_none(), "{:?}", report.error);
            let run_id = report.summary.run_id.unwrap();
            let loaded = flag_rows(&mut db.conn().await).await;
            let (finder, stored) = checks_as(&db, run_id, "empty").await;
            prop_assert_eq!(finder, "stored-changes");
            let (finder, read) = checks_as(&db, run_id, "append").await;
            prop_assert_eq!(finder, "rows-read");
            prop_assert_eq!(&stored, &read, "stored-changes against rows-read");
            prop_assert_eq!(&loaded, &stored, "the load's own flags");
            Ok::<(), TestCaseError>(())
        })
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}
