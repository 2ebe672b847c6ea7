//! `stockload watch --queue URL`: consume S3 event notifications from SQS. S3 sends a message when
//! a `.SUCCESS` object is created; we long-poll, run the load for the batch the marker names, and
//! delete the message only once the run committed (the marker is recorded in the same transaction)
//! or the message is known to be useless. SQS delivers at least once; the marker record makes the
//! load happen at most once. While a load runs, the message's visibility is extended.
//!
//! The loop rides out faults, each retry paced by [`Backoff`] and logged once: a failed
//! ReceiveMessage (SQS down, throttled) is retried; when PostgreSQL cannot be reached to check a
//! marker, the message is released and nothing more is received until the database answers again
//! (so an outage does not use up the message's receives and push it to the dead-letter queue); a
//! failed DeleteMessage is retried a few times and then left: the message comes back after its
//! visibility timeout and is recognised in the ledger as done, then deleted.

use std::time::Duration;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use indicatif::ProgressBar;

use super::backoff::{pause, Backoff};
use super::{markers_in_json, S3Marker};
use crate::aws::{aws_error, describe_sdk_error, SdkFailure};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ledger;
use crate::load::RunStatus;
use crate::notify::{self, Notice};
use crate::plan::Plan;
use crate::storage::Location;

/// How to consume.
#[derive(Debug, Clone)]
pub struct QueueOptions {
    /// The queue URL.
    pub queue_url: String,
    /// Company files; by default the marker's own folder.
    pub source: Option<Location>,
    /// Index file; by default `top_companies.txt` in the source folder.
    pub companies: Option<Location>,
    /// Receives of one message before it is left to the dead-letter queue.
    pub max_attempts: u32,
    /// Return when the queue answers empty.
    pub once: bool,
}

/// What to do with a message after handling it.
#[derive(Debug, PartialEq, Eq)]
enum Disposition {
    /// Done with it (loaded, already loaded, not a marker, a test event).
    Delete,
    /// Leave it: it becomes visible again for a retry, or moves to the dead-letter queue.
    Keep,
    /// The database could not be asked: make it visible again and wait for the database.
    Release,
}

/// DeleteMessage tries before the message is left to come back (and be recognised as done).
const DELETE_TRIES: u32 = 4;

fn sqs_error<E>(action: &str, err: SdkFailure<E>) -> Error
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    aws_error("SQS", action, err)
}

/// Consumes until interrupted (or, with `once`, until the queue is empty). Returns runs started.
pub async fn consume(ctx: &Context, template: &Plan, options: &QueueOptions) -> Result<u64> {
    let aws = ctx
        .aws
        .as_ref()
        .ok_or_else(|| Error::Config("--queue needs AWS configuration".into()))?;
    let sqs = aws.sqs();
    let mut backoff = Backoff::new();
    let visibility = loop {
        match queue_visibility(&sqs, &options.queue_url).await {
            Ok(visibility) => break visibility,
            Err(err) if options.once => return Err(err),
            Err(err) => {
                let delay = backoff.next_delay();
                tracing::warn!(
                    retry = backoff.failures(),
                    "{err}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                if !pause(delay).await {
                    return Ok(0);
                }
            }
        }
    };
    backoff.reset();
    tracing::info!(queue = %options.queue_url, visibility, "consuming S3 events");
    let mut runs = 0;
    loop {
        let receive = sqs
            .receive_message()
            .queue_url(&options.queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(if options.once { 1 } else { 20 })
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount);
        let received = tokio::select! {
            received = receive.send() => received,
            _ = crate::shutdown::requested_wait() => return Ok(runs),
        };
        let received = match received {
            Ok(received) => {
                if backoff.failures() > 0 {
                    tracing::info!("receiving from the queue works again");
                }
                backoff.reset();
                received
            }
            Err(err) => {
                let err = sqs_error("ReceiveMessage", err);
                if options.once {
                    return Err(err);
                }
                let delay = backoff.next_delay();
                tracing::warn!(
                    retry = backoff.failures(),
                    "{err}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                if !pause(delay).await {
                    return Ok(runs);
                }
                continue;
            }
        };
        let messages = received.messages();
        if messages.is_empty() && options.once {
            return Ok(runs);
        }
        let mut database_down = false;
        for message in messages {
            let receives: u32 = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let receipt = message.receipt_handle().unwrap_or_default().to_string();
            let body = message.body().unwrap_or_default();
            let (disposition, started) =
                handle_message(ctx, template, options, body, receives, &receipt, visibility).await;
            runs += started;
            match disposition {
                Disposition::Delete => delete_message(&sqs, &options.queue_url, &receipt).await,
                Disposition::Keep => {}
                // With --once nothing waits for the database: leave the message for later.
                Disposition::Release if options.once => {}
                Disposition::Release => {
                    database_down = true;
                    let released = sqs
                        .change_message_visibility()
                        .queue_url(&options.queue_url)
                        .receipt_handle(&receipt)
                        .visibility_timeout(0)
                        .send()
                        .await;
                    if let Err(err) = released {
                        tracing::warn!(
                            "could not release the message (it comes back after its visibility \
                             timeout): {}",
                            describe_sdk_error(&err)
                        );
                    }
                }
            }
        }
        if database_down && !options.once && !wait_for_database(ctx).await {
            return Ok(runs);
        }
    }
}

