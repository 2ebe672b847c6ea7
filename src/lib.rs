//! stockload: load batches of company stock-price CSV files into PostgreSQL with the transforms in
//! versioned SQL. See ARCHITECTURE.md for how a run flows through these modules.
#![warn(missing_docs)]

pub mod aws;
pub mod bucket;
pub mod cli;
pub mod db;
pub mod devdb;
pub mod error;
pub mod ledger;
pub mod load;
pub mod notify;
pub mod parse;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod sample;
pub mod source;
pub mod stage;
pub mod transform;

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::aws::{Aws, AwsOptions};
use crate::cli::{Cli, Command, DbArgs};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::source::{Location, Reader};

/// Logs go to stderr; `RUST_LOG` overrides the default level (info for stockload, warn otherwise).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,stockload=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs one command line. `Ok(false)` means the command ran and reports failure (a failed load).
pub async fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::Migrate(args) => {
            let db = database(&args)?;
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
        Command::Load(args) => {
            // Notification targets first: every later failure must reach them.
            let targets = notify::parse_targets(&args.notify.targets)?;
            let name = &args.notify.notify_name;
            let prepared = database(&args.db).and_then(|db| Ok((db, load_plan(&args)?)));
            let needs_s3 = prepared
                .as_ref()
                .is_ok_and(|(_, plan)| plan.source.is_s3() || plan.companies.is_s3());
            let aws = if needs_s3 || notify::needs_aws(&targets) {
                Some(Aws::load(&aws_options(&args.aws)).await)
            } else {
                None
            };
            let (db, plan) = match prepared {
                Ok(prepared) => prepared,
                Err(err) => {
                    let notice = notify::Notice::from_error(name, "invalid configuration", &err);
                    notify::send_all(&targets, &notice, aws.as_ref()).await;
                    return Err(err);
                }
            };
            let reader = Reader::new(aws.clone());
            let progress = progress_bar(!args.json);
            let report = load::run(&db, &reader, &plan, &progress).await;
            print_summary(&report.summary, args.json);
            let notice = notify::Notice::from_summary(name, &report.summary);
            notify::send_all(&targets, &notice, aws.as_ref()).await;
            Ok(report.summary.ok())
        }
        Command::NotifyTest(args) => {
            let targets = notify::parse_targets(&args.notify.targets)?;
            if targets.is_empty() {
                return Err(Error::Config(
                    "no notification target: give --notify or set STOCKLOAD_NOTIFY".into(),
                ));
            }
            let aws = if notify::needs_aws(&targets) {
                Some(Aws::load(&aws_options(&args.aws)).await)
            } else {
                None
            };
            let notice = notify::Notice::test(&args.notify.notify_name);
            let failures = notify::send_all(&targets, &notice, aws.as_ref()).await;
            for target in &targets {
                println!("{target}");
            }
            println!(
                "sent {:?} to {} of {} targets",
                notice.subject,
                targets.len() - failures.len(),
                targets.len()
            );
            Ok(failures.is_empty())
        }
        Command::Sql(args) => {
            match args.name {
                Some(name) => {
                    let text = transform::embedded(&name).ok_or_else(|| {
                        Error::Config(format!(
                            "no script named {name}; `stockload sql` lists them"
                        ))
                    })?;
                    print!("{text}");
                }
                None => {
                    for name in transform::list() {
                        let about = transform::embedded(name)
                            .and_then(|t| t.lines().next())
                            .unwrap_or_default()
                            .trim_start_matches("-- ");
                        println!("{about}");
                    }
                }
            }
            Ok(true)
        }
        Command::Stats(args) => {
            let db = database(&args.db)?;
            let mut conn = db.connect().await?;
            db::migrate(&mut conn).await?;
            let stats = report::stats(&mut conn).await?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&stats).unwrap_or_default()
                );
            } else {
                print!("{stats}");
            }
            Ok(true)
        }
        Command::Export(args) => {
            let db = database(&args.db)?;
            let target = Location::parse(&args.to)?;
            let mut conn = db.connect().await?;
            db::migrate(&mut conn).await?;
            let reader = reader_for(&[&target], &args.aws).await;
            let bytes = report::export(&mut conn, &target, &reader).await?;
            println!("wrote {bytes} bytes to {target}");
            Ok(true)
        }
        Command::Demo(args) => demo(args).await,
        Command::Bucket(command) => {
            let (args, scripts_only) = match &command {
                cli::BucketCommand::Init(args) => (args, false),
                cli::BucketCommand::UploadScripts(args) => (args, true),
            };
            let bucket = bucket_name(&args.bucket)?;
            let aws = Aws::load(&aws_options(&args.aws)).await;
            let done = if scripts_only {
                bucket::upload_scripts(&aws, &bucket).await?
            } else {
                bucket::init(&aws, &bucket).await?
            };
            for line in done {
                println!("{line}");
            }
            Ok(true)
        }
        Command::DevPostgres => {
            let cluster = tokio::task::spawn_blocking(|| devdb::TempCluster::start(&[]))
                .await
                .map_err(|e| Error::Cluster(e.to_string()))??;
            println!("{}", cluster.url("postgres"));
            // Hold the cluster until whoever started us closes our stdin.
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
            drop(cluster);
            Ok(true)
        }
        Command::Sample(args) => {
            let spec = sample::SampleSpec {
                files: args.files,
                listed: args.listed.unwrap_or(args.files),
                rows: args.rows,
                faulty: args.faulty,
                seed: args.seed,
            };
            let batch = sample::generate(&args.out, &spec)?;
            println!(
                "wrote {} files to {} and the index {} ({} listed)",
                args.files,
                batch.stocks.display(),
                batch.companies.display(),
                batch.listed.len()
            );
            Ok(true)
        }
    }
}

