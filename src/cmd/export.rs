//! `stockload export --to FILE|s3://...`: the table as CSV. Read-only: never migrates.

use crate::cli::ExportArgs;
use crate::db;
use crate::error::Result;
use crate::report;
use crate::storage::Location;

/// Streams the table to the target and says how much it wrote.
pub(crate) async fn run(args: ExportArgs) -> Result<bool> {
    let db = args.db.db()?;
    let target = Location::parse(&args.to)?;
    let mut conn = db.connect().await?;
    db::check_schema(&mut conn).await?;
    let reader = super::reader_for(&[&target], &args.aws).await?;
    let bytes = report::export(&mut conn, &target, &reader).await?;
    outln!("wrote {bytes} bytes to {target}");
    Ok(true)
}
