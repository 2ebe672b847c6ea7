//! Every clap type of the `stockload` command line. Doc comments are the help text.

use std::path::PathBuf;

use crate::secret::Secret;
use clap::{Args, Parser, Subcommand};

use crate::plan::{ChangeBasis, DEFAULT_CONCURRENCY, DEFAULT_MAX_REJECT_RATIO};

/// Load batches of company stock-price CSV files into PostgreSQL, with the transforms in
/// versioned SQL that runs inside the database.
#[derive(Debug, Parser)]
#[command(name = "stockload", version, about, long_about = None)]
#[command(after_help = "Locations are local paths or s3://bucket/key URIs.\n\
    Database: --database-url, else DATABASE_URL, else the PG* variables (PGHOST, PGUSER, ...).\n\
    Start with `stockload demo`: it needs nothing but a local PostgreSQL installation.")]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
    /// Log lines on stderr: text (coloured only on a terminal; NO_COLOR honoured) or json (one
    /// object per line, for log pipelines).
    #[arg(
        long,
        global = true,
        value_enum,
        env = "STOCKLOAD_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: crate::LogFormat,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the schema migrations (idempotent); with --distributed also put the schema on a
    /// Citus cluster.
    Migrate(MigrateArgs),
    /// Load a batch: migrate if needed, stage every listed file with COPY, run the SQL transforms.
    Load(LoadArgs),
    /// List the embedded SQL scripts, or print one (the exact text loads run).
    Sql(SqlArgs),
    /// What an analyst checks first: rows, companies, dates, changes, the last run.
    Stats(StatsArgs),
    /// List the data-quality flags (of one run, of one check): the rows the checks found suspect.
    Quality(QualityArgs),
    /// Write the table as historical_stock_data.csv (no header, the nine columns in table order).
    Export(ExportArgs),
    /// Write a run's report: one self-contained HTML page (no script, nothing fetched).
    Report(ReportArgs),
    /// Start a throwaway PostgreSQL, load a generated sample batch (with faulty files), show
    /// the summary and stats, and clean up. Uses DATABASE_URL instead when it is set.
    #[cfg(feature = "dev-tools")]
    Demo(DemoArgs),
    /// Generate a realistic sample batch (Stocks/*.csv and CompanyNames/top_companies.txt).
    #[cfg(feature = "dev-tools")]
    Sample(SampleArgs),
    /// Run a load for every new .SUCCESS marker in a folder, bucket or SQS queue.
    Watch(WatchArgs),
    /// AWS Data Pipeline: print (or upload) the pipeline definition.
    #[command(subcommand)]
    Pipeline(PipelineCommand),
    /// Send a test notice to the configured notification targets.
    NotifyTest(NotifyTestArgs),
    /// Set up the source bucket: folders, SQL scripts (and the pipeline definition).
    #[cfg(feature = "aws")]
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Start a throwaway PostgreSQL, print its URL on stdout, and remove it when stdin closes
    /// (for scripts and benchmarks).
    #[cfg(feature = "dev-tools")]
    #[command(hide = true)]
    DevPostgres(DevPostgresArgs),
}

/// Where the database is.
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://user@host:5432/db?sslmode=require. Without it the PG*
    /// variables are used. Prefer PGPASSWORD or ~/.pgpass to a password in the URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// Seconds to wait for the connection.
    #[arg(long, default_value_t = crate::plan::DEFAULT_CONNECT_TIMEOUT_SECS, value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// work_mem and temp_buffers of the load's session: sizes the window sort and the staging
    /// table's buffers.
    #[arg(long, default_value = crate::plan::DEFAULT_WORK_MEM)]
    pub work_mem: String,
}

impl DbArgs {
    /// The database these flags (or DATABASE_URL / the PG* variables) name.
    pub fn db(&self) -> crate::error::Result<crate::db::Db> {
        crate::db::Db::new(
            self.database_url.as_ref().map(Secret::expose),
            &self.work_mem,
            std::time::Duration::from_secs(self.connect_timeout),
        )
    }
}

