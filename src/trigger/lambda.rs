//! The Lambda handler's logic, testable without the Lambda runtime: configuration and dispatch.
//! On an S3 event naming a `.SUCCESS` marker, either (re)create and activate the AWS Data Pipeline
//! from the definition in the source bucket (pipeline mode, `crate::pipeline::aws::start`), or
//! run the load itself (direct mode, for accounts that cannot use Data Pipeline, through
//! [`Context::run`]), or size the batch and do one or hand it to a long-running loader (auto
//! mode, [`super::auto`]). Configured from environment variables (see [`LambdaConfig::from_vars`]).
//!
//! Pipeline mode finishes what it starts (see [`crate::pipeline::aws`]): a retry of the same event
//! after a failure at any step resumes the marker's pipeline; while the previous marker's pipeline
//! may still be running, the event fails with an error saying so, the operators are notified, and
//! Lambda's retries (or the next marker) try again later: a running load is never cancelled.

use aws_lambda_events::event::s3::S3Event;
use indicatif::ProgressBar;

use super::auto::{self, Choice, Decision, Handoff, Limits, Record};
use super::{give_up, markers_in_event, S3Marker};
use crate::aws::{aws_error, Aws};
use crate::context::{Context, Recipients};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::load::RunStatus;
use crate::notify::{self, Notice, Target};
use crate::pipeline::aws::{Activation, PipelineApi, SdkPipelines};
use crate::pipeline::{self, DEFAULT_DEFINITION_KEY};
use crate::plan::Plan;
use crate::plan::{
    DEFAULT_COMPANIES_KEY, DEFAULT_CONNECT_TIMEOUT_SECS, DEFAULT_DB_NAME, DEFAULT_DB_PORT,
    DEFAULT_NOTIFY_NAME, DEFAULT_STOCKS_PREFIX, DEFAULT_WORK_MEM,
};
use crate::report::ReportTo;
use crate::secret::Secret;
use crate::storage::Location;

/// What the handler does on a marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Recreate and activate the Data Pipeline.
    Pipeline,
    /// Run the load in the Lambda itself.
    Direct,
    /// Size the batch and load it here when it fits, else hand it off ([`super::auto`]).
    Auto,
}

/// How the direct mode reaches the database.
#[derive(Debug, Clone)]
pub enum DbSource {
    /// A URL (DATABASE_URL), with the password in PGPASSWORD or the URL.
    Url(Secret),
    /// Host, port and database from the environment; user and password from a Secrets Manager
    /// secret (JSON with `username` and `password`, as RDS-managed secrets are).
    Secret {
        /// Host name.
        host: String,
        /// Port.
        port: u16,
        /// Database name.
        database: String,
        /// Secret ARN.
        secret_arn: String,
    },
}

/// The handler's configuration.
#[derive(Debug, Clone)]
pub struct LambdaConfig {
    /// Pipeline or direct.
    pub mode: Mode,
    /// The source bucket (definition, Stocks/, CompanyNames/).
    pub source_bucket: String,
    /// Data Pipeline name.
    pub pipeline_name: String,
    /// Key of the definition JSON in the source bucket.
    pub definition_key: String,
    /// Prefix of the company files in the source bucket.
    pub stocks_prefix: String,
    /// Key of the index file in the source bucket.
    pub companies_key: String,
    /// Notification targets (direct mode; pipeline mode notifies through its SnsAlarms).
    pub targets: Vec<Target>,
    /// Subject prefix.
    pub notify_name: String,
    /// Database (direct mode; in pipeline mode, the secret's password becomes the pipeline's
    /// `*myRdsPassword` parameter and the host its `myRdsEndpoint` at activation).
    pub db: Option<DbSource>,
    /// Auto mode: where a batch too big for the function goes (STOCKLOAD_HANDOFF).
    pub handoff: Option<Handoff>,
    /// Auto mode: the function's memory and STOCKLOAD_DIRECT_MAX_BYTES (the time left is set
    /// per invocation).
    pub limits: Limits,
}

