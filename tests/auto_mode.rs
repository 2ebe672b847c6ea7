//! The Lambda's auto mode, end to end: the real `stockload-lambda` binary polling a real Lambda
//! Runtime API (cargo-lambda's emulator, `cargo lambda watch --only-lambda-apis`), invoked over
//! HTTP with S3 events (`cargo lambda invoke`), against moto (S3, SQS), a throwaway PostgreSQL
//! and an SMTP server: a small batch loads in the function, a big one is handed to the queue that
//! `stockload watch --queue` consumes, duplicates load nothing twice, and a hand-off that cannot
//! be sent fails the invocation with a notice and loads nothing.

use std::process::{Child, Command, Stdio};

use aws_sdk_sqs::types::QueueAttributeName;

use crate::cli_text as text;
use crate::support::services::{
    self, aws, free_port, moto_endpoint, moto_env, smtp, tool, unique_bucket,
};
use crate::support::{csv, stockload, TestDb};

/// The Runtime API emulator and the function binary polling it; both are ended on drop.
struct Function {
    _emulator: services::Service,
    function: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Function {
    /// Starts the emulator on a free port, then `stockload-lambda` with `env` (plus moto's
    /// endpoint and credentials, and the variables Lambda itself sets).
    fn start(env: &[(&str, &str)]) -> Function {
        let port = free_port();
        let emulator = services::start(
            &format!(
                "cd '{}' && '{}' lambda watch --only-lambda-apis -A 127.0.0.1 -P {port}",
                env!("CARGO_MANIFEST_DIR"),
                tool("cargo-lambda").display()
            ),
            "starting Runtime server",
            port,
        );
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("function.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_stockload-lambda"));
        moto_env(&mut command)
            .env(
                "AWS_LAMBDA_RUNTIME_API",
                format!("http://127.0.0.1:{port}/.rt"),
            )
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("STOCKLOAD_LOG_FORMAT", "text")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log);
        let function = command.spawn().expect("start stockload-lambda");
        Function {
            _emulator: emulator,
            function,
            port,
            dir,
        }
    }

    /// Invokes the function with `event` through the emulator: Ok(response) or Err(error text).
    fn invoke(&self, event: &serde_json::Value) -> Result<String, String> {
        let file = self.dir.path().join("event.json");
        std::fs::write(&file, event.to_string()).unwrap();
        let output = Command::new(tool("cargo-lambda"))
            .args(["lambda", "invoke", "-A", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg("-F")
            .arg(&file)
            .args(["--color", "never"])
            .output()
            .unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "{}\n--- function log:\n{}",
                text(&output),
                self.log()
            ))
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("function.log")).unwrap_or_default()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.function.kill();
        let _ = self.function.wait();
    }
}

/// The S3 event notification for a new object, as S3 sends it.
fn s3_event(bucket: &str, key: &str, etag: &str) -> serde_json::Value {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-01T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:X"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "1", "x-amz-id-2": "2"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "success-marker",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "X"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 0, "eTag": etag.trim_matches('"'), "sequencer": "0A"}}
    }]})
}

async fn put(aws: &stockload::aws::Aws, bucket: &str, key: &str, body: &str) -> String {
    let put = aws
        .s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    put.e_tag().unwrap_or_default().to_string()
}

/// Company files of `days` trading days from 2020-01-01 on.
fn company(days: usize, base: f64) -> String {
    let rows: Vec<(String, String, String)> = (0..days)
        .map(|d| {
            let date = chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                + chrono::Duration::days(d as i64);
            let open = base + d as f64;
            (
                date.to_string(),
                format!("{open:.2}"),
                format!("{:.2}", open + 0.5),
            )
        })
        .collect();
    let rows: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(d, o, c)| (d.as_str(), o.as_str(), c.as_str()))
        .collect();
    csv(&rows)
}

