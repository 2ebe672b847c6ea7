//! Reading the table back: `stats` (one row of what an analyst checks first) and `export`
//! (the Output artifact, streamed with COPY TO STDOUT).

use futures::TryStreamExt;
use serde::Serialize;
use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
use crate::storage::{Location, Sink, Storage};

/// The stats row, as text (numerics keep their exact decimal form).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Stats {
    /// Rows in historical_stocks_data.
    pub rows: String,
    /// Distinct companies.
    pub companies: String,
    /// Earliest stock_date.
    pub first_date: String,
    /// Latest stock_date.
    pub last_date: String,
    /// Sum of value_change.
    pub sum_value_change: String,
    /// Mean of value_change.
    pub mean_value_change: String,
    /// Mean open_value.
    pub mean_open_value: String,
    /// Mean close_value.
    pub mean_close_value: String,
    /// Status of the last run.
    pub last_run: String,
    /// The current quality flags per check (sql/reports/quality_totals.sql).
    pub quality_flags: String,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "historical_stocks_data")?;
        writeln!(f, "  rows:              {}", self.rows)?;
        writeln!(f, "  companies:         {}", self.companies)?;
        writeln!(
            f,
            "  dates:             {} .. {}",
            self.first_date, self.last_date
        )?;
        writeln!(f, "  sum value_change:  {}", self.sum_value_change)?;
        writeln!(f, "  mean value_change: {}", self.mean_value_change)?;
        writeln!(f, "  mean open_value:   {}", self.mean_open_value)?;
        writeln!(f, "  mean close_value:  {}", self.mean_close_value)?;
        writeln!(f, "  last run:          {}", self.last_run)?;
        writeln!(f, "  quality flags:     {}", self.quality_flags)
    }
}

/// Reads the stats row.
pub async fn stats(conn: &mut PgConnection) -> Result<Stats> {
    let row = sqlx::query(include_str!("../../sql/reports/stats.sql"))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::database("reading stats", e))?;
    let get = |i: usize| -> String { row.try_get::<String, _>(i).unwrap_or_default() };
    let quality_flags: String =
        sqlx::query_scalar(include_str!("../../sql/reports/quality_totals.sql"))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::database("reading quality_flags", e))?;
    Ok(Stats {
        rows: get(0),
        companies: get(1),
        first_date: get(2),
        last_date: get(3),
        sum_value_change: get(4),
        mean_value_change: get(5),
        mean_open_value: get(6),
        mean_close_value: get(7),
        last_run: get(8),
        quality_flags,
    })
}

/// The first `limit` rejected rows of run `run_id`: (file name, line, reason).
#[cfg(feature = "dev-tools")]
pub async fn rejects(
    conn: &mut PgConnection,
    run_id: i64,
    limit: i64,
) -> Result<Vec<(String, Option<i64>, String)>> {
    sqlx::query_as(include_str!("../../sql/reports/rejects.sql"))
        .bind(run_id)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::database("reading load_rejects", e))
}

/// Streams the table, as the export CSV, to a local file or an S3 object; returns bytes written.
pub async fn export(conn: &mut PgConnection, target: &Location, reader: &Storage) -> Result<u64> {
    let mut sink = reader.create(target).await?;
    match copy_out(conn, &mut sink).await {
        Ok(written) => {
            sink.finish().await?;
            Ok(written)
        }
        Err(err) => {
            sink.discard().await;
            Err(err)
        }
    }
}

async fn copy_out(conn: &mut PgConnection, sink: &mut Sink<'_>) -> Result<u64> {
    let mut stream = conn
        .copy_out_raw(include_str!("../../sql/reports/export.sql"))
        .await
        .map_err(|e| Error::database("starting the export", e))?;
    let mut written = 0u64;
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| Error::database("reading the export", e))?
    {
        sink.write(&chunk).await?;
        written += chunk.len() as u64;
    }
    Ok(written)
}
