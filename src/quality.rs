//! The data-quality checks of a load: `sql/quality_checks.sql` runs as a step of every load path
//! (`load::path`); this reads back what it found per check, fails the run when
//! `--fail-on-quality-errors` says so, and reads the flags for `stockload quality`.

use sqlx::{PgConnection, Row};

use crate::error::{Error, Result};
pub use crate::summary::QualityCount;
use crate::summary::Summary;

/// The checks, as `quality_flags.check_name` holds them, with their severity.
pub const CHECKS: [(&str, &str); 7] = [
    ("ohlc_inconsistent", "error"),
    ("nonpositive_price", "error"),
    ("unit_error", "error"),
    ("suspected_split", "warning"),
    ("price_jump", "warning"),
    ("stale_bar", "warning"),
    ("missing_sessions", "warning"),
];

/// How many error flags may be shown in the message of a run failed for them.
const ERRORS_QUOTED: i64 = 3;

/// After the path's checks ran (`quality_checks.sql`, a `checks` step of every load path, see
/// `load::path`): records the counts per check of run `run_id` in `summary`, and fails the run
/// when the error flags on its days exceed `fail_ratio` of the rows it loaded (`None`: never).
pub async fn review(
    tx: &mut PgConnection,
    run_id: i64,
    fail_ratio: Option<f64>,
    summary: &mut Summary,
) -> Result<()> {
    summary.quality = counts(tx, run_id).await?;
    let errors: u64 = summary
        .quality
        .iter()
        .filter(|c| c.severity == "error")
        .map(|c| c.flags)
        .sum();
    match fail_ratio {
        Some(max_ratio) if too_many(errors, summary.rows_loaded, max_ratio) => {
            Err(Error::TooManyQualityErrors {
                errors,
                rows: summary.rows_loaded,
                percent: errors as f64 * 100.0 / summary.rows_loaded.max(1) as f64,
                max_ratio,
                first: first_errors(tx, run_id).await?,
            })
        }
        _ => Ok(()),
    }
}

/// True when `errors` flags exceed `max_ratio` of `rows` loaded rows.
fn too_many(errors: u64, rows: u64, max_ratio: f64) -> bool {
    errors > 0 && errors as f64 > max_ratio * rows as f64
}

/// The counts per check the script recorded for run `run_id` (quality_run_counts).
pub async fn counts(conn: &mut PgConnection, run_id: i64) -> Result<Vec<QualityCount>> {
    let rows = sqlx::query(include_str!("../sql/reports/quality_counts.sql"))
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::database("reading quality_run_counts", e))?;
    Ok(rows
        .iter()
        .map(|row| QualityCount {
            check_name: row.get(0),
            severity: row.get(1),
            flags: row.get::<i64, _>(2).max(0) as u64,
            cleared: row.get::<i64, _>(3).max(0) as u64,
        })
        .collect())
}

/// The first error flags of the run, as "COMPANY DATE check: detail" (quoted when it fails).
async fn first_errors(conn: &mut PgConnection, run_id: i64) -> Result<String> {
    let rows = sqlx::query(include_str!("../sql/reports/quality_flags.sql"))
        .bind(Some(run_id))
        .bind(None::<String>)
        .bind(Some("error"))
        .bind(ERRORS_QUOTED)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::database("reading quality_flags", e))?;
    Ok(rows
        .iter()
        .map(|r| Flag::from_row(r).to_string())
        .collect::<Vec<_>>()
        .join("; "))
}

/// One row of quality_flags.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct Flag {
    /// Company.
    pub company_name: String,
    /// Trading day.
    pub stock_date: String,
    /// Check name.
    pub check_name: String,
    /// error or warning.
    pub severity: String,
    /// The run that raised it.
    pub run_id: i64,
    /// What was seen.
    pub detail: String,
}

impl Flag {
    fn from_row(row: &sqlx::postgres::PgRow) -> Flag {
        Flag {
            company_name: row.get(0),
            stock_date: row.get(1),
            check_name: row.get(2),
            severity: row.get(3),
            run_id: row.get(4),
            detail: row.get(5),
        }
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}: {}",
            self.company_name, self.stock_date, self.check_name, self.detail
        )
    }
}

/// The current flags, filtered by the run that raised them, the check and the severity (each
/// optional), at most `limit`, in company and day order (`stockload quality`).
pub async fn flags(
    conn: &mut PgConnection,
    run_id: Option<i64>,
    check: Option<&str>,
    limit: i64,
) -> Result<Vec<Flag>> {
    let rows = sqlx::query(include_str!("../sql/reports/quality_flags.sql"))
        .bind(run_id)
        .bind(check)
        .bind(None::<String>)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::database("reading quality_flags", e))?;
    Ok(rows.iter().map(Flag::from_row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::path::QUALITY_CHECKS as QUALITY_SCRIPT;
    use crate::transform;

    const CITUS_QUALITY_SCRIPT: &str = "citus/quality_checks.sql";

    #[test]
    fn the_script_is_embedded_documented_and_names_every_check() {
        let text = transform::embedded(QUALITY_SCRIPT).expect("quality_checks.sql is embedded");
        assert!(text.starts_with("-- ") && text.contains("Reads"));
        for (name, severity) in CHECKS {
            assert!(
                text.contains(&format!("{name} AS (")),
                "{name} has no CTE of its name"
            );
            assert!(
                text.contains(&format!("('{name}', '{severity}')")),
                "{name} is not counted as {severity}"
            );
        }
        assert!(transform::list().contains(&QUALITY_SCRIPT));
        let citus = transform::embedded(CITUS_QUALITY_SCRIPT).expect("the Citus form is embedded");
        assert!(citus.starts_with("-- ") && citus.contains("Reads"));
        for (name, _) in CHECKS {
            assert!(citus.contains(&format!("{name} AS (")), "{name} (Citus)");
        }
    }

    #[test]
    fn the_citus_form_has_the_same_settings() {
        let settings = |text: &str| -> String {
            let start = text
                .find("SELECT coalesce(nullif(current_setting('stockload.quality_run'")
                .unwrap();
            let end = start + text[start..].find("missing_min_sessions").unwrap();
            text[start..end].to_string()
        };
        assert_eq!(
            settings(transform::embedded(QUALITY_SCRIPT).unwrap()),
            settings(transform::embedded(CITUS_QUALITY_SCRIPT).unwrap())
        );
    }

    #[test]
    fn errors_fail_a_run_only_beyond_the_ratio() {
        assert!(!too_many(0, 100, 0.0));
        assert!(too_many(1, 100, 0.0));
        assert!(!too_many(1, 100, 0.01));
        assert!(too_many(2, 100, 0.01));
        assert!(!too_many(100, 100, 1.0));
    }
}
