//! Every clap type of the `stockload` command line. Doc comments are the help text.

use std::path::PathBuf;

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
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the schema migrations (idempotent).
    Migrate(DbArgs),
    /// Load a batch: migrate if needed, stage every listed file with COPY, run the SQL transforms.
    Load(LoadArgs),
    /// List the embedded SQL scripts, or print one (the exact text loads run).
    Sql(SqlArgs),
    /// What an analyst checks first: rows, companies, dates, changes, the last run.
    Stats(StatsArgs),
    /// Write the table as historical_stock_data.csv (no header, the nine columns in table order).
    Export(ExportArgs),
    /// Start a throwaway PostgreSQL, load a generated sample batch (with faulty files), show
    /// the summary and stats, and clean up. Uses DATABASE_URL instead when it is set.
    Demo(DemoArgs),
    /// Generate a realistic sample batch (Stocks/*.csv and CompanyNames/top_companies.txt).
    Sample(SampleArgs),
    /// Send a test notice to the configured notification targets.
    NotifyTest(NotifyTestArgs),
    /// Set up the source bucket: folders, SQL scripts (and the pipeline definition).
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Start a throwaway PostgreSQL, print its URL on stdout, and remove it when stdin closes
    /// (for scripts and benchmarks).
    #[command(hide = true)]
    DevPostgres,
}

/// Where the database is.
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// PostgreSQL URL, e.g. postgres://user@host:5432/db?sslmode=require. Without it the PG*
    /// variables are used. Prefer PGPASSWORD or ~/.pgpass to a password in the URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Seconds to wait for the connection.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub connect_timeout: u64,
    /// work_mem and temp_buffers of the load's session: sizes the window sort and the staging
    /// table's buffers.
    #[arg(long, default_value = "256MB")]
    pub work_mem: String,
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
    /// How value_change and daily_percent_change are computed.
    #[arg(long, value_enum, default_value_t = ChangeBasis::PreviousClose)]
    pub change_basis: ChangeBasis,
    /// Fail the run (and load nothing) when more than this fraction of rows is rejected.
    #[arg(long, default_value_t = DEFAULT_MAX_REJECT_RATIO, value_name = "RATIO")]
    pub max_reject_ratio: f64,
    /// Files read and parsed at once.
    #[arg(long, default_value_t = DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Run the transform scripts from this folder instead of the embedded ones (to try a change).
    #[arg(long, value_name = "DIR")]
    pub sql_dir: Option<PathBuf>,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
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

/// Who hears about each attempted run.
#[derive(Debug, Args, Clone, Default)]
pub struct NotifyArgs {
    /// Send the run notice here (repeatable): sns:TOPIC_ARN,
    /// smtp://HOST[:PORT]?from=ADDR&to=ADDR[,ADDR][&tls=starttls|tls|none] (credentials from
    /// SMTP_USERNAME/SMTP_PASSWORD), or console.
    #[arg(long = "notify", value_name = "TARGET", env = "STOCKLOAD_NOTIFY")]
    pub targets: Vec<String>,
    /// Subject prefix: NAME_Pipeline_Success / NAME_Pipeline_Failure.
    #[arg(
        long,
        value_name = "NAME",
        env = "STOCKLOAD_NOTIFY_NAME",
        default_value = "stockload"
    )]
    pub notify_name: String,
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
    pub database_url: Option<String>,
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
