//! `stockload stats`: what the table holds, the last run, and runs that died without a word
//! (still marked running, their session gone: the next load closes them as abandoned).
//! Read-only: never migrates, never writes.

use crate::cli::StatsArgs;
use crate::db;
use crate::error::Result;
use crate::ledger;
use crate::report;

/// Prints the stats, as text or JSON.
pub(crate) async fn run(args: StatsArgs) -> Result<bool> {
    let db = args.db.db()?;
    let mut conn = db.connect().await?;
    db::check_schema(&mut conn).await?;
    let stats = report::stats(&mut conn).await?;
    let abandoned: Vec<String> = ledger::find_abandoned(&mut conn)
        .await?
        .iter()
        .map(|run| run.to_string())
        .collect();
    if args.json {
        let mut value = serde_json::to_value(&stats).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("abandoned_runs".into(), abandoned.into());
        }
        outln!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        out!("{stats}");
        for run in abandoned {
            outln!("abandoned: {run} (the next load records it)");
        }
    }
    Ok(true)
}
