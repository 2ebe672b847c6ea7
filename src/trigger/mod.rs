//! Runs started by a `.SUCCESS` marker: what a marker is (one identity for every trigger), and the
//! three ways of noticing one — polling a folder or bucket ([`watch`]), an SQS queue of S3 events
//! ([`queue`]), and the Lambda handler ([`lambda`], with the Data Pipeline calls in
//! [`crate::pipeline::aws`]). [`backoff`] paces the retries of the long-running loops.
//!
//! **One marker identity.** A marker in S3 is `s3://bucket/key#etag=ETAG`, whoever saw it: the
//! poller reads the ETag from ListObjectsV2, the queue consumer and the Lambda from the event's
//! `eTag` (or HeadObject when an event lacks it). So the same `.SUCCESS` object seen by `watch`,
//! the queue and the Lambda is one marker, loaded at most once (the load records it in
//! `processed_markers` in its own transaction, under its advisory lock). A local marker is
//! `file:///path#size=N,mtime=NANOS`. Rewriting a marker with the same bytes at the same key is
//! the same marker (same ETag); write each batch's marker under a new key (a dated folder) or with
//! different content to load again.
//!
//! **Shared mechanics.** Every trigger retries through [`backoff::retry`], gives up through
//! [`give_up`] (one log line, one failure notice; a marker's give-up names the ledger row of its
//! last failed run, see [`marker_given_up`]), and migrates once when it starts
//! ([`migrate_at_start`]): its polls only read the ledger, and its health check is [`Db::ping`].

#[cfg(feature = "aws")]
pub mod auto;
pub mod backoff;
#[cfg(feature = "aws")]
pub mod lambda;
#[cfg(feature = "aws")]
pub mod queue;
pub mod watch;

#[cfg(feature = "aws")]
use aws_lambda_events::event::s3::S3Event;

#[cfg(feature = "aws")]
use crate::aws::describe_sdk_error;
use crate::context::{notify_not_started, Recipients};
use crate::db::Db;
use crate::error::Error;
use crate::storage::{Listed, Location, Version};
use crate::summary::Summary;
use backoff::{retry, Backoff, Retried};

/// Files whose name ends with this mark a batch as complete.
pub const MARKER_SUFFIX: &str = ".SUCCESS";

/// A marker object seen in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Marker {
    /// Bucket.
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    /// The object's ETag (without quotes), when known: which content of the key this is.
    pub etag: Option<String>,
    /// The event's sequencer, when it came from an event: only for recognising markers recorded
    /// by earlier versions of stockload (see [`S3Marker::legacy_ids`]).
    pub sequencer: Option<String>,
}

/// The one id of an S3 marker, as every trigger records it in processed_markers.
pub fn s3_marker_id(bucket: &str, key: &str, etag: Option<&str>) -> String {
    match etag.map(normalise_etag).filter(|e| !e.is_empty()) {
        Some(etag) => format!("s3://{bucket}/{key}#etag={etag}"),
        None => format!("s3://{bucket}/{key}"),
    }
}

/// The id of a marker in a local folder: its canonical path, size and modification time.
pub fn local_marker_id(path: &std::path::Path, size: u64, modified_nanos: u128) -> String {
    format!(
        "file://{}#size={size},mtime={modified_nanos}",
        path.display()
    )
}

/// ETags arrive quoted from ListObjectsV2 and HeadObject and bare in events.
fn normalise_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_ascii_lowercase()
}

impl S3Marker {
    /// The id recorded in processed_markers: the object and which content of it.
    pub fn id(&self) -> String {
        s3_marker_id(&self.bucket, &self.key, self.etag.as_deref())
    }

    /// Ids under which stockload versions before the one identity recorded this marker (key +
    /// sequencer): checked too, so an upgrade never reloads a batch an older version loaded.
    pub fn legacy_ids(&self) -> Vec<String> {
        let bare = format!("s3://{}/{}", self.bucket, self.key);
        match &self.sequencer {
            Some(sequencer) => vec![format!("{bare}#{sequencer}")],
            None => Vec::new(),
        }
    }

