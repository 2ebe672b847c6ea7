//! The load path against a real database: transforms, incremental batches, faulty input,
//! failures, concurrency.

use stockload::load::RunStatus;
use stockload::plan::ChangeBasis;

use crate::support::{csv, Batch, TestDb};

/// kind, file name, line, reason, raw text of a load_rejects row.
type RejectRow = (String, String, Option<i64>, String, Option<String>);

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn fixture() -> Batch {
    Batch::new(
        &[
            (
                "ACME.csv",
                &csv(&[
                    ("2020-01-02", "10", "11"),
                    ("2020-01-03", "11", "12.1"),
                    ("2020-01-06", "12", "12.1"),
                    ("2020-01-07", "12", "6.05"),
                ]),
            ),
            (
                "ZERO.csv",
                &csv(&[("2020-01-02", "0", "0"), ("2020-01-03", "1", "2")]),
            ),
        ],
        "'ACME.csv', 'ZERO.csv'",
    )
}

#[tokio::test]
async fn previous_close_changes_match_hand_computed_values() {
    let db = TestDb::new().await;
    let report = db.load(&fixture(), ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(
        db.changes().await,
        vec![
            ("ACME".into(), "2020-01-02".into(), None, None),
            (
                "ACME".into(),
                "2020-01-03".into(),
                some("1.1"),
                some("10.000000")
            ),
            (
                "ACME".into(),
                "2020-01-06".into(),
                some("0.0"),
                some("0.000000")
            ),
            (
                "ACME".into(),
                "2020-01-07".into(),
                some("-6.05"),
                some("-50.000000")
            ),
            ("ZERO".into(), "2020-01-02".into(), None, None),
            // previous close 0: the change exists, the percentage does not.
            ("ZERO".into(), "2020-01-03".into(), some("2"), None),
        ]
    );
    let s = &report.summary;
    assert_eq!((s.files_listed, s.files_loaded, s.files_skipped), (2, 2, 0));
    assert_eq!((s.rows_read, s.rows_loaded, s.rows_rejected), (6, 6, 0));
    assert_eq!(
        db.scalar("SELECT status || ':' || rows_loaded FROM load_runs")
            .await,
        some("succeeded:6")
    );
}

#[tokio::test]
async fn intraday_changes_match_hand_computed_values() {
    let db = TestDb::new().await;
    let report = db.load(&fixture(), ChangeBasis::Intraday).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let changes = db.changes().await;
    assert_eq!(changes[0].2, some("1"));
    assert_eq!(changes[0].3, some("10.000000"));
    assert_eq!(changes[1].2, some("1.1"));
    assert_eq!(changes[1].3, some("10.000000"));
    assert_eq!(changes[3].2, some("-5.95"));
    assert_eq!(changes[3].3, some("-49.583333"));
    // open 0: no percentage.
    assert_eq!(changes[4].2, some("0"));
    assert_eq!(changes[4].3, None);
    assert_eq!(
        db.scalar("SELECT change_basis FROM load_runs").await,
        some("intraday")
    );
}

#[tokio::test]
async fn a_later_batch_continues_from_the_last_stored_close() {
    let db = TestDb::new().await;
    db.load(&fixture(), ChangeBasis::PreviousClose).await;
    let second = Batch::new(
        &[(
            "ACME.csv",
            &csv(&[("2020-01-08", "6", "7.26"), ("2020-01-09", "7", "7.26")]),
        )],
        "ACME.csv",
    );
    let report = db.load(&second, ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let acme: Vec<_> = db
        .changes()
        .await
        .into_iter()
        .filter(|c| c.0 == "ACME")
        .collect();
    assert_eq!(acme.len(), 6);
    // 7.26 - 6.05 = 1.21 = 20% of the close stored by the first batch.
    assert_eq!(acme[4].2, some("1.21"));
    assert_eq!(acme[4].3, some("20.000000"));
    assert_eq!(acme[5].2, some("0.00"));
    // The first batch's rows are untouched.
    assert_eq!(acme[3].2, some("-6.05"));
}

#[tokio::test]
async fn a_corrected_day_moves_the_next_days_change() {
    let db = TestDb::new().await;
    db.load(&fixture(), ChangeBasis::PreviousClose).await;
    // Correct 2020-01-03's close from 12.1 to 11 and backfill a day before the first one.
    let correction = Batch::new(
        &[(
            "ACME.csv",
            &csv(&[("2019-12-31", "9", "8"), ("2020-01-03", "11", "11")]),
        )],
        "ACME.csv",
    );
    let report = db.load(&correction, ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let acme: Vec<_> = db
        .changes()
        .await
        .into_iter()
        .filter(|c| c.0 == "ACME")
        .map(|c| (c.1, c.2, c.3))
        .collect();
    assert_eq!(
        acme,
        vec![
            ("2019-12-31".into(), None, None),
            ("2020-01-02".into(), some("3"), some("37.500000")),
            ("2020-01-03".into(), some("0"), some("0.000000")),
            ("2020-01-06".into(), some("1.1"), some("10.000000")),
            ("2020-01-07".into(), some("-6.05"), some("-50.000000")),
        ]
    );
}

#[tokio::test]
async fn loading_the_same_batch_twice_leaves_the_table_identical() {
    let db = TestDb::new().await;
    let batch = fixture();
    db.load(&batch, ChangeBasis::PreviousClose).await;
    let first = db.rows().await;
    let report = db.load(&batch, ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(db.rows().await, first);
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_runs WHERE status = 'succeeded'")
            .await,
        some("2")
    );
}

#[tokio::test]
async fn the_standalone_recompute_script_agrees_with_the_load() {
    let db = TestDb::new().await;
    db.load(&fixture(), ChangeBasis::PreviousClose).await;
    let before = db.rows().await;
    let mut conn = db.conn().await;
    let script = stockload::transform::embedded("recompute_changes.sql").unwrap();
    let changed = sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(changed, 0, "a consistent table must not change");
    sqlx::raw_sql(
        "UPDATE historical_stocks_data SET value_change = NULL, daily_percent_change = NULL",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(db.rows().await, before);

    // The whole-table repair form agrees too, and is a no-op on a consistent table.
    assert_eq!(run_script(&db, "recompute_all_changes.sql").await, 0);
    sqlx::raw_sql("UPDATE historical_stocks_data SET value_change = value_change + 1")
        .execute(&mut conn)
        .await
        .unwrap();
    assert!(run_script(&db, "recompute_all_changes.sql").await > 0);
    assert_eq!(db.rows().await, before);
}

#[tokio::test]
async fn faulty_files_and_rows_are_recorded_with_their_reasons() {
    let db = TestDb::new().await;
    let good = csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12")]);
    let bad_rows = format!(
        "{}2020-02-30,1,1,1,1,1,0\n2020-01-06,x,1,1,1,1,0\n2020-01-07,1,1,1,-1,1,0\n\
         2020-01-08,1,1,1,1,2.5,0\n2020-01-09,1,1\n2020-01-02,9,9,9,9,9,0\n2020-01-10,1,1",
        csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12")])
    );
    let batch = Batch::new(
        &[
            ("GOOD.csv", &good),
            ("BAD.csv", &bad_rows),
            ("EMPTY.csv", ""),
            ("HEADER.csv", "Date,Open,High,Low,Close,Volume,OpenInt\r\n"),
            (
                "NOVOL.csv",
                "Date,Open,High,Low,Close\n2020-01-02,1,1,1,1\n",
            ),
        ],
        "GOOD.csv\nBAD.csv\nEMPTY.csv\nHEADER.csv\nNOVOL.csv\nMISSING.csv\nLATIN.csv\n",
    );
    batch.write_bytes(
        "LATIN.csv",
        b"Date,Open,High,Low,Close,Volume\n2020-01-02,1,1,1,1,1 \xe9\n",
    );
    let mut plan = batch.plan();
    plan.max_reject_ratio = 1.0;
    let report = db.load_plan(&plan).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let s = &report.summary;
    assert_eq!((s.files_listed, s.files_loaded, s.files_skipped), (7, 2, 5));
    assert_eq!(s.rows_read, s.rows_loaded + s.rows_rejected);
    assert_eq!((s.rows_read, s.rows_loaded, s.rows_rejected), (11, 4, 7));

    let mut conn = db.conn().await;
    let rejects: Vec<RejectRow> = sqlx::query_as(
        "SELECT kind, regexp_replace(file, '^.*/', ''), line, reason, raw_text FROM load_rejects \
         ORDER BY kind, file, line",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let expect = [
        ("file", "EMPTY.csv", None, "empty file", None),
        ("file", "HEADER.csv", None, "header only", None),
        ("file", "LATIN.csv", None, "not UTF-8", None),
        ("file", "MISSING.csv", None, "file not found", None),
        (
            "file",
            "NOVOL.csv",
            None,
            "missing required column(s) Volume",
            None,
        ),
        (
            "row",
            "BAD.csv",
            Some(2),
            "duplicate date 2020-01-02: superseded by line 9",
            Some("2020-01-02,10,10,11,11,1000,0"),
        ),
        (
            "row",
            "BAD.csv",
            Some(4),
            "bad date \"2020-02-30\"",
            Some("2020-02-30,1,1,1,1,1,0"),
        ),
        (
            "row",
            "BAD.csv",
            Some(5),
            "Open is not a number",
            Some("2020-01-06,x,1,1,1,1,0"),
        ),
        (
            "row",
            "BAD.csv",
            Some(6),
            "Close is negative",
            Some("2020-01-07,1,1,1,-1,1,0"),
        ),
        (
            "row",
            "BAD.csv",
            Some(7),
            "Volume is fractional",
            Some("2020-01-08,1,1,1,1,2.5,0"),
        ),
        (
            "row",
            "BAD.csv",
            Some(8),
            "wrong field count",
            Some("2020-01-09,1,1"),
        ),
        (
            "row",
            "BAD.csv",
            Some(10),
            "truncated last line",
            Some("2020-01-10,1,1"),
        ),
    ];
    assert_eq!(rejects.len(), expect.len(), "{rejects:#?}");
    for (got, want) in rejects.iter().zip(expect) {
        assert_eq!(got.0, want.0);
        assert_eq!(got.1, want.1);
        assert_eq!(got.2, want.2, "{got:?}");
        assert!(
            got.3.starts_with(want.3),
            "{got:?} should start with {:?}",
            want.3
        );
        assert_eq!(got.4.as_deref(), want.4, "{got:?}");
    }
    // The duplicate kept the last row: BAD's 2020-01-02 close is 9.
    assert_eq!(
        db.scalar("SELECT close_value::text FROM historical_stocks_data WHERE company_name = 'BAD' AND stock_date = '2020-01-02'").await,
        some("9")
    );
}

#[tokio::test]
async fn too_many_rejects_fail_the_run_and_load_nothing() {
    let db = TestDb::new().await;
    let batch = Batch::new(
        &[(
            "BAD.csv",
            "Date,Open,High,Low,Close,Volume\n2020-01-02,1,1,1,1,1\n2020-01-03,x,1,1,1,1\n2020-01-06,y,1,1,1,1\n",
        )],
        "BAD.csv",
    );
    let mut plan = batch.plan();
    plan.max_reject_ratio = 0.5;
    let report = db.load_plan(&plan).await;
    assert_eq!(report.summary.status, RunStatus::Failed);
    let error = report.error.unwrap().to_string();
    assert!(error.contains("2 of 3 rows"), "{error}");
    assert_eq!(db.rows().await.len(), 0);
    assert_eq!(
        db.scalar("SELECT status || ' ' || rows_rejected FROM load_runs")
            .await,
        some("failed 2")
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_rejects").await,
        some("0")
    );
}

#[tokio::test]
async fn a_failing_transform_script_leaves_the_table_as_it_was() {
    let db = TestDb::new().await;
    db.load(&fixture(), ChangeBasis::PreviousClose).await;
    let before = db.rows().await;

    let scripts = tempfile::tempdir().unwrap();
    for name in stockload::transform::list() {
        let mut text = stockload::transform::embedded(name).unwrap().to_string();
        if name == "update_changes.sql" {
            text.push_str("\nSELECT 1 / 0;\n");
        }
        let path = scripts.path().join(name); // citus/… forms in their subfolder
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let second = Batch::new(
        &[(
            "ACME.csv",
            &csv(&[("2020-01-08", "6", "7"), ("2020-01-02", "1", "1")]),
        )],
        "ACME.csv",
    );
    let mut plan = second.plan();
    plan.sql_dir = Some(scripts.path().to_path_buf());
    let report = db.load_plan(&plan).await;
    let error = report.error.expect("must fail").to_string();
    assert!(error.contains("update_changes.sql"), "{error}");
    assert!(error.contains("division by zero"), "{error}");
    assert_eq!(db.rows().await, before);
    assert_eq!(
        db.scalar("SELECT string_agg(status, ',' ORDER BY id) FROM load_runs")
            .await,
        some("succeeded,failed")
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_rejects").await,
        some("0")
    );
}

#[tokio::test]
async fn concurrent_loads_are_serialised() {
    let db = TestDb::new().await;
    let a = fixture();
    let b = Batch::new(
        &[("ACME.csv", &csv(&[("2020-01-08", "6", "7.26")]))],
        "ACME.csv",
    );
    let (ra, rb) = tokio::join!(
        db.load(&a, ChangeBasis::PreviousClose),
        db.load(&b, ChangeBasis::PreviousClose)
    );
    assert!(
        ra.error.is_none() && rb.error.is_none(),
        "{:?} {:?}",
        ra.error,
        rb.error
    );
    // Runs never overlap in time: each had its turn after the previous one finished.
    assert_eq!(
        db.scalar(
            "SELECT bool_and(r2.opened_at >= r1.finished_at)::text FROM load_runs r1 \
             JOIN load_runs r2 ON r2.id = r1.id + 1"
        )
        .await,
        some("true")
    );
    assert_eq!(db.rows().await.len(), 7);
    // Whichever ran first, 2020-01-08 ends up continuing from 2020-01-07's close: when b ran
    // first, a reached back before it and recomputed it.
    let last = db
        .changes()
        .await
        .into_iter()
        .find(|c| c.1 == "2020-01-08")
        .unwrap();
    assert_eq!(last.2, some("1.21"), "{last:?}");
}

#[tokio::test]
async fn a_marker_is_loaded_at_most_once() {
    let db = TestDb::new().await;
    let batch = fixture();
    let mut plan = batch.plan();
    plan.marker = Some("s3://monitored/run-1/.SUCCESS".into());
    let first = db.load_plan(&plan).await;
    assert_eq!(first.summary.status, RunStatus::Succeeded);
    let second = db.load_plan(&plan).await;
    assert_eq!(second.summary.status, RunStatus::AlreadyLoaded);
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_runs").await,
        some("1")
    );
}

/// Statistics that say historical_stocks_data is empty (what autovacuum leaves after an aborted
/// full load): the planner then believes every scan of it returns one row.
async fn fake_stale_statistics(db: &TestDb) {
    let mut conn = db.conn().await;
    sqlx::raw_sql(
        "UPDATE pg_class SET relpages = 7707, reltuples = 0 \
         WHERE relname = 'historical_stocks_data'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
}

fn sample_batch(dir: &std::path::Path, rows: usize, seed: u64) -> stockload::plan::Plan {
    let spec = stockload::sample::SampleSpec {
        files: 60,
        listed: 60,
        rows,
        faulty: false,
        seed,
    };
    let batch = stockload::sample::generate(dir, &spec).unwrap();
    stockload::plan::Plan::new(
        stockload::storage::Location::Local(batch.stocks),
        stockload::storage::Location::Local(batch.companies),
    )
}

async fn run_script(db: &TestDb, name: &str) -> u64 {
    let mut conn = db.conn().await;
    let script = stockload::transform::embedded(name).unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(script))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .rows_affected()
}

/// Issue 12: with statistics claiming the table is empty, update_changes.sql planned a nested
/// loop over the whole table per row and never finished. Every script must stay bounded by its
/// work and give the same table as with fresh statistics: a first load, a correction of the first
/// 1000 stored days (which moves the change of the day after), and both follow-up scripts.
#[tokio::test]
async fn stale_statistics_change_neither_the_work_nor_the_result() {
    let dir = tempfile::tempdir().unwrap();
    let first = sample_batch(&dir.path().join("first"), 2500, 1);
    // Corrects the first 1000 days: the day after them changes too.
    let correction = sample_batch(&dir.path().join("correction"), 1000, 2);

    let fresh = TestDb::new().await;
    for plan in [&first, &correction] {
        let report = fresh.load_plan(plan).await;
        assert!(report.error.is_none(), "{:?}", report.error);
    }

    let stale = TestDb::new().await;
    let mut conn = stale.conn().await;
    stockload::db::migrate(&mut conn).await.unwrap();
    fake_stale_statistics(&stale).await;
    let report = stale.load_plan(&first).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.summary.rows_loaded, 60 * 2500);
    let ran = |report: &stockload::load::Report, name: &str| {
        report.summary.scripts.iter().any(|s| s.name == name)
    };
    // Into the empty table: rows first, key after; the key is back when the run commits.
    assert!(ran(&report, "insert_empty.sql") && !ran(&report, "insert_query.sql"));
    assert_eq!(
        stale
            .scalar(
                "SELECT string_agg(pg_get_constraintdef(oid), ',') FROM pg_constraint \
                 WHERE conrelid = 'historical_stocks_data'::regclass AND contype = 'p'"
            )
            .await,
        some("PRIMARY KEY (company_name, stock_date)")
    );
    fake_stale_statistics(&stale).await;
    let report = stale.load_plan(&correction).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert!(ran(&report, "insert_query.sql") && !ran(&report, "insert_empty.sql"));
    let update = report
        .summary
        .scripts
        .iter()
        .find(|s| s.name == "update_changes.sql")
        .unwrap();
    assert!(
        update.rows >= 60,
        "the correction must recompute the day after it, for every company"
    );

    let expected = fresh.rows().await;
    assert_eq!(expected.len(), 60 * 2500);
    assert!(
        stale.rows().await == expected,
        "stale statistics changed the table"
    );

    // The follow-ups on a consistent table, with stale statistics: nothing to write.
    fake_stale_statistics(&stale).await;
    assert_eq!(run_script(&stale, "recompute_changes.sql").await, 0);
    fake_stale_statistics(&stale).await;
    assert_eq!(run_script(&stale, "recompute_all_changes.sql").await, 0);
    assert!(stale.rows().await == expected);
}

/// The follow-up after a load recomputes only what that run touched (its companies, from their
/// first loaded day); the whole-table form repairs everything.
#[tokio::test]
async fn the_follow_up_is_scoped_to_the_last_run() {
    let db = TestDb::new().await;
    db.load(&fixture(), ChangeBasis::PreviousClose).await;
    let second = Batch::new(
        &[(
            "ACME.csv",
            &csv(&[("2020-01-08", "6", "7.26"), ("2020-01-09", "7", "7.26")]),
        )],
        "ACME.csv",
    );
    let report = db.load(&second, ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let consistent = db.rows().await;
    assert_eq!(
        db.scalar("SELECT string_agg(company_name || ' ' || first_date, ',') FROM load_run_scope WHERE run_id = (SELECT max(run_id) FROM load_run_scope)")
            .await,
        some("ACME 2020-01-08")
    );

    // Break a day inside the last run's scope and days outside it (ZERO; ACME before its first day).
    let mut conn = db.conn().await;
    sqlx::raw_sql(
        "UPDATE historical_stocks_data SET value_change = value_change + 1 \
         WHERE (company_name = 'ACME' AND stock_date IN ('2020-01-03', '2020-01-09')) \
            OR (company_name = 'ZERO' AND stock_date = '2020-01-03')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    assert!(run_script(&db, "recompute_changes.sql").await >= 1);
    let value_change = |company: &str, day: &str| {
        format!(
            "SELECT value_change::text FROM historical_stocks_data \
             WHERE company_name = '{company}' AND stock_date = '{day}'"
        )
    };
    assert_eq!(
        db.scalar(&value_change("ACME", "2020-01-09")).await,
        some("0.00")
    );
    assert_eq!(
        db.scalar(&value_change("ACME", "2020-01-03")).await,
        some("2.1")
    );
    assert_eq!(
        db.scalar(&value_change("ZERO", "2020-01-03")).await,
        some("3")
    );

    assert!(run_script(&db, "recompute_all_changes.sql").await >= 2);
    assert_eq!(db.rows().await, consistent);
}

/// What a run wrote besides the table: its rejects and its scope, as text in a fixed order.
async fn ledger_rows(db: &TestDb) -> (Option<String>, Option<String>) {
    let rejects = db
        .scalar(
            "SELECT string_agg(concat_ws('|', kind, file, line, reason, raw_text), E'\\n' \
             ORDER BY file, line NULLS FIRST, reason) FROM load_rejects",
        )
        .await;
    let scope = db
        .scalar(
            "SELECT string_agg(company_name || ' ' || first_date, ',' ORDER BY company_name) \
             FROM load_run_scope",
        )
        .await;
    (rejects, scope)
}

/// The work schema once no load runs: only its three work tables, all empty.
async fn work_left(db: &TestDb) -> Option<String> {
    db.scalar(
        "SELECT string_agg(relname, ',' ORDER BY relname) || ' / ' || \
         (SELECT count(*) FROM stockload_work.run_rejects) || ' ' || \
         (SELECT count(*) FROM stockload_work.run_scope) || ' ' || \
         (SELECT count(*) FROM stockload_work.run_days) \
         FROM pg_class WHERE relnamespace = 'stockload_work'::regnamespace AND relkind = 'r'",
    )
    .await
}

fn faulty_sample(dir: &std::path::Path) -> stockload::plan::Plan {
    let spec = stockload::sample::SampleSpec {
        files: 40,
        listed: 30,
        rows: 120,
        faulty: true,
        seed: 7,
    };
    let batch = stockload::sample::generate(dir, &spec).unwrap();
    let mut plan = stockload::plan::Plan::new(
        stockload::storage::Location::Local(batch.stocks),
        stockload::storage::Location::Local(batch.companies),
    );
    plan.max_reject_ratio = 1.0;
    plan
}

/// Issue 12: a load into an empty table stages chunks of whole companies from a second session.
/// However the batch is cut into chunks — one company per chunk, or one chunk — and whether the
/// table was empty (chunks) or not (the insert_query.sql path), the same batch gives the same
/// rows, changes, rejects and scope, under both change bases; nothing is left in stockload_work
/// and the primary key is back.
#[tokio::test]
async fn chunked_loads_equal_one_chunk_and_the_append_path() {
    let dir = tempfile::tempdir().unwrap();
    let base_plan = faulty_sample(dir.path());
    for basis in [ChangeBasis::PreviousClose, ChangeBasis::Intraday] {
        let mut results = Vec::new();
        for (label, chunk_rows, non_empty) in [
            ("a company per chunk", 1, false),
            ("one chunk", u64::MAX, false),
            ("append path", 1, true),
        ] {
            let db = TestDb::new().await;
            if non_empty {
                // A row of another company makes the table non-empty: insert_query.sql runs.
                let mut plan = base_plan.clone();
                plan.basis = basis;
                let first = db.load_plan(&plan).await;
                assert!(first.error.is_none(), "{:?}", first.error);
                let mut conn = db.conn().await;
                sqlx::raw_sql(
                    "DELETE FROM load_run_scope; DELETE FROM load_rejects; \
                     DELETE FROM historical_stocks_data; \
                     INSERT INTO historical_stocks_data VALUES \
                     ('2001-01-02', 1, 1, 1, 1, 1, NULL, NULL, '0OTHER')",
                )
                .execute(&mut conn)
                .await
                .unwrap();
            }
            let mut plan = base_plan.clone();
            plan.basis = basis;
            plan.chunk_rows = chunk_rows;
            let report = db.load_plan(&plan).await;
            assert!(report.error.is_none(), "{label}: {:?}", report.error);
            let chunked = report
                .summary
                .scripts
                .iter()
                .any(|s| s.name == "insert_empty.sql");
            assert_eq!(chunked, !non_empty, "{label}: which path ran");
            let mut rows = db.rows().await;
            rows.retain(|r| r[0].as_deref() != Some("0OTHER"));
            assert!(rows.len() > 2000, "{label}: {} rows", rows.len());
            let (rejects, scope) = ledger_rows(&db).await;
            assert!(rejects.as_deref().unwrap_or("").contains("row|"), "{label}");
            assert_eq!(
                work_left(&db).await,
                some("run_days,run_rejects,run_scope / 0 0 0"),
                "{label}"
            );
            assert_eq!(
                db.scalar(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint \
                     WHERE conname = 'historical_stocks_data_pkey'"
                )
                .await,
                some("PRIMARY KEY (company_name, stock_date)"),
                "{label}"
            );
            results.push((label, rows, rejects, scope));
        }
        for other in &results[1..] {
            assert!(
                results[0].1 == other.1,
                "{basis:?}: rows of {} differ",
                other.0
            );
            assert_eq!(results[0].2, other.2, "{basis:?}: rejects of {}", other.0);
            assert_eq!(results[0].3, other.3, "{basis:?}: scope of {}", other.0);
        }
    }
}

/// A chunked load that fails after chunks were committed (too many rejects, found only once
/// every chunk is staged) leaves the table as it was — empty, its key in place — and drops its
/// chunks and work rows; so does the next load with what a killed run left behind.
#[tokio::test]
async fn a_failed_chunked_load_leaves_no_work_behind() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut plan = faulty_sample(dir.path());
    plan.chunk_rows = 1;
    plan.max_reject_ratio = 0.001;
    let report = db.load_plan(&plan).await;
    let error = report.error.expect("too many rejects").to_string();
    assert!(error.contains("rejected"), "{error}");
    assert_eq!(db.rows().await.len(), 0);
    assert_eq!(
        work_left(&db).await,
        some("run_days,run_rejects,run_scope / 0 0 0")
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM pg_constraint WHERE conname = 'historical_stocks_data_pkey'")
            .await,
        some("1")
    );
    // What a killed run leaves: a chunk and work rows of a run that no longer runs.
    let mut conn = db.conn().await;
    sqlx::raw_sql(
        "CREATE UNLOGGED TABLE stockload_work.stage_424242_1 (x int); \
         INSERT INTO stockload_work.run_scope VALUES (424242, 'GONE', '2001-01-01'); \
         INSERT INTO stockload_work.run_days VALUES (424242, '2001-01-01', 1); \
         INSERT INTO stockload_work.run_rejects (run_id, kind, file, reason) \
         VALUES (424242, 'file', 'gone.csv', 'killed')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // A leftover chunk still locked (its run's server process has not noticed its client died)
    // is skipped after a short wait, not waited for: the load goes on.
    let mut holder = db.conn().await;
    for statement in [
        "CREATE UNLOGGED TABLE stockload_work.stage_424243_1 (x int)",
        "BEGIN",
        "LOCK TABLE stockload_work.stage_424243_1 IN ACCESS SHARE MODE",
    ] {
        sqlx::raw_sql(statement).execute(&mut holder).await.unwrap();
    }
    assert_eq!(
        db.scalar(
            "SELECT count(*)::text FROM pg_locks \
             WHERE relation = 'stockload_work.stage_424243_1'::regclass AND granted"
        )
        .await,
        some("1")
    );
    plan.max_reject_ratio = 1.0;
    let report = db.load_plan(&plan).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(
        work_left(&db).await,
        some("run_days,run_rejects,run_scope,stage_424243_1 / 0 0 0")
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_run_scope WHERE company_name = 'GONE'")
            .await,
        some("0")
    );
    sqlx::raw_sql("COMMIT").execute(&mut holder).await.unwrap();
    // The next load (here into the table now holding rows) drops it.
    let report = db.load_plan(&plan).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(
        work_left(&db).await,
        some("run_days,run_rejects,run_scope / 0 0 0")
    );
}

/// A row the parser accepts but PostgreSQL refuses inside COPY (here: a staging table changed
/// with `--sql-dir` to hold prices below 100 only) fails the run with the file and line that
/// row came from — in a chunk of its own (empty table) and in the one COPY of the append path —
/// and leaves nothing behind.
#[tokio::test]
async fn a_copy_error_names_the_file_and_line_in_both_paths() {
    let scripts = tempfile::tempdir().unwrap();
    for name in stockload::transform::list() {
        let mut text = stockload::transform::embedded(name).unwrap().to_string();
        if name == "create_stage.sql" {
            text = text.replace("open_value    numeric", "open_value    numeric(3,1)");
            assert!(
                text.contains("numeric(3,1)"),
                "create_stage.sql changed shape"
            );
        }
        let path = scripts.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let batch = Batch::new(
        &[
            ("AAA.csv", &csv(&[("2020-01-02", "10", "11")])),
            (
                "BBB.csv",
                &csv(&[
                    ("2020-01-02", "10", "11"),
                    ("2020-01-03", "12345", "11"),
                    ("2020-01-06", "10", "11"),
                ]),
            ),
        ],
        "AAA.csv, BBB.csv",
    );
    for non_empty in [false, true] {
        let db = TestDb::new().await;
        let mut before = Vec::new();
        if non_empty {
            let first = db.load(&fixture(), ChangeBasis::PreviousClose).await;
            assert!(first.error.is_none(), "{:?}", first.error);
            before = db.rows().await;
        }
        let mut plan = batch.plan();
        plan.sql_dir = Some(scripts.path().to_path_buf());
        plan.chunk_rows = 1;
        let report = db.load_plan(&plan).await;
        let error = report.error.expect("numeric field overflow").to_string();
        assert!(
            error.contains("BBB.csv line 3"),
            "non-empty {non_empty}: {error}"
        );
        assert!(error.contains("numeric field overflow"), "{error}");
        assert_eq!(db.rows().await, before);
        assert_eq!(
            work_left(&db).await,
            some("run_days,run_rejects,run_scope / 0 0 0")
        );
    }
}
