//! `stockload migrate`: apply the embedded refinery migrations (idempotent); with
//! `--distributed`, then put the schema on a Citus cluster (`sql/citus/distribute.sql`).

use crate::cli::MigrateArgs;
use crate::db::{self, engine};
use crate::error::{Error, Result};
use crate::transform::{self, Scripts};

/// Applies what is missing and says what it did.
pub(crate) async fn run(args: MigrateArgs) -> Result<bool> {
    let db = args.db.db()?;
    let mut conn = db.connect().await?;
    let applied = db::migrate(&mut conn).await?;
    if applied.is_empty() {
        outln!("{}: schema is up to date", db.display());
    } else {
        for name in applied {
            outln!("applied {name}");
        }
    }
    if args.distributed {
        distribute(&mut conn).await?;
        outln!(
            "{}: historical_stocks_data is distributed by company_name; the ledger tables are reference tables",
            db.display()
        );
    }
    Ok(true)
}

/// Runs `sql/citus/distribute.sql`, after checking that the database is a Citus coordinator.
async fn distribute(conn: &mut sqlx::PgConnection) -> Result<()> {
    if !engine::has_citus(conn).await? {
        return Err(Error::Config(
            "--distributed needs a Citus coordinator: the database has no citus extension \
             (CREATE EXTENSION citus, and add the workers with citus_add_node)"
                .into(),
        ));
    }
    let script = Scripts::default().load(transform::DISTRIBUTE_SCRIPT)?;
    transform::run_script(conn, &script).await?;
    Ok(())
}