impl LambdaConfig {
    /// Reads the configuration through `var` (the process environment in the Lambda):
    /// STOCKLOAD_MODE (pipeline|direct), STOCKLOAD_SOURCE_BUCKET, STOCKLOAD_PIPELINE_NAME,
    /// STOCKLOAD_DEFINITION_KEY, STOCKLOAD_STOCKS_PREFIX, STOCKLOAD_COMPANIES_KEY,
    /// STOCKLOAD_NOTIFY, STOCKLOAD_NOTIFY_NAME, and DATABASE_URL or STOCKLOAD_DB_HOST,
    /// STOCKLOAD_DB_PORT, STOCKLOAD_DB_NAME, STOCKLOAD_DB_SECRET_ARN; for auto mode
    /// STOCKLOAD_HANDOFF, STOCKLOAD_DIRECT_MAX_BYTES and AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<LambdaConfig> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let required = |name: &str| {
            get(name)
                .ok_or_else(|| Error::Config(format!("environment variable {name} is not set")))
        };
        let mode = match get("STOCKLOAD_MODE").as_deref().unwrap_or("pipeline") {
            "pipeline" => Mode::Pipeline,
            "direct" => Mode::Direct,
            "auto" => Mode::Auto,
            other => {
                return Err(Error::Config(format!(
                    "STOCKLOAD_MODE is {other:?}: expected pipeline, direct or auto"
                )))
            }
        };
        let db = match (get("DATABASE_URL"), get("STOCKLOAD_DB_SECRET_ARN")) {
            (Some(url), _) => Some(DbSource::Url(Secret::new(url))),
            (None, Some(secret_arn)) => Some(DbSource::Secret {
                host: required("STOCKLOAD_DB_HOST")?,
                port: get("STOCKLOAD_DB_PORT")
                    .map(|p| {
                        p.parse().map_err(|_| {
                            Error::Config(format!("STOCKLOAD_DB_PORT {p:?} is not a port"))
                        })
                    })
                    .transpose()?
                    .unwrap_or(DEFAULT_DB_PORT),
                database: get("STOCKLOAD_DB_NAME").unwrap_or_else(|| DEFAULT_DB_NAME.into()),
                secret_arn,
            }),
            (None, None) => None,
        };
        if mode != Mode::Pipeline && db.is_none() {
            return Err(Error::Config(format!(
                "{} mode needs DATABASE_URL or STOCKLOAD_DB_SECRET_ARN (+ STOCKLOAD_DB_HOST)",
                if mode == Mode::Auto { "auto" } else { "direct" }
            )));
        }
        let (handoff, limits) = auto_settings(&get, mode)?;
        Ok(LambdaConfig {
            mode,
            source_bucket: required("STOCKLOAD_SOURCE_BUCKET")?,
            pipeline_name: get("STOCKLOAD_PIPELINE_NAME")
                .unwrap_or_else(|| DEFAULT_NOTIFY_NAME.into()),
            definition_key: get("STOCKLOAD_DEFINITION_KEY")
                .unwrap_or_else(|| DEFAULT_DEFINITION_KEY.into()),
            stocks_prefix: get("STOCKLOAD_STOCKS_PREFIX")
                .unwrap_or_else(|| DEFAULT_STOCKS_PREFIX.into()),
            companies_key: get("STOCKLOAD_COMPANIES_KEY")
                .unwrap_or_else(|| DEFAULT_COMPANIES_KEY.into()),
            targets: notify::parse_targets(
                &get("STOCKLOAD_NOTIFY")
                    .into_iter()
                    .map(Secret::from)
                    .collect::<Vec<_>>(),
            )?,
            notify_name: get("STOCKLOAD_NOTIFY_NAME").unwrap_or_else(|| DEFAULT_NOTIFY_NAME.into()),
            db,
            handoff,
            limits,
        })
    }
}

impl LambdaConfig {
    /// Who hears of the handler's give-ups: the configured targets, through `aws` for SNS.
    pub fn recipients<'a>(&'a self, aws: &'a Aws) -> Recipients<'a> {
        Recipients {
            targets: &self.targets,
            notify_name: &self.notify_name,
            aws: Some(aws),
        }
    }
}

