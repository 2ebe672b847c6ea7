//! A validated description of one run — the only input `load::run` takes, whoever starts it
//! (CLI, watch loop, queue consumer, Lambda).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::storage::Location;

/// Name of the companies index inside a batch folder when none is given (`watch`, the queue).
pub const DEFAULT_INDEX_NAME: &str = "top_companies.txt";

/// work_mem and temp_buffers of a load's session unless set (sizes the window sort and staging).
pub const DEFAULT_WORK_MEM: &str = "256MB";

/// Where the company files are in the source bucket (Lambda, pipeline definition).
pub const DEFAULT_STOCKS_PREFIX: &str = "Stocks/";

/// Where the companies index is in the source bucket (Lambda, pipeline definition).
pub const DEFAULT_COMPANIES_KEY: &str = "CompanyNames/top_companies.txt";

/// The database name on RDS unless set (Lambda, pipeline definition).
pub const DEFAULT_DB_NAME: &str = "stocks";

/// The database port on RDS unless set (Lambda: STOCKLOAD_DB_PORT): PostgreSQL's own default.
pub const DEFAULT_DB_PORT: u16 = 5432;

/// Subject prefix of notices (`stockload_Pipeline_Success`) and the pipeline's name unless set.
pub const DEFAULT_NOTIFY_NAME: &str = "stockload";

/// Seconds to wait for a database connection unless set.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 30;

/// Prefix in the source bucket of the run reports the Lambda and the Data Pipeline activity
/// write (`Output/reports/run-<id>.html`).
pub const DEFAULT_REPORTS_PREFIX: &str = "Output/reports/";

/// How value_change and daily_percent_change are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeBasis {
    /// close − previous close of the same company; percent of the previous close.
    #[default]
    PreviousClose,
    /// close − open of the same day; percent of the open (the original course's formula).
    Intraday,
}

impl ChangeBasis {
    /// The name stored in load_runs and passed to the SQL scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeBasis::PreviousClose => "previous-close",
            ChangeBasis::Intraday => "intraday",
        }
    }
}

/// One run to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Folder or S3 prefix holding the company files.
    pub source: Location,
    /// The companies index file.
    pub companies: Location,
    /// Change basis.
    pub basis: ChangeBasis,
    /// Fail the run when rejected / read rows exceeds this.
    pub max_reject_ratio: f64,
    /// Files read and parsed at once, at most.
    pub concurrency: usize,
    /// Bytes the files being read and parsed may hold at once (a file larger than this is
    /// read alone): memory is bounded by this, whatever the files' count or size.
    pub memory_budget: u64,
    /// Read listed files that are symbolic links to files outside the source folder (by default
    /// they are skipped unread).
    pub follow_symlinks: bool,
    /// A load into an empty table stages its rows in chunks of about this many rows (whole
    /// companies each), so the transforms of one chunk overlap the staging of the next.
    pub chunk_rows: u64,
    /// Scripts folder overriding the embedded `sql/`.
    pub sql_dir: Option<PathBuf>,
    /// How long a load's strong locks (the empty-table path's key drop) are waited for, in
    /// tries of [`LOCK_TRY`] with backoff, before the run fails naming who holds them.
    pub lock_wait: Duration,
    /// Trigger marker (e.g. `s3://bucket/run-1/.SUCCESS`): recorded in the load's transaction, and
    /// a marker already recorded makes the run a no-op, so a marker is loaded at most once.
    pub marker: Option<String>,
    /// How the run came to be started where it runs (the Lambda's auto-mode decision, e.g.
    /// "1,000 files, 137 MB: loading here, estimated 17 s"): shown in its summary and notice.
    pub note: Option<String>,
    /// Fail the run (loading nothing) when the quality checks' error flags on its days exceed
    /// this share of the rows it loaded; `None`: never.
    pub fail_on_quality_errors: Option<f64>,
}

impl Plan {
    /// A plan with the default limits.
    pub fn new(source: Location, companies: Location) -> Plan {
        Plan {
            source,
            companies,
            basis: ChangeBasis::default(),
            max_reject_ratio: DEFAULT_MAX_REJECT_RATIO,
            concurrency: DEFAULT_CONCURRENCY,
            memory_budget: DEFAULT_MEMORY_BUDGET,
            follow_symlinks: false,
            chunk_rows: DEFAULT_CHUNK_ROWS,
            sql_dir: None,
            lock_wait: Duration::from_secs(DEFAULT_LOCK_WAIT_SECS),
            marker: None,
            note: None,
            fail_on_quality_errors: None,
        }
    }
}

/// Default `--max-reject-ratio`: generous, only a flood of rejects fails a run.
pub const DEFAULT_MAX_REJECT_RATIO: f64 = 0.5;
/// Default `--concurrency`.
pub const DEFAULT_CONCURRENCY: usize = 16;
/// Default `--lock-wait`: seconds a load waits for its strong locks before it fails.
pub const DEFAULT_LOCK_WAIT_SECS: u64 = 300;
/// One try for a strong lock: so short that readers queued behind the request are held at most
/// this long before it is withdrawn and they get through (then the load tries again).
pub const LOCK_TRY: Duration = Duration::from_millis(200);
/// Longest pause between two tries for a strong lock (the pause doubles from [`LOCK_TRY`]).
pub const LOCK_RETRY_MAX_PAUSE: Duration = Duration::from_secs(2);
/// Default `--chunk-rows`: large enough that a chunk's per-statement overhead is noise, small
/// enough that its window sort stays in memory and the last chunk's transforms are short.
pub const DEFAULT_CHUNK_ROWS: u64 = 100_000;
/// Default `watch --interval`: seconds between polls of a folder or bucket prefix.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 30;
/// Default `watch --max-attempts`: failed runs per marker before it is given up.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// work_mem and temp_buffers of the demo's session: its batch (20 files of 250 days by default)
/// needs far less than a real load's [`DEFAULT_WORK_MEM`].
pub const DEMO_WORK_MEM: &str = "64MB";

/// Default `--memory-budget`: 64 MiB of files in flight. Measured peak RSS with it: see the
/// README (Memory).
pub const DEFAULT_MEMORY_BUDGET: u64 = 64 * 1024 * 1024;

/// The memory budget for a process allowed `memory_mib` MiB in all (a Lambda's configured
/// memory): a quarter of it, leaving the rest for the runtime, the connections and the pieces of
/// rows on their way to PostgreSQL; never below 16 MiB.
pub fn memory_budget_for(memory_mib: u64) -> u64 {
    (memory_mib * 1024 * 1024 / 4).max(16 * 1024 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lambda_gives_a_quarter_of_its_memory_to_the_files_in_flight() {
        assert_eq!(memory_budget_for(512), 128 * 1024 * 1024);
        assert_eq!(memory_budget_for(10240), 2560 * 1024 * 1024);
        assert_eq!(memory_budget_for(128), 32 * 1024 * 1024);
        assert_eq!(memory_budget_for(0), 16 * 1024 * 1024);
    }
}
