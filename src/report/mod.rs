//! Reading the ledger and the table back: `stats` and `export` ([`stats`]), and the run report,
//! one self-contained HTML page per run ([`data`] reads it, [`html`] renders it with the charts
//! of [`svg`]).

pub mod data;
pub mod html;
pub mod stats;
pub mod svg;

use sqlx::PgConnection;

use crate::error::{Error, Result};
use crate::storage::{Location, Storage};

#[cfg(feature = "dev-tools")]
pub use stats::rejects;
pub use stats::{export, stats};

/// The name of run `id`'s report in a reports folder: `run-<id>.html`.
pub fn file_name(run_id: i64) -> String {
    format!("run-{run_id}.html")
}

/// Where a run's report goes (`--report`, `report --to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTo {
    /// This file or S3 object.
    File(Location),
    /// This folder or S3 prefix (given with a trailing `/`, or an existing local folder): the
    /// report is `run-<id>.html` inside it.
    Folder(Location),
}

impl ReportTo {
    /// Parses `PATH`, `DIR/` or `s3://bucket/key` (`s3://bucket/prefix/` for a folder).
    pub fn parse(text: &str) -> Result<ReportTo> {
        let location = Location::parse(text)?;
        let folder = text.ends_with('/')
            || matches!(&location, Location::S3 { key, .. } if key.is_empty())
            || matches!(&location, Location::Local(path) if path.is_dir());
        Ok(if folder {
            ReportTo::Folder(location)
        } else {
            ReportTo::File(location)
        })
    }

    /// The source bucket's reports folder, `s3://bucket/Output/reports/`: where the runs the
    /// Lambda and the Data Pipeline start write theirs.
    pub fn bucket_reports(bucket: &str) -> ReportTo {
        ReportTo::Folder(Location::S3 {
            bucket: bucket.to_string(),
            key: crate::plan::DEFAULT_REPORTS_PREFIX.to_string(),
        })
    }

    /// The report of run `run_id`.
    pub fn for_run(&self, run_id: i64) -> Location {
        match self {
            ReportTo::File(location) => location.clone(),
            ReportTo::Folder(folder) => folder.join(&file_name(run_id)),
        }
    }

    /// True when it is in S3 (AWS clients are needed).
    pub fn is_s3(&self) -> bool {
        match self {
            ReportTo::File(location) | ReportTo::Folder(location) => location.is_s3(),
        }
    }
}

/// Reads the report of run `run_id` (the last run when `None`), renders it and writes it to
/// `to`; returns where it went and its size in bytes. Only reads the database.
pub async fn write(
    conn: &mut PgConnection,
    storage: &Storage,
    to: &ReportTo,
    run_id: Option<i64>,
) -> Result<(Location, usize)> {
    let data = data::read(conn, run_id).await?;
    let page = html::render(&data)?;
    let target = to.for_run(data.run.id);
    let size = page.len();
    storage.write(&target, page.into_bytes()).await?;
    Ok((target, size))
}

/// After a run: writes its report to `to`, or says why it could not (the run's outcome stands
/// either way). Returns where the report is, for the notice.
pub async fn write_after_run(
    db: &crate::db::Db,
    storage: &Storage,
    to: &ReportTo,
    run_id: Option<i64>,
) -> std::result::Result<Location, Error> {
    let run_id = run_id.ok_or_else(|| {
        Error::Config("the run could not be recorded in the ledger, so it has no report".into())
    })?;
    let mut conn = db.connect().await?;
    let (location, size) = write(&mut conn, storage, to, Some(run_id)).await?;
    tracing::info!(report = %location, bytes = size, "wrote the run report");
    Ok(location)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_or_an_existing_folder_means_one_file_per_run() {
        let s3 = |key: &str| Location::S3 {
            bucket: "b".into(),
            key: key.into(),
        };
        assert_eq!(
            ReportTo::parse("s3://b/Output/reports/")
                .unwrap()
                .for_run(7),
            s3("Output/reports/run-7.html")
        );
        assert_eq!(
            ReportTo::parse("s3://b").unwrap().for_run(7),
            s3("run-7.html")
        );
        assert_eq!(
            ReportTo::parse("s3://b/today.html").unwrap().for_run(7),
            s3("today.html")
        );
        assert_eq!(
            ReportTo::bucket_reports("b").for_run(12),
            s3("Output/reports/run-12.html")
        );
        let dir = tempfile::tempdir().unwrap();
        let existing = ReportTo::parse(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(
            existing.for_run(3),
            Location::Local(dir.path().join("run-3.html"))
        );
        let file = dir.path().join("report.html");
        assert_eq!(
            ReportTo::parse(file.to_str().unwrap()).unwrap().for_run(3),
            Location::Local(file)
        );
        assert!(ReportTo::parse("s3://b/x/").unwrap().is_s3());
        assert!(ReportTo::parse("").is_err());
    }
}
