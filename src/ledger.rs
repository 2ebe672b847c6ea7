//! The run ledger: load_runs (one row per attempted run), load_rejects (filled by
//! `sql/record_rejects.sql`) and processed_markers. Queries live in `sql/ledger/`.

use std::collections::HashSet;

use sqlx::{PgConnection, Row};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::summary::{RunStatus, Summary, LEDGER_RUNNING};

/// Opens the run's load_runs row on the run's ledger session `conn` (autocommit: the row is
/// there at once, even if the run is killed); returns its id. `started_at` is the run's real
/// start (RFC 3339). The session's process id and start are recorded: while that session is
/// open the run is alive, so `conn` must stay open until the row is closed.
pub async fn start_run(conn: &mut PgConnection, plan: &Plan, started_at: &str) -> Result<i64> {
    let (pid, backend_started): (i32, String) = sqlx::query_as(
        "SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| Error::database("asking for the ledger session's process", e))?;
    let row = sqlx::query(include_str!("../sql/ledger/start_run.sql"))
        .bind(plan.source.to_string())
        .bind(plan.companies.to_string())
        .bind(plan.basis.as_str())
        .bind(LEDGER_RUNNING)
        .bind(started_at)
        .bind(pid)
        .bind(backend_started)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::database("recording the run in load_runs", e))?;
    Ok(row.get(0))
}

/// Takes the run's row in the load's transaction (`sql/ledger/take_run.sql` says why).
pub async fn take_run(tx: &mut PgConnection, run_id: i64) -> Result<()> {
    sqlx::query(include_str!("../sql/ledger/take_run.sql"))
        .bind(run_id)
        .execute(&mut *tx)
        .await
        .map(|_| ())
        .map_err(|e| Error::database("taking the run's row in load_runs", e))
}

/// A run that died without a word, found and closed as abandoned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abandoned {
    /// Its load_runs id.
    pub run_id: i64,
    /// When it started.
    pub started_at: String,
    /// The process id its ledger session had.
    pub backend_pid: i32,
}

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "run {} (started {}) died without a word: its database session (process {}) is gone; \
             it loaded nothing",
            self.run_id, self.started_at, self.backend_pid
        )
    }
}

/// The runs the ledger shows as running whose ledger session is gone. Reads only (`stats` may
/// use it too); see [`close_abandoned`].
pub async fn find_abandoned(conn: &mut PgConnection) -> Result<Vec<Abandoned>> {
    let running: Vec<(i64, String, Option<i32>, Option<String>)> =
        sqlx::query_as(include_str!("../sql/ledger/running_runs.sql"))
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| Error::database("reading the runs still marked running", e))?;
    if running.is_empty() {
        return Ok(Vec::new());
    }
    let sessions: Vec<(i32, Option<String>)> =
        sqlx::query_as("SELECT pid, backend_start::text FROM pg_stat_activity")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| Error::database("reading the server's sessions", e))?;
    // A session of another role shows no start: then its process id alone keeps the run alive.
    let alive = |pid: i32, started: &Option<String>| {
        sessions
            .iter()
            .any(|(p, s)| *p == pid && (s.is_none() || s == started))
    };
    Ok(running
        .into_iter()
        .filter(|(_, _, pid, started)| !pid.is_some_and(|pid| alive(pid, started)))
        .map(|(run_id, started_at, pid, _)| Abandoned {
            run_id,
            started_at,
            backend_pid: pid.unwrap_or(0),
        })
        .collect())
}

/// Closes as abandoned the runs still marked running whose session is gone. Only under the load
/// lock (no other run is between its start and its end then, except one waiting to record its
/// failure, whose session is still open).
pub async fn close_abandoned(conn: &mut PgConnection, found_by: &str) -> Result<Vec<Abandoned>> {
    let dead = find_abandoned(conn).await?;
    if dead.is_empty() {
        return Ok(dead);
    }
    let ids: Vec<i64> = dead.iter().map(|run| run.run_id).collect();
    let closed: Vec<i64> = sqlx::query_scalar(include_str!("../sql/ledger/close_abandoned.sql"))
        .bind(&ids)
        .bind(found_by)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::database("closing abandoned runs in load_runs", e))?;
    let found: Vec<Abandoned> = dead
        .into_iter()
        .filter(|run| closed.contains(&run.run_id))
        .collect();
    for run in &found {
        tracing::warn!("{run}");
    }
    Ok(found)
}

