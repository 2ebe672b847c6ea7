//! Runs started by `.SUCCESS` markers: the Data Pipeline definition, the Lambda handler (pipeline
//! and direct mode) against moto_server, `watch` on a folder, and the SQS consumer.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_lambda_events::event::s3::S3Event;
use stockload::trigger::lambda::{handle, DbSource, LambdaConfig, Mode};

use crate::cli_text as text;
use crate::support::services::{aws, moto_env, smtp, tool, unique_bucket};
use crate::support::{csv, stockload, Batch, TestDb};

fn settings_json(bucket: &str, name: &str) -> serde_json::Value {
    serde_json::json!({
        "pipeline_name": name,
        "source_bucket": bucket,
        "ami_id": "ami-0123456789abcdef0",
        "security_group_ids": ["sg-0123456789abcdef0"],
        "subnet_id": "subnet-0123456789abcdef0",
        "rds_instance_id": "stocks-db",
        "rds_endpoint": "stocks-db.abc.us-east-1.rds.amazonaws.com",
        "db_user": "loader",
        "topic_arn": "arn:aws:sns:us-east-1:123456789012:stock-runs",
        "notify_name": "Ada_Lovelace"
    })
}

fn s3_event(bucket: &str, key: &str, sequencer: &str) -> S3Event {
    serde_json::from_value(event_json(bucket, key, sequencer)).unwrap()
}

fn event_json(bucket: &str, key: &str, sequencer: &str) -> serde_json::Value {
    serde_json::json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T00:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:X"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "1", "x-amz-id-2": "2"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "success-marker",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "X"}, "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": key, "size": 0, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": sequencer}}
    }]})
}

#[test]
fn the_definition_passes_the_aws_cli_translator_and_botocore_validation() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pipeline.json");
    std::fs::write(
        &config,
        settings_json("stock-source", "stock-pipeline").to_string(),
    )
    .unwrap();
    let output = stockload()
        .args(["pipeline", "definition", "--config"])
        .arg(&config)
        .args(["--instance-type", "t3.small"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let definition: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ec2 = definition["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "Ec2Resource")
        .unwrap();
    assert_eq!(
        ec2["instanceType"], "t3.small",
        "flags override the config file"
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("\"password\""));
    let file = dir.path().join("definition.json");
    std::fs::write(&file, &output.stdout).unwrap();
    let check = Command::new(tool("python3"))
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/pipeline_check.py"
        ))
        .arg(&file)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).starts_with("OK"),
        "{}",
        text(&check)
    );

    // A definition missing a required setting is refused with the setting named.
    let output = stockload()
        .args(["pipeline", "definition", "--source-bucket", "b"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("missing field"), "{}", text(&output));
}

fn pipeline_config(bucket: &str, name: &str) -> LambdaConfig {
    LambdaConfig::from_vars(|var| match var {
        "STOCKLOAD_SOURCE_BUCKET" => Some(bucket.to_string()),
        "STOCKLOAD_PIPELINE_NAME" => Some(name.to_string()),
        _ => None,
    })
    .unwrap()
}