async fn queue_depth(aws: &stockload::aws::Aws, url: &str) -> usize {
    let attributes = aws
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap();
    let a = attributes.attributes().unwrap();
    let n = |k: QueueAttributeName| {
        a.get(&k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("queue attribute {k:?} missing in {a:?}"))
    };
    n(QueueAttributeName::ApproximateNumberOfMessages)
        + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

/// `stockload load` of the bucket's batch, as a reference: what loading it directly gives.
fn load_directly(bucket: &str, db: &TestDb) {
    let output = moto_env(&mut stockload())
        .args(["load", "--source", &format!("s3://{bucket}/Stocks/")])
        .args([
            "--companies",
            &format!("s3://{bucket}/CompanyNames/top_companies.txt"),
        ])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

/// A mail's text with its quoted-printable encoding undone (soft line breaks, `=XX` bytes).
fn decoded(mail: &str) -> String {
    let joined = mail.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if bytes[i] == b'=' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn count(db: &TestDb, sql: &str) -> usize {
    db.scalar(sql)
        .await
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{sql}: not a count"))
}

#[tokio::test]
async fn auto_mode_loads_a_small_batch_here_and_hands_a_big_one_to_the_queue_loader() {
    let aws = aws().await;
    let bucket = unique_bucket("auto-source");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let queue = aws
        .sqs()
        .create_queue()
        .queue_name(unique_bucket("auto-loader"))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    let (db, reference) = (TestDb::new().await, TestDb::new().await);
    let smtp = smtp();
    let name = format!("Auto_{}", std::process::id());
    let small = company(2, 10.0);
    assert!(small.len() < 1000);
    put(&aws, &bucket, "Stocks/ACME.csv", &small).await;
    put(
        &aws,
        &bucket,
        "CompanyNames/top_companies.txt",
        "'ACME.csv'",
    )
    .await;
    let (handoff, notify) = (format!("sqs:{queue_url}"), smtp.target("ops@example.com"));
    let function = Function::start(&[
        ("STOCKLOAD_MODE", "auto"),
        ("STOCKLOAD_SOURCE_BUCKET", &bucket),
        ("STOCKLOAD_HANDOFF", &handoff),
        ("STOCKLOAD_DIRECT_MAX_BYTES", "1000"),
        ("DATABASE_URL", &db.url),
        ("STOCKLOAD_NOTIFY", &notify),
        ("STOCKLOAD_NOTIFY_NAME", &name),
    ]);
    let success = format!("{name}_Pipeline_Success");

    // A small batch loads in the function: the table exact, one notice naming the decision.
    let etag = put(&aws, &bucket, "day1/.SUCCESS", "day1").await;
    let day1 = s3_event(&bucket, "day1/.SUCCESS", &etag);
    let done = function.invoke(&day1).unwrap();
    assert!(done.contains("loaded 2 rows"), "{done}");
    load_directly(&bucket, &reference);
    assert_eq!(db.rows().await.len(), 2);
    assert_eq!(db.rows().await, reference.rows().await);
    let notices: Vec<String> = smtp.messages(&success).iter().map(|m| decoded(m)).collect();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].contains(&format!(
            "1 file, {} bytes: loading here, estimated 1 s (within",
            small.len()
        )),
        "{}",
        notices[0]
    );
    let marker1 = format!(
        "s3://{bucket}/day1/.SUCCESS#etag={}",
        etag.trim_matches('"')
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT choice || ' ' || files || ' ' || bytes FROM marker_decisions \
             WHERE marker = '{marker1}'"
        ))
        .await,
        Some(format!("direct 1 {}", small.len()))
    );

    // The same event again (a duplicate delivery): nothing loaded twice, no second notice.
    let again = function.invoke(&day1).unwrap();
    assert!(again.contains("already loaded"), "{again}");
    assert_eq!(count(&db, "SELECT count(*)::text FROM load_runs").await, 1);
    assert_eq!(smtp.messages(&success).len(), 1);

    // A batch over the threshold is handed to the queue: nothing loaded here, one hand-off
    // notice with the decision.
    for (file, days, base) in [("ACME.csv", 40, 10.0), ("BETA.csv", 40, 50.0)] {
        put(
            &aws,
            &bucket,
            &format!("Stocks/{file}"),
            &company(days, base),
        )
        .await;
    }
    let index = "'ACME.csv', 'BETA.csv', 'GONE.csv'";
    put(&aws, &bucket, "CompanyNames/top_companies.txt", index).await;
    let etag = put(&aws, &bucket, "day2/.SUCCESS", "day2").await;
    let day2 = s3_event(&bucket, "day2/.SUCCESS", &etag);
    let done = function.invoke(&day2).unwrap();
    assert!(done.contains("handed to queue"), "{done}");
    assert_eq!(queue_depth(&aws, &queue_url).await, 1);
    assert_eq!(db.rows().await.len(), 2);
    let handoffs: Vec<String> = smtp
        .messages(&format!("{name}_Pipeline_Handoff"))
        .iter()
        .map(|m| decoded(m))
        .collect();
    assert_eq!(handoffs.len(), 1);
    assert!(
        handoffs[0].contains("2 files, ") && handoffs[0].contains("(1 listed in the index not"),
        "{}",
        handoffs[0]
    );
    assert!(
        handoffs[0].contains("over STOCKLOAD_DIRECT_MAX_BYTES=1,000"),
        "{}",
        handoffs[0]
    );

    // Delivered again to the function: not sent twice. Delivered to the consumer's queue directly
    // as well (S3 notifying the queue too): still loaded once.
    let again = function.invoke(&day2).unwrap();
    assert!(again.contains("already handed to queue"), "{again}");
    assert_eq!(queue_depth(&aws, &queue_url).await, 1);
    aws.sqs()
        .send_message()
        .queue_url(&queue_url)
        .message_body(day2.to_string())
        .send()
        .await
        .unwrap();

    // The long-running loader consumes the queue: the same table as loading the batch directly.
    let output = moto_env(&mut stockload())
        .args(["watch", "--once", "--queue", &queue_url])
        .args(["--source", &format!("s3://{bucket}/Stocks/")])
        .args([
            "--companies",
            &format!("s3://{bucket}/CompanyNames/top_companies.txt"),
        ])
        .args(["--notify", &notify, "--notify-name", &name])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("handled 1 runs"),
        "{}",
        text(&output)
    );
    assert_eq!(queue_depth(&aws, &queue_url).await, 0);
    load_directly(&bucket, &reference);
    assert_eq!(db.rows().await.len(), 80);
    assert_eq!(db.rows().await, reference.rows().await);
    assert_eq!(
        count(
            &db,
            "SELECT count(*)::text FROM load_runs WHERE status = 'succeeded'"
        )
        .await,
        2
    );
    assert_eq!(smtp.messages(&success).len(), 2);
    let marker2 = format!(
        "s3://{bucket}/day2/.SUCCESS#etag={}",
        etag.trim_matches('"')
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT string_agg(choice || ' ' || sent, ',') FROM marker_decisions \
             WHERE marker = '{marker2}'"
        ))
        .await,
        Some("handoff true".into())
    );
}

