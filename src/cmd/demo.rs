//! `stockload demo`: the main job end to end on the embedded default — a throwaway PostgreSQL, a
//! generated batch with faulty cases — then the summary, the rejects and the stats.

use std::time::Duration;

use crate::cli::DemoArgs;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::plan::{Plan, DEFAULT_CONNECT_TIMEOUT_SECS, DEMO_WORK_MEM};
use crate::storage::{Location, Storage};
use crate::{devdb, load, report, sample};

/// Runs the whole job on a throwaway PostgreSQL (or DATABASE_URL) with a generated batch.
pub(crate) async fn run(args: DemoArgs) -> Result<bool> {
    // The cluster lives until the end of the demo; dropping it removes it.
    let (url, _cluster) = match &args.database_url {
        Some(url) => (url.expose().to_string(), None),
        None => {
            outln!("starting a throwaway PostgreSQL ...");
            let started = tokio::task::spawn_blocking(|| devdb::TempCluster::start(&[]))
                .await
                .map_err(|e| Error::task("starting a throwaway PostgreSQL", e))??;
            started.create_database("stockload_demo").await?;
            (started.url("stockload_demo"), Some(started))
        }
    };
    let db = Db::new(
        Some(&url),
        DEMO_WORK_MEM,
        Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
    )?;
    let folder = tempfile::Builder::new()
        .prefix("stockload-demo-")
        .tempdir()
        .map_err(|e| Error::io("cannot create", std::env::temp_dir(), e))?;
    let spec = sample::SampleSpec {
        files: args.files,
        listed: args.files,
        rows: args.rows,
        faulty: true,
        seed: 42,
    };
    let batch = sample::generate(folder.path(), &spec)?;
    outln!(
        "generated {} company files ({} trading days each) and {} faulty cases in {}",
        args.files,
        args.rows,
        sample::FAULTY_FILES.len(),
        folder.path().display()
    );
    let plan = Plan::new(
        Location::Local(batch.stocks.clone()),
        Location::Local(batch.companies.clone()),
    );
    let report = load::run(&db, &Storage::new(None), &plan, &super::progress_bar(true)).await;
    outln!();
    out!("{}", report.summary);
    let mut conn = db.connect().await?;
    if let Some(run_id) = report.summary.run_id {
        for (file, line, reason) in report::rejects(&mut conn, run_id, 20).await? {
            outln!(
                "  rejected:  {file} line {}: {reason}",
                line.unwrap_or_default()
            );
        }
    }
    outln!();
    out!("{}", report::stats(&mut conn).await?);
    outln!("\nall done; the throwaway database and sample files are removed now");
    Ok(report.summary.ok())
}