async fn pipelines_named(dp: &aws_sdk_datapipeline::Client, name: &str) -> Vec<String> {
    let listed = dp.list_pipelines().send().await.unwrap();
    listed
        .pipeline_id_list()
        .iter()
        .filter(|p| p.name() == Some(name))
        .filter_map(|p| p.id().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_lambda_recreates_and_activates_the_pipeline_on_success_markers() {
    let aws = aws().await;
    let dp = aws.datapipeline();
    let bucket = unique_bucket("pipeline-source");
    let name = unique_bucket("stock-pipeline");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("pipeline.json");
    std::fs::write(&config_file, settings_json(&bucket, &name).to_string()).unwrap();
    let upload = moto_env(&mut stockload())
        .args(["pipeline", "definition", "--upload", "--config"])
        .arg(&config_file)
        .output()
        .unwrap();
    assert!(upload.status.success(), "{}", text(&upload));
    let config = pipeline_config(&bucket, &name);

    // Not a marker: nothing happens.
    let done = handle(
        &aws,
        &config,
        &s3_event("monitored", "batch/AAPL.csv", "01"),
    )
    .await
    .unwrap();
    assert!(done.is_empty());
    assert!(pipelines_named(&dp, &name).await.is_empty());

    // A marker (URL-encoded key): exactly one pipeline, activated, holding our definition.
    let first = s3_event("monitored", "daily+run%2F.SUCCESS", "0A");
    handle(&aws, &config, &first).await.unwrap();
    let ids = pipelines_named(&dp, &name).await;
    assert_eq!(ids.len(), 1);
    let described = dp
        .describe_pipelines()
        .pipeline_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let state = described.pipeline_description_list()[0]
        .fields()
        .iter()
        .find(|f| f.key() == "@pipelineState")
        .and_then(|f| f.string_value())
        .map(str::to_string);
    assert_eq!(state.as_deref(), Some("SCHEDULED"));
    let stored = dp
        .get_pipeline_definition()
        .pipeline_id(&ids[0])
        .send()
        .await
        .unwrap();
    let mut object_ids: Vec<&str> = stored.pipeline_objects().iter().map(|o| o.id()).collect();
    object_ids.sort_unstable();
    assert_eq!(
        object_ids,
        [
            "Default",
            "Ec2Instance",
            "FailureAlarm",
            "LoadActivity",
            "RdsDatabase",
            "SuccessAlarm",
            "UpdateChangesActivity"
        ]
    );

    // The same event again (Lambda retries, duplicate notifications): no second pipeline.
    let again = handle(&aws, &config, &first).await.unwrap();
    assert!(again[0].contains("duplicate event"), "{again:?}");
    assert_eq!(pipelines_named(&dp, &name).await, ids);

    // A new marker replaces the pipeline.
    handle(&aws, &config, &s3_event("monitored", "next/.SUCCESS", "0B"))
        .await
        .unwrap();
    let replaced = pipelines_named(&dp, &name).await;
    assert_eq!(replaced.len(), 1);
    assert_ne!(replaced, ids);

    // A missing definition fails clearly and keeps the current pipeline.
    let mut missing = config.clone();
    missing.definition_key = "no-such-definition.json".into();
    let err = handle(
        &aws,
        &missing,
        &s3_event("monitored", "later/.SUCCESS", "0C"),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(&format!("s3://{bucket}/no-such-definition.json")),
        "{err}"
    );
    assert!(err.contains("NoSuchKey"), "{err}");
    assert_eq!(pipelines_named(&dp, &name).await, replaced);
}

#[tokio::test]
async fn the_lambda_direct_mode_loads_the_batch_once_per_marker() {
    let aws = aws().await;
    let bucket = unique_bucket("direct-source");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let put = |key: &str, body: String| {
        aws.s3
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.into_bytes().into())
            .send()
    };
    put(
        "Stocks/ACME.csv",
        csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12.1")]),
    )
    .await
    .unwrap();
    put("CompanyNames/top_companies.txt", "'ACME.csv'".into())
        .await
        .unwrap();
    let db = TestDb::new().await;
    let smtp = smtp();
    let notify_name = format!("Direct_Mode_{}", std::process::id());
    let mut config = pipeline_config(&bucket, "unused");
    config.mode = Mode::Direct;
    config.db = Some(DbSource::Url(db.url.as_str().into()));
    config.targets =
        stockload::notify::parse_targets(&[smtp.target("ops@example.com").into()]).unwrap();
    config.notify_name = notify_name.clone();

    let event = s3_event("monitored", "run/.SUCCESS", "0A");
    let done = handle(&aws, &config, &event).await.unwrap();
    assert!(done[0].contains("loaded 2 rows"), "{done:?}");
    assert_eq!(db.rows().await.len(), 2);
    let again = handle(&aws, &config, &event).await.unwrap();
    assert!(again[0].contains("already loaded"), "{again:?}");
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_runs").await,
        Some("1".into())
    );
    assert_eq!(
        smtp.messages(&format!("{notify_name}_Pipeline_Success"))
            .len(),
        1
    );
}

fn watch_args(monitored: &std::path::Path, batch: &Batch) -> Vec<String> {
    vec![
        "watch".into(),
        "--monitored".into(),
        monitored.display().to_string(),
        "--source".into(),
        batch.stocks.display().to_string(),
        "--companies".into(),
        batch.companies.display().to_string(),
    ]
}

