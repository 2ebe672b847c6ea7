//! What the run report shows, read from the ledger with the read-only queries of `sql/reports/`,
//! in one read-only snapshot (REPEATABLE READ): the page is consistent even while a run commits.

use sqlx::postgres::PgRow;
use sqlx::{Connection, PgConnection, Row};

use crate::error::{Error, Result};

/// Rejected lines shown in full (the rest are counted).
pub const REJECTED_LINES_SHOWN: i64 = 100;
/// Flagged rows shown in full (the rest are counted).
pub const FLAGGED_ROWS_SHOWN: i64 = 100;
/// Characters of a rejected line shown (the ledger keeps it whole).
pub const RAW_TEXT_CHARS: i32 = 300;
/// Runs in the history charts.
pub const HISTORY_RUNS: i64 = 30;

/// One load_runs row.
#[derive(Debug, Clone)]
pub struct Run {
    /// load_runs.id.
    pub id: i64,
    /// running, succeeded or failed.
    pub status: String,
    /// Source folder or prefix.
    pub source: String,
    /// The companies index.
    pub companies_file: String,
    /// previous-close or intraday.
    pub change_basis: String,
    /// Start, UTC.
    pub started: String,
    /// End, UTC (none while running).
    pub finished: Option<String>,
    /// Start to end.
    pub seconds: f64,
    /// Files the index named.
    pub files_listed: i64,
    /// Files read.
    pub files_loaded: i64,
    /// Files skipped.
    pub files_skipped: i64,
    /// Data lines read.
    pub rows_read: i64,
    /// Rows loaded.
    pub rows_loaded: i64,
    /// Rows rejected.
    pub rows_rejected: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// The scripts as `name:checksum` pairs.
    pub scripts: Option<String>,
    /// The stockload version that ran it (runs before V8: none).
    pub stockload_version: Option<String>,
}

/// One step of the run (load_run_steps).
#[derive(Debug, Clone)]
pub struct Step {
    /// The script's file name.
    pub step: String,
    /// Its checksum.
    pub checksum: String,
    /// Rows it changed.
    pub rows: i64,
    /// Its time.
    pub millis: i64,
}

/// Rejected rows of one kind of reason.
#[derive(Debug, Clone)]
pub struct RejectKind {
    /// The reason with its values masked.
    pub kind: String,
    /// Rows.
    pub rows: i64,
}

/// One rejected row.
#[derive(Debug, Clone)]
pub struct RejectedLine {
    /// File name.
    pub file: String,
    /// Line in the file.
    pub line: Option<i64>,
    /// Why.
    pub reason: String,
    /// The line as read (cut).
    pub raw_text: String,
    /// Whether `raw_text` was cut.
    pub cut: bool,
}

