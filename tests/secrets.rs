//! Secrets stay secret: one unique password planted in every channel that can carry one
//! (DATABASE_URL, PGPASSWORD, an SMTP URL by flag and by environment, DB_PASSWORD for the
//! pipeline definition, a Secrets Manager secret read by the Lambda handler), every command run
//! with `RUST_LOG=trace` (and `--json` where it exists), and the password searched for in every
//! output, log line, notice, ledger row and error.

use std::process::Output;
use std::sync::{Arc, Mutex};

use crate::cli_text as text;
use crate::support::services::{aws, smtp};
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

#[tokio::test]
async fn a_planted_password_appears_in_no_output_log_notice_or_ledger_row() {
    let db = TestDb::new().await;
    let smtp = smtp();
    let smtp_password = format!("smtp-PLANT-{}", std::process::id());
    let db_password = db.password.clone();
    assert!(
        db_password.len() >= 12,
        "the cluster password is too guessable to search for"
    );
    let secrets = [db_password.as_str(), smtp_password.as_str()];
    let smtp_url = smtp.target("ops@example.com").replacen(
        "smtp://",
        &format!("smtp://ops:{smtp_password}@"),
        1,
    );
    let mut url_without_password = url::Url::parse(&db.url).unwrap();
    url_without_password.set_password(None).unwrap();

    let batch = Batch::new(
        &[("ACME.csv", &csv(&[("2020-01-02", "10", "11")]))],
        "ACME.csv\nMISSING.csv",
    );
    let stocks = batch.stocks.display().to_string();
    let companies = batch.companies.display().to_string();
    let monitored = tempfile::tempdir().unwrap();
    std::fs::create_dir(monitored.path().join("day1")).unwrap();
    std::fs::write(monitored.path().join("day1/.SUCCESS"), "").unwrap();
    let config = monitored.path().join("pipeline.json");
    std::fs::write(
        &config,
        serde_json::json!({
            "pipeline_name": "p", "source_bucket": "b", "ami_id": "ami-0123456789abcdef0",
            "security_group_ids": ["sg-0123456789abcdef0"], "subnet_id": "subnet-0123456789abcdef0",
            "rds_instance_id": "db", "rds_endpoint": "db.example.com", "db_user": "loader",
            "topic_arn": "arn:aws:sns:us-east-1:123456789012:t", "notify_name": "N"
        })
        .to_string(),
    )
    .unwrap();

    let load = |source: &str| -> Vec<String> {
        [
            "load",
            "--source",
            source,
            "--companies",
            &companies,
            "--json",
        ]
        .map(str::to_string)
        .to_vec()
    };
    let mut watch = vec!["watch", "--once", "--monitored"]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>();
    watch.push(monitored.path().display().to_string());
    watch.extend(["--source", &stocks, "--companies", &companies].map(str::to_string));
    let wrong_db = db.url.rsplit_once('/').unwrap().0.to_string() + "/no_such_database";

    // (what, arguments, DATABASE_URL, PGPASSWORD, STOCKLOAD_NOTIFY, expected exit code)
    type Run<'a> = (
        &'a str,
        Vec<String>,
        String,
        Option<&'a str>,
        Option<&'a str>,
        i32,
    );
    let flag = |mut args: Vec<String>| {
        args.extend(["--notify".to_string(), smtp_url.clone()]);
        args
    };
    let runs: Vec<Run> = vec![
        (
            "help",
            vec!["--help".into()],
            db.url.clone(),
            Some(&db_password),
            Some(&smtp_url),
            0,
        ),
        (
            "load help",
            vec!["load".into(), "--help".into()],
            db.url.clone(),
            None,
            Some(&smtp_url),
            0,
        ),
        (
            "watch help",
            vec!["watch".into(), "--help".into()],
            db.url.clone(),
            None,
            Some(&smtp_url),
            0,
        ),
        (
            "notify-test help",
            vec!["notify-test".into(), "--help".into()],
            db.url.clone(),
            None,
            Some(&smtp_url),
            0,
        ),
        (
            "load ok, SMTP by flag",
            flag(load(&stocks)),
            db.url.clone(),
            None,
            None,
            0,
        ),
        (
            "load ok, PGPASSWORD, SMTP by env",
            load(&stocks),
            url_without_password.to_string(),
            Some(&db_password),
            Some(&smtp_url),
            0,
        ),
        (
            "load failing (no folder)",
            load("/no/such/folder"),
            db.url.clone(),
            None,
            Some(&smtp_url),
            1,
        ),
        (
            "load failing (no database)",
            load(&stocks),
            wrong_db.clone(),
            None,
            Some(&smtp_url),
            1,
        ),
        (
            "watch",
            watch.clone(),
            db.url.clone(),
            None,
            Some(&smtp_url),
            0,
        ),
        (
            "notify-test",
            flag(vec!["notify-test".into()]),
            db.url.clone(),
            None,
            None,
            1,
        ),
        (
            "stats",
            vec!["stats".into(), "--json".into()],
            db.url.clone(),
            None,
            None,
            0,
        ),
        (
            "pipeline definition",
            vec![
                "pipeline".into(),
                "definition".into(),
                "--config".into(),
                config.display().to_string(),
            ],
            db.url.clone(),
            None,
            None,
            0,
        ),
    ];
    for (what, args, database_url, pgpassword, notify, code) in runs {
        let mut command = stockload();
        command
            .args(&args)
            .env("RUST_LOG", "trace")
            .env("DATABASE_URL", &database_url)
            .env("DB_PASSWORD", &db_password)
            .env("SMTP_USERNAME", "ops");
        match pgpassword {
            Some(pw) => command.env("PGPASSWORD", pw),
            None => command.env_remove("PGPASSWORD"),
        };
        match notify {
            Some(target) => command.env("STOCKLOAD_NOTIFY", target),
            None => command.env_remove("STOCKLOAD_NOTIFY"),
        };
        let output = command.output().unwrap();
        let all = all_output(&output);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{what}: {}",
            text(&output)
        );
        assert!(all.lines().count() > 1, "{what} printed nothing: {all}");
        assert_hidden(what, &all, &secrets);
    }

    // The ledger and the mail that went out.
    let mut conn = db.conn().await;
    let ledger: Vec<(String,)> = sqlx::query_as(
        "SELECT (r.*)::text FROM load_runs AS r UNION ALL SELECT (j.*)::text FROM load_rejects AS j",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert!(ledger.len() >= 4, "{ledger:?}");
    assert_hidden("the ledger", &format!("{ledger:?}"), &secrets);
    for folder in ["new", "cur"] {
        if let Ok(entries) = std::fs::read_dir(smtp.maildir.join(folder)) {
            for entry in entries.flatten() {
                let mail = std::fs::read_to_string(entry.path()).unwrap();
                assert_hidden("a notice", &mail, &secrets);
            }
        }
    }
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
