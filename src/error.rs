//! The one error type of stockload: every message is written for the person running the tool and
//! names the object involved (file and line, script, bucket and key, setting), never a password.

use std::path::PathBuf;

/// Everything that can make a stockload command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, environment variable or configuration value is missing or wrong.
    #[error("{0}")]
    Config(String),

    /// The companies index file could not be used.
    #[error("companies index {file}: {reason}")]
    Index {
        /// The index file as given by the user.
        file: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A local file or folder could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What we were doing ("cannot read", "cannot write", ...).
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },

    /// PostgreSQL could not be reached or refused the login.
    #[error("cannot connect to PostgreSQL at {target}: {reason}")]
    Connect {
        /// The server, with any password hidden.
        target: String,
        /// The driver's or the server's answer.
        reason: String,
    },

    /// A statement failed in the database.
    #[error("database error while {action}: {reason}")]
    Database {
        /// What stockload was doing.
        action: String,
        /// PostgreSQL's message, detail and context.
        reason: String,
    },

    /// A schema migration failed.
    #[error("migration failed: {0}")]
    Migration(String),

    /// A read-only command found no stockload schema, or one older than this stockload's.
    #[error("{0}")]
    Schema(String),

    /// A transform script from `sql/` failed; the run was rolled back.
    #[error("transform script {script} failed: {reason}")]
    Script {
        /// The script's name, as `stockload sql` lists it.
        script: String,
        /// PostgreSQL's message, detail and context.
        reason: String,
    },

    /// COPY into the staging table failed on a row we sent.
    #[error("COPY into staging failed at {file} line {line}: {reason}")]
    Copy {
        /// The company file the row came from.
        file: String,
        /// The line of that file.
        line: u64,
        /// PostgreSQL's message.
        reason: String,
    },

    /// The batch had more rejected rows than `--max-reject-ratio` allows.
    #[error(
        "too many rejected rows: {rejected} of {read} rows ({percent:.1}%) were rejected, \
         more than --max-reject-ratio {max_ratio} allows; nothing was loaded (see load_rejects \
         or the summary for reasons)"
    )]
    TooManyRejects {
        /// Rows rejected.
        rejected: u64,
        /// Rows read.
        read: u64,
        /// rejected / read as a percentage.
        percent: f64,
        /// The configured maximum ratio.
        max_ratio: f64,
    },

    /// A stop signal (SIGTERM, SIGINT) ended the run: its statement was cancelled on the server
    /// and its transaction rolled back.
    #[error("interrupted by {0}: the load was cancelled and rolled back, nothing was written")]
    Interrupted(&'static str),

    /// Not one listed file could be loaded.
    #[error("nothing to load: {0}")]
    NothingToLoad(String),

    /// An S3 request failed.
    #[error("S3 {action} s3://{bucket}/{key}: {reason}")]
    S3 {
        /// The operation ("get", "list", "put", ...).
        action: &'static str,
        /// The bucket.
        bucket: String,
        /// The key or prefix.
        key: String,
        /// What S3 answered (NoSuchBucket, AccessDenied, ...).
        reason: String,
    },

    /// Another AWS service call failed (SNS, SQS, Data Pipeline, Secrets Manager).
    #[error("AWS {service} {action}: {reason}")]
    Aws {
        /// The service.
        service: &'static str,
        /// The operation.
        action: String,
        /// The service's answer.
        reason: String,
    },

    /// A notification could not be delivered.
    #[error("notification to {target} failed: {reason}")]
    Notify {
        /// The target, without credentials.
        target: String,
        /// Why.
        reason: String,
    },

    /// A Data Pipeline definition is invalid.
    #[error("pipeline definition is invalid:\n  {}", .0.join("\n  "))]
    Definition(Vec<String>),

    /// A throwaway PostgreSQL cluster (demo, tests) could not be started.
    #[error("cannot start a throwaway PostgreSQL: {0}")]
    Cluster(String),
}

/// Result with the stockload error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what we were doing and the path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Wraps a sqlx error raised while doing `action`.
    pub fn database(action: impl Into<String>, err: sqlx::Error) -> Self {
        Error::Database {
            action: action.into(),
            reason: describe_sqlx(&err),
        }
    }
}

/// Renders a sqlx error for users: PostgreSQL's message with its detail, hint and context, and
/// for anything else the driver's own text. sqlx's Display of a database error ends with a line
/// of PostgreSQL's C source ("at line N"), which users would mistake for a line of their CSV, so
/// database errors are rebuilt from their fields here.
pub fn describe_sqlx(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        {
            Some(pg) => {
                let mut text = format!("{} (SQLSTATE {})", pg.message(), pg.code());
                if let Some(detail) = pg.detail() {
                    text.push_str(&format!("; detail: {detail}"));
                }
                if let Some(hint) = pg.hint() {
                    text.push_str(&format!("; hint: {hint}"));
                }
                if let Some(context) = pg.r#where() {
                    text.push_str(&format!("; context: {}", context.replace('\n', " / ")));
                }
                text
            }
            None => db.message().to_string(),
        },
        // Configuration errors may quote the URL they could not parse: never echo it.
        sqlx::Error::Configuration(_) => {
            "the connection settings are invalid (check DATABASE_URL / PG* variables)".to_string()
        }
        other => other.to_string(),
    }
}