#[tokio::test]
async fn a_hand_off_that_cannot_be_sent_fails_the_invocation_with_a_notice_and_loads_nothing() {
    let aws = aws().await;
    let bucket = unique_bucket("auto-broken");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    put(&aws, &bucket, "Stocks/ACME.csv", &company(5, 10.0)).await;
    put(
        &aws,
        &bucket,
        "CompanyNames/top_companies.txt",
        "'ACME.csv'",
    )
    .await;
    let db = TestDb::new().await;
    let smtp = smtp();
    let name = format!("Auto_Broken_{}", std::process::id());
    let missing = format!(
        "{}/123456789012/no-such-queue-{}",
        moto_endpoint(),
        std::process::id()
    );
    let (handoff, notify) = (format!("sqs:{missing}"), smtp.target("ops@example.com"));
    let function = Function::start(&[
        ("STOCKLOAD_MODE", "auto"),
        ("STOCKLOAD_SOURCE_BUCKET", &bucket),
        ("STOCKLOAD_HANDOFF", &handoff),
        // No byte override: the estimate decides. Its peak (32 MiB measured) is more than half
        // of a 40 MiB function.
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "40"),
        ("DATABASE_URL", &db.url),
        ("STOCKLOAD_NOTIFY", &notify),
        ("STOCKLOAD_NOTIFY_NAME", &name),
    ]);
    let etag = put(&aws, &bucket, "run/.SUCCESS", "run").await;
    let event = s3_event(&bucket, "run/.SUCCESS", &etag);
    let failure = format!("{name}_Pipeline_Failure");
    // Lambda retries a failed invocation: each try fails the same way and loads nothing.
    for tries in 1..=2 {
        let err = function.invoke(&event).unwrap_err();
        assert!(err.contains("SendMessage"), "{err}");
        assert!(err.contains("no-such-queue"), "{err}");
        let notices: Vec<String> = smtp.messages(&failure).iter().map(|m| decoded(m)).collect();
        assert_eq!(notices.len(), tries, "{notices:?}");
        assert!(
            notices[0].contains("handing off marker")
                && notices[0].contains("more than half of the function's 40 MiB")
                && notices[0].contains("SendMessage"),
            "{}",
            notices[0]
        );
        assert!(db.rows().await.is_empty());
        assert_eq!(count(&db, "SELECT count(*)::text FROM load_runs").await, 0);
        assert_eq!(
            count(&db, "SELECT count(*)::text FROM processed_markers").await,
            0
        );
    }
    assert_eq!(
        db.scalar(
            "SELECT string_agg(choice || ' ' || sent || ' ' || (error IS NOT NULL), ',') \
             FROM marker_decisions"
        )
        .await,
        Some("handoff false true,handoff false true".into())
    );
    assert!(smtp
        .messages(&format!("{name}_Pipeline_Handoff"))
        .is_empty());
}

