//! One run, end to end, in one transaction: read the index, stage every listed file with COPY, run
//! the transform scripts, record the run. Every way of starting a run calls [`run`].

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use indicatif::ProgressBar;
use sqlx::{Connection, PgConnection};

use crate::db::{self, Db, LOAD_LOCK_KEY};
use crate::error::{Error, Result};
use crate::ledger;
use crate::plan::Plan;
use crate::shutdown;
use crate::stage;
use crate::storage::index::parse_index;
use crate::storage::Storage;
pub use crate::summary::{RunStatus, Summary};
use crate::transform::{self, Scripts};

/// The outcome of [`run`]: always a summary, plus the error when the run failed.
#[derive(Debug)]
pub struct Report {
    /// What happened.
    pub summary: Summary,
    /// Why it failed.
    pub error: Option<Error>,
}

/// Does one run. Never panics on bad input; a failed run leaves the data as it was and is
/// recorded in load_runs (when the database is reachable).
pub async fn run(db: &Db, reader: &Storage, plan: &Plan, progress: &ProgressBar) -> Report {
    let started = Instant::now();
    let mut summary = Summary::new(plan);
    // The server process of the load's connection, so a stop signal can cancel its statement.
    let backend = AtomicI32::new(0);
    let result = match shutdown::requested() {
        Some(signal) => Err(Error::Interrupted(signal)),
        None => tokio::select! {
            result = run_batch(db, reader, plan, progress, &mut summary, &backend) => result,
            signal = shutdown::requested_wait() => {
                // The load's future (and its connection) is dropped here; the server would only
                // notice at its next client check, so cancel the statement now.
                let pid = backend.load(Ordering::SeqCst);
                if pid != 0 {
                    db::cancel_backend(db, pid).await;
                }
                Err(Error::Interrupted(signal))
            }
        },
    };
    progress.finish_and_clear();
    summary.duration_secs = started.elapsed().as_secs_f64();
    let error = match result {
        Ok(status) => {
            summary.status = status;
            None
        }
        Err(error) => {
            summary.status = RunStatus::Failed;
            summary.error = Some(error.to_string());
            summary.run_id = ledger::record_failure(db, &summary).await;
            Some(error)
        }
    };
    tracing::info!(
        status = ?summary.status,
        rows_loaded = summary.rows_loaded,
        rows_rejected = summary.rows_rejected,
        "run finished in {:.1}s",
        summary.duration_secs
    );
    Report { summary, error }
}

async fn run_batch(
    db: &Db,
    reader: &Storage,
    plan: &Plan,
    progress: &ProgressBar,
    summary: &mut Summary,
    backend: &AtomicI32,
) -> Result<RunStatus> {
    // Check everything that can be checked before touching the database.
    let index_bytes = reader.read_required(&plan.companies).await?;
    let index_text = String::from_utf8(index_bytes).map_err(|_| Error::Index {
        file: plan.companies.to_string(),
        reason: "is not UTF-8 text".into(),
    })?;
    let entries = parse_index(&index_text, &plan.companies.to_string())?;
    summary.files_listed = entries.len() as u64;
    reader.check_folder(&plan.source).await?;
    let scripts = Scripts {
        dir: plan.sql_dir.clone(),
    };
    let mut conn = db.connect().await?;
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| Error::database("asking for the session's process id", e))?;
    backend.store(pid, Ordering::SeqCst);
    let applied = db::migrate(&mut conn).await?;
    if !applied.is_empty() {
        tracing::info!("applied migrations: {}", applied.join(", "));
    }
    // On Citus (historical_stocks_data distributed) the scripts with a Citus form run in it.
    let distributed = transform::is_distributed(&mut conn).await?;
    if distributed {
        tracing::info!("historical_stocks_data is distributed (Citus): running sql/citus/ forms");
    }
    let stage_script =
        scripts.load(&transform::for_engine(transform::STAGE_SCRIPT, distributed))?;
    let transforms = transform::TRANSFORM_SCRIPTS
        .iter()
        .map(|name| scripts.load(&transform::for_engine(name, distributed)))
        .collect::<Result<Vec<_>>>()?;
    let clear_script = distributed
        .then(|| scripts.load(transform::CITUS_CLEAR_SCRIPT))
        .transpose()?;

    let mut tx = conn
        .begin()
        .await
        .map_err(|e| Error::database("starting the load transaction", e))?;
    lock(&mut tx).await?;
    if let Some(marker) = &plan.marker {
        if ledger::marker_done(&mut tx, marker).await? {
            tracing::info!(%marker, "marker already loaded; nothing to do");
            return Ok(RunStatus::AlreadyLoaded);
        }
    }
    let run_id = ledger::start_run(&mut tx, plan).await?;
    summary.run_id = Some(run_id);
    transform::set_inputs(&mut tx, run_id, plan.basis, distributed).await?;
    transform::run_script(&mut tx, &stage_script).await?;

    progress.set_length(entries.len() as u64);
    let counts = stage::stage_files(
        &mut tx,
        reader,
        &plan.source,
        &entries,
        plan.concurrency,
        progress,
    )
    .await?;
    summary.files_loaded = counts.files_loaded;
    summary.files_skipped = counts.skipped.len() as u64;
    summary.rows_read = counts.rows_read;
    summary.rows_loaded = counts.rows_valid;
    summary.rows_rejected = counts.rows_rejected;
    summary.skipped_files = counts.skipped;
    check_limits(summary, plan.max_reject_ratio)?;

    // On Citus the key is not dropped and rebuilt (DDL on the shards after this transaction's
    // parallel reads of them): every batch takes the insert_query.sql path.
    let empty_table = !distributed && transform::target_is_empty(&mut tx).await?;
    for script in &transforms {
        if transform::insert_variant(&script.name).is_some_and(|empty| empty != empty_table) {
            continue;
        }
        let run = transform::run_script(&mut tx, script).await?;
        summary.scripts.push(run);
    }
    if let Some(script) = &clear_script {
        let run = transform::run_script(&mut tx, script).await?;
        summary.scripts.push(run);
    }
    if let Some(marker) = &plan.marker {
        ledger::claim_marker(&mut tx, marker, run_id).await?;
    }
    ledger::finish_run(&mut tx, run_id, summary).await?;
    tx.commit()
        .await
        .map_err(|e| Error::database("committing the load", e))?;
    Ok(RunStatus::Succeeded)
}

/// Waits for any other run on this database to finish (advisory lock held until commit/rollback).
async fn lock(conn: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOAD_LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("waiting for other runs to finish (advisory lock)", e))?;
    Ok(())
}

fn check_limits(summary: &Summary, max_ratio: f64) -> Result<()> {
    if summary.files_loaded == 0 {
        return Err(Error::NothingToLoad(format!(
            "all {} listed files were skipped (first: {})",
            summary.files_listed,
            summary
                .skipped_files
                .first()
                .map(|s| format!("{}: {}", s.file, s.reason))
                .unwrap_or_default()
        )));
    }
    if summary.rows_read > 0 {
        let ratio = summary.rows_rejected as f64 / summary.rows_read as f64;
        if ratio > max_ratio {
            return Err(Error::TooManyRejects {
                rejected: summary.rows_rejected,
                read: summary.rows_read,
                percent: ratio * 100.0,
                max_ratio,
            });
        }
    }
    Ok(())
}