async fn queue_visibility(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<i32> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::VisibilityTimeout)
        .send()
        .await
        .map_err(|e| sqs_error(&format!("GetQueueAttributes {queue_url}"), e))?;
    Ok(attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .max(1))
}

/// Deletes a handled message, retrying a few times. When it still fails, the message comes back
/// after its visibility timeout and is then recognised as done (its marker is in the ledger).
async fn delete_message(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str) {
    let mut backoff = Backoff::with_limits(Duration::from_millis(500), Duration::from_secs(5));
    loop {
        let deleted = sqs
            .delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .send()
            .await;
        let Err(err) = deleted else { return };
        let err = sqs_error("DeleteMessage", err);
        if backoff.failures() + 1 >= DELETE_TRIES {
            tracing::warn!(
                "{err}; giving up after {DELETE_TRIES} tries: the message will be delivered \
                 again and recognised as done"
            );
            return;
        }
        let delay = backoff.next_delay();
        tracing::warn!(
            retry = backoff.failures(),
            "{err}; retrying in {:.1} s",
            delay.as_secs_f64()
        );
        tokio::time::sleep(delay).await;
    }
}

/// Waits, backing off, until the database accepts a connection again (one log line per try).
/// False when interrupted.
async fn wait_for_database(ctx: &Context) -> bool {
    let mut backoff = Backoff::new();
    let mut delay = backoff.next_delay();
    tracing::warn!(
        "waiting for the database before receiving more messages; next check in {:.1} s",
        delay.as_secs_f64()
    );
    loop {
        if !pause(delay).await {
            return false;
        }
        match ledger::processed_markers(&ctx.db, &[]).await {
            Ok(_) => {
                tracing::info!("the database answers again");
                return true;
            }
            Err(err) => {
                delay = backoff.next_delay();
                tracing::warn!(
                    retry = backoff.failures(),
                    "the database is still unavailable: {err}; next check in {:.1} s",
                    delay.as_secs_f64()
                );
            }
        }
    }
}

/// The S3 event in a message body: sent by S3 directly, or wrapped in an SNS envelope.
fn parse_event(body: &str) -> Option<serde_json::Value> {
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let value = match value.get("Message").and_then(|m| m.as_str()) {
        Some(inner) if value.get("Type").is_some() => serde_json::from_str(inner).ok()?,
        _ => value,
    };
    value.get("Records").is_some().then_some(value)
}

fn is_test_event(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("Event").and_then(|e| e.as_str()) == Some("s3:TestEvent"))
}

