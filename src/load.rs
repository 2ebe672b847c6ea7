//! One run, end to end, in one transaction: read the index, choose the load's path once
//! ([`path::LoadPath`]), stage every listed file with COPY, run the path's scripts, record the run.
//! Every way of starting a run calls [`run`].

use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use indicatif::ProgressBar;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::mpsc;

use crate::db::{self, engine, Db, LOAD_LOCK_KEY};
use crate::error::{Error, Result};
use crate::ledger::{self, Abandoned};
use crate::plan::Plan;
use crate::quality;
use crate::shutdown;
use crate::stage::{self, Batch, StageCounts};
use crate::storage::index::{parse_index, Entry};
use crate::storage::Storage;
pub use crate::summary::{RunStatus, Summary};
use crate::transform::{self, Script, ScriptRun, Scripts};

pub mod path;
use path::{LoadPath, Steps};

/// The outcome of [`run`]: always a summary, plus the error when the run failed.
#[derive(Debug)]
pub struct Report {
    /// What happened.
    pub summary: Summary,
    /// Why it failed.
    pub error: Option<Error>,
    /// Earlier runs this one found dead (their session gone) and closed as abandoned.
    pub abandoned: Vec<Abandoned>,
}

/// The run's own record in load_runs: the ledger session that opened its row (open until the row
/// is closed: while it is, the run is alive), when the run really started, and the dead runs it
/// found.
struct RunLedger {
    conn: Option<PgConnection>,
    started_at: String,
    abandoned: Vec<Abandoned>,
}

