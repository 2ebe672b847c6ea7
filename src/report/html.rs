//! The run report as one self-contained HTML page: the askama template `templates/report.html`
//! (compile-time checked, every value HTML-escaped) filled from [`ReportData`], with the charts
//! of [`super::svg`] inline. No script, no remote resource: it opens offline and from an email.

use std::borrow::Borrow;

use askama::Template;

use super::data::ReportData;
use super::svg::{self, Chart};
use crate::error::{Error, Result};

/// The page: the data and its charts.
#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    data: &'a ReportData,
    /// When and by which stockload the page was made.
    made_at: String,
    made_by: &'static str,
    /// Charts, as SVG text (already escaped by `svg`).
    timeline: String,
    reject_chart: String,
    quality_chart: String,
    /// The history's sparklines: rows loaded, duration, rows rejected.
    sparks: [String; 3],
    /// Whether a run of the history failed (ringed in the charts).
    history_has_failures: bool,
    /// Under each sparkline: this run's value and the largest.
    spark_notes: [String; 3],
    /// Time of the run outside its recorded steps (reading the index, connecting, locks, commit),
    /// ms.
    outside_steps: i64,
    /// Rows read per second.
    rows_per_second: String,
    /// Rejected rows not shown line by line.
    rejected_not_shown: i64,
    /// Flagged rows not shown one by one.
    flagged_not_shown: i64,
    /// Flags of the run in all.
    flags_total: i64,
}

impl Page<'_> {
    /// A count with thousands separators (the template passes values or references).
    fn n(&self, value: impl Borrow<i64>) -> String {
        svg::number(*value.borrow() as f64)
    }

    /// The scripts the run executed, as `name:checksum` (its steps that are scripts: staging
    /// has no checksum).
    fn scripts(&self) -> Vec<String> {
        self.data
            .steps
            .iter()
            .filter(|s| !s.checksum.is_empty())
            .map(|s| format!("{}:{}", s.step, s.checksum))
            .collect()
    }

    /// Seconds as shown: `0.42 s`, `12.3 s`, `4 min 05 s`.
    fn secs(&self, seconds: impl Borrow<f64>) -> String {
        duration(*seconds.borrow())
    }
}