/// The database from connection flags/environment.
pub fn database(args: &DbArgs) -> Result<Db> {
    Db::new(
        args.database_url.as_deref(),
        &args.work_mem,
        Duration::from_secs(args.connect_timeout),
    )
}

/// Validates `load` flags into a plan.
pub fn load_plan(args: &cli::LoadArgs) -> Result<Plan> {
    if !(0.0..=1.0).contains(&args.max_reject_ratio) {
        return Err(Error::Config(format!(
            "--max-reject-ratio must be between 0 and 1, not {}",
            args.max_reject_ratio
        )));
    }
    let mut plan = Plan::new(
        Location::parse(&args.source)?,
        Location::parse(&args.companies)?,
    );
    plan.basis = args.change_basis;
    plan.max_reject_ratio = args.max_reject_ratio;
    plan.concurrency = args.concurrency.max(1);
    plan.sql_dir = args.sql_dir.clone();
    Ok(plan)
}

/// A reader that can reach S3 when any of `locations` is in S3.
pub async fn reader_for(locations: &[&Location], args: &cli::AwsArgs) -> Reader {
    if locations.iter().any(|l| l.is_s3()) {
        Reader::new(Some(Aws::load(&aws_options(args)).await))
    } else {
        Reader::new(None)
    }
}

/// The bucket of an `s3://BUCKET[/]` argument.
pub fn bucket_name(uri: &str) -> Result<String> {
    match Location::parse(uri)? {
        Location::S3 { bucket, key } if key.is_empty() => Ok(bucket),
        _ => Err(Error::Config(format!(
            "{uri:?} is not a bucket: write s3://BUCKET"
        ))),
    }
}

fn aws_options(args: &cli::AwsArgs) -> AwsOptions {
    AwsOptions {
        s3_endpoint: args.s3_endpoint.clone(),
        s3_virtual_hosted: args.s3_virtual_hosted,
    }
}

/// A progress bar on stderr when it is a terminal (files done, rows read, files/s).
pub fn progress_bar(wanted: bool) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files, {msg} ({per_sec})",
    ) {
        bar.set_style(style);
    }
    bar
}

fn print_summary(summary: &load::Summary, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).unwrap_or_default()
        );
    } else {
        print!("{summary}");
    }
}

async fn demo(args: cli::DemoArgs) -> Result<bool> {
    let cluster;
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            println!("starting a throwaway PostgreSQL ...");
            let started = tokio::task::spawn_blocking(|| devdb::TempCluster::start(&[]))
                .await
                .map_err(|e| Error::Cluster(e.to_string()))??;
            started.create_database("stockload_demo").await?;
            let url = started.url("stockload_demo");
            cluster = Some(started);
            let _ = &cluster;
            url
        }
    };
    let db = Db::new(Some(&url), "64MB", Duration::from_secs(30))?;
    let folder = tempfile::Builder::new()
        .prefix("stockload-demo-")
        .tempdir()
        .map_err(|e| Error::io("cannot create", std::env::temp_dir(), e))?;
    let spec = sample::SampleSpec {
        files: args.files,
        listed: args.files,
        rows: args.rows,
        faulty: true,
        seed: 42,
    };
    let batch = sample::generate(folder.path(), &spec)?;
    println!(
        "generated {} company files ({} trading days each) and {} faulty cases in {}",
        args.files,
        args.rows,
        sample::FAULTY_FILES.len(),
        folder.path().display()
    );
    let plan = Plan::new(
        Location::Local(batch.stocks.clone()),
        Location::Local(batch.companies.clone()),
    );
    let report = load::run(&db, &Reader::new(None), &plan, &progress_bar(true)).await;
    println!();
    print!("{}", report.summary);
    let mut conn = db.connect().await?;
    println!();
    print!("{}", report::stats(&mut conn).await?);
    println!("\nall done; the throwaway database and sample files are removed now");
    Ok(report.summary.ok())
}
