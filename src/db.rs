//! Connecting to PostgreSQL (DATABASE_URL or the PG* variables, sslmode honoured, the password never
//! shown), running the refinery migrations, and the advisory lock that serialises runs.

use std::str::FromStr;
use std::time::Duration;

use refinery::{AsyncMigrate, Migration};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row};

use crate::error::{Error, Result};

pub mod engine;
mod tls;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Key of the advisory lock every load takes for its whole transaction: two runs on one database
/// are serialised, never interleaved. (Arbitrary constant: "stockload" in ASCII, truncated.)
pub const LOAD_LOCK_KEY: i64 = 0x73746f636b6c6f;
/// Key of the advisory lock held while migrating.
pub const MIGRATE_LOCK_KEY: i64 = LOAD_LOCK_KEY + 1;

/// How to reach the database. `Debug` shows what [`Db::display`] shows, never the password.
#[derive(Clone)]
pub struct Db {
    options: PgConnectOptions,
    connect_timeout: Duration,
    tls: tls::TlsFiles,
}

impl Db {
    /// From a URL (`postgres://user:pass@host:port/db?sslmode=require`), or when `url` is None from
    /// the standard PG* variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE, ...).
    /// `work_mem` is applied to every session: it sizes the window sort and the staging buffers.
    pub fn new(url: Option<&str>, work_mem: &str, connect_timeout: Duration) -> Result<Db> {
        let options = match url {
            Some(url) => PgConnectOptions::from_str(url).map_err(|_| {
                Error::Config(
                    "the database URL is not valid: expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=...]"
                        .into(),
                )
            })?,
            None => PgConnectOptions::new(),
        };
        Ok(Db::from_options(options, work_mem, connect_timeout))
    }

    /// From parts, with TLS required (RDS): for credentials read from a secret store.
    pub fn with_credentials(
        host: &str,
        port: u16,
        database: &str,
        user: &str,
        password: &str,
        work_mem: &str,
        connect_timeout: Duration,
    ) -> Db {
        let options = PgConnectOptions::new()
            .host(host)
            .port(port)
            .database(database)
            .username(user)
            .password(password)
            .ssl_mode(sqlx::postgres::PgSslMode::Require);
        Db::from_options(options, work_mem, connect_timeout)
    }

    fn from_options(options: PgConnectOptions, work_mem: &str, connect_timeout: Duration) -> Db {
        let options = options
            .application_name("stockload")
            // JIT compiling the big transform queries costs more than it saves (measured: ~1 s
            // per million rows), and work_mem/temp_buffers keep the sort and staging in memory.
            // client_connection_check_interval (PostgreSQL 14+): a client that vanishes without
            // a word (killed, network gone) has its running statement stopped within seconds,
            // instead of working on for minutes until the server next writes to the socket.
            .options([
                ("work_mem", work_mem),
                ("temp_buffers", work_mem),
                ("jit", "off"),
                ("client_connection_check_interval", "2s"),
            ])
            .log_statements(tracing::log::LevelFilter::Trace)
            // A slow statement is worth a debug line, not a WARN with its full text: the load
            // reports each script's time itself.
            .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(1));
        let tls = tls::TlsFiles::from_options(&options);
        Db {
            options,
            connect_timeout,
            tls,
        }
    }

    /// The server as shown to users: user, host, port and database, never the password.
    pub fn display(&self) -> String {
        let o = &self.options;
        let host = match o.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => o.get_host().to_string(),
        };
        format!(
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            host,
            o.get_port(),
            o.get_database().unwrap_or(o.get_username())
        )
    }

    /// Opens one connection, with TLS as libpq does it (see [`tls`]).
    pub async fn connect(&self) -> Result<PgConnection> {
        let connecting = tls::connect(&self.options, &self.tls);
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(reason)) => Err(Error::Connect {
                target: self.display(),
                reason,
            }),
            Err(_) => Err(Error::Connect {
                target: self.display(),
                reason: format!("no answer within {:?}", self.connect_timeout),
            }),
        }
    }

    /// The health check: connects and waits for one round trip to the server. Reads nothing and
    /// writes nothing (never migrates), so any role that may log in can use it.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.connect().await?;
        conn.ping()
            .await
            .map_err(|e| Error::database("checking that the database answers", e))?;
        let _ = conn.close().await;
        Ok(())
    }

    /// Applies the embedded migrations on a connection of its own (see [`migrate`]): what a
    /// long-running trigger does once when it starts, never per poll.
    pub async fn migrate(&self) -> Result<Vec<String>> {
        let mut conn = self.connect().await?;
        migrate(&mut conn).await
    }
}

/// Cancels the statement a backend is running (`pg_cancel_backend`, allowed for our own role),
/// from a new connection: the way to stop a load whose own connection is busy. Best effort: the
/// stop is logged, and a failure to cancel is logged as a warning.
pub async fn cancel_backend(db: &Db, pid: i32) {
    let cancelled = async {
        let mut conn = db.connect().await?;
        sqlx::query_scalar::<_, bool>("SELECT pg_cancel_backend($1)")
            .bind(pid)
            .fetch_one(&mut conn)
            .await
            .map_err(|e| Error::database("cancelling the load's statement", e))
    };
    match cancelled.await {
        Ok(true) => tracing::info!(pid, "cancelled the load's statement on the server"),
        Ok(false) => tracing::info!(pid, "the load's backend had already ended"),
        Err(err) => tracing::warn!(pid, "could not cancel the load's statement: {err}"),
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.display())
    }
}

