//! One file per subcommand, each with a `run(args)`; this file dispatches the command line to them
//! and keeps the few helpers several commands share.

/// `print!` for the commands' output: a closed stdout (`stockload sql | head`) ends the output
/// quietly instead of panicking, as `print!` would.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cmd::write_stdout(format_args!($($arg)*)) };
}

/// `println!` for the commands' output (see [`out!`]).
macro_rules! outln {
    () => { $crate::cmd::write_stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cmd::write_stdout(format_args!("{}\n", format_args!($($arg)*))) };
}

#[cfg(feature = "aws")]
mod bucket;
#[cfg(feature = "dev-tools")]
mod demo;
#[cfg(feature = "dev-tools")]
mod dev_postgres;
mod export;
mod load;
mod migrate;
mod notify_test;
mod pipeline;
mod quality;
mod report;
#[cfg(feature = "dev-tools")]
mod sample;
mod sql;
mod stats;
mod watch;

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::{self, Cli, Command};
use crate::error::{Error, Result};
use crate::logging::{log_format, LogFormat};
use crate::plan::Plan;
use crate::storage::{Location, Storage};

/// Runs one command line. `Ok(false)` means the command ran and reports failure (a failed load).
pub async fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Migrate(args) => migrate::run(args).await,
        Command::Load(args) => load::run(args).await,
        Command::Watch(args) => watch::run(args).await,
        Command::Pipeline(cli::PipelineCommand::Definition(args)) => pipeline::run(args).await,
        Command::NotifyTest(args) => notify_test::run(args).await,
        Command::Sql(args) => sql::run(args),
        Command::Stats(args) => stats::run(args).await,
        Command::Quality(args) => quality::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Report(args) => report::run(args).await,
        #[cfg(feature = "dev-tools")]
        Command::Demo(args) => demo::run(args).await,
        #[cfg(feature = "aws")]
        Command::Bucket(command) => bucket::run(command).await,
        #[cfg(feature = "dev-tools")]
        Command::DevPostgres(args) => dev_postgres::run(args).await,
        #[cfg(feature = "dev-tools")]
        Command::Sample(args) => sample::run(args),
    }
}

/// Validates run flags into a plan for `source` and `companies`.
pub fn run_plan(args: &cli::RunArgs, source: Location, companies: Location) -> Result<Plan> {
    if !(0.0..=1.0).contains(&args.max_reject_ratio) {
        return Err(Error::Config(format!(
            "--max-reject-ratio must be between 0 and 1, not {}",
            args.max_reject_ratio
        )));
    }
    if let Some(ratio) = args.fail_on_quality_errors {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::Config(format!(
                "--fail-on-quality-errors must be between 0 and 1, not {ratio}"
            )));
        }
    }
    let mut plan = Plan::new(source, companies);
    plan.fail_on_quality_errors = args.fail_on_quality_errors;
    plan.basis = args.change_basis;
    plan.max_reject_ratio = args.max_reject_ratio;
    plan.concurrency = args.concurrency.max(1);
    plan.memory_budget = args.memory_budget;
    plan.follow_symlinks = args.follow_symlinks;
    plan.chunk_rows = args.chunk_rows.max(1);
    plan.lock_wait = std::time::Duration::from_secs(args.lock_wait);
    plan.sql_dir = args.sql_dir.clone();
    Ok(plan)
}

/// A reader that can reach S3 when any of `locations` is in S3.
pub async fn reader_for(locations: &[&Location], args: &cli::AwsArgs) -> Result<Storage> {
    match locations.iter().find(|l| l.is_s3()) {
        Some(s3) => {
            let aws = crate::aws::load_for(&s3.to_string(), &args.options()).await?;
            Ok(Storage::new(Some(aws)))
        }
        None => Ok(Storage::new(None)),
    }
}

/// The bucket of an `s3://BUCKET[/]` argument.
#[cfg(feature = "aws")]
pub fn bucket_name(uri: &str) -> Result<String> {
    match Location::parse(uri)? {
        Location::S3 { bucket, key } if key.is_empty() => Ok(bucket),
        _ => Err(Error::Config(format!(
            "{uri:?} is not a bucket: write s3://BUCKET"
        ))),
    }
}

/// A progress bar on stderr when it is a terminal (files done, rows read, files/s).
pub fn progress_bar(wanted: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() || log_format() == LogFormat::Json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files, {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Writes command output to stdout. A reader that went away (broken pipe) is not an error worth
/// reporting; any other failure is logged, once per write, rather than panicking.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!("could not write to standard output: {err}");
        }
    }
}
