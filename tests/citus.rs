//! The loader on a Citus cluster (a coordinator and two workers on this machine): after
//! `stockload migrate --distributed`, the same batches give the same table, row for row, as on a
//! single PostgreSQL; a run killed mid-way leaves the table as it was. Without Citus on this
//! machine (scripts/citus-build.sh builds it) these tests fail, unless STOCKLOAD_SKIP_CITUS says
//! why they cannot run: then each records its skip, which scripts/test.sh counts in its summary.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::Connection;
use stockload::devcitus::CitusCluster;
use stockload::plan::ChangeBasis;
use stockload::transform;

use crate::support::{self, csv, stockload, wait_until, Batch, TestDb};

/// Names why this machine cannot have Citus. Set (by scripts/test.sh, only when
/// scripts/citus-build.sh says Citus cannot be had here), the Citus tests record themselves as
/// skipped for that reason; unset, a Citus test without Citus fails: it never passes unrun.
const SKIP_CITUS: &str = "STOCKLOAD_SKIP_CITUS";

/// The cluster, started once per test process; `None` when this machine has no Citus and
/// [`SKIP_CITUS`] says why (the skip is recorded, see [`support::skipped`]). Without Citus and
/// without that reason, the calling test fails.
pub(crate) fn cluster() -> Option<&'static CitusCluster> {
    static CLUSTER: OnceLock<Option<CitusCluster>> = OnceLock::new();
    let cluster = CLUSTER
        .get_or_init(|| {
            CitusCluster::available().then(|| {
                CitusCluster::start(2, &[("fsync", "off")])
                    .expect("cannot start the throwaway Citus cluster")
            })
        })
        .as_ref();
    if cluster.is_none() {
        match std::env::var(SKIP_CITUS) {
            Ok(why) if !why.trim().is_empty() => support::skipped("Citus", &why),
            _ => panic!(
                "this machine's PostgreSQL has no Citus extension, so this Citus test cannot run: \
                 install it (scripts/citus-build.sh), or set {SKIP_CITUS}=<why> to skip the Citus \
                 tests knowingly (scripts/test.sh does when Citus cannot be built, and says so in \
                 its summary)"
            ),
        }
    }
    cluster
}

