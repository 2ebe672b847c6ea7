//! What a run did and how it ended: [`Summary`] and [`RunStatus`], shared by load, ledger,
//! notify and report (so none of them depends on another for it), with the status strings the
//! ledger stores.

use std::fmt;

use serde::Serialize;

use crate::plan::{ChangeBasis, Plan};
use crate::stage::SkippedFile;
use crate::transform::ScriptRun;

/// `load_runs.status` of a run whose transaction is still open.
pub const LEDGER_RUNNING: &str = "running";

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
    /// How the run came to be started where it ran (see [`Plan::note`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What the quality checks found, per check (empty when they did not run).
    pub quality: Vec<QualityCount>,
}

/// One check's result in a run (a row of quality_run_counts).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QualityCount {
    /// The check (quality_flags.check_name).
    pub check_name: String,
    /// error or warning.
    pub severity: String,
    /// Its flags on the days the run loaded.
    pub flags: u64,
    /// Its flags the run cleared (rows corrected, or whose verdict changed).
    pub cleared: u64,
}

impl RunStatus {
    /// The `load_runs.status` this outcome is recorded as (`None`: not recorded, nothing ran).
    pub fn ledger_str(self) -> Option<&'static str> {
        match self {
            RunStatus::Succeeded => Some("succeeded"),
            RunStatus::Failed => Some("failed"),
            RunStatus::AlreadyLoaded => None,
        }
    }
}

impl Summary {
    /// An empty summary for `plan`, failed until the run says otherwise.
    pub fn new(plan: &Plan) -> Summary {
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
            note: plan.note.clone(),
            quality: Vec::new(),
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
        if let Some(note) = &self.note {
            writeln!(f, "  started:   {note}")?;
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
        if !self.quality.is_empty() {
            writeln!(f, "  quality:   {}", quality_line(&self.quality))?;
            if let Some(id) = self.run_id.filter(|_| self.status == RunStatus::Succeeded) {
                if self.quality.iter().any(|c| c.flags > 0) {
                    writeln!(f, "  flags:     stockload quality --run {id}")?;
                }
            }
        }
        if let Some(error) = &self.error {
            writeln!(f, "  error:     {error}")?;
        }
        Ok(())
    }
}

/// "2 errors, 5 warnings (ohlc_inconsistent 2, price_jump 5); 1 cleared": the checks with flags.
fn quality_line(counts: &[QualityCount]) -> String {
    let total = |severity: &str| -> u64 {
        counts
            .iter()
            .filter(|c| c.severity == severity)
            .map(|c| c.flags)
            .sum()
    };
    let mut line = format!("{} errors, {} warnings", total("error"), total("warning"));
    let named: Vec<String> = counts
        .iter()
        .filter(|c| c.flags > 0)
        .map(|c| format!("{} {}", c.check_name, c.flags))
        .collect();
    if !named.is_empty() {
        line.push_str(&format!(" ({})", named.join(", ")));
    }
    let cleared: u64 = counts.iter().map(|c| c.cleared).sum();
    if cleared > 0 {
        line.push_str(&format!("; {cleared} cleared"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(check_name: &str, severity: &str, flags: u64, cleared: u64) -> QualityCount {
        QualityCount {
            check_name: check_name.into(),
            severity: severity.into(),
            flags,
            cleared,
        }
    }

    #[test]
    fn the_quality_line_totals_by_severity_and_names_the_checks_with_flags() {
        let counts = [
            count("ohlc_inconsistent", "error", 2, 0),
            count("unit_error", "error", 0, 1),
            count("price_jump", "warning", 5, 0),
            count("stale_bar", "warning", 0, 0),
        ];
        assert_eq!(
            quality_line(&counts),
            "2 errors, 5 warnings (ohlc_inconsistent 2, price_jump 5); 1 cleared"
        );
        assert_eq!(
            quality_line(&[count("stale_bar", "warning", 0, 0)]),
            "0 errors, 0 warnings"
        );
    }
}
