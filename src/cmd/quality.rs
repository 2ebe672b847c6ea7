//! `stockload quality`: the current data-quality flags, optionally of one run or one check.
//! Read-only: never migrates.

use crate::cli::QualityArgs;
use crate::db;
use crate::error::Result;
use crate::quality;

/// Prints the flags (and, with --run, that run's counts per check), as text or JSON.
pub(crate) async fn run(args: QualityArgs) -> Result<bool> {
    let db = args.db.db()?;
    let mut conn = db.connect().await?;
    db::check_schema(&mut conn).await?;
    let counts = match args.run {
        Some(run_id) => quality::counts(&mut conn, run_id).await?,
        None => Vec::new(),
    };
    let limit = i64::from(args.limit);
    let flags = quality::flags(&mut conn, args.run, args.check.as_deref(), limit).await?;
    if args.json {
        let json = serde_json::json!({ "run_id": args.run, "counts": counts, "flags": flags });
        outln!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return Ok(true);
    }
    if let Some(run_id) = args.run {
        outln!("run {run_id}:");
        for c in &counts {
            outln!(
                "  {:<18} {:<8} {:>7} flags {:>7} cleared",
                c.check_name,
                c.severity,
                c.flags,
                c.cleared
            );
        }
    }
    for flag in &flags {
        outln!("{:<8} {}", flag.severity, flag);
    }
    if flags.len() as i64 == limit {
        outln!("(first {} flags; --limit shows more)", args.limit);
    }
    Ok(true)
}
