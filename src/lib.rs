//! stockload: load batches of company stock-price CSV files into PostgreSQL with the transforms in
//! versioned SQL. See ARCHITECTURE.md for how a run flows through these modules.
#![warn(missing_docs)]

pub mod aws;
pub mod bucket;
pub mod cli;
pub mod context;
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
pub mod secret;
pub mod shutdown;
pub mod source;
pub mod stage;
pub mod summary;
pub mod transform;
pub mod trigger;

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::aws::{Aws, AwsOptions};
use crate::cli::{Cli, Command, DbArgs};
use crate::context::Context;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::secret::Secret;
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
            let plan = Location::parse(&args.source)
                .and_then(|source| run_plan(&args.run, source, Location::parse(&args.companies)?));
            let needs_aws = plan
                .as_ref()
                .is_ok_and(|p| p.source.is_s3() || p.companies.is_s3());
            let (ctx, plan) = prepare(&args.run, needs_aws, plan).await?;
            let progress = progress_bar(!args.json);
            let report = ctx.run(&plan, &progress).await;
            print_summary(&report.summary, args.json);
            Ok(report.summary.ok())
        }
        Command::Watch(args) => watch(args).await,
        Command::Pipeline(cli::PipelineCommand::Definition(args)) => {
            pipeline_definition(args).await
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
            let (args, aws_args) = match &command {
                cli::BucketCommand::Init(a) | cli::BucketCommand::UploadScripts(a) => {
                    (&a.bucket, &a.aws)
                }
                cli::BucketCommand::NotifyQueue(a) => (&a.bucket, &a.aws),
            };
            let bucket = bucket_name(args)?;
            let aws = Aws::load(&aws_options(aws_args)).await;
            let done = match &command {
                cli::BucketCommand::Init(_) => bucket::init(&aws, &bucket).await?,
                cli::BucketCommand::UploadScripts(_) => {
                    bucket::upload_scripts(&aws, &bucket).await?
                }
                cli::BucketCommand::NotifyQueue(a) => {
                    bucket::notify_queue(&aws, &bucket, &a.queue_arn).await?;
                    vec![format!(
                        "s3://{bucket}: new *{} objects now notify {}",
                        trigger::MARKER_SUFFIX,
                        a.queue_arn
                    )]
                }
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
        args.database_url.as_ref().map(Secret::expose),
        &args.work_mem,
        Duration::from_secs(args.connect_timeout),
    )
}

/// Validates run flags into a plan for `source` and `companies`.
pub fn run_plan(args: &cli::RunArgs, source: Location, companies: Location) -> Result<Plan> {
    if !(0.0..=1.0).contains(&args.max_reject_ratio) {
        return Err(Error::Config(format!(
            "--max-reject-ratio must be between 0 and 1, not {}",
            args.max_reject_ratio
        )));
    }
    let mut plan = Plan::new(source, companies);
    plan.basis = args.change_basis;
    plan.max_reject_ratio = args.max_reject_ratio;
    plan.concurrency = args.concurrency.max(1);
    plan.sql_dir = args.sql_dir.clone();
    Ok(plan)
}

/// Builds the run context. Notification targets are parsed first, so that any later problem with
/// the configuration (`prepared`, the database settings) is still notified before it is returned.
async fn prepare<T>(
    args: &cli::RunArgs,
    needs_aws: bool,
    prepared: Result<T>,
) -> Result<(Context, T)> {
    let targets = notify::parse_targets(&args.notify.targets)?;
    let name = args.notify.notify_name.clone();
    let prepared = database(&args.db).and_then(|db| Ok((db, prepared?)));
    let aws = if needs_aws || notify::needs_aws(&targets) {
        Some(Aws::load(&aws_options(&args.aws)).await)
    } else {
        None
    };
    match prepared {
        Ok((db, value)) => Ok((
            Context {
                db,
                reader: Reader::new(aws.clone()),
                aws,
                targets,
                notify_name: name,
            },
            value,
        )),
        Err(err) => {
            let notice = notify::Notice::from_error(&name, "invalid configuration", &err);
            notify::send_all(&targets, &notice, aws.as_ref()).await;
            Err(err)
        }
    }
}

