//! `stockload migrate`: apply the embedded refinery migrations (idempotent).

use crate::cli::DbArgs;
use crate::db;
use crate::error::Result;

/// Applies what is missing and says what it did.
pub(crate) async fn run(args: DbArgs) -> Result<bool> {
    let db = super::database(&args)?;
    let mut conn = db.connect().await?;
    let applied = db::migrate(&mut conn).await?;
    if applied.is_empty() {
        println!("{}: schema is up to date", db.display());
    } else {
        for name in applied {
            println!("applied {name}");
        }
    }
    Ok(true)
}