/// Auto mode's settings: STOCKLOAD_HANDOFF (required in auto mode), STOCKLOAD_DIRECT_MAX_BYTES,
/// AWS_LAMBDA_FUNCTION_MEMORY_SIZE (set by Lambda).
fn auto_settings(
    get: &impl Fn(&str) -> Option<String>,
    mode: Mode,
) -> Result<(Option<Handoff>, Limits)> {
    let number = |name: &str| {
        get(name)
            .map(|v| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|_| Error::Config(format!("{name} is {v:?}: expected a whole number")))
            })
            .transpose()
    };
    let limits = Limits {
        remaining: None,
        memory_mib: number("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")?,
        direct_max_bytes: number("STOCKLOAD_DIRECT_MAX_BYTES")?,
    };
    let handoff = get("STOCKLOAD_HANDOFF")
        .map(|h| Handoff::parse(&h))
        .transpose()?;
    if mode == Mode::Auto && handoff.is_none() {
        return Err(Error::Config(
            "auto mode needs STOCKLOAD_HANDOFF: sqs:QUEUE_URL (the queue `stockload watch \
             --queue` consumes) or pipeline"
                .into(),
        ));
    }
    Ok((handoff, limits))
}

/// Handles one S3 event. Returns one line per marker saying what was done; keys that are not
/// markers are ignored. In direct mode a failed load is reported (and notified), not returned as
/// an error, so Lambda does not retry it behind the operators' backs. In pipeline mode a failure
/// is notified and returned, so Lambda retries the event and the retry finishes the job.
pub async fn handle(aws: &Aws, config: &LambdaConfig, event: &S3Event) -> Result<Vec<String>> {
    handle_with(aws, &SdkPipelines(aws.datapipeline()), config, event).await
}

/// [`handle`] for an invocation that must end by `deadline` (the Lambda context's): auto mode
/// weighs its estimate against the time left.
pub async fn handle_until(
    aws: &Aws,
    config: &LambdaConfig,
    event: &S3Event,
    deadline: std::time::SystemTime,
) -> Result<Vec<String>> {
    let mut config = config.clone();
    config.limits = config.limits.until(Some(deadline));
    handle(aws, &config, event).await
}

/// [`handle`] with the Data Pipeline calls going through `pipelines`.
pub async fn handle_with<P: PipelineApi>(
    aws: &Aws,
    pipelines: &P,
    config: &LambdaConfig,
    event: &S3Event,
) -> Result<Vec<String>> {
    let markers = markers_in_event(event);
    if markers.is_empty() {
        tracing::info!(
            records = event.records.len(),
            "no .SUCCESS marker in the event; nothing to do"
        );
    }
    let mut done = Vec::new();
    for marker in markers {
        let marker = marker.resolve(&aws.s3).await;
        tracing::info!(marker = %marker.id(), mode = ?config.mode, "marker received");
        let line = match config.mode {
            Mode::Pipeline => match start_pipeline(aws, pipelines, config, &marker).await {
                Ok(line) => line,
                Err(err) => {
                    // Given up for this invocation; Lambda's retry of the event resumes it.
                    let what = format!("starting the pipeline for {}", marker.id());
                    give_up(config.recipients(aws), &what, &err).await;
                    return Err(err);
                }
            },
            Mode::Direct => run_direct(aws, config, &marker, None).await?,
            Mode::Auto => auto_mode(aws, pipelines, config, &marker).await?,
        };
        tracing::info!("{line}");
        done.push(line);
    }
    Ok(done)
}