    /// Fills in the ETag with HeadObject when the event did not carry one. When the object is
    /// gone (or cannot be read) the marker keeps its key-only id, and the reason is logged.
    #[cfg(feature = "aws")]
    pub async fn resolve(mut self, client: &aws_sdk_s3::Client) -> S3Marker {
        if self.etag.is_some() {
            return self;
        }
        match client
            .head_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .send()
            .await
        {
            Ok(head) => self.etag = head.e_tag().map(normalise_etag),
            Err(err) => tracing::warn!(
                marker = %self.id(),
                "the event has no eTag and HeadObject failed ({}); identifying the marker by its key",
                describe_sdk_error(&err)
            ),
        }
        self
    }

    /// The folder the marker sits in (`s3://bucket/prefix/`).
    pub fn folder(&self) -> Location {
        let prefix = self.key.rfind('/').map_or("", |slash| &self.key[..=slash]);
        Location::S3 {
            bucket: self.bucket.clone(),
            key: prefix.to_string(),
        }
    }
}

/// The marker id of a listed `.SUCCESS` file, and the id an earlier stockload `watch` recorded for
/// it (path or key + modification time), checked too so an upgrade never reloads a batch.
pub fn listed_marker_ids(listed: &Listed) -> (String, Vec<String>) {
    match (&listed.location, &listed.version) {
        (
            Location::S3 { bucket, key },
            Version::S3 {
                etag,
                last_modified,
            },
        ) => (
            s3_marker_id(bucket, key, etag.as_deref()),
            vec![format!("s3://{bucket}/{key}@{last_modified}")],
        ),
        (
            Location::Local(path),
            Version::Local {
                size,
                modified_nanos,
            },
        ) => (
            local_marker_id(path, *size, *modified_nanos),
            vec![format!("file://{}@{modified_nanos}", path.display())],
        ),
        (location, _) => (location.to_string(), Vec::new()),
    }
}

/// The one give-up of every trigger (watch, queue, Lambda): the reason is logged once, as an
/// error, and sent to every target as a failure notice saying `what` could not be done. The
/// runs themselves are already in the ledger (load_runs, recorded by the load, failed ones too).
pub async fn give_up(to: Recipients<'_>, what: &str, error: &Error) {
    tracing::error!(what, "{error}");
    notify_not_started(to.targets, to.notify_name, to.aws, what, error).await;
}

/// The give-up of a marker whose runs kept failing, as the error [`give_up`] sends: what becomes
/// of the marker (`fate`: "not retried until watch restarts", "left to the dead-letter queue"),
/// the marker, how many runs failed, the ledger row of the last failed run, and that run's error.
/// The fate comes first: mail clients and readers see it before the long marker id.
pub fn marker_given_up(marker: &str, failures: u32, fate: &str, last: &Summary) -> Error {
    let ledger = match last.run_id {
        Some(id) => format!(" The last is load_runs id {id}."),
        None => String::new(),
    };
    Error::GaveUp(format!(
        "{fate}: giving up on marker {marker} after {failures} failed runs.{ledger} Last error: \
         {}",
        last.error.as_deref().unwrap_or("unknown error")
    ))
}

/// Brings the schema up to date once, when a long-running trigger starts (its polls after that
/// only read the ledger). Retried like any other step of a trigger, since the database may still
/// be starting; `backoff` sets how (one try with `--once`).
pub async fn migrate_at_start(db: &Db, backoff: Backoff) -> Retried<()> {
    retry("migrating the database", backoff, || async {
        let applied = db.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(applied = applied.join(", "), "migrated the database");
        }
        Ok(())
    })
    .await
}

/// Decodes an object key from an S3 event notification: `+` stands for a space and the rest is
/// percent-encoded (`%2F` for `/`).
pub fn decode_event_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// The `.SUCCESS` markers an S3 event names (object-created records only); other keys are ignored.
#[cfg(feature = "aws")]
pub fn markers_in_event(event: &S3Event) -> Vec<S3Marker> {
    serde_json::to_value(event)
        .map(|value| markers_in_json(&value))
        .unwrap_or_default()
}