/// Seconds as a person reads them.
fn duration(seconds: f64) -> String {
    let seconds = if seconds.is_finite() {
        seconds.max(0.0)
    } else {
        0.0
    };
    if seconds < 10.0 {
        format!("{seconds:.2} s")
    } else if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else {
        let whole = seconds.round() as u64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// The timeline of the run's steps, and the run's time outside them (ms).
fn timeline_chart(data: &ReportData) -> (String, i64) {
    let step_millis: i64 = data.steps.iter().map(|s| s.millis).sum();
    let run_millis = (data.run.seconds * 1000.0).round() as i64;
    let outside_steps = (run_millis - step_millis).max(0);
    let mut steps: Vec<(&str, f64)> = data
        .steps
        .iter()
        .map(|s| (s.step.as_str(), s.millis as f64))
        .collect();
    if outside_steps > 0 {
        steps.push(("outside the steps", outside_steps as f64));
    }
    let chart = Chart {
        id: "timeline",
        title: "Timeline of the run's steps",
        desc: "Each step's time in milliseconds, one after the other; the same numbers are in \
               the table below.",
    };
    (
        svg::timeline(&chart, &steps, run_millis as f64),
        outside_steps,
    )
}

/// The bars of the rejects by reason.
fn reject_chart(data: &ReportData) -> String {
    let kinds: Vec<(&str, f64)> = data
        .reject_kinds
        .iter()
        .map(|k| (k.kind.as_str(), k.rows as f64))
        .collect();
    let chart = Chart {
        id: "rejects",
        title: "Rejected rows by reason",
        desc: "Rows rejected for each kind of reason; the same numbers are in the table below.",
    };
    svg::bars(&chart, &kinds)
}

/// The bars of the quality flags by check, and the run's flags in all.
fn quality_chart(data: &ReportData) -> (String, i64) {
    let by_check = data
        .quality
        .as_ref()
        .map(|q| q.by_check.as_slice())
        .unwrap_or_default();
    let labels: Vec<String> = by_check
        .iter()
        .map(|c| format!("{} ({})", c.check_name, c.severity))
        .collect();
    let bars: Vec<(&str, f64)> = labels
        .iter()
        .zip(by_check)
        .map(|(label, c)| (label.as_str(), c.rows as f64))
        .collect();
    let chart = Chart {
        id: "quality",
        title: "Quality flags by check",
        desc: "Rows flagged by each check; the same numbers are in the table below.",
    };
    (
        svg::bars(&chart, &bars),
        by_check.iter().map(|c| c.rows).sum(),
    )
}

/// The history's sparklines (rows loaded, duration, rows rejected), the note under each, and
/// whether a run of the history failed (ringed).
fn history_charts(data: &ReportData) -> ([String; 3], [String; 3], bool) {
    let failed: Vec<usize> = data
        .history
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == "failed")
        .map(|(i, _)| i)
        .collect();
    let series =
        |f: fn(&super::data::PastRun) -> f64| -> Vec<f64> { data.history.iter().map(f).collect() };
    let rows = series(|r| r.rows_loaded as f64);
    let seconds = series(|r| r.seconds);
    let rejects = series(|r| r.rows_rejected as f64);
    let spark = |id, title, desc, values: &[f64]| {
        svg::sparkline(&Chart { id, title, desc }, values, &failed)
    };
    let note = |values: &[f64], show: &dyn Fn(f64) -> String| {
        let max = values.iter().copied().fold(0.0, f64::max);
        let last = values.last().copied().unwrap_or(0.0);
        format!("this run {}, largest {}", show(last), show(max))
    };
    let sparks = [
        spark(
            "spark-rows",
            "Rows loaded, last runs",
            "Rows loaded by each of the last runs, oldest first; failed runs ringed.",
            &rows,
        ),
        spark(
            "spark-seconds",
            "Duration, last runs",
            "Seconds each of the last runs took, oldest first; failed runs ringed.",
            &seconds,
        ),
        spark(
            "spark-rejects",
            "Rows rejected, last runs",
            "Rows rejected by each of the last runs, oldest first; failed runs ringed.",
            &rejects,
        ),
    ];
    let notes = [
        note(&rows, &svg::number),
        note(&seconds, &duration),
        note(&rejects, &svg::number),
    ];
    (sparks, notes, !failed.is_empty())
}

/// Renders the report page of `data`.
pub fn render(data: &ReportData) -> Result<String> {
    let run = &data.run;
    let (timeline, outside_steps) = timeline_chart(data);
    let (quality_chart, flags_total) = quality_chart(data);
    let (sparks, spark_notes, history_has_failures) = history_charts(data);
    let page = Page {
        data,
        made_at: chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        made_by: env!("CARGO_PKG_VERSION"),
        timeline,
        reject_chart: reject_chart(data),
        quality_chart,
        sparks,
        spark_notes,
        history_has_failures,
        outside_steps,
        rows_per_second: if run.seconds > 0.0 {
            svg::number((run.rows_read as f64 / run.seconds).round())
        } else {
            "–".into()
        },
        rejected_not_shown: (run.rows_rejected - data.rejected_lines.len() as i64).max(0),
        flagged_not_shown: data
            .quality
            .as_ref()
            .map(|q| (flags_total - q.rows.len() as i64).max(0))
            .unwrap_or(0),
        flags_total,
    };
    page.render()
        .map_err(|e| Error::Config(format!("cannot render the report page: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(duration(0.4234), "0.42 s");
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(245.0), "4 min 05 s");
        assert_eq!(duration(f64::NAN), "0.00 s");
    }
}