/// Direct mode: runs the load here; `note` (auto mode's decision) goes into its summary and notice.
async fn run_direct(
    aws: &Aws,
    config: &LambdaConfig,
    marker: &S3Marker,
    note: Option<String>,
) -> Result<String> {
    let mut plan = batch_plan(config);
    plan.note = note;
    plan.marker = Some(marker.id());
    // The files in flight get a share of the function's configured memory.
    let memory = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok();
    if let Some(mib) = memory.and_then(|mib| mib.trim().parse().ok()) {
        plan.memory_budget = crate::plan::memory_budget_for(mib);
    }
    let db = match config.db.as_ref().map(|source| database(aws, source)) {
        Some(db) => db.await,
        None => Err(Error::Config("no database configured".into())),
    };
    let db = match db {
        Ok(db) => db,
        Err(err) => {
            // No database: still tell the operators, then fail the invocation.
            give_up(config.recipients(aws), "database settings", &err).await;
            return Err(err);
        }
    };
    let ctx = Context::new(
        db,
        Some(aws.clone()),
        config.targets.clone(),
        config.notify_name.clone(),
    )
    .with_report(Some(ReportTo::bucket_reports(&config.source_bucket)));
    let report = ctx.run(&plan, &ProgressBar::hidden()).await;
    let summary = &report.summary;
    Ok(match summary.status {
        RunStatus::Succeeded => format!(
            "{}: loaded {} rows ({} rejected) as run {}",
            marker.id(),
            summary.rows_loaded,
            summary.rows_rejected,
            summary.run_id.unwrap_or_default()
        ),
        RunStatus::AlreadyLoaded => format!("{}: already loaded, nothing to do", marker.id()),
        RunStatus::Failed => format!(
            "{}: run failed: {}",
            marker.id(),
            summary.error.as_deref().unwrap_or("unknown error")
        ),
    })
}

/// The batch the Lambda loads: the company files and index in the source bucket.
fn batch_plan(config: &LambdaConfig) -> Plan {
    let bucket = &config.source_bucket;
    Plan::new(
        Location::S3 {
            bucket: bucket.clone(),
            key: config.stocks_prefix.clone(),
        },
        Location::S3 {
            bucket: bucket.clone(),
            key: config.companies_key.clone(),
        },
    )
}

/// Auto mode: a marker already loaded is done, one already handed off is not sent again; else
/// the batch is sized from listings and loaded here or handed off ([`auto::decide`]). Anything
/// that stops it before the load (the database, the listing) fails the invocation with a
/// notice, so Lambda retries it.
async fn auto_mode<P: PipelineApi>(
    aws: &Aws,
    pipelines: &P,
    config: &LambdaConfig,
    marker: &S3Marker,
) -> Result<String> {
    // Given up for this invocation; Lambda's retry of the event tries again.
    let fail = |what: String, err: Error| async move {
        give_up(config.recipients(aws), &what, &err).await;
        Err(err)
    };
    let db = match config.db.as_ref() {
        Some(source) => database(aws, source).await,
        None => Err(Error::Config("no database configured".into())),
    };
    let db = match db {
        Ok(db) => db,
        Err(err) => return fail("database settings".into(), err).await,
    };
    let id = marker.id();
    let ids: Vec<String> = std::iter::once(id.clone())
        .chain(marker.legacy_ids())
        .collect();
    match earlier_outcome(&db, &ids).await {
        Ok(Some(done)) => return Ok(format!("{id}: {done}")),
        Ok(None) => {}
        Err(err) => return fail(format!("checking marker {id}"), err).await,
    }
    let storage = crate::storage::Storage::new(Some(aws.clone()));
    let batch = match auto::measure(&storage, &batch_plan(config)).await {
        Ok(batch) => batch,
        Err(err) => return fail(format!("sizing the batch of marker {id}"), err).await,
    };
    let decision = auto::decide(batch, config.limits);
    let handoff = config.handoff.as_ref();
    let note = decision.describe(handoff);
    tracing::info!(
        marker = %id,
        choice = decision.choice.as_str(),
        files = decision.batch.files,
        bytes = decision.batch.bytes,
        estimated_secs = decision.estimate.secs,
        remaining_secs = decision.limits.remaining.map(|r| r.as_secs_f64()),
        "{note}"
    );
    match (decision.choice, handoff) {
        (Choice::Handoff, Some(to)) => {
            hand_off(aws, pipelines, config, marker, &db, &decision, to).await
        }
        _ => {
            let record = Record {
                marker: &id,
                decision: &decision,
                handed_to: None,
                sent: true,
                error: None,
            };
            if let Err(err) = auto::record(&db, &record).await {
                tracing::warn!("the decision could not be recorded: {err}");
            }
            run_direct(aws, config, marker, Some(note)).await
        }
    }
}

