//! One run, end to end, in one transaction: read the index, stage every listed file with COPY, run
//! the transform scripts, record the run. Every way of starting a run calls [`run`].

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use indicatif::ProgressBar;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::mpsc;

use crate::db::{self, Db, LOAD_LOCK_KEY};
use crate::error::{Error, Result};
use crate::ledger;
use crate::plan::Plan;
use crate::quality;
use crate::shutdown;
use crate::stage;
use crate::storage::index::{parse_index, Entry};
use crate::storage::Storage;
pub use crate::summary::{RunStatus, Summary};
use crate::transform::{self, Script, ScriptRun, Scripts};

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
            if let Some(run_id) = summary.run_id {
                clear_chunks_after(db, plan, run_id).await;
            }
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
    progress.set_length(entries.len() as u64);

    // On Citus the key is not dropped and rebuilt (DDL on the shards after this transaction's
    // parallel reads of them): every batch takes the insert_query.sql path.
    let empty_table = !distributed && transform::target_is_empty(&mut tx).await?;
    if empty_table {
        let steps = EmptyLoad {
            staging: stage::ChunkScripts {
                create: stage_script,
                per_chunk: transform::STAGE_CHUNK_SCRIPTS
                    .iter()
                    .map(|name| scripts.load(name))
                    .collect::<Result<Vec<_>>>()?,
            },
            drop_key: scripts.load(transform::DROP_KEY_SCRIPT)?,
            insert: scripts.load(transform::INSERT_EMPTY_SCRIPT)?,
            add_key: scripts.load(transform::ADD_KEY_SCRIPT)?,
            record_staged: scripts.load(transform::RECORD_STAGED_SCRIPT)?,
            clear_work: scripts.load(transform::CLEAR_WORK_SCRIPT)?,
        };
        load_empty(
            &mut tx, db, reader, plan, &entries, &steps, run_id, summary, progress,
        )
        .await?;
    } else {
        let transforms = transform::APPEND_SCRIPTS
            .iter()
            .map(|name| scripts.load(&transform::for_engine(name, distributed)))
            .collect::<Result<Vec<_>>>()?;
        if !distributed {
            // What a killed empty-table load left in stockload_work (runs take turns: no other
            // is staging now), so it does not wait for the next empty-table load.
            let clear = scripts.load(transform::CLEAR_WORK_SCRIPT)?;
            summary
                .scripts
                .push(transform::run_script(&mut tx, &clear).await?);
        }
        transform::run_script(&mut tx, &stage_script).await?;
        let counts = stage::stage_files(
            &mut tx,
            reader,
            &plan.source,
            &entries,
            plan.concurrency,
            progress,
        )
        .await?;
        record_counts(summary, &counts);
        check_limits(summary, plan.max_reject_ratio)?;
        for script in &transforms {
            let run = transform::run_script(&mut tx, script).await?;
            summary.scripts.push(run);
        }
    }
    quality::run(
        &mut tx,
        &scripts,
        run_id,
        distributed,
        plan.fail_on_quality_errors,
        summary,
    )
    .await?;
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

fn record_counts(summary: &mut Summary, counts: &stage::StageCounts) {
    summary.files_loaded = counts.files_loaded;
    summary.files_skipped = counts.skipped.len() as u64;
    summary.rows_read = counts.rows_read;
    summary.rows_loaded = counts.rows_valid;
    summary.rows_rejected = counts.rows_rejected;
    summary.skipped_files = counts.skipped.clone();
}

/// The scripts of a load into an empty table.
struct EmptyLoad {
    staging: stage::ChunkScripts,
    drop_key: Script,
    insert: Script,
    add_key: Script,
    record_staged: Script,
    clear_work: Script,
}

/// A load into an empty table, on two cores: a second session stages the batch in chunks of
/// whole companies and notes their rejects and first days (stage::stage_chunks), while this
/// transaction runs insert_empty.sql on each chunk already committed (`stockload_stage` is then
/// a view of that chunk) and drops it; then it records the rejects and first days.
/// The key is dropped before the first chunk and rebuilt after the last; everything this
/// transaction writes still commits (or rolls back) at once.
#[allow(clippy::too_many_arguments)]
async fn load_empty(
    tx: &mut PgConnection,
    db: &Db,
    reader: &Storage,
    plan: &Plan,
    entries: &[Entry],
    steps: &EmptyLoad,
    run_id: i64,
    summary: &mut Summary,
    progress: &ProgressBar,
) -> Result<()> {
    summary
        .scripts
        .push(transform::run_script(tx, &steps.drop_key).await?);
    let mut stager = db.connect().await?;
    // Chunks a failed or killed run left behind (runs take turns: none is staging now).
    summary
        .scripts
        .push(stage::clear_chunks(&mut stager, &steps.clear_work, None).await?);
    let (ready, mut chunks) = mpsc::channel::<stage::Chunk>(1);
    let staging = stage::stage_chunks(
        &mut stager,
        &steps.staging,
        run_id,
        plan.chunk_rows,
        reader,
        &plan.source,
        entries,
        plan.concurrency,
        progress,
        ready,
    );
    let applying = async {
        let mut runs: Vec<ScriptRun> = Vec::new();
        while let Some(chunk) = chunks.recv().await {
            let view = format!(
                "CREATE TEMPORARY VIEW stockload_stage AS SELECT * FROM {}",
                chunk.table
            );
            sqlx::raw_sql(AssertSqlSafe(view))
                .execute(&mut *tx)
                .await
                .map_err(|e| Error::database(format!("reading the chunk {}", chunk.table), e))?;
            transform::add_run(&mut runs, transform::run_script(tx, &steps.insert).await?);
            let drop = format!("DROP VIEW stockload_stage; DROP TABLE {}", chunk.table);
            sqlx::raw_sql(AssertSqlSafe(drop))
                .execute(&mut *tx)
                .await
                .map_err(|e| Error::database(format!("dropping the chunk {}", chunk.table), e))?;
        }
        Ok::<_, Error>(runs)
    };
    let ((counts, staging_runs), runs) = tokio::try_join!(staging, applying)?;
    summary.scripts.extend(staging_runs);
    summary.scripts.extend(runs);
    record_counts(summary, &counts);
    check_limits(summary, plan.max_reject_ratio)?;
    for script in [&steps.record_staged, &steps.add_key] {
        summary
            .scripts
            .push(transform::run_script(tx, script).await?);
    }
    Ok(())
}

/// After a failed run: drops the staging chunks it committed (a load into an empty table), once
/// its transaction is gone (until then it holds their locks; clear_work.sql waits 2 s at most
/// per chunk). Best effort: a chunk left here is dropped by the next load.
async fn clear_chunks_after(db: &Db, plan: &Plan, run_id: i64) {
    let attempt = async {
        let script = Scripts {
            dir: plan.sql_dir.clone(),
        }
        .load(transform::CLEAR_WORK_SCRIPT)?;
        let mut conn = db.connect().await?;
        stage::clear_chunks(&mut conn, &script, Some(run_id)).await
    };
    if let Err(err) = attempt.await {
        tracing::warn!("could not drop the failed run's staging chunks: {err}");
    }
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
