//! The ledger tells the truth, and a first load does not queue readers behind it: a failed run
//! records 0 loaded and its real duration on both load paths; a client killed without a word is
//! closed as `abandoned` by the next run, with a notice; the key drop of a first load lets later
//! readers through while an open reader holds the table, and gives up naming that reader.

use std::process::Stdio;
use std::time::Duration;

use stockload::plan::ChangeBasis;

use crate::support::services::smtp;
use crate::support::{csv, stockload, wait_until, Batch, TestDb};

/// Every embedded script in a folder, with `name` changed by `change` (for `--sql-dir`).
fn scripts_with(name: &str, change: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut found = false;
    for script in stockload::transform::list() {
        let mut text = stockload::transform::embedded(script).unwrap().to_string();
        if script == name {
            text = change(&text);
            found = true;
        }
        let path = dir.path().join(script);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    assert!(found, "no script {name}");
    dir
}

fn two_companies() -> Batch {
    Batch::new(
        &[
            (
                "AAA.csv",
                &csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12")]),
            ),
            (
                "BBB.csv",
                &format!(
                    "{}2020-01-06,x,1,1,1,1,0\n",
                    csv(&[("2020-01-02", "20", "21"), ("2020-01-03", "21", "22")])
                ),
            ),
        ],
        "AAA.csv, BBB.csv",
    )
}

/// A run that fails late (after staging, in its last scripts) on either path: its row says
/// failed, what it read and rejected, 0 loaded, and a duration that includes the time it spent.
#[tokio::test]
async fn a_failed_run_records_what_it_read_zero_loaded_and_its_real_duration() {
    // The failing script sleeps first: the recorded duration must cover that time.
    let late_failure = |text: &str| format!("{text}\nSELECT pg_sleep(0.6);\nSELECT 1 / 0;\n");
    for (path, script) in [("empty", "add_key.sql"), ("append", "update_changes.sql")] {
        let db = migrated().await;
        if path == "append" {
            let first = Batch::new(&[("ZZZ.csv", &csv(&[("2019-01-02", "1", "2")]))], "ZZZ.csv");
            let report = db.load(&first, ChangeBasis::PreviousClose).await;
            assert!(report.error.is_none(), "{:?}", report.error);
        }
        let before = db.rows().await;
        let scripts = scripts_with(script, late_failure);
        let batch = two_companies();
        let mut plan = batch.plan();
        plan.sql_dir = Some(scripts.path().to_path_buf());
        let report = db.load_plan(&plan).await;
        let error = report.error.expect("the run must fail").to_string();
        assert!(error.contains("division by zero"), "{path}: {error}");
        assert_eq!(report.summary.rows_loaded, 0, "{path}");
        assert_eq!(db.rows().await, before, "{path}: the table is as it was");
        let run = db
            .scalar(
                "SELECT concat_ws(' ', status, files_listed, files_loaded, rows_read, \
                 rows_loaded, rows_rejected, finished_at - started_at >= interval '0.6 s') \
                 FROM load_runs ORDER BY id DESC LIMIT 1",
            )
            .await;
        assert_eq!(run.as_deref(), Some("failed 2 0 5 0 1 t"), "{path}");
        assert_eq!(
            Some(report.summary.run_id.expect("recorded").to_string()),
            db.scalar("SELECT max(id)::text FROM load_runs").await,
            "{path}: the failed run keeps the id it started with"
        );
    }
}

/// Waits until a run has opened its row and not closed it (a first load waiting, in its short
/// tries, for the lock an open reader keeps it from).
async fn a_run_is_running(db: &TestDb) {
    wait_until(
        "a load to open its row and wait for its lock",
        Duration::from_secs(60),
        || async {
            db.scalar("SELECT count(*)::text FROM load_runs WHERE status = 'running'")
                .await
                .as_deref()
                == Some("1")
        },
    )
    .await;
}

/// A load killed with SIGKILL while inside its transaction leaves a `running` row; the next run
/// finds its session gone, closes it as abandoned (0 loaded, why) and sends a failure notice.
#[tokio::test]
async fn a_killed_run_is_closed_as_abandoned_by_the_next_run_with_a_notice() {
    let db = migrated().await;
    let smtp = smtp();
    let batch = two_companies();
    // An open reader makes the first load's key drop wait (patiently) after its row is opened.
    let mut reader = open_reader(&db).await;
    let mut child = stockload()
        .args(["load", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .args(["--notify", "console"])
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    a_run_is_running(&db).await;
    let pid = db
        .scalar("SELECT backend_pid::text FROM load_runs WHERE status = 'running'")
        .await
        .expect("the running row names its session");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(
        "the killed run's ledger session to end",
        Duration::from_secs(30),
        || async {
            db.scalar(&format!(
                "SELECT count(*)::text FROM pg_stat_activity WHERE pid = {pid}"
            ))
            .await
            .as_deref()
                == Some("0")
        },
    )
    .await;
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut reader)
        .await
        .unwrap();
    // stats (read-only) already tells; it records nothing.
    let stats = stockload()
        .args(["stats"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let text = crate::cli_text(&stats);
    assert!(
        text.contains("abandoned: run 1 (started") && text.contains(&format!("process {pid}")),
        "{text}"
    );
    assert_eq!(
        db.scalar("SELECT status FROM load_runs").await.as_deref(),
        Some("running")
    );

    let output = stockload()
        .args(["load", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .args(["--notify", &smtp.target("ops@example.com")])
        .args(["--notify-name", "LedgerTest"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let all = crate::cli_text(&output);
    assert_eq!(output.status.code(), Some(0), "{all}");
    assert_eq!(
        db.scalar(
            "SELECT string_agg(concat_ws(' ', id, status, rows_loaded, finished_at IS NULL), ', ' \
             ORDER BY id) FROM load_runs"
        )
        .await
        .as_deref(),
        Some("1 abandoned 0 t, 2 succeeded 4 f")
    );
    let error = db
        .scalar("SELECT error FROM load_runs WHERE id = 1")
        .await
        .unwrap();
    assert!(error.contains("died without a word"), "{error}");
    assert!(error.contains(&format!("process {pid}")), "{error}");
    let failures = smtp.messages("LedgerTest_Pipeline_Failure");
    assert_eq!(failures.len(), 1, "one notice for the abandoned run");
    assert!(failures[0].contains("run 1 "), "{}", failures[0]);
    assert!(failures[0].contains("abandoned"), "{}", failures[0]);
    assert_eq!(smtp.messages("LedgerTest_Pipeline_Success").len(), 1);
    // Nothing is found twice.
    let third = db.load(&batch, ChangeBasis::PreviousClose).await;
    assert!(third.abandoned.is_empty(), "{:?}", third.abandoned);
}

/// A new database with the stockload schema (so readers can hold its table before any load).
async fn migrated() -> TestDb {
    let db = TestDb::new().await;
    stockload::db::migrate(&mut db.conn().await)
        .await
        .expect("migrate");
    db
}

/// Opens a reader transaction that holds historical_stocks_data (ACCESS SHARE) until dropped.
async fn open_reader(db: &TestDb) -> sqlx::PgConnection {
    let mut reader = db.conn().await;
    sqlx::raw_sql("BEGIN; SELECT count(*) FROM historical_stocks_data")
        .execute(&mut reader)
        .await
        .unwrap();
    reader
}

/// A first load behind a long reader: readers arriving meanwhile are not queued behind the
/// load's key drop until the long reader ends; they get through within a try or two.
#[tokio::test]
async fn a_first_load_behind_a_long_reader_lets_later_readers_through() {
    let db = migrated().await;
    let mut long_reader = open_reader(&db).await;
    let batch = two_companies();
    let plan = batch.plan();
    let load = {
        let db = &db;
        let plan = &plan;
        async move { db.load_plan(plan).await }
    };
    let readers = async {
        a_run_is_running(&db).await;
        let mut late = db.conn().await;
        for attempt in 0..10 {
            // Without the short tries this waits until the long reader ends: never, here.
            let read =
                sqlx::query("SELECT count(*) FROM historical_stocks_data").fetch_one(&mut late);
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .unwrap_or_else(|_| panic!("reader {attempt} was held behind the load"))
                .unwrap();
        }
        sqlx::raw_sql("COMMIT")
            .execute(&mut long_reader)
            .await
            .unwrap();
    };
    let (report, ()) = tokio::join!(load, readers);
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.summary.rows_loaded, 4);
}

/// When the long reader outlasts `--lock-wait`, the load fails naming the session that holds
/// the table, and loads nothing.
#[tokio::test]
async fn a_first_load_gives_up_naming_the_session_that_holds_the_table() {
    let db = migrated().await;
    let mut reader = open_reader(&db).await;
    let reader_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    let batch = two_companies();
    let mut plan = batch.plan();
    plan.lock_wait = Duration::from_secs(1);
    let report = db.load_plan(&plan).await;
    let error = report.error.expect("must give up").to_string();
    assert!(
        error.contains("drop_key.sql could not take its lock"),
        "{error}"
    );
    assert!(error.contains(&format!("session {reader_pid}")), "{error}");
    assert!(error.contains("idle in transaction"), "{error}");
    drop(reader);
    assert_eq!(db.rows().await.len(), 0);
    assert_eq!(
        db.scalar("SELECT status || ' ' || rows_loaded FROM load_runs")
            .await
            .as_deref(),
        Some("failed 0")
    );
}