/// What an earlier event for the same marker already did: loaded it, or handed it off. Migrates
/// first: an invocation is a trigger's start (and a load here would migrate anyway).
async fn earlier_outcome(db: &Db, ids: &[String]) -> Result<Option<String>> {
    db.migrate().await?;
    if !crate::ledger::processed_markers(db, ids).await?.is_empty() {
        return Ok(Some("already loaded, nothing to do".into()));
    }
    Ok(auto::last_handoff(db, ids)
        .await?
        .map(|(to, at)| format!("already handed to {to} at {at}; not sent again")))
}

/// Hands the marker's batch to `to`, records the attempt, and tells the operators: a hand-off
/// notice, or, when it cannot be sent, a failure notice and an error (nothing was loaded; Lambda
/// retries the event).
async fn hand_off<P: PipelineApi>(
    aws: &Aws,
    pipelines: &P,
    config: &LambdaConfig,
    marker: &S3Marker,
    db: &Db,
    decision: &Decision,
    to: &Handoff,
) -> Result<String> {
    let id = marker.id();
    let note = decision.describe(Some(to));
    let sent = match to {
        Handoff::Queue(url) => auto::send_to_queue(aws, url, marker, &note)
            .await
            .map(|message| format!("message {message}")),
        Handoff::Pipeline => start_pipeline(aws, pipelines, config, marker).await,
    };
    let record = Record {
        marker: &id,
        decision,
        handed_to: Some(to.to_string()),
        sent: sent.is_ok(),
        error: sent.as_ref().err().map(ToString::to_string),
    };
    if let Err(err) = auto::record(db, &record).await {
        tracing::warn!("the decision could not be recorded: {err}");
    }
    match sent {
        Ok(done) => {
            let notice = handoff_notice(&config.notify_name, &id, &note);
            notify::send_all(&config.targets, &notice, Some(aws)).await;
            Ok(format!("{id}: {note}; {done}"))
        }
        Err(err) => {
            let what = format!("handing off marker {id}: {note}");
            give_up(config.recipients(aws), &what, &err).await;
            Err(err)
        }
    }
}

/// The notice of a batch handed off: the decision; the loader sends the run's own notice.
fn handoff_notice(name: &str, marker: &str, note: &str) -> Notice {
    let name = Some(name.trim())
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_NOTIFY_NAME);
    Notice {
        subject: format!("{name}_Pipeline_Handoff"),
        body: format!(
            "stockload handed the batch of marker {marker} to the long-running loader.\n\n\
             {note}\n\nNothing was loaded by the Lambda; the loader sends the run's own notice \
             when it ends.\n"
        ),
        success: true,
    }
}

async fn database(aws: &Aws, source: &DbSource) -> Result<Db> {
    let timeout = std::time::Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS);
    match source {
        DbSource::Url(url) => Db::new(Some(url.expose()), DEFAULT_WORK_MEM, timeout),
        DbSource::Secret {
            host,
            port,
            database,
            secret_arn,
        } => {
            let (user, password) = secret_credentials(aws, secret_arn).await?;
            Ok(Db::with_credentials(
                host,
                *port,
                database,
                &user,
                password.expose(),
                DEFAULT_WORK_MEM,
                timeout,
            ))
        }
    }
}

/// Pipeline mode: starts the configured pipeline from the definition in the source bucket.
async fn start_pipeline<P: PipelineApi>(
    aws: &Aws,
    pipelines: &P,
    config: &LambdaConfig,
    marker: &S3Marker,
) -> Result<String> {
    let definition = Location::S3 {
        bucket: config.source_bucket.clone(),
        key: config.definition_key.clone(),
    };
    let activation = activation(aws, config);
    pipeline::aws::start(
        aws,
        pipelines,
        &config.pipeline_name,
        &definition,
        &marker.id(),
        activation,
    )
    .await
}