/// Does one run. Never panics on bad input; a failed run leaves the data as it was and is
/// recorded in load_runs (when the database is reachable).
pub async fn run(db: &Db, reader: &Storage, plan: &Plan, progress: &ProgressBar) -> Report {
    let started = Instant::now();
    let mut record = RunLedger {
        conn: None,
        started_at: chrono::Utc::now().to_rfc3339(),
        abandoned: Vec::new(),
    };
    let mut summary = Summary::new(plan);
    // The server process of the load's connection, so a stop signal can cancel its statement.
    let backend = AtomicI32::new(0);
    let result = match shutdown::requested() {
        Some(signal) => Err(Error::Interrupted(signal)),
        None => tokio::select! {
            result = run_batch(db, reader, plan, progress, &mut summary, &backend, &mut record) => result,
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
            // Rolled back: nothing was written, whatever was staged.
            summary.files_loaded = 0;
            summary.rows_loaded = 0;
            summary.run_id =
                ledger::record_failure(db, record.conn.as_mut(), &summary, &record.started_at)
                    .await;
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
    Report {
        summary,
        error,
        abandoned: record.abandoned,
    }
}

/// The story of one run: everything that can be checked before the database, then one
/// transaction that takes the load lock, closes runs that died, opens the run's ledger row (on a
/// session of its own, committed at once), chooses the path once, runs its steps, and closes the
/// row with the data.
async fn run_batch(
    db: &Db,
    reader: &Storage,
    plan: &Plan,
    progress: &ProgressBar,
    summary: &mut Summary,
    backend: &AtomicI32,
    record: &mut RunLedger,
) -> Result<RunStatus> {
    let entries = read_index(reader, plan).await?;
    summary.files_listed = entries.len() as u64;
    reader.check_folder(&plan.source).await?;

    let mut conn = connect(db, backend).await?;
    let distributed = engine::is_distributed(&mut conn).await?;
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
    // Under the load lock no other run is between its start and its end: a row still marked
    // running whose session is gone belongs to a run that died.
    let ledger_conn = record.conn.insert(db.connect().await?);
    record.abandoned = ledger::close_abandoned(ledger_conn, "the next run started").await?;
    let run_id = ledger::start_run(ledger_conn, plan, &record.started_at).await?;
    summary.run_id = Some(run_id);
    ledger::take_run(&mut tx, run_id).await?;
    let path = LoadPath::choose(&mut tx, distributed).await?;
    transform::set_inputs(&mut tx, run_id, plan.basis, path.name(), distributed).await?;
    let steps = path.steps(&Scripts {
        dir: plan.sql_dir.clone(),
    })?;
    tracing::info!(?path, "load path chosen");
    progress.set_length(entries.len() as u64);
    let run = Run {
        db,
        plan,
        run_id,
        batch: Batch {
            reader,
            source: &plan.source,
            entries: &entries,
            concurrency: plan.concurrency,
            memory_budget: plan.memory_budget,
            follow_symlinks: plan.follow_symlinks,
            progress,
        },
    };

    for script in &steps.prepare {
        let run = transform::run_script_patiently(&mut tx, script, plan.lock_wait).await?;
        summary.scripts.push(run);
    }
    let staging = Instant::now();
    let counts = match path {
        LoadPath::Empty => load_empty(&mut tx, &run, &steps, summary).await?,
        LoadPath::Append | LoadPath::Citus => {
            transform::run_script(&mut tx, &steps.stage).await?;
            stage::stage_files(&mut tx, run.batch).await?
        }
    };
    summary.scripts.push(ScriptRun::step(
        STAGING_STEP,
        counts.rows_read + counts.skipped.len() as u64,
        staging.elapsed(),
    ));
    record_counts(summary, &counts);
    check_limits(summary, plan.max_reject_ratio)?;
    run_scripts(&mut tx, &steps.finish, summary).await?;
    quality::review(&mut tx, run_id, plan.fail_on_quality_errors, summary).await?;

    if let Some(marker) = &plan.marker {
        ledger::claim_marker(&mut tx, marker, run_id).await?;
    }
    ledger::finish_run(&mut tx, run_id, summary).await?;
    tx.commit()
        .await
        .map_err(|e| Error::database("committing the load", e))?;
    Ok(RunStatus::Succeeded)
}

/// Reads and parses the index: the batch's entries, in index order.
async fn read_index(reader: &Storage, plan: &Plan) -> Result<Vec<Entry>> {
    let index_bytes = reader.read_required(&plan.companies).await?;
    let index_text = String::from_utf8(index_bytes).map_err(|_| Error::Index {
        file: plan.companies.to_string(),
        reason: "is not UTF-8 text".into(),
    })?;
    parse_index(&index_text, &plan.companies.to_string())
}

/// The load's connection, migrated; its server process is noted in `backend` so a stop signal
/// can cancel its statement.
async fn connect(db: &Db, backend: &AtomicI32) -> Result<PgConnection> {
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
    Ok(conn)
}

/// Runs `scripts` in order in the load's transaction and reports each in the summary.
async fn run_scripts(
    tx: &mut PgConnection,
    scripts: &[Script],
    summary: &mut Summary,
) -> Result<()> {
    for script in scripts {
        let run = transform::run_script(tx, script).await?;
        summary.scripts.push(run);
    }
    Ok(())
}

fn record_counts(summary: &mut Summary, counts: &stage::StageCounts) {
    summary.files_loaded = counts.files_loaded;
    summary.files_skipped = counts.skipped.len() as u64;
    summary.rows_read = counts.rows_read;
    summary.rows_loaded = counts.rows_valid;
    summary.rows_rejected = counts.rows_rejected;
    summary.skipped_files = counts.skipped.clone();
}

/// The staging phase in the run's steps (the timeline of the run report): reading, parsing and
/// COPY of every listed file (on the empty-table path, side by side with the per-chunk scripts,
/// which are also reported on their own).
const STAGING_STEP: &str = "staging (read, parse, COPY)";

/// What the steps of one run share.
struct Run<'a> {
    db: &'a Db,
    plan: &'a Plan,
    run_id: i64,
    batch: Batch<'a>,
}

/// A load into an empty table, on two cores: a second session stages the batch in chunks of
/// whole companies and notes their rejects and first days (stage::stage_chunks), while this
/// transaction runs the per-chunk scripts (insert_empty.sql) on each chunk already committed
/// (`stockload_stage` is then a view of that chunk) and drops it. The key was dropped before
/// (the path's prepare steps) and is rebuilt after (its finish steps); everything this
/// transaction writes still commits (or rolls back) at once.
async fn load_empty(
    tx: &mut PgConnection,
    run: &Run<'_>,
    steps: &Steps,
    summary: &mut Summary,
) -> Result<StageCounts> {
    let mut stager = run.db.connect().await?;
    let (ready, chunks) = mpsc::channel::<stage::Chunk>(1);
    let chunking = stage::Chunking {
        run_id: run.run_id,
        rows: run.plan.chunk_rows,
        create: &steps.stage,
        per_chunk: &steps.stage_chunk,
    };
    let staging = stage::stage_chunks(&mut stager, run.batch, &chunking, ready);
    let applying = apply_chunks(tx, &steps.per_chunk, chunks);
    let ((counts, staging_runs), runs) = tokio::try_join!(staging, applying)?;
    summary.scripts.extend(staging_runs);
    summary.scripts.extend(runs);
    Ok(counts)
}

/// Runs `scripts` on each chunk as it arrives (as the temporary view `stockload_stage`), then
/// drops it. Each script is reported once, with its total rows and time.
async fn apply_chunks(
    tx: &mut PgConnection,
    scripts: &[Script],
    mut chunks: mpsc::Receiver<stage::Chunk>,
) -> Result<Vec<ScriptRun>> {
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
        for script in scripts {
            transform::add_run(&mut runs, transform::run_script(tx, script).await?);
        }
        let drop = format!("DROP VIEW stockload_stage; DROP TABLE {}", chunk.table);
        sqlx::raw_sql(AssertSqlSafe(drop))
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::database(format!("dropping the chunk {}", chunk.table), e))?;
    }
    Ok(runs)
}

/// After a failed run: drops the staging chunks it committed (a load into an empty table), once
/// its transaction is gone (until then it holds their locks; clear_work.sql waits 2 s at most
/// per chunk). Best effort: a chunk left here is dropped by the next load.
async fn clear_chunks_after(db: &Db, plan: &Plan, run_id: i64) {
    let attempt = async {
        let script = Scripts {
            dir: plan.sql_dir.clone(),
        }
        .load(path::CLEAR_WORK_SCRIPT)?;
        let mut conn = db.connect().await?;
        stage::clear_chunks(&mut conn, &script, run_id).await
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
