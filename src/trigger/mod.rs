//! Runs started by a `.SUCCESS` marker: what a marker is, and the three ways of noticing one —
//! polling a folder or bucket ([`watch`]), an SQS queue of S3 events ([`queue`]), and the Lambda
//! handler ([`lambda`]).

pub mod lambda;
pub mod queue;
pub mod watch;

use aws_lambda_events::event::s3::S3Event;

use crate::source::Location;

/// Files whose name ends with this mark a batch as complete.
pub const MARKER_SUFFIX: &str = ".SUCCESS";

/// A marker object seen in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Marker {
    /// Bucket.
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    /// The event's sequencer (distinguishes two uploads of the same key), when known.
    pub sequencer: Option<String>,
}

impl S3Marker {
    /// The id recorded in processed_markers: the object and which upload of it.
    pub fn id(&self) -> String {
        match &self.sequencer {
            Some(sequencer) => format!("s3://{}/{}#{sequencer}", self.bucket, self.key),
            None => format!("s3://{}/{}", self.bucket, self.key),
        }
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

/// Decodes an object key from an S3 event notification: `+` stands for a space and the rest is
/// percent-encoded (`%2F` for `/`).
pub fn decode_event_key(key: &str) -> String {
    let spaced = key.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// The `.SUCCESS` markers an S3 event names (object-created records only); other keys are ignored.
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
            // The sequencer tells two uploads of one key apart; without one, the event time does.
            let sequencer = s3
                .pointer("/object/sequencer")
                .or_else(|| record.get("eventTime"))
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .map(str::to_string);
            key.ends_with(MARKER_SUFFIX).then_some(S3Marker {
                bucket,
                key,
                sequencer,
            })
        })
        .collect()
}

#[cfg(test)]
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
            "s3://monitored/daily run/2026-11-22/.SUCCESS#0A1B"
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