async fn watch(args: cli::WatchArgs) -> Result<bool> {
    let parse = |text: &Option<String>| text.as_deref().map(Location::parse).transpose();
    let setup = (|| {
        let source = parse(&args.source)?;
        let companies = parse(&args.companies)?;
        let monitored = parse(&args.monitored)?;
        // A template plan: source and companies are settled per marker when not given.
        let placeholder = Location::Local(".".into());
        let template = run_plan(&args.run, placeholder.clone(), placeholder)?;
        Ok((source, companies, monitored, template))
    })();
    let needs_aws = args.queue.is_some()
        || setup
            .as_ref()
            .is_ok_and(|(source, companies, monitored, _)| {
                [source, companies, monitored]
                    .into_iter()
                    .flatten()
                    .any(Location::is_s3)
            });
    let (ctx, (source, companies, monitored, mut template)) =
        prepare(&args.run, needs_aws, setup).await?;
    if let Some(queue_url) = &args.queue {
        let options = trigger::queue::QueueOptions {
            queue_url: queue_url.clone(),
            source,
            companies,
            max_attempts: args.max_attempts,
            once: args.once,
        };
        let runs = trigger::queue::consume(&ctx, &template, &options).await?;
        println!("handled {runs} runs");
        return Ok(true);
    }
    let (Some(monitored), Some(source)) = (monitored, source) else {
        let err = Error::Config("watch --monitored needs --source (the company files)".into());
        ctx.notify_error("invalid configuration", &err).await;
        return Err(err);
    };
    template.companies = companies.unwrap_or_else(|| source.join("top_companies.txt"));
    template.source = source;
    let options = trigger::watch::WatchOptions {
        monitored,
        interval: Duration::from_secs(args.interval.max(1)),
        once: args.once,
        max_attempts: args.max_attempts.max(1),
    };
    let runs = trigger::watch::watch(&ctx, &template, &options).await?;
    println!("started {runs} runs");
    Ok(true)
}

async fn pipeline_definition(args: cli::DefinitionArgs) -> Result<bool> {
    let settings = pipeline::PipelineSettings::from_args(*args.settings, args.config.as_deref())?;
    let definition = pipeline::build_definition(&settings);
    pipeline::validate(&definition).map_err(Error::Definition)?;
    let json = definition.to_json_pretty();
    println!("{json}");
    if args.upload {
        let aws = Aws::load(&aws_options(&args.aws)).await;
        let key = pipeline::DEFAULT_DEFINITION_KEY;
        source::s3::put(&aws.s3, &settings.source_bucket, key, json.into_bytes()).await?;
        eprintln!("uploaded to s3://{}/{key}", settings.source_bucket);
    }
    Ok(true)
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
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files, {msg}",
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
    // The cluster lives until the end of the demo; dropping it removes it.
    let (url, _cluster) = match &args.database_url {
        Some(url) => (url.expose().to_string(), None),
        None => {
            println!("starting a throwaway PostgreSQL ...");
            let started = tokio::task::spawn_blocking(|| devdb::TempCluster::start(&[]))
                .await
                .map_err(|e| Error::Cluster(e.to_string()))??;
            started.create_database("stockload_demo").await?;
            (started.url("stockload_demo"), Some(started))
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
    if let Some(run_id) = report.summary.run_id {
        for (file, line, reason) in report::rejects(&mut conn, run_id, 20).await? {
            println!(
                "  rejected:  {file} line {}: {reason}",
                line.unwrap_or_default()
            );
        }
    }
    println!();
    print!("{}", report::stats(&mut conn).await?);
    println!("\nall done; the throwaway database and sample files are removed now");
    Ok(report.summary.ok())
}