async fn handle_message(
    ctx: &Context,
    template: &Plan,
    options: &QueueOptions,
    body: &str,
    receives: u32,
    receipt: &str,
    visibility: i32,
) -> (Disposition, u64) {
    if is_test_event(body) {
        tracing::info!("s3:TestEvent: acknowledged");
        return (Disposition::Delete, 0);
    }
    let Some(event) = parse_event(body) else {
        tracing::error!(
            "a message is not an S3 event; leaving it for the dead-letter queue: {body:.200}"
        );
        return (Disposition::Keep, 0);
    };
    let markers = markers_in_json(&event);
    if markers.is_empty() {
        tracing::info!("event without .SUCCESS marker: acknowledged");
        return (Disposition::Delete, 0);
    }
    let mut disposition = Disposition::Delete;
    let mut runs = 0;
    for marker in markers {
        let marker = match ctx.aws.as_ref() {
            Some(aws) => marker.resolve(&aws.s3).await,
            None => marker,
        };
        let ids: Vec<String> = std::iter::once(marker.id())
            .chain(marker.legacy_ids())
            .collect();
        match ledger::processed_markers(&ctx.db, &ids).await {
            Ok(done) if !done.is_empty() => {
                tracing::info!(marker = %marker.id(), "already loaded: acknowledged without reloading");
                continue;
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!("cannot check the marker {}: {err}", marker.id());
                return (Disposition::Release, runs);
            }
        }
        if receives > options.max_attempts {
            tracing::error!(marker = %marker.id(), receives, "past --max-attempts: left to the dead-letter queue");
            disposition = Disposition::Keep;
            continue;
        }
        let plan = plan_for(template, options, &marker);
        runs += 1;
        let progress = ProgressBar::hidden();
        let run = ctx.run(&plan, &progress);
        let report = keep_invisible(ctx, &options.queue_url, receipt, visibility, run).await;
        if report.summary.status == RunStatus::Failed {
            disposition = Disposition::Keep;
            if receives >= options.max_attempts {
                let err = Error::GaveUp(format!(
                    "left to the dead-letter queue after {receives} failed runs: marker {}. Last \
                     error: {}",
                    marker.id(),
                    report.summary.error.as_deref().unwrap_or("unknown")
                ));
                tracing::error!("{err}");
                let notice = Notice::from_error(&ctx.notify_name, "giving up on a marker", &err);
                notify::send_all(&ctx.targets, &notice, ctx.aws.as_ref()).await;
            }
        }
    }
    (disposition, runs)
}

/// The batch a marker names: the configured source, or the marker's own folder.
fn plan_for(template: &Plan, options: &QueueOptions, marker: &S3Marker) -> Plan {
    let source = options.source.clone().unwrap_or_else(|| marker.folder());
    let mut plan = template.clone();
    plan.companies = options
        .companies
        .clone()
        .unwrap_or_else(|| source.join(crate::plan::DEFAULT_INDEX_NAME));
    plan.source = source;
    plan.marker = Some(marker.id());
    plan
}

/// Awaits `run` while pushing the message's visibility timeout ahead every half timeout, so no
/// other consumer sees it during a long load.
async fn keep_invisible<F: std::future::Future>(
    ctx: &Context,
    queue_url: &str,
    receipt: &str,
    visibility: i32,
    run: F,
) -> F::Output {
    let Some(aws) = ctx.aws.as_ref() else {
        return run.await;
    };
    let sqs = aws.sqs();
    let period = Duration::from_millis((visibility as u64 * 1000 / 2).max(500));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tokio::pin!(run);
    loop {
        tokio::select! {
            output = &mut run => return output,
            _ = ticks.tick() => {
                let extended = sqs
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(receipt)
                    .visibility_timeout(visibility)
                    .send()
                    .await;
                if let Err(err) = extended {
                    tracing::warn!("could not extend the message's visibility: {}", describe_sdk_error(&err));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_test_events_and_sns_envelopes() {
        assert!(is_test_event(
            r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"b"}"#
        ));
        assert!(!is_test_event(r#"{"Records":[]}"#));
        let inner = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
            "eventTime":"2026-11-22T00:00:00.000Z","eventName":"ObjectCreated:Put",
            "userIdentity":{"principalId":"x"},"requestParameters":{"sourceIPAddress":"1.2.3.4"},
            "responseElements":{},"s3":{"s3SchemaVersion":"1.0","configurationId":"c",
            "bucket":{"name":"b","ownerIdentity":{"principalId":"x"},"arn":"arn:aws:s3:::b"},
            "object":{"key":"a/.SUCCESS","size":0,"sequencer":"01"}}}]}"#;
        let envelope = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        let event = parse_event(&envelope).expect("envelope");
        assert_eq!(markers_in_json(&event).len(), 1);
        assert!(parse_event("not json").is_none());
    }
}