/// Applies the embedded migrations (idempotent). Concurrent callers wait for each other.
/// Returns the names of the migrations applied now.
pub async fn migrate(conn: &mut PgConnection) -> Result<Vec<String>> {
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("waiting for the migration lock", e))?;
    let result = embedded::migrations::runner()
        .run_async(&mut RefineryConnection(&mut *conn))
        .await;
    let unlock = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(MIGRATE_LOCK_KEY)
        .execute(&mut *conn)
        .await;
    let report = result.map_err(Error::Migration)?;
    unlock.map_err(|e| Error::database("releasing the migration lock", e))?;
    Ok(report
        .applied_migrations()
        .iter()
        .map(|m| m.to_string())
        .collect())
}

/// For the read-only commands (`stats`, `export`): checks with reads only that the stockload
/// schema exists and is as new as this stockload's migrations; never migrates, so a role with
/// SELECT only can use them.
pub async fn check_schema(conn: &mut PgConnection) -> Result<()> {
    let needed = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or_default();
    let has_history: bool =
        sqlx::query_scalar("SELECT to_regclass('refinery_schema_history') IS NOT NULL")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::database("looking for the stockload schema", e))?;
    if !has_history {
        return Err(Error::Schema(
            "the database has no stockload schema: run `stockload migrate` (as a role that may \
             create tables)"
                .into(),
        ));
    }
    let found: Option<i32> = sqlx::query_scalar("SELECT max(version) FROM refinery_schema_history")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::database("reading refinery_schema_history", e))?;
    match found {
        None => Err(Error::Schema(
            "the database has no stockload schema: run `stockload migrate` (as a role that may \
             create tables)"
                .into(),
        )),
        Some(found) if i64::from(found) < needed => Err(Error::Schema(format!(
            "the database's stockload schema is too old (version {found}; this stockload needs \
             version {needed}): run `stockload migrate` (as a role that may alter tables)"
        ))),
        Some(_) => Ok(()),
    }
}

/// refinery has no sqlx driver; this adapter lets its runner use our sqlx connection, so
/// migrations get the same TLS settings, sslmode and password handling as the load. The
/// bookkeeping table (`refinery_schema_history`) and its queries are refinery's own, so the
/// `refinery migrate` CLI sees the same history.
struct RefineryConnection<'c>(&'c mut PgConnection);

impl refinery_core::traits::r#async::AsyncTransaction for RefineryConnection<'_> {
    type Error = sqlx::Error;

    async fn execute<'a, T: Iterator<Item = &'a str> + Send + 'a>(
        &'a mut self,
        queries: T,
    ) -> Result<usize, Self::Error> {
        {
            let mut tx = self.0.begin().await?;
            let mut count = 0;
            for query in queries {
                sqlx::raw_sql(AssertSqlSafe(query.to_string()))
                    .execute(&mut *tx)
                    .await?;
                count += 1;
            }
            tx.commit().await?;
            Ok(count)
        }
    }
}

impl refinery_core::traits::r#async::AsyncQuery<Vec<Migration>> for RefineryConnection<'_> {
    async fn query<'a>(&'a mut self, query: &'a str) -> Result<Vec<Migration>, Self::Error> {
        {
            let rows = sqlx::raw_sql(AssertSqlSafe(query.to_string()))
                .fetch_all(&mut *self.0)
                .await?;
            rows.iter()
                .map(|row| {
                    let applied_on: String = row.try_get(2)?;
                    let checksum: String = row.try_get(3)?;
                    let decode = |what: &str| sqlx::Error::Decode(what.to_string().into());
                    Ok(Migration::applied(
                        row.try_get(0)?,
                        row.try_get(1)?,
                        time::OffsetDateTime::parse(
                            &applied_on,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .map_err(|_| decode("refinery_schema_history.applied_on"))?,
                        checksum
                            .parse()
                            .map_err(|_| decode("refinery_schema_history.checksum"))?,
                    ))
                })
                .collect()
        }
    }
}

impl AsyncMigrate for RefineryConnection<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_never_shows_the_password() {
        let db = Db::new(
            Some("postgres://alice:s3cret-pw@db.example.com:6543/stocks?sslmode=require"),
            "64MB",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(db.display(), "postgres://alice@db.example.com:6543/stocks");
        let err = Db::new(
            Some("postgres://alice:s3cret-pw@[bad"),
            "64MB",
            Duration::ZERO,
        )
        .unwrap_err()
        .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        let db = Db::new(
            Some("postgres://alice:s3cret-pw@db.example.com/stocks"),
            "64MB",
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(!format!("{db:?}").contains("s3cret"), "{db:?}");
    }
}
