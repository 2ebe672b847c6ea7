//! Runs started by `.SUCCESS` markers: the Data Pipeline definition, the Lambda handler (pipeline
//! and direct mode) against moto_server, `watch` on a folder, and the SQS consumer.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_lambda_events::event::s3::S3Event;
use stockload::pipeline::aws::{PipelineApi, PutOutcome, SdkDefinition, SdkPipelines};
use stockload::trigger::lambda::{handle, handle_with, DbSource, LambdaConfig, Mode};

use crate::cli_text as text;
use crate::support::services::{self, aws, moto_env, smtp, tool, unique_bucket};
use crate::support::{csv, stockload, wait_until, wait_until_or, Batch, TestDb};

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

fn s3_event_with_etag(bucket: &str, key: &str, sequencer: &str, etag: &str) -> S3Event {
    let mut event = event_json(bucket, key, sequencer);
    event["Records"][0]["s3"]["object"]["eTag"] = etag.into();
    serde_json::from_value(event).unwrap()
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

    // A new marker while the previous pipeline may still be running (moto keeps it SCHEDULED
    // and cannot say whether its run finished): the event fails, nothing is cancelled.
    let next = s3_event_with_etag("monitored", "next/.SUCCESS", "0B", "0b0b");
    let err = handle(&aws, &config, &next).await.unwrap_err().to_string();
    assert!(err.contains("may still be running"), "{err}");
    assert!(err.contains(&ids[0]), "{err}");
    assert_eq!(pipelines_named(&dp, &name).await, ids);

    assert!(
        err.contains("cannot tell whether its run finished"),
        "{err}"
    );
    // The same when AWS answers that an instance is still running.
    let running = Faulty::new(&aws, None).instances_running(true);
    let err = handle_with(&aws, &running, &config, &next)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("its run has not finished"), "{err}");
    assert_eq!(pipelines_named(&dp, &name).await, ids);

    // Once its run has finished (instances all FINISHED, as QueryObjects would report), the
    // retried event replaces it.
    let finished = Faulty::new(&aws, None).instances_running(false);
    handle_with(&aws, &finished, &config, &next).await.unwrap();
    let replaced = pipelines_named(&dp, &name).await;
    assert_eq!(replaced.len(), 1);
    assert_ne!(replaced, ids);
    assert_eq!(
        pipeline_marker(&dp, &replaced[0]).await.as_deref(),
        Some("s3://monitored/next/.SUCCESS#etag=0b0b")
    );

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
    let notices = smtp.messages(&format!("{notify_name}_Pipeline_Success"));
    assert_eq!(notices.len(), 1);
    // The run's report is in the source bucket, and the notice says where.
    let run_id = db
        .scalar("SELECT max(id)::text FROM load_runs")
        .await
        .unwrap();
    let key = format!("Output/reports/run-{run_id}.html");
    let report = aws
        .s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(report.content_type(), Some("text/html; charset=utf-8"));
    assert!(
        notices[0].contains(&format!("Report: s3://{bucket}/{key}")),
        "{}",
        notices[0]
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
    wait_until("the watcher's run", Duration::from_secs(60), || async {
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
    // A missing or unreadable attribute fails the test: "0 messages" must mean zero.
    let n = |k: QueueAttributeName| {
        a.get(&k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("queue attribute {k:?} missing in {a:?}"))
    };
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
    wait_until(
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
    wait_until("the first load to wait for the lock", Duration::from_secs(60), || async {
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
    wait_until(
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
    wait_until(
        "the message to be deleted",
        Duration::from_secs(30),
        || async { queue_depth(&aws, &setup.queue_url).await == 0 },
    )
    .await;
}

/// The steps of starting a pipeline a failure can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Create,
    Put,
    Activate,
}

/// The real Data Pipeline client (on moto) with one failure injected: the given step fails once,
/// either before the call reaches AWS or after AWS did it (the answer is lost). It can also play
/// the part of QueryObjects, which moto lacks, answering that every run has finished.
struct Faulty {
    inner: SdkPipelines,
    fail: std::sync::Mutex<Option<(Step, bool)>>,
    /// What QueryObjects + DescribeObjects would say about a pipeline's instances.
    running: Option<bool>,
    activations: std::sync::atomic::AtomicUsize,
}

impl Faulty {
    fn new(aws: &stockload::aws::Aws, fail: Option<(Step, bool)>) -> Faulty {
        Faulty {
            inner: SdkPipelines(aws.datapipeline()),
            fail: std::sync::Mutex::new(fail),
            running: None,
            activations: Default::default(),
        }
    }

    fn instances_running(mut self, running: bool) -> Faulty {
        self.running = Some(running);
        self
    }

    /// Whether `step` fails now, and if so whether after doing it. Fails once.
    fn trip(&self, step: Step) -> Option<bool> {
        let mut fail = self.fail.lock().unwrap();
        match *fail {
            Some((s, after)) if s == step => {
                *fail = None;
                Some(after)
            }
            _ => None,
        }
    }

    async fn step<T>(
        &self,
        step: Step,
        call: impl std::future::Future<Output = stockload::error::Result<T>>,
    ) -> stockload::error::Result<T> {
        let injected = || stockload::error::Error::Aws {
            service: "Data Pipeline",
            action: format!("{step:?}"),
            reason: "injected failure".into(),
            source: None,
        };
        match self.trip(step) {
            None => call.await,
            Some(false) => Err(injected()),
            Some(true) => {
                call.await?;
                Err(injected())
            }
        }
    }
}

impl PipelineApi for Faulty {
    async fn list_named(&self, name: &str) -> stockload::error::Result<Vec<String>> {
        self.inner.list_named(name).await
    }

    async fn describe(
        &self,
        ids: &[String],
    ) -> stockload::error::Result<Vec<stockload::pipeline::aws::PipelineInfo>> {
        self.inner.describe(ids).await
    }

    async fn create(
        &self,
        name: &str,
        unique_id: &str,
        marker: &str,
    ) -> stockload::error::Result<String> {
        self.step(Step::Create, self.inner.create(name, unique_id, marker))
            .await
    }

    async fn put_definition(
        &self,
        id: &str,
        definition: SdkDefinition,
    ) -> stockload::error::Result<PutOutcome> {
        self.step(Step::Put, self.inner.put_definition(id, definition))
            .await
    }

    async fn activate(
        &self,
        id: &str,
        values: Vec<aws_sdk_datapipeline::types::ParameterValue>,
    ) -> stockload::error::Result<()> {
        let activations = &self.activations;
        self.step(Step::Activate, async move {
            self.inner.activate(id, values).await?;
            activations.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(())
        })
        .await
    }

    async fn delete(&self, id: &str) -> stockload::error::Result<()> {
        self.inner.delete(id).await
    }

    async fn has_running_instances(&self, id: &str) -> stockload::error::Result<bool> {
        match self.running {
            Some(running) => Ok(running),
            None => self.inner.has_running_instances(id).await,
        }
    }
}

async fn pipeline_marker(dp: &aws_sdk_datapipeline::Client, id: &str) -> Option<String> {
    let described = dp
        .describe_pipelines()
        .pipeline_ids(id)
        .send()
        .await
        .unwrap();
    described.pipeline_description_list()[0]
        .tags()
        .iter()
        .find(|t| t.key() == "stockload:marker")
        .map(|t| t.value().to_string())
}

async fn pipeline_state(dp: &aws_sdk_datapipeline::Client, id: &str) -> Option<String> {
    let described = dp
        .describe_pipelines()
        .pipeline_ids(id)
        .send()
        .await
        .unwrap();
    described.pipeline_description_list()[0]
        .fields()
        .iter()
        .find(|f| f.key() == "@pipelineState")
        .and_then(|f| f.string_value())
        .map(str::to_string)
}

#[tokio::test]
async fn the_lambda_finishes_the_pipeline_after_a_failure_at_any_step() {
    let aws = aws().await;
    let dp = aws.datapipeline();
    let bucket = unique_bucket("resume-source");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("pipeline.json");
    std::fs::write(&config_file, settings_json(&bucket, "unused").to_string()).unwrap();
    let upload = moto_env(&mut stockload())
        .args(["pipeline", "definition", "--upload", "--config"])
        .arg(&config_file)
        .output()
        .unwrap();
    assert!(upload.status.success(), "{}", text(&upload));

    for step in [Step::Create, Step::Put, Step::Activate] {
        for after in [false, true] {
            let case = format!(
                "{step:?} failing {}",
                if after { "after AWS did it" } else { "before" }
            );
            let name = unique_bucket("resumed-pipeline");
            let config = pipeline_config(&bucket, &name);
            let event = s3_event("monitored", "daily/.SUCCESS", "0A");
            let api = Faulty::new(&aws, Some((step, after)));

            let err = handle_with(&aws, &api, &config, &event)
                .await
                .unwrap_err()
                .to_string();
            assert!(err.contains("injected failure"), "{case}: {err}");

            // Lambda retries the same event: the retry finishes the job.
            let done = handle_with(&aws, &api, &config, &event).await.unwrap();
            assert_eq!(done.len(), 1, "{case}");
            let ids = pipelines_named(&dp, &name).await;
            assert_eq!(ids.len(), 1, "{case}: exactly one pipeline, got {ids:?}");
            assert_eq!(
                pipeline_state(&dp, &ids[0]).await.as_deref(),
                Some("SCHEDULED"),
                "{case}: activated"
            );
            assert_eq!(
                pipeline_marker(&dp, &ids[0]).await.as_deref(),
                Some("s3://monitored/daily/.SUCCESS#etag=d41d8cd98f00b204e9800998ecf8427e"),
                "{case}"
            );
            let stored = dp
                .get_pipeline_definition()
                .pipeline_id(&ids[0])
                .send()
                .await
                .unwrap();
            assert_eq!(stored.pipeline_objects().len(), 7, "{case}: defined");
            assert_eq!(
                api.activations.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "{case}: activated once (re-activating an on-demand pipeline restarts its run)"
            );
            if step == Step::Activate && after {
                assert!(done[0].contains("already started"), "{case}: {done:?}");
            } else {
                assert!(
                    done[0].contains("created and activated"),
                    "{case}: {done:?}"
                );
            }

            // Yet another delivery of the event changes nothing.
            let again = handle_with(&aws, &api, &config, &event).await.unwrap();
            assert!(again[0].contains("already started"), "{case}: {again:?}");
            assert_eq!(pipelines_named(&dp, &name).await, ids, "{case}");
        }
    }
}

#[tokio::test]
async fn a_pipeline_mode_failure_is_notified() {
    let aws = aws().await;
    let bucket = unique_bucket("notified-source");
    aws.s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let smtp = smtp();
    let notify_name = format!("Pipeline_Failure_{}", std::process::id());
    let mut config = pipeline_config(&bucket, &unique_bucket("never-created"));
    config.targets =
        stockload::notify::parse_targets(&[smtp.target("ops@example.com").into()]).unwrap();
    config.notify_name = notify_name.clone();
    // No definition in the bucket: the event fails, and the operators hear of it.
    let err = handle(&aws, &config, &s3_event("monitored", "x/.SUCCESS", "01"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NoSuchKey"), "{err}");
    let notices = smtp.messages(&format!("{notify_name}_Pipeline_Failure"));
    assert_eq!(notices.len(), 1);
    assert!(notices[0].contains("NoSuchKey"), "{}", notices[0]);
}

#[tokio::test]
async fn one_marker_seen_by_watch_the_queue_and_the_lambda_loads_once() {
    let aws = aws().await;
    let setup = queue_setup(&aws, 30, 5).await;
    let db = TestDb::new().await;
    let files = vec![(
        "ACME.csv".to_string(),
        csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12")]),
    )];
    upload_batch(&aws, &setup.bucket, "day1", &files, "ACME.csv").await;
    put_marker(&aws, &setup.bucket, "day1/.SUCCESS").await;

    // Trigger 1: watch polling the bucket.
    let output = moto_env(&mut stockload())
        .args(["watch", "--once", "--monitored"])
        .arg(format!("s3://{}/day1/", setup.bucket))
        .arg("--source")
        .arg(format!("s3://{}/day1/", setup.bucket))
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("started 1 runs"),
        "{}",
        text(&output)
    );
    assert_eq!(db.succeeded_runs().await, 1);

    // Trigger 2: the S3 event S3 itself sent to the queue, for the same object.
    let received = aws
        .sqs()
        .receive_message()
        .queue_url(&setup.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let mut body = None;
    for message in received.messages() {
        if message.body().is_some_and(|b| b.contains("Records")) {
            body = message.body().map(str::to_string);
        }
        aws.sqs()
            .change_message_visibility()
            .queue_url(&setup.queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    let body = body.expect("S3's event for the marker");
    let output = consume_once(&setup.queue_url, &db);
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("handled 0 runs"),
        "{}",
        text(&output)
    );
    assert_eq!(queue_depth(&aws, &setup.queue_url).await, 0, "acknowledged");

    // Trigger 3: the Lambda (direct mode) handed the same event.
    // (moto's event lacks fields Lambda's S3Event requires; AWS hands Lambda the full record,
    // with the same eTag.)
    let sent: serde_json::Value = serde_json::from_str(&body).unwrap();
    let etag = sent["Records"][0]["s3"]["object"]["eTag"].as_str().unwrap();
    let event = s3_event_with_etag(&setup.bucket, "day1/.SUCCESS", "0A", etag);
    let mut config = pipeline_config(&setup.bucket, "unused");
    config.mode = Mode::Direct;
    config.db = Some(DbSource::Url(db.url.as_str().into()));
    config.stocks_prefix = "day1/".into();
    config.companies_key = "day1/top_companies.txt".into();
    let done = handle(&aws, &config, &event).await.unwrap();
    assert!(done[0].contains("already loaded"), "{done:?}");

    assert_eq!(
        db.scalar("SELECT string_agg(status, ',') FROM load_runs")
            .await,
        Some("succeeded".into()),
        "one run for three triggers"
    );
    let head = aws
        .s3
        .head_object()
        .bucket(&setup.bucket)
        .key("day1/.SUCCESS")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap().trim_matches('"').to_string();
    assert_eq!(
        db.scalar("SELECT string_agg(marker, ',') FROM processed_markers")
            .await,
        Some(format!("s3://{}/day1/.SUCCESS#etag={etag}", setup.bucket))
    );
    assert_eq!(db.rows().await.len(), 2);
}

/// A throwaway PostgreSQL of one test's own, which it may stop and start.
struct OwnCluster {
    cluster: stockload::devdb::TempCluster,
    url: String,
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let cluster = stockload::devdb::TempCluster::start(&[("fsync", "off")]).unwrap();
        let url = cluster.url("postgres");
        OwnCluster { cluster, url }
    }

    async fn scalar(&self, sql: &str) -> Option<String> {
        use sqlx::{Connection, Row};
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get::<Option<String>, _>(0)
    }

    async fn succeeded_runs(&self) -> usize {
        if self
            .scalar("SELECT to_regclass('load_runs')::text")
            .await
            .is_none()
        {
            return 0;
        }
        self.scalar("SELECT count(*)::text FROM load_runs WHERE status = 'succeeded'")
            .await
            .and_then(|n| n.parse().ok())
            .expect("count(*) is a number")
    }
}

/// A loader process whose log goes to a file the test can read while it runs.
struct Logged {
    watcher: Watcher,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Logged {
    fn spawn(command: &mut Command) -> Logged {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("watch.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = command.stdout(Stdio::null()).stderr(file).spawn().unwrap();
        Logged {
            watcher: Watcher(child),
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_for_log(&self, what: &str) {
        self.wait_until(&format!("{what:?} in the log"), || async {
            self.log().contains(what)
        })
        .await;
    }

    /// Waits (bounded) until `check` holds; on timeout the panic shows the loader's log.
    async fn wait_until<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let log = || format!("the loader's log:\n{}", self.log());
        wait_until_or(what, Duration::from_secs(120), check, log).await;
    }

    fn assert_running(&mut self) {
        assert!(
            self.watcher.0.try_wait().unwrap().is_none(),
            "the loop ended:\n{}",
            self.log()
        );
    }
}

async fn put_text(aws: &stockload::aws::Aws, bucket: &str, key: &str, body: &str) {
    aws.s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn watch_on_s3_rides_out_a_database_and_s3_restart() {
    let mut moto = services::PrivateMoto::start();
    let db = OwnCluster::start();
    let aws = moto.aws().await;
    let bucket = "watched";
    let seed = |aws: stockload::aws::Aws, rows: Vec<(&'static str, &'static str, &'static str)>| async move {
        aws.s3.create_bucket().bucket(bucket).send().await.unwrap();
        put_text(&aws, bucket, "Stocks/ACME.csv", &csv(&rows)).await;
        put_text(&aws, bucket, "top_companies.txt", "ACME.csv").await;
    };
    seed(aws.clone(), vec![("2020-01-02", "10", "11")]).await;
    let mut watcher = Logged::spawn(
        moto.env(&mut stockload())
            .args(["watch", "--interval", "1", "--monitored"])
            .arg(format!("s3://{bucket}/markers/"))
            .args(["--source", &format!("s3://{bucket}/Stocks/")])
            .args(["--companies", &format!("s3://{bucket}/top_companies.txt")])
            .env("DATABASE_URL", &db.url),
    );
    put_text(&aws, bucket, "markers/day1/.SUCCESS", "").await;
    watcher
        .wait_until("the first run", || async { db.succeeded_runs().await == 1 })
        .await;

    // Outage: PostgreSQL stops, S3 goes away and comes back empty.
    db.cluster.stop().unwrap();
    moto.stop();
    watcher.wait_for_log("retrying in").await;
    moto.resume();
    db.cluster.restart().unwrap();
    watcher.assert_running();

    let aws = moto.aws().await;
    seed(
        aws.clone(),
        vec![("2020-01-02", "10", "11"), ("2020-01-03", "11", "12")],
    )
    .await;
    put_text(&aws, bucket, "markers/day2/.SUCCESS", "").await;
    watcher
        .wait_until("the run after the outage", || async {
            db.succeeded_runs().await == 2
        })
        .await;
    // A later marker loads too, and meanwhile (polls every second) day2 was not loaded again.
    put_text(&aws, bucket, "markers/day3/.SUCCESS", "again").await;
    watcher
        .wait_until("the third run", || async { db.succeeded_runs().await == 3 })
        .await;
    watcher.assert_running();
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM processed_markers WHERE marker LIKE '%/day2/%'")
            .await,
        Some("1".into())
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_runs WHERE status = 'succeeded'")
            .await,
        Some("3".into()),
        "{}",
        watcher.log()
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM historical_stocks_data")
            .await,
        Some("2".into())
    );
    let log = watcher.log();
    assert!(log.contains("polling works again"), "{log}");
}

#[tokio::test]
async fn the_queue_consumer_rides_out_outages_and_a_failed_delete() {
    use aws_sdk_sqs::types::QueueAttributeName;
    let mut moto = services::PrivateMoto::start();
    let db = OwnCluster::start();
    let aws = moto.aws().await;
    let bucket = "queued";
    let queue_name = "stock-events";
    let create_queue = |aws: stockload::aws::Aws| async move {
        aws.sqs()
            .create_queue()
            .queue_name(queue_name)
            .attributes(QueueAttributeName::VisibilityTimeout, "4")
            .send()
            .await
            .unwrap()
            .queue_url()
            .unwrap()
            .to_string()
    };
    let queue_url = create_queue(aws.clone()).await;
    let arn = queue_arn(&aws.sqs(), &queue_url).await;
    aws.s3.create_bucket().bucket(bucket).send().await.unwrap();
    let output = moto
        .env(&mut stockload())
        .args(["bucket", "notify-queue", &format!("s3://{bucket}"), &arn])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    // The batch is local, so that only the queue is lost when the emulator goes away.
    let batch = Batch::new(
        &[(
            "ACME.csv",
            &csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12")]),
        )],
        "ACME.csv",
    );
    let mut consumer = Logged::spawn(
        moto.env(&mut stockload())
            .args(["watch", "--queue", &queue_url, "--source"])
            .arg(&batch.stocks)
            .arg("--companies")
            .arg(&batch.companies)
            .env("DATABASE_URL", &db.url),
    );
    consumer.wait_for_log("consuming S3 events").await;

    // The database is down when the marker arrives: the consumer waits for it, then loads.
    db.cluster.stop().unwrap();
    put_marker(&aws, bucket, "day1/.SUCCESS").await;
    consumer
        .wait_for_log("waiting for the database before receiving more messages")
        .await;
    db.cluster.restart().unwrap();
    consumer
        .wait_until("the load after the restart", || async {
            db.succeeded_runs().await == 1
        })
        .await;
    consumer
        .wait_until("the message to be deleted", || async {
            queue_depth(&aws, &queue_url).await == 0
        })
        .await;

    // DeleteMessage fails: SQS is gone while the next load is held inside its transaction.
    let mut blocker = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&db.url).await.unwrap()
    };
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(stockload::db::LOAD_LOCK_KEY)
        .execute(&mut blocker)
        .await
        .unwrap();
    put_marker(&aws, bucket, "day2/.SUCCESS").await;
    let received_day2 = || async {
        db.scalar(&format!(
            "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
             AND objid = {}",
            stockload::db::LOAD_LOCK_KEY & 0xffff_ffff
        ))
        .await
        .as_deref()
            == Some("1")
    };
    consumer
        .wait_until("the day2 load to wait for the lock", received_day2)
        .await;
    // Keep the message body to play SQS's redelivery later.
    moto.stop();
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(stockload::db::LOAD_LOCK_KEY)
        .execute(&mut blocker)
        .await
        .unwrap();
    consumer
        .wait_until("the day2 run", || async { db.succeeded_runs().await == 2 })
        .await;
    consumer
        .wait_for_log("the message will be delivered again")
        .await;
    consumer.wait_for_log("ReceiveMessage").await;
    consumer.assert_running();

    // SQS is back (empty); the message is delivered again: recognised as done and deleted.
    moto.resume();
    let aws = moto.aws().await;
    let queue_url = create_queue(aws.clone()).await;
    let day2_etag = "d41d8cd98f00b204e9800998ecf8427e";
    let mut redelivered = event_json(bucket, "day2/.SUCCESS", "0002");
    redelivered["Records"][0]["s3"]["object"]["eTag"] = day2_etag.into();
    aws.sqs()
        .send_message()
        .queue_url(&queue_url)
        .message_body(redelivered.to_string())
        .send()
        .await
        .unwrap();
    consumer.wait_for_log("already loaded: acknowledged").await;
    consumer
        .wait_until("the redelivered message to be deleted", || async {
            queue_depth(&aws, &queue_url).await == 0
        })
        .await;
    consumer.assert_running();
    assert_eq!(db.succeeded_runs().await, 2, "{}", consumer.log());
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM processed_markers")
            .await,
        Some("2".into())
    );
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM processed_markers WHERE marker LIKE '%day2/.SUCCESS#etag=%'")
            .await,
        Some("1".into())
    );
}

#[tokio::test]
async fn watch_gives_up_on_a_failing_marker_with_a_notice() {
    let db = TestDb::new().await;
    // The index lists a file that is not there: every run fails.
    let batch = Batch::new(&[], "MISSING.csv");
    let monitored = tempfile::tempdir().unwrap();
    std::fs::write(monitored.path().join(".SUCCESS"), "").unwrap();
    let smtp = smtp();
    let name = format!("Watch_Gives_Up_{}", std::process::id());
    let watcher = Logged::spawn(
        stockload()
            .args(watch_args(monitored.path(), &batch))
            .args(["--interval", "1", "--max-attempts", "2"])
            .args([
                "--notify",
                &smtp.target("ops@example.com"),
                "--notify-name",
                &name,
            ])
            .env("DATABASE_URL", &db.url),
    );
    watcher
        .wait_until("the giving-up notice", || async {
            smtp.messages(&format!("{name}_Pipeline_Failure"))
                .iter()
                .any(|m| m.contains("giving up on marker"))
        })
        .await;
    assert_eq!(
        db.scalar("SELECT count(*)::text FROM load_runs WHERE status = 'failed'")
            .await,
        Some("2".into()),
        "{}",
        watcher.log()
    );
    // One notice per failed run, one for giving up.
    assert_eq!(smtp.messages(&format!("{name}_Pipeline_Failure")).len(), 3);
    assert!(watcher.log().contains("retrying in"), "{}", watcher.log());
}

#[tokio::test]
async fn watch_recognises_markers_recorded_by_earlier_versions() {
    let db = TestDb::new().await;
    let batch = Batch::new(
        &[("ACME.csv", &csv(&[("2020-01-02", "10", "11")]))],
        "ACME.csv",
    );
    let monitored = tempfile::tempdir().unwrap();
    let marker = monitored.path().join("old.SUCCESS");
    std::fs::write(&marker, "").unwrap();
    // As stockload recorded a local marker before the one identity: path @ mtime in ns.
    let modified = std::fs::metadata(&marker)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let legacy = format!(
        "file://{}@{modified}",
        std::fs::canonicalize(&marker).unwrap().display()
    );
    let migrate = stockload()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", text(&migrate));
    let mut conn = db.conn().await;
    sqlx::query("INSERT INTO processed_markers (marker) VALUES ($1)")
        .bind(&legacy)
        .execute(&mut conn)
        .await
        .unwrap();
    let output = stockload()
        .args(watch_args(monitored.path(), &batch))
        .arg("--once")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("started 0 runs"),
        "{}",
        text(&output)
    );
    assert_eq!(db.succeeded_runs().await, 0);
}

/// A watch poll only reads the ledger: it works for a role that may read processed_markers but
/// create nothing. (Polls used to run the migrations first, which such a role cannot: asserted
/// below, so this test fails if a poll migrates again.) The health check is a ping, fine too.
#[tokio::test]
async fn a_watch_poll_reads_the_ledger_without_migrating() {
    use sqlx::Connection;
    use stockload::storage::{Location, Storage};
    use stockload::trigger::watch::{find_markers, pending_markers};

    let db = TestDb::new().await;
    db.db().migrate().await.expect("migrate as the owner");
    let monitored = tempfile::tempdir().unwrap();
    for day in ["day1", "day2"] {
        std::fs::create_dir(monitored.path().join(day)).unwrap();
        std::fs::write(monitored.path().join(day).join(".SUCCESS"), day).unwrap();
    }
    let folder = Location::Local(monitored.path().to_path_buf());
    let storage = Storage::new(None);
    let markers = find_markers(&storage, &folder).await.unwrap();
    assert_eq!(markers.len(), 2, "{markers:?}");
    let mut conn = db.conn().await;
    sqlx::query("INSERT INTO processed_markers (marker) VALUES ($1)")
        .bind(&markers[0].id)
        .execute(&mut conn)
        .await
        .unwrap();

    // A role that can log in and read processed_markers, and create nothing.
    let name = url::Url::parse(&db.url).unwrap().path()[1..].to_string();
    let (role, password) = (format!("poller_{name}"), "poller-pw-51c2e8");
    for statement in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC".to_string(),
        format!("GRANT SELECT ON processed_markers TO {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    url.set_password(Some(password)).unwrap();
    let poller =
        stockload::db::Db::new(Some(url.as_str()), "64MB", Duration::from_secs(30)).unwrap();
    let history = || async {
        db.scalar("SELECT count(*)::text || ':' || max(applied_on) FROM refinery_schema_history")
            .await
    };
    let before = history().await;

    // The premise: migrating (even with nothing pending) needs CREATE, which the role lacks.
    let err = poller
        .migrate()
        .await
        .expect_err("the poller role may migrate")
        .to_string();
    assert!(err.contains("permission denied"), "{err}");

    let pending = pending_markers(&storage, &poller, &folder)
        .await
        .expect("a poll as the poller");
    assert_eq!(pending, markers[1..], "only the marker not yet loaded");
    poller.ping().await.expect("the health check as the poller");
    assert_eq!(history().await, before);
    // Clean up the cluster-wide role (its grant goes with the test's database).
    drop(conn);
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for statement in [
        format!("REVOKE ALL ON processed_markers FROM {role}"),
        format!("DROP ROLE {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
}