/// `stockload dev-postgres`.
#[derive(Debug, Args, Clone)]
pub struct DevPostgresArgs {
    /// Start a Citus cluster instead: a coordinator and this many workers (needs the citus
    /// extension installed, scripts/citus-build.sh); the printed URL is the coordinator's
    /// database `stockload`, with the extension and the workers ready.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub citus_workers: usize,
}

/// `stockload migrate`.
#[derive(Debug, Args, Clone)]
pub struct MigrateArgs {
    /// Where the database is.
    #[command(flatten)]
    pub db: DbArgs,
    /// On a Citus coordinator (extension created, workers added): distribute
    /// historical_stocks_data by company_name and make the ledger tables reference tables
    /// (sql/citus/distribute.sql; idempotent). Loads then run on the workers.
    #[arg(long)]
    pub distributed: bool,
}

/// `stockload load`.
#[derive(Debug, Args, Clone)]
pub struct LoadArgs {
    /// Folder (or s3://bucket/prefix/) holding the company CSV files.
    #[arg(long, value_name = "DIR|S3_URI")]
    pub source: String,
    /// Index file naming the companies to load ('AAPL.csv', 'MSFT.csv', ... or one per line).
    #[arg(long, value_name = "FILE|S3_URI")]
    pub companies: String,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// How runs are done.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Options of every run, however it is started.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// How value_change and daily_percent_change are computed.
    #[arg(long, value_enum, default_value_t = ChangeBasis::PreviousClose)]
    pub change_basis: ChangeBasis,
    /// Fail the run (and load nothing) when more than this fraction of rows is rejected.
    #[arg(long, default_value_t = DEFAULT_MAX_REJECT_RATIO, value_name = "RATIO")]
    pub max_reject_ratio: f64,
    /// Files read and parsed at once, at most.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Bytes of files read and parsed at once (a larger file is read alone); bounds the memory
    /// a run uses. Accepts a suffix: 64MiB, 512KiB, 1GiB.
    #[arg(long, default_value_t = crate::plan::DEFAULT_MEMORY_BUDGET, value_parser = parse_bytes, value_name = "BYTES")]
    pub memory_budget: u64,
    /// Also read listed files that are symbolic links to files outside the source folder (by
    /// default they are skipped unread).
    #[arg(long)]
    pub follow_symlinks: bool,
    /// Rows per staging chunk of a load into an empty table (whole companies per chunk): the
    /// transforms of one chunk run while the next is staged.
    #[arg(long, default_value_t = crate::plan::DEFAULT_CHUNK_ROWS, value_name = "ROWS")]
    pub chunk_rows: u64,
    /// Fail the run (and load nothing) when the quality checks' error flags exceed this fraction
    /// of the rows loaded (e.g. 0.001); by default a run never fails for them.
    #[arg(long, value_name = "RATIO")]
    pub fail_on_quality_errors: Option<f64>,
    /// Run the transform scripts from this folder instead of the embedded ones (to try a change).
    #[arg(long, value_name = "DIR")]
    pub sql_dir: Option<PathBuf>,
    /// Seconds a load waits for its strong locks (a first load's key drop) behind open readers,
    /// in short tries that let other readers through in between, before it fails naming them.
    #[arg(long, default_value_t = crate::plan::DEFAULT_LOCK_WAIT_SECS, value_name = "SECS")]
    pub lock_wait: u64,
    /// After each run, succeeded or failed, write its HTML report here: a file, an s3:// key,
    /// or a folder or prefix ending in / (then run-<id>.html inside it).
    #[arg(long, value_name = "PATH|S3_URI")]
    pub report: Option<String>,
    /// Database connection.
    #[command(flatten)]
    pub db: DbArgs,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Notifications.
    #[command(flatten)]
    pub notify: NotifyArgs,
}

