//! Secrets stay secret: one unique password planted in every channel that can carry one
//! (DATABASE_URL, PGPASSWORD, an SMTP URL by flag and by environment, SMTP_PASSWORD, DB_PASSWORD
//! for the pipeline definition, a Secrets Manager secret read by the Lambda handler), every
//! command run with `RUST_LOG=trace` (and `--json` where it exists), and the password searched for
//! in every output, log line, notice, ledger row and error. The notices must arrive (sent with the
//! planted SMTP credentials): a check of no mail would prove nothing.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use clap::CommandFactory;

use crate::cli_text as text;
use crate::support::services::{aws, moto_env, smtp, unique_bucket, Smtp};
use crate::support::{csv, stockload, Batch, TestDb};

/// Every byte a command wrote, stdout and stderr.
fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn assert_hidden(what: &str, haystack: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !haystack.contains(secret),
            "{what} shows a planted password:\n{haystack}"
        );
    }
}

/// What every run of the test shares: the database, the planted passwords, the files.
struct Planted {
    db: TestDb,
    smtp: &'static Smtp,
    /// The only address the notices of this test go to.
    recipient: String,
    /// The SMTP target with the planted credentials inside its URL.
    smtp_url: String,
    /// The same target without credentials (they come from SMTP_USERNAME / SMTP_PASSWORD).
    smtp_bare: String,
    /// The database URL without its password (it comes from PGPASSWORD).
    db_url_bare: String,
    batch: Batch,
    work: tempfile::TempDir,
    bucket: String,
    queue_arn: String,
}

impl Planted {
    async fn new() -> Planted {
        let db = TestDb::new().await;
        assert!(
            db.password.len() >= 12,
            "the cluster password is too guessable to search for"
        );
        let smtp = smtp();
        let recipient = format!("secrets-{}@example.com", std::process::id());
        let smtp_bare = smtp.target(&recipient);
        let smtp_url = smtp_bare.replacen(
            "smtp://",
            &format!("smtp://{}:{}@", smtp.user, smtp.password),
            1,
        );
        let mut db_url_bare = url::Url::parse(&db.url).unwrap();
        db_url_bare.set_password(None).unwrap();
        let batch = Batch::new(
            &[("ACME.csv", &csv(&[("2020-01-02", "10", "11")]))],
            "ACME.csv\nMISSING.csv",
        );
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(work.path().join("monitored/day1")).unwrap();
        std::fs::write(work.path().join("monitored/day1/.SUCCESS"), "").unwrap();
        std::fs::write(
            work.path().join("pipeline.json"),
            serde_json::json!({
                "pipeline_name": "p", "source_bucket": "b", "ami_id": "ami-0123456789abcdef0",
                "security_group_ids": ["sg-0123456789abcdef0"], "subnet_id": "subnet-0123456789abcdef0",
                "rds_instance_id": "db", "rds_endpoint": "db.example.com", "db_user": "loader",
                "topic_arn": "arn:aws:sns:us-east-1:123456789012:t", "notify_name": "N"
            })
            .to_string(),
        )
        .unwrap();
        let (bucket, queue_arn) = bucket_and_queue().await;
        Planted {
            db,
            smtp,
            recipient,
            smtp_url,
            smtp_bare,
            db_url_bare: db_url_bare.to_string(),
            batch,
            work,
            bucket,
            queue_arn,
        }
    }

    fn secrets(&self) -> [&str; 2] {
        [self.db.password.as_str(), self.smtp.password.as_str()]
    }

    fn path(&self, name: &str) -> String {
        self.work.path().join(name).display().to_string()
    }

    /// The database URL (password inside) of a database that does not exist.
    fn no_such_database(&self) -> String {
        self.db.url.rsplit_once('/').unwrap().0.to_string() + "/no_such_database"
    }

    /// Notices delivered to this test's recipient so far.
    fn mails(&self) -> Vec<String> {
        self.smtp.messages_to(&self.recipient)
    }
}

