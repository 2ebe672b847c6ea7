//! `stockload report [--run N] --to PATH|s3://...`: a run's HTML report. Read-only: never migrates.

use crate::cli::ReportArgs;
use crate::db;
use crate::error::Result;
use crate::report::{self, ReportTo};

/// Writes the report of the chosen run and says where it went.
pub(crate) async fn run(args: ReportArgs) -> Result<bool> {
    let db = args.db.db()?;
    let to = ReportTo::parse(&args.to)?;
    let mut conn = db.connect().await?;
    db::check_schema(&mut conn).await?;
    let target = match &to {
        ReportTo::File(location) | ReportTo::Folder(location) => location,
    };
    let storage = super::reader_for(&[target], &args.aws).await?;
    let (location, bytes) = report::write(&mut conn, &storage, &to, args.run).await?;
    outln!("wrote the report ({bytes} bytes) to {location}");
    Ok(true)
}
