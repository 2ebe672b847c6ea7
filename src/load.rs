//! One run, end to end, in one transaction: read the index, stage every listed file with COPY, run
//! the transform scripts, record the run. Every way of starting a run calls [`run`].

use std::fmt;
use std::time::Instant;

use indicatif::ProgressBar;
use serde::Serialize;
use sqlx::{Connection, PgConnection};

use crate::db::{self, Db, LOAD_LOCK_KEY};
use crate::error::{Error, Result};
use crate::ledger;
use crate::plan::{ChangeBasis, Plan};
use crate::source::index::parse_index;
use crate::source::Reader;
use crate::stage::{self, SkippedFile};
use crate::transform::{self, ScriptRun, Scripts};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Committed.
    Succeeded,
    /// Rolled back; nothing of its data was written.
    Failed,
    /// Its trigger marker had already been loaded by an earlier run; nothing was done.
    AlreadyLoaded,
}

/// What a run did: printed at the end, as JSON with `--json`, and sent in notifications.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// load_runs.id (also for failed runs, when the failure could be recorded).
    pub run_id: Option<i64>,
    /// How it ended.
    pub status: RunStatus,
    /// Source folder or prefix.
    pub source: String,
    /// Companies index.
    pub companies_file: String,
    /// Change basis.
    pub change_basis: ChangeBasis,
    /// Trigger marker, if any.
    pub marker: Option<String>,
    /// Files named by the index.
    pub files_listed: u64,
    /// Files read (possibly with rejected rows).
    pub files_loaded: u64,
    /// Files skipped.
    pub files_skipped: u64,
    /// Data lines read; always rows_loaded + rows_rejected.
    pub rows_read: u64,
    /// Rows upserted into historical_stocks_data.
    pub rows_loaded: u64,
    /// Rows rejected (see load_rejects).
    pub rows_rejected: u64,
    /// Wall time.
    pub duration_secs: f64,
    /// Why the run failed.
    pub error: Option<String>,
    /// Files skipped, with reasons.
    pub skipped_files: Vec<SkippedFile>,
    /// Scripts executed, with checksums and timings.
    pub scripts: Vec<ScriptRun>,
}

impl Summary {
    fn new(plan: &Plan) -> Summary {
        Summary {
            run_id: None,
            status: RunStatus::Failed,
            source: plan.source.to_string(),
            companies_file: plan.companies.to_string(),
            change_basis: plan.basis,
            marker: plan.marker.clone(),
            files_listed: 0,
            files_loaded: 0,
            files_skipped: 0,
            rows_read: 0,
            rows_loaded: 0,
            rows_rejected: 0,
            duration_secs: 0.0,
            error: None,
            skipped_files: Vec::new(),
            scripts: Vec::new(),
        }
    }

    /// True when the run committed or had nothing to do.
    pub fn ok(&self) -> bool {
        self.status != RunStatus::Failed
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "FAILED",
            RunStatus::AlreadyLoaded => "already loaded (nothing to do)",
        };
        match self.run_id {
            Some(id) => writeln!(f, "run {id} {status} in {:.1}s", self.duration_secs)?,
            None => writeln!(f, "run {status} in {:.1}s", self.duration_secs)?,
        }
        writeln!(
            f,
            "  source:    {} (index {})",
            self.source, self.companies_file
        )?;
        if let Some(marker) = &self.marker {
            writeln!(f, "  marker:    {marker}")?;
        }
        writeln!(
            f,
            "  files:     {} listed, {} loaded, {} skipped",
            self.files_listed, self.files_loaded, self.files_skipped
        )?;
        writeln!(
            f,
            "  rows:      {} read = {} loaded + {} rejected",
            self.rows_read, self.rows_loaded, self.rows_rejected
        )?;
        writeln!(f, "  basis:     {}", self.change_basis.as_str())?;
        for skipped in self.skipped_files.iter().take(10) {
            writeln!(f, "  skipped:   {}: {}", skipped.file, skipped.reason)?;
        }
        if self.skipped_files.len() > 10 {
            writeln!(
                f,
                "  skipped:   ... and {} more (see load_rejects)",
                self.skipped_files.len() - 10
            )?;
        }
        if self.rows_rejected > 0 {
            if let Some(id) = self.run_id.filter(|_| self.status == RunStatus::Succeeded) {
                writeln!(
                    f,
                    "  rejects:   SELECT * FROM load_rejects WHERE run_id = {id} AND kind = 'row';"
                )?;
            }
        }
        if let Some(error) = &self.error {
            writeln!(f, "  error:     {error}")?;
        }
        Ok(())
    }
}

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
pub async fn run(db: &Db, reader: &Reader, plan: &Plan, progress: &ProgressBar) -> Report {
    let started = Instant::now();
    let mut summary = Summary::new(plan);
    let result = run_batch(db, reader, plan, progress, &mut summary).await;
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
    reader: &Reader,
    plan: &Plan,
    progress: &ProgressBar,
    summary: &mut Summary,
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
    let stage_script = scripts.load(transform::STAGE_SCRIPT)?;
    let transforms = transform::TRANSFORM_SCRIPTS
        .iter()
        .map(|name| scripts.load(name))
        .collect::<Result<Vec<_>>>()?;

    let mut conn = db.connect().await?;
    let applied = db::migrate(&mut conn).await?;
    if !applied.is_empty() {
        tracing::info!("applied migrations: {}", applied.join(", "));
    }

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

    let empty_table = transform::target_is_empty(&mut tx).await?;
    for script in &transforms {
        if transform::insert_variant(&script.name).is_some_and(|empty| empty != empty_table) {
            continue;
        }
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