/// A bucket and an SQS queue in moto, for the `bucket` commands.
async fn bucket_and_queue() -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let aws = aws().await;
    let sqs = aws.sqs();
    let url = sqs
        .create_queue()
        .queue_name(unique_bucket("secrets"))
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attributes.attributes().unwrap()[&QueueAttributeName::QueueArn].clone();
    (unique_bucket("secrets"), arn)
}

/// One command of the test, run with every channel planted as it says.
struct Run {
    what: &'static str,
    args: Vec<String>,
    database_url: String,
    /// PGPASSWORD set to the database password.
    pgpassword: bool,
    /// STOCKLOAD_NOTIFY.
    notify_env: Option<String>,
    /// SMTP_USERNAME / SMTP_PASSWORD set (the planted ones); unset, a notice relies on the URL.
    smtp_env: bool,
    code: i32,
    /// Notices it must deliver to the test's recipient.
    mails: usize,
}

impl Run {
    /// A run expected to exit 0 and send no notice, with DATABASE_URL (password inside) and the
    /// SMTP credentials in the environment.
    fn new(what: &'static str, args: &[&str], planted: &Planted) -> Run {
        Run {
            what,
            args: args.iter().map(|a| a.to_string()).collect(),
            database_url: planted.db.url.clone(),
            pgpassword: false,
            notify_env: None,
            smtp_env: true,
            code: 0,
            mails: 0,
        }
    }

    fn args(mut self, args: Vec<String>) -> Run {
        self.args = args;
        self
    }

    fn notify_env(mut self, target: &str) -> Run {
        self.notify_env = Some(target.to_string());
        self
    }

    fn code(mut self, code: i32) -> Run {
        self.code = code;
        self
    }

    /// The password from PGPASSWORD, the URL without it.
    fn pgpassword(mut self, url_without_password: &str) -> Run {
        self.pgpassword = true;
        self.database_url = url_without_password.to_string();
        self
    }

    /// No SMTP_USERNAME / SMTP_PASSWORD: a notice has only the credentials in its URL.
    fn without_smtp_env(mut self) -> Run {
        self.smtp_env = false;
        self
    }

    fn database_url(mut self, url: &str) -> Run {
        self.database_url = url.to_string();
        self
    }

    fn mails(mut self, mails: usize) -> Run {
        self.mails = mails;
        self
    }