/// A count as the ledger column's integer type; a count that does not fit is an error naming
/// the column, never a wrapped-around number.
fn column<T: TryFrom<u64>>(name: &str, value: u64) -> Result<T> {
    T::try_from(value).map_err(|_| {
        Error::Config(format!(
            "load_runs.{name} cannot hold {value}: the batch is too large for the ledger"
        ))
    })
}

/// Closes a successful run's row, inside the load transaction.
pub async fn finish_run(conn: &mut PgConnection, run_id: i64, summary: &Summary) -> Result<()> {
    let scripts: Vec<String> = summary
        .scripts
        .iter()
        .filter(|s| s.is_script())
        .map(|s| format!("{}:{}", s.name, s.checksum))
        .collect();
    sqlx::query(include_str!("../sql/ledger/finish_run.sql"))
        .bind(run_id)
        .bind(RunStatus::Succeeded.ledger_str())
        .bind(column::<i32>("files_listed", summary.files_listed)?)
        .bind(column::<i32>("files_loaded", summary.files_loaded)?)
        .bind(column::<i32>("files_skipped", summary.files_skipped)?)
        .bind(column::<i64>("rows_read", summary.rows_read)?)
        .bind(column::<i64>("rows_loaded", summary.rows_loaded)?)
        .bind(column::<i64>("rows_rejected", summary.rows_rejected)?)
        .bind(None::<String>)
        .bind(scripts.join(" "))
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("closing the run in load_runs", e))?;
    record_steps(conn, run_id, summary).await
}

/// Records a failed run after its transaction rolled back: closes its row (0 loaded, what it
/// read and rejected kept, its real duration) on its ledger session `ledger` when it has one,
/// else inserts a failed row for a run that failed before opening it (bad index, unreachable
/// storage). Best effort: when the database itself is the problem there is nowhere to record it
/// (the error is still reported and notified); returns the run id when it worked.
pub async fn record_failure(
    db: &Db,
    ledger: Option<&mut PgConnection>,
    summary: &Summary,
    started_at: &str,
) -> Option<i64> {
    let attempt = async {
        match (summary.run_id, ledger) {
            (Some(run_id), Some(conn)) => close_failed(conn, run_id, summary).await,
            (Some(run_id), None) => close_failed(&mut db.connect().await?, run_id, summary).await,
            (None, _) => insert_failed(db, summary, started_at).await,
        }
    };
    match attempt.await {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::warn!("could not record the failed run in load_runs: {err}");
            summary.run_id
        }
    }
}

async fn close_failed(conn: &mut PgConnection, run_id: i64, summary: &Summary) -> Result<i64> {
    sqlx::query(include_str!("../sql/ledger/close_failed.sql"))
        .bind(run_id)
        .bind(RunStatus::Failed.ledger_str())
        .bind(column::<i32>("files_listed", summary.files_listed)?)
        .bind(column::<i32>("files_skipped", summary.files_skipped)?)
        .bind(column::<i64>("rows_read", summary.rows_read)?)
        .bind(column::<i64>("rows_rejected", summary.rows_rejected)?)
        .bind(summary.error.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("closing the failed run in load_runs", e))?;
    recorded_steps(conn, run_id, summary).await;
    Ok(run_id)
}

