//! The run ledger: load_runs (one row per attempted run), load_rejects (filled by
//! `sql/record_rejects.sql`) and processed_markers. Queries live in `sql/ledger/`.

use std::collections::HashSet;

use sqlx::{PgConnection, Row};

use crate::db::Db;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::summary::{RunStatus, Summary, LEDGER_RUNNING};

/// Opens the run's load_runs row; returns its id.
pub async fn start_run(conn: &mut PgConnection, plan: &Plan) -> Result<i64> {
    let row = sqlx::query(include_str!("../sql/ledger/start_run.sql"))
        .bind(plan.source.to_string())
        .bind(plan.companies.to_string())
        .bind(plan.basis.as_str())
        .bind(LEDGER_RUNNING)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::database("recording the run in load_runs", e))?;
    Ok(row.get(0))
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

/// Records a failed run on a fresh connection after its transaction rolled back. Best effort:
/// when the database itself is the problem there is nowhere to record it (the error is still
/// reported and notified); returns the new run id when it worked.
pub async fn record_failure(db: &Db, summary: &Summary) -> Option<i64> {
    let attempt = async {
        let mut conn = db.connect().await?;
        // The run may have failed before its migrations ran (bad index, missing bucket).
        crate::db::migrate(&mut conn).await?;
        let row = sqlx::query(include_str!("../sql/ledger/failed_run.sql"))
            .bind(&summary.source)
            .bind(&summary.companies_file)
            .bind(summary.change_basis.as_str())
            .bind(column::<i32>("files_listed", summary.files_listed)?)
            .bind(column::<i32>("files_loaded", summary.files_loaded)?)
            .bind(column::<i32>("files_skipped", summary.files_skipped)?)
            .bind(column::<i64>("rows_read", summary.rows_read)?)
            .bind(column::<i64>("rows_loaded", summary.rows_loaded)?)
            .bind(column::<i64>("rows_rejected", summary.rows_rejected)?)
            .bind(summary.error.as_deref())
            .bind(RunStatus::Failed.ledger_str())
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::database("recording the failed run", e))?;
        // The failed run's row is in; its steps are extra, and failing to record them is only told.
        if let Err(err) = record_steps(&mut conn, row.get(0), summary).await {
            tracing::warn!("could not record the failed run's steps: {err}");
        }
        Ok::<i64, Error>(row.get(0))
    };
    match attempt.await {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::warn!("could not record the failed run in load_runs: {err}");
            None
        }
    }
}

/// Records the run's steps (`summary.scripts`, with their timings) in load_run_steps, and on its
/// load_runs row the stockload version and, for a failed run, when it really started: what the
/// run report shows.
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
        .bind(summary.duration_secs * 1000.0)
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
/// poll, however many markers a folder or bucket has accumulated.
pub async fn processed_markers(db: &Db, markers: &[String]) -> Result<HashSet<String>> {
    let mut conn = db.connect().await?;
    crate::db::migrate(&mut conn).await?;
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