    /// The subcommand it runs, e.g. "bucket init" ("" for the top-level help).
    fn subcommand(&self) -> String {
        self.args
            .iter()
            .take_while(|a| !a.starts_with('-'))
            .take(2)
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The help texts, the loads (by every route a password can take), the watch loop and the
/// test notice.
fn load_runs(p: &Planted) -> Vec<Run> {
    let (stocks, companies) = (
        p.batch.stocks.display().to_string(),
        p.batch.companies.display().to_string(),
    );
    let load = |source: &str, notify: &str| -> Vec<String> {
        let mut args = vec![
            "load",
            "--source",
            source,
            "--companies",
            &companies,
            "--json",
        ];
        if !notify.is_empty() {
            args.extend(["--notify", notify]);
        }
        args.into_iter().map(str::to_string).collect()
    };
    let monitored = p.path("monitored");
    let watch = [
        "watch",
        "--once",
        "--monitored",
        &monitored,
        "--source",
        &stocks,
        "--companies",
        &companies,
    ];
    let url = p.smtp_url.as_str();
    vec![
        Run::new("help", &["--help"], p).notify_env(url),
        Run::new("load help", &["load", "--help"], p).notify_env(url),
        Run::new("watch help", &["watch", "--help"], p).notify_env(url),
        Run::new("notify-test help", &["notify-test", "--help"], p).notify_env(url),
        Run::new("migrate", &["migrate"], p),
        Run::new("watch", &watch, p).notify_env(url).mails(1),
        Run::new("notify-test", &["notify-test", "--notify", url], p).mails(1),
        Run::new("load ok, SMTP credentials in the flag's URL", &[], p)
            .args(load(&stocks, url))
            .without_smtp_env()
            .mails(1),
        Run::new(
            "load ok, PGPASSWORD, SMTP target and credentials by env",
            &[],
            p,
        )
        .args(load(&stocks, ""))
        .pgpassword(&p.db_url_bare)
        .notify_env(&p.smtp_bare)
        .mails(1),
        Run::new("load failing (no folder)", &[], p)
            .args(load("/no/such/folder", ""))
            .notify_env(url)
            .code(1)
            .mails(1),
        Run::new("load failing (no database)", &[], p)
            .args(load(&stocks, ""))
            .database_url(&p.no_such_database())
            .notify_env(url)
            .code(1)
            .mails(1),
    ]
}

/// Every other command: reading, exporting, the pipeline, the bucket, the dev tools.
fn other_runs(p: &Planted) -> Vec<Run> {
    let bucket = format!("s3://{}", p.bucket);
    let (config, export, sample) = (
        p.path("pipeline.json"),
        p.path("export.csv"),
        p.path("sample"),
    );
    vec![
        Run::new("migrate failing (no database)", &["migrate"], p)
            .database_url(&p.no_such_database())
            .code(1),
        Run::new("stats", &["stats", "--json"], p),
        Run::new("sql (list)", &["sql"], p),
        Run::new("sql (one script)", &["sql", "insert_query.sql"], p),
        Run::new("export", &["export", "--to", &export], p),
        Run::new("report", &["report", "--to", &p.path("report.html")], p),
        Run::new("quality", &["quality", "--json"], p),
        Run::new(
            "pipeline definition",
            &["pipeline", "definition", "--config", &config],
            p,
        ),
        Run::new(
            "sample",
            &["sample", "--out", &sample, "--files", "2", "--rows", "5"],
            p,
        ),
        Run::new("demo", &["demo", "--files", "2", "--rows", "5"], p),
        Run::new("bucket init", &["bucket", "init", &bucket], p),
        Run::new(
            "bucket upload-scripts",
            &["bucket", "upload-scripts", &bucket],
            p,
        ),
        Run::new(
            "bucket notify-queue",
            &["bucket", "notify-queue", &bucket, &p.queue_arn],
            p,
        ),
        Run::new(
            "dev-postgres (its own throwaway cluster)",
            &["dev-postgres"],
            p,
        ),
    ]
}

/// Runs one command, checks its exit code, that it said something, that no planted password
/// shows, and that exactly its notices arrived, sent with the planted SMTP credentials.
fn execute(run: &Run, p: &Planted) -> String {
    let mails_before = p.mails().len();
    let mut command = stockload();
    moto_env(&mut command)
        .args(&run.args)
        .env("RUST_LOG", "trace")
        .env("DATABASE_URL", &run.database_url)
        .env("DB_PASSWORD", &p.db.password);
    for (name, value, set) in [
        ("PGPASSWORD", p.db.password.as_str(), run.pgpassword),
        (
            "STOCKLOAD_NOTIFY",
            run.notify_env.as_deref().unwrap_or_default(),
            run.notify_env.is_some(),
        ),
        ("SMTP_USERNAME", p.smtp.user.as_str(), run.smtp_env),
        ("SMTP_PASSWORD", p.smtp.password.as_str(), run.smtp_env),
    ] {
        if set {
            command.env(name, value);
        } else {
            command.env_remove(name);
        }
    }
    let output = command.output().unwrap();
    let what = run.what;
    let all = all_output(&output);
    assert_eq!(
        output.status.code(),
        Some(run.code),
        "{what}: {}",
        text(&output)
    );
    assert!(!all.trim().is_empty(), "{what} printed nothing");
    assert_hidden(what, &all, &p.secrets());
    let mails = p.mails();
    assert_eq!(
        mails.len() - mails_before,
        run.mails,
        "{what}: notices delivered to {}\n{}",
        p.recipient,
        text(&output)
    );
    for mail in &mails {
        assert_hidden("a notice", mail, &p.secrets());
        let sender = format!("X-Authenticated-As: {}", p.smtp.user);
        assert!(
            mail.lines().any(|l| l == sender),
            "{what}: a notice sent without the planted credentials:\n{mail}"
        );
    }
    all
}

/// Every subcommand the CLI has (e.g. "bucket init"), hidden ones included.
fn every_subcommand() -> Vec<String> {
    fn walk(command: &clap::Command, prefix: &str, into: &mut Vec<String>) {
        for sub in command.get_subcommands() {
            let name = format!("{prefix}{}", sub.get_name()).trim().to_string();
            if sub.has_subcommands() {
                walk(sub, &format!("{name} "), into);
            } else if sub.get_name() != "help" {
                into.push(name);
            }
        }
    }
    let mut all = Vec::new();
    walk(&stockload::cli::Cli::command(), "", &mut all);
    all
}

#[tokio::test]
async fn a_planted_password_appears_in_no_output_log_notice_or_ledger_row() {
    let planted = Planted::new().await;
    let runs: Vec<Run> = load_runs(&planted)
        .into_iter()
        .chain(other_runs(&planted))
        .collect();
    let covered: Vec<String> = runs.iter().map(Run::subcommand).collect();
    for command in every_subcommand() {
        assert!(
            covered.contains(&command),
            "`stockload {command}` is not run by this test: add it"
        );
    }
    let mut trace_lines = 0;
    for run in &runs {
        trace_lines += execute(run, &planted)
            .lines()
            .filter(|l| l.contains(" TRACE "))
            .count();
    }
    // The searched output held the trace-level logs, not only the summaries.
    assert!(trace_lines > 100, "only {trace_lines} TRACE lines");

    // The ledger, and what export, report and sample wrote.
    let secrets = planted.secrets();
    let mut conn = planted.db.conn().await;
    let ledger: Vec<(String,)> = sqlx::query_as(
        "SELECT (r.*)::text FROM load_runs AS r UNION ALL SELECT (j.*)::text FROM load_rejects AS j \
         UNION ALL SELECT (s.*)::text FROM load_run_steps AS s",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(ledger.len() >= 4, "{ledger:?}");
    assert_hidden("the ledger", &format!("{ledger:?}"), &secrets);
    for file in walk_files(planted.work.path()) {
        let bytes = std::fs::read(&file).unwrap();
        assert_hidden(
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
            &secrets,
        );
    }
}

/// Every regular file under `dir`.
fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk_files(&path));
        } else if path.is_file() {
            files.push(path);
        }
    }
    files
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn the_lambdas_secret_never_reaches_a_log_line_or_an_error() {
    let password = format!("lambda-PLANT-{}", std::process::id());
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let error = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let aws = aws().await;
                let client = aws_sdk_secretsmanager::Client::new(&aws.config);
                let created = client
                    .create_secret()
                    .name(format!("stockload-test-{}", std::process::id()))
                    .secret_string(
                        serde_json::json!({"username": "loader", "password": password}).to_string(),
                    )
                    .send()
                    .await
                    .unwrap();
                let arn = created.arn().unwrap().to_string();
                let (user, secret) = stockload::trigger::lambda::secret_credentials(&aws, &arn)
                    .await
                    .unwrap();
                assert_eq!(
                    (user.as_str(), secret.expose()),
                    ("loader", password.as_str())
                );
                tracing::debug!(?secret, "the secret as a log line would show it");
                // A connection that fails (nothing listens on port 1) must not show it either.
                let db = stockload::db::Db::with_credentials(
                    "127.0.0.1",
                    1,
                    "stocks",
                    &user,
                    secret.expose(),
                    "64MB",
                    std::time::Duration::from_secs(5),
                );
                tracing::debug!(?db, "the database as a log line would show it");
                db.connect().await.unwrap_err().to_string()
            })
    });
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("GetSecretValue") || logs.contains("secretsmanager"),
        "{logs}"
    );
    assert_hidden("the log", &logs, &[&password]);
    assert_hidden("the error", &error, &[&password]);
}