/// The secret password and the endpoint for the pipeline's parameters, when the Lambda knows the
/// database (so they never have to be stored in the definition).
async fn activation(aws: &Aws, config: &LambdaConfig) -> Result<Option<Activation>> {
    let Some(DbSource::Secret {
        host, secret_arn, ..
    }) = &config.db
    else {
        return Ok(None);
    };
    let (_, password) = secret_credentials(aws, secret_arn).await?;
    Ok(Some(Activation {
        password,
        endpoint: host.clone(),
    }))
}

/// Reads `username` and `password` from a Secrets Manager secret (the password stays a
/// [`Secret`]: no log line or error can show it).
pub async fn secret_credentials(aws: &Aws, secret_arn: &str) -> Result<(String, Secret)> {
    const SERVICE: &str = "Secrets Manager";
    let action = || format!("GetSecretValue {secret_arn}");
    let fail = |reason: &str| Error::Aws {
        service: SERVICE,
        action: action(),
        reason: reason.to_string(),
        source: None,
    };
    let secret = aws_sdk_secretsmanager::Client::new(&aws.config)
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|e| aws_error(SERVICE, action(), e))?;
    let text = secret
        .secret_string()
        .ok_or_else(|| fail("the secret has no string value"))?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|_| fail("the secret is not JSON with username and password"))?;
    match (value["username"].as_str(), value["password"].as_str()) {
        (Some(user), Some(password)) => Ok((user.to_string(), Secret::new(password))),
        _ => Err(fail("the secret lacks username or password")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_comes_from_the_environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let config = LambdaConfig::from_vars(vars(&[
            ("STOCKLOAD_SOURCE_BUCKET", "src"),
            ("STOCKLOAD_PIPELINE_NAME", "p"),
        ]))
        .unwrap();
        assert_eq!(config.mode, Mode::Pipeline);
        assert_eq!(config.definition_key, DEFAULT_DEFINITION_KEY);
        let err = LambdaConfig::from_vars(vars(&[
            ("STOCKLOAD_MODE", "direct"),
            ("STOCKLOAD_SOURCE_BUCKET", "s"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("DATABASE_URL or STOCKLOAD_DB_SECRET_ARN"),
            "{err}"
        );
        let err = LambdaConfig::from_vars(vars(&[])).unwrap_err().to_string();
        assert!(err.contains("STOCKLOAD_SOURCE_BUCKET"), "{err}");
    }

    #[test]
    fn auto_mode_needs_a_database_and_a_hand_off() {
        let vars = |pairs: Vec<(&'static str, &'static str)>| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let base = vec![
            ("STOCKLOAD_MODE", "auto"),
            ("STOCKLOAD_SOURCE_BUCKET", "s"),
            ("DATABASE_URL", "postgres://h/db"),
        ];
        let err = LambdaConfig::from_vars(vars(base.clone()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("STOCKLOAD_HANDOFF"), "{err}");
        let mut full = base.clone();
        full.extend([
            (
                "STOCKLOAD_HANDOFF",
                "sqs:https://sqs.us-east-1.amazonaws.com/1/q",
            ),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024"),
            ("STOCKLOAD_DIRECT_MAX_BYTES", "500000000"),
        ]);
        let config = LambdaConfig::from_vars(vars(full.clone())).unwrap();
        assert_eq!(config.mode, Mode::Auto);
        assert_eq!(
            config.handoff,
            Some(Handoff::Queue(
                "https://sqs.us-east-1.amazonaws.com/1/q".into()
            ))
        );
        assert_eq!(config.limits.memory_mib, Some(1024));
        assert_eq!(config.limits.direct_max_bytes, Some(500_000_000));
        full.retain(|(k, _)| *k != "STOCKLOAD_DIRECT_MAX_BYTES");
        full.push(("STOCKLOAD_DIRECT_MAX_BYTES", "5 GB"));
        let err = LambdaConfig::from_vars(vars(full)).unwrap_err().to_string();
        assert!(
            err.contains("STOCKLOAD_DIRECT_MAX_BYTES is \"5 GB\""),
            "{err}"
        );
        let mut no_db = base;
        no_db.retain(|(k, _)| *k != "DATABASE_URL");
        let err = LambdaConfig::from_vars(vars(no_db))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auto mode needs DATABASE_URL"), "{err}");
    }
}
