//! `stockload stats`: what the table holds and the last run. Read-only: never migrates.

use crate::cli::StatsArgs;
use crate::db;
use crate::error::Result;
use crate::report;

/// Prints the stats, as text or JSON.
pub(crate) async fn run(args: StatsArgs) -> Result<bool> {
    let db = args.db.db()?;
    let mut conn = db.connect().await?;
    db::check_schema(&mut conn).await?;
    let stats = report::stats(&mut conn).await?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&stats).unwrap_or_default()
        );
    } else {
        out!("{stats}");
    }
    Ok(true)
}
