//! What the database is, asked in one place: a Citus coordinator or not, historical_stocks_data
//! distributed or not, empty or not. The load chooses its path from these answers
//! (`load::path`); `stockload migrate --distributed` checks for Citus with the same probe.

use sqlx::PgConnection;

use crate::error::{Error, Result};

/// True when the citus extension is installed in this database.
pub async fn has_citus(conn: &mut PgConnection) -> Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::database("looking for the citus extension", e))
}

/// True when historical_stocks_data is a Citus distributed table (the citus extension is there
/// and the table is in its metadata); then the load runs the scripts' Citus forms.
pub async fn is_distributed(conn: &mut PgConnection) -> Result<bool> {
    if !has_citus(conn).await? {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_dist_partition \
         WHERE logicalrelid = to_regclass('historical_stocks_data') AND partmethod = 'h')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| {
        Error::database(
            "asking Citus whether historical_stocks_data is distributed",
            e,
        )
    })
}

/// True when historical_stocks_data holds no row; then it stays empty until this transaction
/// ends (SHARE lock: other writers wait, readers do not). A non-empty table is not locked here.
pub async fn target_is_empty(conn: &mut PgConnection) -> Result<bool> {
    if !table_is_empty(conn).await? {
        return Ok(false);
    }
    sqlx::raw_sql("LOCK TABLE historical_stocks_data IN SHARE MODE")
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("locking historical_stocks_data", e))?;
    table_is_empty(conn).await
}

async fn table_is_empty(conn: &mut PgConnection) -> Result<bool> {
    sqlx::query_scalar::<_, bool>("SELECT NOT EXISTS (SELECT 1 FROM historical_stocks_data)")
        .fetch_one(conn)
        .await
        .map_err(|e| Error::database("checking whether historical_stocks_data is empty", e))
}