/// `stockload watch`.
#[derive(Debug, Args, Clone)]
#[command(group(clap::ArgGroup::new("trigger").required(true).args(["monitored", "queue"])))]
pub struct WatchArgs {
    /// Poll this folder or s3://bucket/prefix/ for new .SUCCESS markers.
    #[arg(long, value_name = "DIR|S3_URI")]
    pub monitored: Option<String>,
    /// Long-poll this SQS queue URL for S3 event notifications of .SUCCESS markers.
    #[arg(long, value_name = "QUEUE_URL")]
    pub queue: Option<String>,
    /// Folder or s3:// prefix of the company files. With --queue it defaults to the marker's
    /// own folder.
    #[arg(long, value_name = "DIR|S3_URI")]
    pub source: Option<String>,
    /// Index file. Defaults to top_companies.txt in the source folder.
    #[arg(long, value_name = "FILE|S3_URI")]
    pub companies: Option<String>,
    /// Seconds between polls of --monitored.
    #[arg(long, default_value_t = crate::plan::DEFAULT_POLL_INTERVAL_SECS, value_name = "SECONDS")]
    pub interval: u64,
    /// Handle what is there now, then exit (--monitored: one pass; --queue: until the queue
    /// answers empty).
    #[arg(long)]
    pub once: bool,
    /// Failed runs per marker before it is given up (with --queue: left to the dead-letter queue).
    #[arg(long, default_value_t = crate::plan::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
    /// How runs are done.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Who hears about each attempted run.
#[derive(Debug, Args, Clone, Default)]
pub struct NotifyArgs {
    /// Send the run notice here (repeatable): sns:TOPIC_ARN,
    /// smtp://HOST[:PORT]?from=ADDR&to=ADDR[,ADDR][&tls=starttls|tls|none] (credentials from
    /// SMTP_USERNAME/SMTP_PASSWORD), or console.
    #[arg(
        long = "notify",
        value_name = "TARGET",
        env = "STOCKLOAD_NOTIFY",
        hide_env_values = true
    )]
    pub targets: Vec<Secret>,
    /// Subject prefix: NAME_Pipeline_Success / NAME_Pipeline_Failure.
    #[arg(
        long,
        value_name = "NAME",
        env = "STOCKLOAD_NOTIFY_NAME",
        default_value = crate::plan::DEFAULT_NOTIFY_NAME
    )]
    pub notify_name: String,
}

impl AwsArgs {
    /// The AWS client options these flags ask for.
    pub fn options(&self) -> crate::aws::AwsOptions {
        crate::aws::AwsOptions {
            s3_endpoint: self.s3_endpoint.clone(),
            s3_virtual_hosted: self.s3_virtual_hosted,
        }
    }
}

/// AWS options for S3 locations.
#[derive(Debug, Args, Clone, Default)]
pub struct AwsArgs {
    /// S3-compatible endpoint (also read from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL). With a
    /// custom endpoint, path-style addressing is used.
    #[arg(long, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Use virtual-hosted-style addressing even with a custom endpoint.
    #[arg(long)]
    pub s3_virtual_hosted: bool,
}

/// `stockload sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Script to print (e.g. insert_query.sql); without it, list them.
    pub name: Option<String>,
}

/// `stockload stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// Database connection.
    #[command(flatten)]
    pub db: DbArgs,
}

/// `stockload quality`.
#[derive(Debug, Args)]
pub struct QualityArgs {
    /// Only the flags raised by this run (load_runs.id), with its counts per check.
    #[arg(long, value_name = "N")]
    pub run: Option<i64>,
    /// Only this check's flags.
    #[arg(long, value_name = "NAME", value_parser = clap::builder::PossibleValuesParser::new(
        crate::quality::CHECKS.map(|(name, _)| name)))]
    pub check: Option<String>,
    /// At most this many flags.
    #[arg(long, default_value_t = 1000)]
    pub limit: u32,
    /// Print as JSON.
    #[arg(long)]
    pub json: bool,
    /// Database connection.
    #[command(flatten)]
    pub db: DbArgs,
}