#[tokio::test]
async fn auto_mode_hands_a_big_batch_to_data_pipeline_where_configured() {
    use stockload::trigger::auto::Handoff;
    use stockload::trigger::lambda::{handle, LambdaConfig, Mode};
    let aws = aws().await;
    let bucket = unique_bucket("auto-pipeline");
    let name = unique_bucket("auto-pipeline");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    put(&aws, &bucket, "Stocks/ACME.csv", &company(5, 10.0)).await;
    put(
        &aws,
        &bucket,
        "CompanyNames/top_companies.txt",
        "'ACME.csv'",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("pipeline.json");
    let json = serde_json::json!({
        "pipeline_name": name, "source_bucket": bucket, "ami_id": "ami-0123456789abcdef0",
        "security_group_ids": ["sg-0123456789abcdef0"], "subnet_id": "subnet-0123456789abcdef0",
        "rds_instance_id": "stocks-db", "rds_endpoint": "stocks-db.abc.us-east-1.rds.amazonaws.com",
        "db_user": "loader", "topic_arn": "arn:aws:sns:us-east-1:123456789012:stock-runs",
        "notify_name": "Ada_Lovelace"
    });
    std::fs::write(&settings, json.to_string()).unwrap();
    let upload = moto_env(&mut stockload())
        .args(["pipeline", "definition", "--upload", "--config"])
        .arg(&settings)
        .output()
        .unwrap();
    assert!(upload.status.success(), "{}", text(&upload));
    let db = TestDb::new().await;
    let config = LambdaConfig::from_vars(|var| match var {
        "STOCKLOAD_MODE" => Some("auto".into()),
        "STOCKLOAD_SOURCE_BUCKET" => Some(bucket.clone()),
        "STOCKLOAD_PIPELINE_NAME" => Some(name.clone()),
        "STOCKLOAD_HANDOFF" => Some("pipeline".into()),
        "STOCKLOAD_DIRECT_MAX_BYTES" => Some("10".into()),
        "DATABASE_URL" => Some(db.url.clone()),
        _ => None,
    })
    .unwrap();
    assert_eq!(
        (config.mode, config.handoff.clone()),
        (Mode::Auto, Some(Handoff::Pipeline))
    );
    let event: aws_lambda_events::event::s3::S3Event =
        serde_json::from_value(s3_event(&bucket, "big/.SUCCESS", "0b0b")).unwrap();
    let done = handle(&aws, &config, &event).await.unwrap();
    assert!(done[0].contains("handed to Data Pipeline"), "{done:?}");
    let listed = aws.datapipeline().list_pipelines().send().await.unwrap();
    let ours = listed
        .pipeline_id_list()
        .iter()
        .filter(|p| p.name() == Some(name.as_str()))
        .count();
    assert_eq!(ours, 1);
    // A duplicate event: not started twice, nothing loaded here.
    let again = handle(&aws, &config, &event).await.unwrap();
    assert!(
        again[0].contains("already handed to Data Pipeline"),
        "{again:?}"
    );
    assert!(db.rows().await.is_empty());
    assert_eq!(
        db.scalar("SELECT string_agg(choice || ' ' || handed_to || ' ' || sent, ',') FROM marker_decisions")
            .await,
        Some("handoff Data Pipeline true".into())
    );
}