/// A fresh database on the cluster, with the stockload schema distributed by
/// `stockload migrate --distributed`. Its URL disables TLS only for the tests' own sqlx
/// connections; the binary is always given the URL without sslmode (Citus serves TLS with a
/// self-signed certificate, which stockload accepts like libpq's default `prefer`).
pub(crate) async fn citus_db(cluster: &CitusCluster) -> TestDb {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "c{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    // On failure, the nodes' logs say why (a worker's view is not in the coordinator's error).
    if let Err(err) = cluster.create_database(&name).await {
        for log in cluster.log_paths() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!(
                "== {}\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        panic!("{err:?}");
    }
    let output = stockload()
        .args(["migrate", "--distributed"])
        .env("DATABASE_URL", cluster.url(&name))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "migrate --distributed failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("distributed by company_name"));
    TestDb {
        url: format!("{}?sslmode=disable", cluster.url(&name)),
        password: cluster.password().to_string(),
    }
}

fn batch(files: &[(&str, &str)]) -> Batch {
    let index = files
        .iter()
        .map(|(name, _)| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Batch::new(files, &index)
}

/// First load (with a rejected row and a skipped file), a daily append, then a backfill before
/// the first day together with corrections of stored days.
fn batches() -> Vec<Batch> {
    let first_a = csv(&[
        ("2020-01-02", "10", "11"),
        ("2020-01-03", "11", "12"),
        ("2020-01-06", "12", "10"),
        ("2020-01-07", "10", "13"),
    ]);
    let first_b = format!(
        "{}2020-01-03,oops,1,1,1,1,0\n",
        csv(&[("2020-01-02", "50", "51"), ("2020-01-06", "51", "49")])
    );
    let first_c = csv(&[("2020-01-02", "5", "5.5"), ("2020-01-03", "5.5", "6")]);
    let first = Batch::new(
        &[
            ("A.csv", &first_a),
            ("B.csv", &first_b),
            ("C.csv", &first_c),
        ],
        "'A.csv', 'B.csv', 'C.csv', 'MISSING.csv'",
    );
    let day = batch(&[
        ("A.csv", &csv(&[("2020-01-08", "13", "14")])),
        ("B.csv", &csv(&[("2020-01-07", "49", "52")])),
        ("D.csv", &csv(&[("2020-01-08", "1", "2")])),
    ]);
    let fix = batch(&[
        (
            "A.csv",
            &csv(&[("2019-12-31", "9", "9.5"), ("2020-01-03", "11", "15")]),
        ),
        ("C.csv", &csv(&[("2020-01-02", "5", "4")])),
    ]);
    vec![first, day, fix]
}

/// Loads the batches into a single-node database and a Citus one, comparing the tables after
/// every batch; returns both.
async fn same_batches_same_rows(cluster: &CitusCluster, basis: ChangeBasis) -> (TestDb, TestDb) {
    let single = TestDb::new().await;
    let citus = citus_db(cluster).await;
    for (i, batch) in batches().iter().enumerate() {
        for db in [&single, &citus] {
            let report = db.load(batch, basis).await;
            assert!(report.error.is_none(), "batch {i}: {:?}", report.error);
        }
        let expected = single.rows().await;
        assert!(!expected.is_empty());
        assert_eq!(citus.rows().await, expected, "batch {i}, {basis:?}");
    }
    (single, citus)
}

#[tokio::test]
async fn a_citus_cluster_distributes_a_table_over_two_workers() {
    let Some(cluster) = cluster() else { return };
    let db = citus_db(cluster).await;
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM citus_get_active_worker_nodes()")
            .await
            .as_deref(),
        Some("2")
    );
    let kinds = db
        .scalar(
            "SELECT string_agg(logicalrelid::text || ':' || partmethod::text, ',' ORDER BY logicalrelid::text) \
             FROM pg_dist_partition",
        )
        .await
        .unwrap();
    assert_eq!(
        kinds,
        "historical_stocks_data:h,load_rejects:n,load_run_scope:n,load_run_steps:n,load_runs:n,\
         processed_markers:n,quality_flags:h,quality_run_counts:n,\
         stockload_quality_calendar:n,stockload_quality_found:h,stockload_quality_scope:h,\
         stockload_quality_settings:n,stockload_quality_suspects:h,stockload_scope:h,\
         stockload_stage:h"
    );
    // Rerunning is harmless.
    let url = db.url.trim_end_matches("?sslmode=disable").to_string();
    let again = stockload()
        .args(["migrate", "--distributed"])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}

#[tokio::test]
async fn migrate_distributed_without_citus_says_what_is_missing() {
    // A database of the plain test server, which cannot have Citus: the extension is either not
    // installed on this machine or, when it is, not in the server's shared_preload_libraries.
    let db = TestDb::new().await;
    let refused = sqlx::raw_sql("CREATE EXTENSION citus")
        .execute(&mut db.conn().await)
        .await
        .expect_err("the plain test server must not be able to create the citus extension")
        .to_string();
    assert!(refused.to_lowercase().contains("citus"), "{refused}");
    let output = stockload()
        .args(["migrate", "--distributed"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no citus extension"), "{stderr}");
    assert!(!stderr.contains(&db.password));
}

#[tokio::test]
async fn previous_close_batches_give_the_single_node_table_row_for_row() {
    let Some(cluster) = cluster() else { return };
    let (single, citus) = same_batches_same_rows(cluster, ChangeBasis::PreviousClose).await;
    // Every reject recorded, as on one node.
    let rejects = "SELECT string_agg(kind || ':' || regexp_replace(file, '^.*/', '') || ':' || \
                   coalesce(line::text, '-'), ',' ORDER BY file, line) FROM load_rejects";
    assert_eq!(citus.scalar(rejects).await, single.scalar(rejects).await);
    assert!(citus.scalar(rejects).await.unwrap().contains("row:B.csv:4"));
    // The loads ran the Citus forms, on the workers.
    let scripts = citus
        .scalar("SELECT scripts FROM load_runs ORDER BY id DESC LIMIT 1")
        .await
        .unwrap();
    assert!(scripts.contains("citus/plan_scope.sql"), "{scripts}");
    // Nothing staged stays behind on the workers.
    assert_eq!(
        citus
            .scalar("SELECT ((SELECT count(*) FROM stockload_stage) + (SELECT count(*) FROM stockload_scope))::text")
            .await
            .as_deref(),
        Some("0")
    );
    // A rerun of the last batch changes nothing.
    let before = citus.rows().await;
    let report = citus.load(&batches()[2], ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(citus.rows().await, before);
}

#[tokio::test]
async fn intraday_batches_give_the_single_node_table_row_for_row() {
    let Some(cluster) = cluster() else { return };
    same_batches_same_rows(cluster, ChangeBasis::Intraday).await;
}

/// Runs a standalone script (its Citus form) on the Citus database, in autocommit.
async fn run_standalone(db: &TestDb, name: &str, settings: &str) {
    let text = transform::embedded(&transform::for_engine(name, true)).unwrap();
    let mut conn = db.conn().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("{settings}{text}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
}

#[tokio::test]
async fn the_recompute_scripts_repair_the_distributed_table() {
    let Some(cluster) = cluster() else { return };
    let (single, citus) = same_batches_same_rows(cluster, ChangeBasis::PreviousClose).await;
    let expected = single.rows().await;
    let spoil = "UPDATE historical_stocks_data SET value_change = 999, daily_percent_change = 999";

    // The scoped follow-up repairs what the last run touched (A from 2019-12-31, C) and
    // nothing else; naming the first run instead repairs its companies.
    citus.scalar(&format!("{spoil} RETURNING 'x'")).await;
    run_standalone(&citus, transform::RECOMPUTE_SCRIPT, "").await;
    let rows = citus.rows().await;
    for (row, want) in rows.iter().zip(&expected) {
        let company = row[0].as_deref().unwrap();
        if company == "A" || company == "C" {
            assert_eq!(row, want);
        } else {
            assert_eq!(row[7].as_deref(), Some("999"), "{row:?}");
        }
    }
    let first_run = citus
        .scalar("SELECT min(id)::text FROM load_runs WHERE status = 'succeeded'")
        .await
        .unwrap();
    run_standalone(
        &citus,
        transform::RECOMPUTE_SCRIPT,
        &format!("SET stockload.recompute_run = '{first_run}';\n"),
    )
    .await;
    for (row, want) in citus.rows().await.iter().zip(&expected) {
        if row[0].as_deref() == Some("B") {
            assert_eq!(row, want);
        }
    }

    // The whole-table repair.
    citus.scalar(&format!("{spoil} RETURNING 'x'")).await;
    run_standalone(&citus, transform::RECOMPUTE_ALL_SCRIPT, "").await;
    assert_eq!(citus.rows().await, expected);
}

#[tokio::test]
async fn stats_and_export_work_on_citus() {
    let Some(cluster) = cluster() else { return };
    let (single, citus) = same_batches_same_rows(cluster, ChangeBasis::PreviousClose).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut exported, mut reports) = (Vec::new(), Vec::new());
    for (db, name) in [(&single, "single.csv"), (&citus, "citus.csv")] {
        let url = db.url.trim_end_matches("?sslmode=disable");
        let stats = stockload()
            .arg("stats")
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        assert!(
            stats.status.success(),
            "{}",
            String::from_utf8_lossy(&stats.stderr)
        );
        let text = String::from_utf8_lossy(&stats.stdout).to_string();
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().eq(["companies:", "4"])),
            "{text}"
        );
        let path = dir.path().join(name);
        let export = stockload()
            .args(["export", "--to"])
            .arg(&path)
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        assert!(
            export.status.success(),
            "{}",
            String::from_utf8_lossy(&export.stderr)
        );
        exported.push(std::fs::read_to_string(&path).unwrap());
        // The run report (reference tables joined with the distributed one) shows the same
        // companies on both.
        let page = dir.path().join(format!("{name}.html"));
        let report = stockload()
            .args(["report", "--to"])
            .arg(&page)
            .env("DATABASE_URL", url)
            .output()
            .unwrap();
        assert!(
            report.status.success(),
            "{}",
            String::from_utf8_lossy(&report.stderr)
        );
        let html = std::fs::read_to_string(&page).unwrap();
        let companies = &html[html.find("<table id=\"companies\"").unwrap()..];
        reports.push(companies[..companies.find("</table>").unwrap()].to_string());
    }
    assert_eq!(exported[0], exported[1]);
    assert_eq!(reports[0], reports[1]);
    let companies = single
        .scalar(
            "SELECT count(*)::text FROM load_run_scope \
             WHERE run_id = (SELECT max(id) FROM load_runs)",
        )
        .await
        .unwrap();
    assert_eq!(
        (reports[0].matches("<tr>").count() - 1).to_string(),
        companies,
        "a row per company of the last run"
    );
}

#[tokio::test]
async fn a_run_killed_mid_way_leaves_the_table_as_it_was() {
    let Some(cluster) = cluster() else { return };
    let citus = citus_db(cluster).await;
    let all = batches();
    let report = citus.load(&all[0], ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let before = citus.rows().await;
    let runs_before = citus.scalar("SELECT count(*)::text FROM load_runs").await;

    // Hold a lock that lets the run stage its files and plan its scope, then stops it at its
    // first write into historical_stocks_data; kill it there.
    let mut blocker = citus.conn().await;
    let mut tx = blocker.begin().await.unwrap();
    sqlx::raw_sql("LOCK TABLE historical_stocks_data IN SHARE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut child = stockload()
        .args(["load", "--source"])
        .arg(&all[2].stocks)
        .arg("--companies")
        .arg(&all[2].companies)
        .env(
            "DATABASE_URL",
            citus.url.trim_end_matches("?sslmode=disable"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        "the load to wait at its insert into historical_stocks_data",
        Duration::from_secs(60),
        || async {
            citus
                .scalar(
                    "SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'stockload' \
                     AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO historical_stocks_data%'",
                )
                .await
                .as_deref()
                == Some("1")
        },
    )
    .await;
    // By now the batch is staged on the workers.
    child.kill().unwrap();
    child.wait().unwrap();
    tx.rollback().await.unwrap();

    // The coordinator notices the vanished client and rolls back on every node.
    wait_until(
        "the killed load's backend to end",
        Duration::from_secs(60),
        || async {
            citus
                .scalar(
                    "SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'stockload'",
                )
                .await
                .as_deref()
                == Some("0")
        },
    )
    .await;
    assert_eq!(citus.rows().await, before);
    // The killed run's row stays 'running' (it could not say otherwise) until the next run
    // finds its session gone.
    assert_eq!(
        citus
            .scalar("SELECT count(*)::text FROM load_runs WHERE status <> 'running'")
            .await,
        runs_before
    );
    assert_eq!(
        citus
            .scalar("SELECT count(*)::text FROM load_run_scope WHERE company_name = 'A' AND first_date < '2020-01-01'")
            .await
            .as_deref(),
        Some("0")
    );

    // And the next run loads the batch as if nothing had happened.
    let single = TestDb::new().await;
    for batch in [&all[0], &all[2]] {
        let report = single.load(batch, ChangeBasis::PreviousClose).await;
        assert!(report.error.is_none(), "{:?}", report.error);
    }
    let report = citus.load(&all[2], ChangeBasis::PreviousClose).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    assert_eq!(report.abandoned.len(), 1, "the killed run is found");
    assert_eq!(
        citus
            .scalar("SELECT string_agg(status, ',' ORDER BY id) FROM load_runs")
            .await
            .as_deref(),
        Some("succeeded,abandoned,succeeded")
    );
    assert_eq!(citus.rows().await, single.rows().await);
}

#[tokio::test]
async fn loads_on_citus_are_serialised() {
    let Some(cluster) = cluster() else { return };
    let citus = citus_db(cluster).await;
    let all = batches();
    let (a, b) = tokio::join!(
        citus.load(&all[0], ChangeBasis::PreviousClose),
        citus.load(&all[1], ChangeBasis::PreviousClose)
    );
    assert!(a.error.is_none(), "{:?}", a.error);
    assert!(b.error.is_none(), "{:?}", b.error);
    let single = TestDb::new().await;
    // Whichever ran first, the final table is the one of loading them in order on one node
    // (every change is recomputed from the stored neighbours).
    for batch in &all[..2] {
        single.load(batch, ChangeBasis::PreviousClose).await;
    }
    assert_eq!(citus.rows().await, single.rows().await);
}

#[tokio::test]
async fn a_marker_is_loaded_at_most_once_on_citus() {
    let Some(cluster) = cluster() else { return };
    let citus = citus_db(cluster).await;
    let all = batches();
    let mut plan = all[0].plan();
    plan.marker = Some("s3://monitored/run-1/.SUCCESS".into());
    let first = citus.load_plan(&plan).await;
    assert_eq!(
        first.summary.status,
        stockload::load::RunStatus::Succeeded,
        "{:?}",
        first.error
    );
    let second = citus.load_plan(&plan).await;
    assert_eq!(
        second.summary.status,
        stockload::load::RunStatus::AlreadyLoaded
    );
    assert_eq!(
        citus
            .scalar("SELECT count(*)::text FROM processed_markers")
            .await
            .as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn a_failed_run_on_citus_is_recorded_and_loads_nothing() {
    let Some(cluster) = cluster() else { return };
    let citus = citus_db(cluster).await;
    let all = batches();
    let mut plan = all[0].plan();
    plan.max_reject_ratio = 0.0;
    let report = citus.load_plan(&plan).await;
    assert!(
        matches!(
            report.error,
            Some(stockload::error::Error::TooManyRejects { .. })
        ),
        "{:?}",
        report.error
    );
    assert_eq!(
        citus
            .scalar("SELECT count(*)::text FROM historical_stocks_data")
            .await
            .as_deref(),
        Some("0")
    );
    assert_eq!(
        citus
            .scalar("SELECT string_agg(status, ',') FROM load_runs")
            .await
            .as_deref(),
        Some("failed")
    );
}

#[tokio::test]
async fn the_heavy_statements_run_on_the_workers_shard_by_shard() {
    let Some(cluster) = cluster() else { return };
    let citus = citus_db(cluster).await;
    let mut conn = citus.conn().await;
    sqlx::raw_sql(
        "SELECT set_config('stockload.change_basis', 'previous-close', false), \
         set_config('stockload.run_id', '1', false)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // (script, statement index, one-row subplan allowed): the batch- and table-sized work.
    // recompute_all_changes.sql reads the change basis in a one-row subquery on purpose: a
    // session's SET is seen on the coordinator only.
    for (script, index, subplan) in [
        ("citus/plan_scope.sql", 1, false),
        ("citus/insert_query.sql", 0, false),
        ("citus/insert_query.sql", 1, false),
        ("citus/update_changes.sql", 0, false),
        ("citus/recompute_all_changes.sql", 0, true),
    ] {
        let text = transform::embedded(script).unwrap();
        let code: String = text
            .lines()
            .filter(|line| !line.starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        let statement = code
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .nth(index)
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "EXPLAIN (COSTS OFF) {statement}"
        )))
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{script} #{index}: {e}"));
        let plan = plan.join("\n");
        assert!(
            plan.starts_with("Custom Scan (Citus Adaptive)") && plan.contains("\n  Task Count: 32"),
            "{script} #{index} is not one task per shard:\n{plan}"
        );
        for bad in ["repartition", "pull to coordinator", "Distributed Subplan"] {
            if subplan && bad == "Distributed Subplan" {
                assert_eq!(plan.matches(bad).count(), 1, "{script} #{index}\n{plan}");
                continue;
            }
            assert!(!plan.contains(bad), "{script} #{index}: {bad}\n{plan}");
        }
    }
}