#[tokio::test]
async fn watch_loads_each_new_marker_once_across_restarts() {
    let db = TestDb::new().await;
    let batch = Batch::new(
        &[("ACME.csv", &csv(&[("2020-01-02", "10", "11")]))],
        "ACME.csv",
    );
    let monitored = tempfile::tempdir().unwrap();
    let once = || {
        let output = stockload()
            .args(watch_args(monitored.path(), &batch))
            .arg("--once")
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", text(&output));
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    assert!(once().contains("started 0 runs"));
    std::fs::create_dir(monitored.path().join("day1")).unwrap();
    std::fs::write(monitored.path().join("day1/.SUCCESS"), "").unwrap();
    assert!(once().contains("started 1 runs"));
    // A restart does not rerun it.
    assert!(once().contains("started 0 runs"));
    std::fs::write(monitored.path().join("day2.SUCCESS"), "").unwrap();
    assert!(once().contains("started 1 runs"));
    assert_eq!(
        db.scalar("SELECT string_agg(status, ',') FROM load_runs")
            .await,
        Some("succeeded,succeeded".into())
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM processed_markers")
            .await,
        Some("2".into())
    );
}

/// Waits (bounded) until `check` holds, re-checking the real condition each time.
async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Watcher(Child);

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_running_watcher_picks_up_a_marker() {
    let db = TestDb::new().await;
    let batch = Batch::new(
        &[("ACME.csv", &csv(&[("2020-01-02", "10", "11")]))],
        "ACME.csv",
    );
    let monitored = tempfile::tempdir().unwrap();
    let _watcher = Watcher(
        stockload()
            .args(watch_args(monitored.path(), &batch))
            .args(["--interval", "1"])
            .env("DATABASE_URL", &db.url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::fs::write(monitored.path().join(".SUCCESS"), "").unwrap();
    wait_for("the watcher's run", Duration::from_secs(60), || async {
        db.succeeded_runs().await == 1
    })
    .await;
    assert_eq!(db.rows().await.len(), 1);
}

/// A monitored bucket whose `.SUCCESS` uploads notify a queue (with a dead-letter queue after
/// `max_receives`), as `stockload bucket notify-queue` sets up.
struct QueueSetup {
    bucket: String,
    queue_url: String,
    dlq_url: String,
}

async fn queue_setup(aws: &stockload::aws::Aws, visibility: i32, max_receives: u32) -> QueueSetup {
    use aws_sdk_sqs::types::QueueAttributeName;
    let sqs = aws.sqs();
    let dlq = sqs
        .create_queue()
        .queue_name(unique_bucket("dlq"))
        .send()
        .await
        .unwrap();
    let dlq_url = dlq.queue_url().unwrap().to_string();
    let dlq_arn = queue_arn(&sqs, &dlq_url).await;
    let queue = sqs
        .create_queue()
        .queue_name(unique_bucket("events"))
        .attributes(QueueAttributeName::VisibilityTimeout, visibility.to_string())
        .attributes(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()}).to_string(),
        )
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    let arn = queue_arn(&sqs, &queue_url).await;
    let bucket = unique_bucket("monitored");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let output = moto_env(&mut stockload())
        .args(["bucket", "notify-queue", &format!("s3://{bucket}"), &arn])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    QueueSetup {
        bucket,
        queue_url,
        dlq_url,
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    attributes.attributes().unwrap()[&QueueAttributeName::QueueArn].clone()
}

async fn upload_batch(
    aws: &stockload::aws::Aws,
    bucket: &str,
    folder: &str,
    files: &[(String, String)],
    index: &str,
) {
    for (name, body) in files {
        aws.s3
            .put_object()
            .bucket(bucket)
            .key(format!("{folder}/{name}"))
            .body(body.clone().into_bytes().into())
            .send()
            .await
            .unwrap();
    }
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(format!("{folder}/top_companies.txt"))
        .body(index.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

async fn put_marker(aws: &stockload::aws::Aws, bucket: &str, key: &str) {
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(Vec::new().into())
        .send()
        .await
        .unwrap();
}

fn consume_once(queue_url: &str, db: &TestDb) -> std::process::Output {
    moto_env(&mut stockload())
        .args(["watch", "--once", "--queue", queue_url])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap()
}

async fn queue_depth(aws: &stockload::aws::Aws, url: &str) -> usize {
    use aws_sdk_sqs::types::QueueAttributeName;
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
    let n = |k: QueueAttributeName| a.get(&k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
    n(QueueAttributeName::ApproximateNumberOfMessages)
        + n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
}

#[tokio::test]
async fn a_queued_marker_loads_once_and_duplicates_and_other_keys_load_nothing() {
    let aws = aws().await;
    let setup = queue_setup(&aws, 30, 3).await;
    let db = TestDb::new().await;
    let files = vec![(
        "ACME.csv".to_string(),
        csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12")]),
    )];
    upload_batch(&aws, &setup.bucket, "day1", &files, "ACME.csv").await;
    put_marker(&aws, &setup.bucket, "day1/.SUCCESS").await;

    // SQS is at-least-once: put a second copy of the notification next to the original.
    let sqs = aws.sqs();
    let received = sqs
        .receive_message()
        .queue_url(&setup.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(2)
        .send()
        .await
        .unwrap();
    let mut copied = 0;
    for message in received.messages() {
        let body = message.body().unwrap_or_default();
        if body.contains("day1/.SUCCESS") || body.contains("day1%2F.SUCCESS") {
            sqs.send_message()
                .queue_url(&setup.queue_url)
                .message_body(body)
                .send()
                .await
                .unwrap();
            copied += 1;
        }
        sqs.change_message_visibility()
            .queue_url(&setup.queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(copied, 1, "{:?}", received.messages());

    let output = consume_once(&setup.queue_url, &db);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("handled 1 runs"),
        "{}",
        text(&output)
    );
    assert_eq!(db.rows().await.len(), 2);
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_runs").await,
        Some("1".into())
    );
    assert_eq!(
        queue_depth(&aws, &setup.queue_url).await,
        0,
        "messages are deleted"
    );

    // A data file is not a marker: the bucket's suffix filter sends nothing, and a stray event
    // for one is acknowledged without a load.
    upload_batch(&aws, &setup.bucket, "day2", &files, "ACME.csv").await;
    let stray = event_json(&setup.bucket, "day2/ACME.csv", "77");
    aws.sqs()
        .send_message()
        .queue_url(&setup.queue_url)
        .message_body(stray.to_string())
        .send()
        .await
        .unwrap();

    let output = consume_once(&setup.queue_url, &db);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("handled 0 runs"),
        "{}",
        text(&output)
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_runs").await,
        Some("1".into())
    );
    assert_eq!(queue_depth(&aws, &setup.queue_url).await, 0);
}

#[tokio::test]
async fn a_failing_batch_is_retried_then_left_to_the_dead_letter_queue_with_a_notice() {
    let aws = aws().await;
    let setup = queue_setup(&aws, 1, 2).await;
    let db = TestDb::new().await;
    // No top_companies.txt in the folder: every attempt fails.
    put_marker(&aws, &setup.bucket, "broken/.SUCCESS").await;
    let smtp = smtp();
    let name = format!("Dead_Letter_{}", std::process::id());
    let _watcher = Watcher(
        moto_env(&mut stockload())
            .args(["watch", "--queue", &setup.queue_url, "--max-attempts", "2"])
            .args([
                "--notify",
                &smtp.target("ops@example.com"),
                "--notify-name",
                &name,
            ])
            .env("DATABASE_URL", &db.url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "the message in the dead-letter queue",
        Duration::from_secs(90),
        || async { queue_depth(&aws, &setup.dlq_url).await == 1 },
    )
    .await;
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_runs WHERE status = 'failed'")
            .await,
        Some("2".into())
    );
    let failures = smtp.messages(&format!("{name}_Pipeline_Failure"));
    assert_eq!(
        failures.len(),
        3,
        "one notice per failed run, one for giving up"
    );
    assert!(failures
        .iter()
        .any(|m| m.contains("left to the dead-letter queue")));
    assert_eq!(db.rows().await.len(), 0);
}

#[tokio::test]
async fn a_watcher_killed_mid_load_and_restarted_loads_the_batch_exactly_once() {
    let aws = aws().await;
    let setup = queue_setup(&aws, 2, 5).await;
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let spec = stockload::sample::SampleSpec {
        files: 300,
        listed: 300,
        rows: 400,
        faulty: false,
        seed: 5,
    };
    let sample = stockload::sample::generate(dir.path(), &spec).unwrap();
    let mut files = Vec::new();
    for ticker in &sample.listed {
        let name = format!("{ticker}.csv");
        files.push((
            name.clone(),
            std::fs::read_to_string(sample.stocks.join(&name)).unwrap(),
        ));
    }
    let index = std::fs::read_to_string(&sample.companies).unwrap();
    upload_batch(&aws, &setup.bucket, "big", &files, &index).await;
    put_marker(&aws, &setup.bucket, "big/.SUCCESS").await;

    let start = || {
        Watcher(
            moto_env(&mut stockload())
                .args(["watch", "--queue", &setup.queue_url])
                .env("DATABASE_URL", &db.url)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    // Hold the load lock ourselves, so the first watcher's load is caught inside its transaction
    // (migrated, index read, waiting for the lock) whatever the machine's speed.
    let mut blocker = db.conn().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(stockload::db::LOAD_LOCK_KEY)
        .execute(&mut blocker)
        .await
        .unwrap();
    let mut first = start();
    wait_for("the first load to wait for the lock", Duration::from_secs(60), || async {
        db.scalar(&format!(
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = {} \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            stockload::db::LOAD_LOCK_KEY & 0xffff_ffff
        ))
        .await
        .as_deref()
            == Some("1")
    })
    .await;
    let _ = first.0.kill();
    let _ = first.0.wait();
    drop(first);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(stockload::db::LOAD_LOCK_KEY)
        .execute(&mut blocker)
        .await
        .unwrap();
    assert_eq!(db.rows().await.len(), 0, "the killed load wrote nothing");
    let _second = start();
    wait_for(
        "the batch to be loaded",
        Duration::from_secs(120),
        || async { db.succeeded_runs().await == 1 },
    )
    .await;
    assert_eq!(db.rows().await.len(), 300 * 400);
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM processed_markers")
            .await,
        Some("1".into())
    );
    wait_for(
        "the message to be deleted",
        Duration::from_secs(30),
        || async { queue_depth(&aws, &setup.queue_url).await == 0 },
    )
    .await;
}