/// The same from the raw JSON of an S3 event notification, read leniently: only the fields we use
/// must be present (emulators and older senders omit some of the rest).
pub fn markers_in_json(event: &serde_json::Value) -> Vec<S3Marker> {
    let Some(records) = event.get("Records").and_then(|r| r.as_array()) else {
        return Vec::new();
    };
    records
        .iter()
        .filter(|r| {
            r.get("eventName")
                .and_then(|n| n.as_str())
                .is_none_or(|name| name.starts_with("ObjectCreated"))
        })
        .filter_map(|record| {
            let s3 = record.get("s3")?;
            let bucket = s3.pointer("/bucket/name")?.as_str()?.to_string();
            let key = decode_event_key(s3.pointer("/object/key")?.as_str()?);
            let text = |pointer: &str| {
                s3.pointer(pointer)
                    .and_then(|v| v.as_str())
                    .filter(|v| !v.is_empty())
                    .map(str::to_string)
            };
            // Earlier versions told uploads apart by the sequencer, else the event time.
            let sequencer = text("/object/sequencer").or_else(|| {
                record
                    .get("eventTime")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            });
            key.ends_with(MARKER_SUFFIX).then_some(S3Marker {
                bucket,
                key,
                etag: text("/object/eTag").map(|e| normalise_etag(&e)),
                sequencer,
            })
        })
        .collect()
}

#[cfg(all(test, feature = "aws"))]
mod tests {
    use super::*;

    fn event(key: &str, name: &str) -> S3Event {
        serde_json::from_value(serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
            "eventTime": "2026-11-22T00:00:00.000Z", "eventName": name,
            "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "1.2.3.4"},
            "responseElements": {},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                   "bucket": {"name": "monitored", "ownerIdentity": {"principalId": "x"}, "arn": "arn:aws:s3:::monitored"},
                   "object": {"key": key, "size": 0, "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0A1B"}}
        }]}))
        .unwrap()
    }

    #[test]
    fn decodes_event_keys_before_matching() {
        let markers = markers_in_event(&event(
            "daily+run%2F2026-11-22%2F.SUCCESS",
            "ObjectCreated:Put",
        ));
        assert_eq!(markers.len(), 1);
        assert_eq!(markers[0].key, "daily run/2026-11-22/.SUCCESS");
        assert_eq!(
            markers[0].id(),
            "s3://monitored/daily run/2026-11-22/.SUCCESS#etag=d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            markers[0].legacy_ids(),
            ["s3://monitored/daily run/2026-11-22/.SUCCESS#0A1B"]
        );
        // Listings quote ETags, events do not: one id either way.
        assert_eq!(
            s3_marker_id(
                "b",
                "k.SUCCESS",
                Some("\"D41D8CD98F00B204E9800998ECF8427E\"")
            ),
            s3_marker_id("b", "k.SUCCESS", Some("d41d8cd98f00b204e9800998ecf8427e"))
        );
        assert_eq!(
            markers[0].folder().to_string(),
            "s3://monitored/daily run/2026-11-22/"
        );
        assert!(markers_in_event(&event("Stocks/AAPL.csv", "ObjectCreated:Put")).is_empty());
        assert!(markers_in_event(&event("x/.SUCCESS", "ObjectRemoved:Delete")).is_empty());
        assert!(markers_in_event(&event("x.SUCCESS.bak", "ObjectCreated:Put")).is_empty());
    }
}

#[cfg(test)]
mod give_up_tests {
    use super::*;
    use crate::plan::Plan;

    #[test]
    fn a_marker_give_up_says_its_fate_first_and_names_the_ledger_row() {
        let here = Location::Local(".".into());
        let mut last = Summary::new(&Plan::new(here.clone(), here));
        last.error = Some("companies index not found".into());
        last.run_id = Some(42);
        let text =
            marker_given_up("s3://b/k/.SUCCESS#etag=e", 3, "left to the queue", &last).to_string();
        assert_eq!(
            text,
            "left to the queue: giving up on marker s3://b/k/.SUCCESS#etag=e after 3 failed runs. \
             The last is load_runs id 42. Last error: companies index not found"
        );
        // A failure the ledger could not record (the database was down) is still given up.
        last.run_id = None;
        let text = marker_given_up("m", 1, "f", &last).to_string();
        assert_eq!(
            text,
            "f: giving up on marker m after 1 failed runs. Last error: companies index not found"
        );
    }
}