/// One skipped file.
#[derive(Debug, Clone)]
pub struct SkippedFile {
    /// File name.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// One run of the history.
#[derive(Debug, Clone)]
pub struct PastRun {
    /// load_runs.id.
    pub id: i64,
    /// How it ended.
    pub status: String,
    /// Rows loaded.
    pub rows_loaded: i64,
    /// Rows rejected.
    pub rows_rejected: i64,
    /// Start to end.
    pub seconds: f64,
}

/// One company of the run.
#[derive(Debug, Clone)]
pub struct Company {
    /// Its name.
    pub company_name: String,
    /// Rows the table holds for it.
    pub rows: i64,
    /// Its first day in the table.
    pub first_date: String,
    /// Its last day in the table.
    pub last_date: String,
    /// The run's first day for it.
    pub run_from: String,
    /// Rows from `run_from` on.
    pub run_rows: i64,
    /// Quality flags the run raised on it (0 when there are none or no quality checks).
    pub flags: i64,
}

/// Quality flags of one check and severity.
#[derive(Debug, Clone)]
pub struct FlagCount {
    /// The check.
    pub check_name: String,
    /// Its severity.
    pub severity: String,
    /// Rows flagged.
    pub rows: i64,
}

/// One flagged row.
#[derive(Debug, Clone)]
pub struct Flag {
    /// Company.
    pub company_name: String,
    /// Day.
    pub stock_date: String,
    /// The check.
    pub check_name: String,
    /// Its severity.
    pub severity: String,
    /// What it found.
    pub detail: String,
}

/// The quality flags of the run.
#[derive(Debug, Clone, Default)]
pub struct Quality {
    /// By check and severity.
    pub by_check: Vec<FlagCount>,
    /// The first flagged rows.
    pub rows: Vec<Flag>,
}

/// Everything the page shows.
#[derive(Debug, Clone)]
pub struct ReportData {
    /// The run.
    pub run: Run,
    /// Its steps.
    pub steps: Vec<Step>,
    /// Rejected rows by kind of reason.
    pub reject_kinds: Vec<RejectKind>,
    /// The first rejected rows.
    pub rejected_lines: Vec<RejectedLine>,
    /// Every skipped file.
    pub skipped: Vec<SkippedFile>,
    /// The runs up to this one, oldest first.
    pub history: Vec<PastRun>,
    /// The companies of the run.
    pub companies: Vec<Company>,
    /// The quality flags; `None` when the database has no quality checks (no quality_flags).
    pub quality: Option<Quality>,
}

/// `sqlx::FromRow` for a struct whose fields are named as the query's columns (sqlx's derive
/// would need its macros feature: a heavy build for eight structs). Fields after `;` are not
/// read and start at their default.
macro_rules! from_row {
    ($ty:ident { $($field:ident),* $(; $($default:ident),*)? }) => {
        impl<'r> sqlx::FromRow<'r, PgRow> for $ty {
            fn from_row(row: &'r PgRow) -> sqlx::Result<Self> {
                Ok($ty {
                    $($field: row.try_get(stringify!($field))?,)*
                    $($($default: Default::default(),)*)?
                })
            }
        }
    };
}

from_row!(Run {
    id,
    status,
    source,
    companies_file,
    change_basis,
    started,
    finished,
    seconds,
    files_listed,
    files_loaded,
    files_skipped,
    rows_read,
    rows_loaded,
    rows_rejected,
    error,
    scripts,
    stockload_version
});
from_row!(Step {
    step,
    checksum,
    rows,
    millis
});
from_row!(RejectKind { kind, rows });
from_row!(RejectedLine {
    file,
    line,
    reason,
    raw_text,
    cut
});
from_row!(SkippedFile { file, reason });
from_row!(PastRun {
    id,
    status,
    rows_loaded,
    rows_rejected,
    seconds
});
from_row!(Company { company_name, rows, first_date, last_date, run_from, run_rows; flags });
from_row!(FlagCount {
    check_name,
    severity,
    rows
});
from_row!(Flag {
    company_name,
    stock_date,
    check_name,
    severity,
    detail
});

fn failed(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |e| Error::database(format!("reading {what} for the report"), e)
}

/// Reads the report of run `run_id` (the last run when `None`). Only reads: works for a role
/// with SELECT only.
pub async fn read(conn: &mut PgConnection, run_id: Option<i64>) -> Result<ReportData> {
    let mut tx = conn
        .begin()
        .await
        .map_err(failed("a snapshot of the ledger"))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(failed("a snapshot of the ledger"))?;
    let run: Run = sqlx::query_as(include_str!("../../sql/reports/run.sql"))
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(failed("the run"))?
        .ok_or_else(|| match run_id {
            Some(id) => Error::Config(format!("load_runs has no run {id}")),
            None => Error::Config("load_runs has no run yet: there is nothing to report".into()),
        })?;
    let id = run.id;
    let steps = sqlx::query_as(include_str!("../../sql/reports/run_steps.sql"))
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("the run's steps"))?;
    let reject_kinds = sqlx::query_as(include_str!("../../sql/reports/reject_reasons.sql"))
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("the rejects by reason"))?;
    let rejected_lines = sqlx::query_as(include_str!("../../sql/reports/rejected_lines.sql"))
        .bind(id)
        .bind(REJECTED_LINES_SHOWN)
        .bind(RAW_TEXT_CHARS)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("the rejected lines"))?;
    let skipped = sqlx::query_as(include_str!("../../sql/reports/skipped_files.sql"))
        .bind(id)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("the skipped files"))?;
    let history = sqlx::query_as(include_str!("../../sql/reports/history.sql"))
        .bind(id)
        .bind(HISTORY_RUNS)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("the run history"))?;
    let mut companies: Vec<Company> =
        sqlx::query_as(include_str!("../../sql/reports/companies.sql"))
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(failed("the run's companies"))?;
    let quality = quality(&mut tx, id, &mut companies).await?;
    tx.commit().await.map_err(failed("the ledger"))?;
    Ok(ReportData {
        run,
        steps,
        reject_kinds,
        rejected_lines,
        skipped,
        history,
        companies,
        quality,
    })
}

/// The run's quality flags, when the database has quality checks (the table quality_flags);
/// adds each company's count of flags to `companies`.
async fn quality(
    conn: &mut PgConnection,
    run_id: i64,
    companies: &mut [Company],
) -> Result<Option<Quality>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('quality_flags') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .map_err(failed("whether there are quality checks"))?;
    if !exists {
        return Ok(None);
    }
    let by_check = sqlx::query_as(include_str!("../../sql/reports/quality_checks.sql"))
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(failed("the quality flags"))?;
    let rows = sqlx::query_as(include_str!("../../sql/reports/quality_rows.sql"))
        .bind(run_id)
        .bind(FLAGGED_ROWS_SHOWN)
        .fetch_all(&mut *conn)
        .await
        .map_err(failed("the flagged rows"))?;
    let per_company: Vec<(String, i64)> =
        sqlx::query_as(include_str!("../../sql/reports/quality_companies.sql"))
            .bind(run_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(failed("the quality flags per company"))?;
    let counts: std::collections::HashMap<String, i64> = per_company.into_iter().collect();
    for company in companies.iter_mut() {
        company.flags = counts.get(&company.company_name).copied().unwrap_or(0);
    }
    Ok(Some(Quality { by_check, rows }))
}