async fn insert_failed(db: &Db, summary: &Summary, started_at: &str) -> Result<i64> {
    let mut conn = db.connect().await?;
    // The run may have failed before its migrations ran (bad index, missing bucket).
    crate::db::migrate(&mut conn).await?;
    let row = sqlx::query(include_str!("../sql/ledger/failed_run.sql"))
        .bind(&summary.source)
        .bind(&summary.companies_file)
        .bind(summary.change_basis.as_str())
        .bind(column::<i32>("files_listed", summary.files_listed)?)
        .bind(0_i32)
        .bind(column::<i32>("files_skipped", summary.files_skipped)?)
        .bind(column::<i64>("rows_read", summary.rows_read)?)
        .bind(0_i64)
        .bind(column::<i64>("rows_rejected", summary.rows_rejected)?)
        .bind(summary.error.as_deref())
        .bind(RunStatus::Failed.ledger_str())
        .bind(started_at)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| Error::database("recording the failed run", e))?;
    recorded_steps(&mut conn, row.get(0), summary).await;
    Ok(row.get(0))
}

/// A failed run's row is in; its steps are extra, and failing to record them is only told.
async fn recorded_steps(conn: &mut PgConnection, run_id: i64, summary: &Summary) {
    if let Err(err) = record_steps(conn, run_id, summary).await {
        tracing::warn!("could not record the failed run's steps: {err}");
    }
}

/// Records the run's steps (`summary.scripts`, with their timings) in load_run_steps, and on its
/// load_runs row the stockload version: what the run report shows.
pub async fn record_steps(conn: &mut PgConnection, run_id: i64, summary: &Summary) -> Result<()> {
    let steps = &summary.scripts;
    let numbers = |value: fn(&crate::transform::ScriptRun) -> u64| -> Result<Vec<i64>> {
        steps
            .iter()
            .map(|s| column::<i64>("steps", value(s)))
            .collect()
    };
    sqlx::query(include_str!("../sql/ledger/record_steps.sql"))
        .bind(run_id)
        .bind(steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
        .bind(
            steps
                .iter()
                .map(|s| s.checksum.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(numbers(|s| s.rows)?)
        .bind(numbers(|s| s.millis)?)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("recording the run's steps in load_run_steps", e))?;
    sqlx::query(include_str!("../sql/ledger/run_details.sql"))
        .bind(run_id)
        .bind(env!("CARGO_PKG_VERSION"))
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("recording the run's version in load_runs", e))?;
    Ok(())
}

/// True when an earlier committed run already loaded this marker.
pub async fn marker_done(conn: &mut PgConnection, marker: &str) -> Result<bool> {
    sqlx::query("SELECT 1 FROM processed_markers WHERE marker = $1")
        .bind(marker)
        .fetch_optional(&mut *conn)
        .await
        .map(|row| row.is_some())
        .map_err(|e| Error::database("checking processed_markers", e))
}

/// Records the marker as loaded by `run_id`, in the load's transaction.
pub async fn claim_marker(conn: &mut PgConnection, marker: &str, run_id: i64) -> Result<()> {
    let claimed = sqlx::query(include_str!("../sql/ledger/claim_marker.sql"))
        .bind(marker)
        .bind(run_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| Error::database("recording the marker in processed_markers", e))?;
    match claimed {
        Some(_) => Ok(()),
        None => Err(Error::Database {
            action: "recording the marker in processed_markers".into(),
            reason: format!("{marker} was recorded by another run meanwhile"),
            source: None,
        }),
    }
}

/// Which of `markers` committed runs already loaded: one connection and one query for a whole
/// poll, however many markers a folder or bucket has accumulated. Reads only: the schema is
/// migrated once when a trigger starts ([`Db::migrate`]), never per poll.
pub async fn processed_markers(db: &Db, markers: &[String]) -> Result<HashSet<String>> {
    let mut conn = db.connect().await?;
    let rows = sqlx::query("SELECT marker FROM processed_markers WHERE marker = ANY($1)")
        .bind(markers)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| Error::database("checking processed_markers", e))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_do_not_fit_a_column_are_errors() {
        assert_eq!(column::<i32>("files_listed", 7).unwrap(), 7);
        let err = column::<i32>("files_listed", u64::from(u32::MAX))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("load_runs.files_listed cannot hold 4294967295"),
            "{err}"
        );
        assert!(column::<i64>("rows_read", u64::MAX).is_err());
    }
}
