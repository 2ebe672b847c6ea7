//! `stockload watch --queue URL`: consume S3 event notifications from SQS. S3 sends a message when
//! a `.SUCCESS` object is created; we long-poll, run the load for the batch the marker names, and
//! delete the message only once the run committed (the marker is recorded in the same transaction)
//! or the message is known to be useless. SQS delivers at least once; the marker record makes the
//! load happen at most once. While a load runs, the message's visibility is extended.
//!
//! The loop rides out faults, each retried through [`retry`] and logged once: a failed
//! ReceiveMessage (SQS down, throttled) is retried; when PostgreSQL cannot be reached to check a
//! marker, the message is released and nothing more is received until the database answers a
//! ping again (so an outage does not use up the message's receives and push it to the
//! dead-letter queue); a failed DeleteMessage is retried a few times and then left: the message
//! comes back after its visibility timeout and is recognised in the ledger as done, then deleted.
//! The schema is migrated once at start; checking a marker only reads.

use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use indicatif::ProgressBar;

use super::backoff::{retry, Backoff, Retried};
use super::{give_up, marker_given_up, markers_in_json, migrate_at_start, S3Marker};
use crate::aws::{aws_error, describe_sdk_error, SdkFailure};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ledger;
use crate::load::RunStatus;
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

/// The visibility timeout assumed when the queue does not report one (SQS's own default).
const DEFAULT_VISIBILITY_SECS: i32 = 30;

fn sqs_error<E>(action: &str, err: SdkFailure<E>) -> Error
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    aws_error("SQS", action, err)
}

/// Consumes until interrupted (or, with `once`, until the queue is empty). Returns runs started.
/// The schema is migrated once here, before the first message; checking a marker only reads.
pub async fn consume(ctx: &Context, template: &Plan, options: &QueueOptions) -> Result<u64> {
    let aws = ctx
        .aws
        .as_ref()
        .ok_or_else(|| Error::Config("--queue needs AWS configuration".into()))?;
    let sqs = aws.sqs();
    // With --once every step is tried once and its error returned; otherwise retried.
    let backoff = if options.once {
        Backoff::new().tries(1)
    } else {
        Backoff::new()
    };
    let visibility = retry(
        "reading the queue's visibility timeout",
        backoff.clone(),
        || queue_visibility(&sqs, &options.queue_url),
    );
    let Some(visibility) = visibility.await.into_result()? else {
        return Ok(0);
    };
    let migrated = migrate_at_start(&ctx.db, backoff.clone()).await;
    if migrated.into_result()?.is_none() {
        return Ok(0);
    }
    tracing::info!(queue = %options.queue_url, visibility, "consuming S3 events");
    let consumer = Consumer {
        ctx,
        template,
        options,
        sqs,
        visibility,
    };
    let mut runs = 0;
    loop {
        let received = retry("receiving from the queue", backoff.clone(), || {
            consumer.receive()
        });
        let Some(Some(messages)) = received.await.into_result()? else {
            return Ok(runs);
        };
        if messages.is_empty() && options.once {
            return Ok(runs);
        }
        let (started, database_down) = consumer.handle_all(&messages).await;
        runs += started;
        if database_down && !options.once && !wait_for_database(ctx).await {
            return Ok(runs);
        }
    }
}

/// What consuming one queue needs at every message.
struct Consumer<'a> {
    ctx: &'a Context,
    template: &'a Plan,
    options: &'a QueueOptions,
    sqs: aws_sdk_sqs::Client,
    visibility: i32,
}

impl Consumer<'_> {
    /// One long poll of the queue; `None` when a stop was requested meanwhile.
    async fn receive(&self) -> Result<Option<Vec<Message>>> {
        let receive = self
            .sqs
            .receive_message()
            .queue_url(&self.options.queue_url)
            .max_number_of_messages(1)
            .wait_time_seconds(if self.options.once { 1 } else { 20 })
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send();
        tokio::select! {
            received = receive => received
                .map(|r| Some(r.messages().to_vec()))
                .map_err(|e| sqs_error("ReceiveMessage", e)),
            _ = crate::shutdown::requested_wait() => Ok(None),
        }
    }

    /// Handles received messages; returns the runs started and whether the database was down
    /// (the messages it left were released).
    async fn handle_all(&self, messages: &[Message]) -> (u64, bool) {
        let (mut runs, mut database_down) = (0, false);
        for message in messages {
            let receives: u32 = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let receipt = message.receipt_handle().unwrap_or_default();
            let body = message.body().unwrap_or_default();
            let (disposition, started) = handle_message(self, body, receives, receipt).await;
            runs += started;
            let queue_url = &self.options.queue_url;
            match disposition {
                Disposition::Delete => delete_message(&self.sqs, queue_url, receipt).await,
                Disposition::Keep => {}
                // With --once nothing waits for the database: leave the message for later.
                Disposition::Release if self.options.once => {}
                Disposition::Release => {
                    database_down = true;
                    release_message(&self.sqs, queue_url, receipt).await;
                }
            }
        }
        (runs, database_down)
    }
}

/// Makes a message visible again at once (the database could not be asked about it).
async fn release_message(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str) {
    let released = sqs
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt)
        .visibility_timeout(0)
        .send()
        .await;
    if let Err(err) = released {
        tracing::warn!(
            "could not release the message (it comes back after its visibility timeout): {}",
            describe_sdk_error(&err)
        );
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
        .unwrap_or(DEFAULT_VISIBILITY_SECS)
        .max(1))
}

/// Deletes a handled message, retrying a few times. When it still fails, the message comes back
/// after its visibility timeout and is then recognised as done (its marker is in the ledger).
async fn delete_message(sqs: &aws_sdk_sqs::Client, queue_url: &str, receipt: &str) {
    let backoff = Backoff::with_limits(Duration::from_millis(500), Duration::from_secs(5))
        .tries(DELETE_TRIES);
    let deleted = retry("deleting the message", backoff, || async {
        sqs.delete_message()
            .queue_url(queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| sqs_error("DeleteMessage", e))
    });
    if let Retried::Exhausted(err) = deleted.await {
        tracing::warn!(
            "{err}; giving up after {DELETE_TRIES} tries: the message will be delivered again \
             and recognised as done"
        );
    }
}

/// Waits, backing off, until the database answers again ([`Db::ping`]; one log line per try).
/// False when interrupted.
async fn wait_for_database(ctx: &Context) -> bool {
    tracing::warn!("waiting for the database before receiving more messages");
    let answered = retry("reaching the database", Backoff::new(), || ctx.db.ping());
    matches!(answered.await, Retried::Done(()))
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

/// Handles one message: what to do with it, and the runs it started.
async fn handle_message(
    consumer: &Consumer<'_>,
    body: &str,
    receives: u32,
    receipt: &str,
) -> (Disposition, u64) {
    let (ctx, options) = (consumer.ctx, consumer.options);
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
        let plan = plan_for(consumer.template, options, &marker);
        runs += 1;
        let progress = ProgressBar::hidden();
        let run = ctx.run(&plan, &progress);
        let visibility = consumer.visibility;
        let report = keep_invisible(ctx, &options.queue_url, receipt, visibility, run).await;
        if report.summary.status == RunStatus::Failed {
            disposition = Disposition::Keep;
            if receives >= options.max_attempts {
                let fate = "left to the dead-letter queue";
                let err = marker_given_up(&marker.id(), receives, fate, &report.summary);
                give_up(ctx.recipients(), "giving up on a marker", &err).await;
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