/// `stockload export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Output file (or s3://bucket/Output/historical_stock_data.csv).
    #[arg(long, value_name = "FILE|S3_URI")]
    pub to: String,
    /// Database connection.
    #[command(flatten)]
    pub db: DbArgs,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `stockload report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run (load_runs.id); default: the last run.
    #[arg(long, value_name = "N")]
    pub run: Option<i64>,
    /// Where to write it: a file, an s3:// key, or a folder or prefix ending in / (then
    /// run-<id>.html inside it).
    #[arg(long, value_name = "PATH|S3_URI")]
    pub to: String,
    /// Database connection.
    #[command(flatten)]
    pub db: DbArgs,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `stockload demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Company files to generate.
    #[arg(long, default_value_t = 20)]
    pub files: usize,
    /// Trading days per file.
    #[arg(long, default_value_t = 250)]
    pub rows: usize,
    /// Use this database instead of a throwaway one.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
}

/// `stockload sample`.
#[derive(Debug, Args)]
pub struct SampleArgs {
    /// Folder to write Stocks/ and CompanyNames/ into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Company files to write.
    #[arg(long, default_value_t = 20)]
    pub files: usize,
    /// How many the index lists (default: all).
    #[arg(long)]
    pub listed: Option<usize>,
    /// Trading days per file.
    #[arg(long, default_value_t = 250)]
    pub rows: usize,
    /// Add faulty files (empty, header-only, bad rows, not UTF-8, missing).
    #[arg(long)]
    pub faulty: bool,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `stockload bucket ...`.
#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Create the bucket if needed, the folders CompanyNames/ Logs/ Output/ Scripts/ Stocks/, and
    /// upload the SQL scripts to Scripts/. Safe to re-run.
    Init(BucketArgs),
    /// Upload the embedded SQL scripts to Scripts/ again.
    UploadScripts(BucketArgs),
    /// Make the (monitored) bucket send an S3 event to an SQS queue for every new .SUCCESS
    /// object, for `stockload watch --queue`.
    NotifyQueue(NotifyQueueArgs),
}

/// `stockload bucket notify-queue`.
#[derive(Debug, Args)]
pub struct NotifyQueueArgs {
    /// The bucket, as s3://BUCKET.
    #[arg(value_name = "S3_URI")]
    pub bucket: String,
    /// The queue's ARN (arn:aws:sqs:REGION:ACCOUNT:NAME).
    #[arg(value_name = "QUEUE_ARN")]
    pub queue_arn: String,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// A bucket to work on.
#[derive(Debug, Args)]
pub struct BucketArgs {
    /// The bucket, as s3://BUCKET.
    #[arg(value_name = "S3_URI")]
    pub bucket: String,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `stockload notify-test`.
#[derive(Debug, Args)]
pub struct NotifyTestArgs {
    /// Notifications.
    #[command(flatten)]
    pub notify: NotifyArgs,
    /// AWS options.
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// `stockload pipeline ...`.
#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Print the Data Pipeline definition (the JSON `aws datapipeline put-pipeline-definition`
    /// takes), checked for what AWS would reject.
    Definition(DefinitionArgs),
}

/// Settings of the pipeline definition: a JSON config file, overridden by flags.
#[derive(Debug, Args)]
pub struct DefinitionArgs {
    /// JSON file with the settings (keys as the flags, with underscores: pipeline_name, ...).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The settings (each flag overrides the file's key); boxed, being large.
    #[command(flatten)]
    pub settings: Box<crate::pipeline::SettingsArgs>,
    /// Also upload the definition to s3://SOURCE_BUCKET/pipeline_definition.json.
    #[arg(long)]
    pub upload: bool,
    /// AWS options (for --upload).
    #[command(flatten)]
    pub aws: AwsArgs,
}

/// Parses a byte count: a number with an optional suffix (B, KiB, MiB, GiB; KB/MB/GB and K/M/G
/// are read as the binary units too).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count (e.g. 64MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?} (use KiB, MiB or GiB)"
            ))
        }
    };
    number
        .checked_mul(1 << shift)
        .filter(|bytes| *bytes > 0)
        .ok_or_else(|| format!("{text:?} is not a usable byte count"))
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn byte_counts_take_binary_units() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes("1000"), Ok(1000));
        for bad in ["", "MiB", "0", "12XB", "-5", "99999999999999GiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
