//! The one error type of stockload: every message is written for the person running the tool and
//! names the object involved (file and line, script, bucket and key, setting), never a password.

use std::path::PathBuf;

/// A boxed underlying error (an AWS SDK error, a mail transport's), kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can make a stockload command fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A flag, environment variable or configuration value is missing or wrong (a message of our
    /// own, with no underlying error).
    #[error("{0}")]
    Config(String),

    /// A JSON file (pipeline settings, pipeline definition) could not be read.
    #[error("{file}: invalid {what} json: {source}")]
    Json {
        /// The file as given by the user.
        file: String,
        /// What the file should hold ("pipeline settings", "pipeline definition").
        what: &'static str,
        /// serde_json's answer (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// A background task panicked or was cancelled.
    #[error("{what} stopped unexpectedly: {source}")]
    Task {
        /// What the task was doing ("parsing s3://b/k", "listing markers").
        what: String,
        /// Tokio's answer (panic or cancellation).
        #[source]
        source: tokio::task::JoinError,
    },

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

    /// PostgreSQL could not be reached or refused the login. Only text is kept: the driver's
    /// error could quote the connection URL and its password.
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
        /// The driver's error (None when stockload itself found the problem).
        #[source]
        source: Option<sqlx::Error>,
    },

    /// A schema migration failed.
    #[error("migration failed: {0}")]
    Migration(#[source] refinery::Error),

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
        /// The driver's error.
        #[source]
        source: sqlx::Error,
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
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },

    /// A strong lock the load needs was held by other sessions for longer than `--lock-wait`.
    #[error(
        "{script} could not take its lock on historical_stocks_data within {waited_secs:.0}s \
         (--lock-wait): held by {holders}; nothing was loaded (end those transactions, or run \
         again later)"
    )]
    LockWait {
        /// The script that needed the lock.
        script: String,
        /// How long it was tried.
        waited_secs: f64,
        /// The sessions holding locks on historical_stocks_data, described.
        holders: String,
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

    /// The quality checks flagged more error rows than `--fail-on-quality-errors` allows.
    #[error(
        "too many quality errors: {errors} error flags on {rows} loaded rows ({percent:.2}%), \
         more than --fail-on-quality-errors {max_ratio} allows; nothing was loaded (first: {first})"
    )]
    TooManyQualityErrors {
        /// Error flags on the run's days.
        errors: u64,
        /// Rows the run loaded.
        rows: u64,
        /// errors / rows as a percentage.
        percent: f64,
        /// The configured maximum ratio.
        max_ratio: f64,
        /// The first error flags, as "COMPANY DATE check: detail".
        first: String,
    },

    /// A stop signal (SIGTERM, SIGINT) ended the run: its statement was cancelled on the server
    /// and its transaction rolled back.
    #[error("interrupted by {0}: the load was cancelled and rolled back, nothing was written")]
    Interrupted(&'static str),

    /// A trigger stopped retrying a marker after repeated failed runs; the message names the
    /// marker and quotes the last run's error (kept as text in the run's summary).
    #[error("{0}")]
    GaveUp(String),

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
        /// The SDK's error (None when stockload itself found the problem).
        #[source]
        source: Option<BoxError>,
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
        /// The SDK's error (None when stockload itself found the problem).
        #[source]
        source: Option<BoxError>,
    },

    /// A notification could not be delivered.
    #[error("notification to {target} failed: {reason}")]
    Notify {
        /// The target, without credentials.
        target: String,
        /// Why.
        reason: String,
        /// The SDK's or mail transport's error, when there is one.
        #[source]
        source: Option<BoxError>,
    },

    /// A Data Pipeline definition is invalid.
    #[error("pipeline definition is invalid:\n  {}", .0.join("\n  "))]
    Definition(Vec<String>),

    /// A throwaway PostgreSQL cluster (demo, tests) could not be started.
    #[error("cannot start a throwaway PostgreSQL: {0}")]
    Cluster(String),

    /// A throwaway PostgreSQL cluster could not be started because of the operating system.
    #[error("cannot start a throwaway PostgreSQL: {what}: {source}")]
    ClusterIo {
        /// What failed ("cannot create a temporary folder", "cannot run initdb").
        what: String,
        /// The operating system's answer.
        #[source]
        source: std::io::Error,
    },
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

    /// Wraps a sqlx error raised while doing `action`. The driver's error is kept as the source,
    /// except a configuration error: its text may quote the connection URL and its password.
    pub fn database(action: impl Into<String>, err: sqlx::Error) -> Self {
        let reason = describe_sqlx(&err);
        let source = match err {
            sqlx::Error::Configuration(_) => None,
            other => Some(other),
        };
        Error::Database {
            action: action.into(),
            reason,
            source,
        }
    }

    /// A throwaway cluster's step `what` failed with the operating system's error `source`.
    pub fn cluster_io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::ClusterIo {
            what: what.into(),
            source,
        }
    }

    /// A background task (`spawn_blocking`) that panicked or was cancelled while doing `what`.
    pub fn task(what: impl Into<String>, source: tokio::task::JoinError) -> Self {
        Error::Task {
            what: what.into(),
            source,
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

#[cfg(test)]
mod tests {
    use std::error::Error as StdError;
    use std::time::Duration;

    use super::*;

    /// The error and every source under it.
    fn chain<'e>(err: &'e (dyn StdError + 'static)) -> Vec<&'e (dyn StdError + 'static)> {
        let mut all = vec![err];
        let mut next = err.source();
        while let Some(e) = next {
            all.push(e);
            next = e.source();
        }
        all
    }

    #[test]
    fn a_database_error_keeps_the_driver_error() {
        let err = Error::database("reading the ledger", sqlx::Error::RowNotFound);
        assert_eq!(
            err.to_string(),
            "database error while reading the ledger: no rows returned by a query that expected \
             to return at least one row"
        );
        let found = chain(&err)
            .into_iter()
            .find_map(|e| e.downcast_ref::<sqlx::Error>());
        assert!(matches!(found, Some(sqlx::Error::RowNotFound)), "{found:?}");
    }

    #[test]
    #[cfg(feature = "aws")]
    fn an_s3_error_keeps_the_sdk_error() {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::{ErrorMetadata, SdkError};
        use aws_sdk_s3::operation::get_object::GetObjectError;
        use aws_sdk_s3::primitives::SdkBody;

        let service = GetObjectError::NoSuchKey(
            aws_sdk_s3::types::error::NoSuchKey::builder()
                .meta(
                    ErrorMetadata::builder()
                        .code("NoSuchKey")
                        .message("The specified key does not exist.")
                        .build(),
                )
                .build(),
        );
        let raw = HttpResponse::new(404.try_into().unwrap(), SdkBody::empty());
        let err = crate::storage::s3::s3_error(
            "get",
            "bucket",
            "Stocks/AAPL.csv",
            SdkError::service_error(service, raw),
        );
        assert_eq!(
            err.to_string(),
            "S3 get s3://bucket/Stocks/AAPL.csv: NoSuchKey: The specified key does not exist."
        );
        let sdk = chain(&err)
            .into_iter()
            .find_map(|e| e.downcast_ref::<SdkError<GetObjectError, HttpResponse>>())
            .expect("the SDK error is a source");
        assert!(
            matches!(sdk.as_service_error(), Some(GetObjectError::NoSuchKey(_))),
            "{sdk:?}"
        );
    }

    #[tokio::test]
    async fn a_task_panic_is_its_own_error() {
        let join = tokio::task::spawn_blocking(|| panic!("boom"))
            .await
            .unwrap_err();
        let err = Error::task("parsing AAPL.csv", join);
        assert!(
            err.to_string()
                .starts_with("parsing AAPL.csv stopped unexpectedly: task "),
            "{err}"
        );
        let join = err
            .source()
            .and_then(|e| e.downcast_ref::<tokio::task::JoinError>());
        assert!(join.is_some_and(|j| j.is_panic()), "{err:?}");
    }

    #[tokio::test]
    async fn connection_errors_never_show_the_password() {
        const PLANTED: &str = "Pl4nted-pw-7731";
        // Nothing listens on port 1: the connection is refused at once.
        let url = format!("postgres://alice:{PLANTED}@127.0.0.1:1/stocks");
        let db = crate::db::Db::new(Some(&url), "64MB", Duration::from_secs(10)).unwrap();
        let refused = db.connect().await.unwrap_err();
        assert!(matches!(refused, Error::Connect { .. }), "{refused:?}");
        assert!(
            refused.to_string().contains("alice@127.0.0.1:1"),
            "{refused}"
        );
        // A URL sqlx cannot use, and a configuration error wrapped as a database error.
        let invalid = crate::db::Db::new(
            Some(&format!("postgres://alice:{PLANTED}@[bad")),
            "64MB",
            Duration::ZERO,
        )
        .unwrap_err();
        let wrapped = Error::database(
            "connecting",
            sqlx::Error::Configuration(format!("invalid URL postgres://alice:{PLANTED}@x").into()),
        );
        for err in [&refused, &invalid, &wrapped] {
            for e in chain(err) {
                let shown = format!("{e} {e:?}");
                assert!(!shown.contains(PLANTED), "{shown}");
            }
        }
    }
}
