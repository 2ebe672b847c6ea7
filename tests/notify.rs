//! Notices after every attempted run: SNS (read back through an SQS subscription on moto_server)
//! and SMTP (a real aiosmtpd server on loopback).

use crate::cli_text as text;
use crate::support::services::{aws, moto_env, smtp, unique_bucket};
use crate::support::{csv, stockload, Batch, TestDb};

fn batch() -> Batch {
    Batch::new(
        &[(
            "ACME.csv",
            &csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12")]),
        )],
        "ACME.csv, GONE.csv",
    )
}

fn load(batch: &Batch) -> std::process::Command {
    let mut command = stockload();
    command
        .args(["load", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .args(["--connect-timeout", "5"]);
    command
}

/// A subject prefix no other test uses, so each test finds only its own messages.
fn name(test: &str) -> String {
    format!("Ada_Lovelace_{test}_{}", std::process::id())
}

#[tokio::test]
async fn sns_success_notice_reaches_a_subscribed_queue() {
    let aws = aws().await;
    let sns = aws.sns();
    let sqs = aws.sqs();
    let topic = sns
        .create_topic()
        .name(unique_bucket("runs"))
        .send()
        .await
        .unwrap();
    let topic_arn = topic.topic_arn().unwrap().to_string();
    let queue = sqs
        .create_queue()
        .queue_name(unique_bucket("inbox"))
        .send()
        .await
        .unwrap();
    let queue_url = queue.queue_url().unwrap().to_string();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let queue_arn =
        attributes.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .send()
        .await
        .unwrap();

    let db = TestDb::new().await;
    let batch = batch();
    let name = name("sns");
    let output = moto_env(&mut load(&batch))
        .arg("--notify")
        .arg(format!("sns:{topic_arn}"))
        .args(["--notify-name", &name])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));

    let received = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(5)
        .send()
        .await
        .unwrap();
    let messages = received.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let envelope: serde_json::Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(envelope["Subject"], format!("{name}_Pipeline_Success"));
    let body = envelope["Message"].as_str().unwrap();
    assert!(body.contains("stockload run 1 succeeded"), "{body}");
    assert!(
        body.contains("files:     2 listed, 1 loaded, 1 skipped"),
        "{body}"
    );
    assert!(
        body.contains("rows:      2 read = 2 loaded + 0 rejected"),
        "{body}"
    );
    assert!(!body.contains(&db.password), "{body}");
    // Exactly one notice: nothing else arrives.
    let more = sqs
        .receive_message()
        .queue_url(&queue_url)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    assert!(more.messages().is_empty(), "{:?}", more.messages());
}

#[tokio::test]
async fn smtp_success_notice_is_received() {
    let smtp = smtp();
    let db = TestDb::new().await;
    let batch = batch();
    let name = name("smtp_ok");
    let output = load(&batch)
        .args([
            "--notify",
            &smtp.target("ops@example.com,desk@example.com"),
            "--notify-name",
            &name,
        ])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let messages = smtp.messages(&format!("{name}_Pipeline_Success"));
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = &messages[0];
    assert!(
        message.contains("To: ops@example.com, desk@example.com"),
        "{message}"
    );
    assert!(
        message.contains("files:     2 listed, 1 loaded, 1 skipped"),
        "{message}"
    );
    assert!(smtp
        .messages(&format!("{name}_Pipeline_Failure"))
        .is_empty());
}

#[tokio::test]
async fn an_unreachable_database_sends_one_failure_notice() {
    let smtp = smtp();
    let batch = batch();
    let name = name("smtp_db_down");
    let output = load(&batch)
        .args([
            "--notify",
            &smtp.target("ops@example.com"),
            "--notify-name",
            &name,
        ])
        .env(
            "DATABASE_URL",
            "postgres://ops:pw-not-to-leak@127.0.0.1:1/stocks",
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let messages = smtp.messages(&format!("{name}_Pipeline_Failure"));
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("cannot connect to PostgreSQL"),
        "{}",
        messages[0]
    );
    assert!(!messages[0].contains("pw-not-to-leak"), "{}", messages[0]);
    assert!(smtp
        .messages(&format!("{name}_Pipeline_Success"))
        .is_empty());
}

#[tokio::test]
async fn an_early_configuration_failure_sends_one_failure_notice() {
    let smtp = smtp();
    let batch = batch();
    let name = name("smtp_bad_config");
    let output = load(&batch)
        .args(["--max-reject-ratio", "7"])
        .args([
            "--notify",
            &smtp.target("ops@example.com"),
            "--notify-name",
            &name,
        ])
        .env("DATABASE_URL", "postgres://ops@127.0.0.1:1/stocks")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let messages = smtp.messages(&format!("{name}_Pipeline_Failure"));
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(
        messages[0].contains("--max-reject-ratio must be between 0 and 1"),
        "{}",
        messages[0]
    );
}

#[tokio::test]
async fn an_unreachable_notification_endpoint_keeps_the_exit_status() {
    let db = TestDb::new().await;
    let batch = batch();
    let dead = "smtp://127.0.0.1:1?from=a@example.com&to=b@example.com&tls=none";
    let ok = load(&batch)
        .args(["--notify", dead])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let all = text(&ok);
    assert_eq!(ok.status.code(), Some(0), "{all}");
    assert!(
        all.contains("notification to smtp://127.0.0.1:1 (to b@example.com) failed"),
        "{all}"
    );

    let failed = load(&batch)
        .args(["--notify", dead])
        .env("DATABASE_URL", "postgres://ops@127.0.0.1:1/stocks")
        .output()
        .unwrap();
    let all = text(&failed);
    assert_eq!(failed.status.code(), Some(1), "{all}");
    assert!(all.contains("cannot connect to PostgreSQL"), "{all}");
}

#[test]
fn notify_test_sends_a_test_notice() {
    let smtp = smtp();
    let name = name("notify_test");
    let output = stockload()
        .args([
            "notify-test",
            "--notify",
            &smtp.target("ops@example.com"),
            "--notify-name",
            &name,
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(smtp.messages(&format!("{name}_Pipeline_Test")).len(), 1);
}
