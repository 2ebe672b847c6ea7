//! The Lambda's auto mode (`STOCKLOAD_MODE=auto`): size a marker's batch from listings alone (the
//! index, then ListObjectsV2 under the source prefix: the listed objects' sizes summed, no company
//! file fetched), estimate the load's time and memory from what `scripts/bench.sh` and
//! `scripts/bench-scale.sh` measured, and choose: load it in the function when the estimate fits
//! comfortably in the time it has left and its memory, else hand it off to a long-running loader
//! (the SQS queue `stockload watch --queue` consumes, or Data Pipeline). The decision is logged,
//! put in the notice, and recorded with the marker in `marker_decisions`.
//!
//! A hand-off to the queue is an S3 event for the same marker object (bucket, key, eTag), so the
//! consumer derives the same marker id ([`super::S3Marker::id`]) and its at-most-once rule holds
//! unchanged: a marker handed off and also delivered to the consumer directly is loaded once.

use std::fmt;
use std::time::{Duration, SystemTime};

use sqlx::Row;

use super::S3Marker;
use crate::aws::{aws_error, Aws};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::plan::{Plan, DEFAULT_CONCURRENCY};
use crate::storage::index::parse_index;
use crate::storage::Storage;

/// Bytes of company files a load takes in per second. Measured by `scripts/bench-scale.sh`
/// (docs/BENCHMARKS.md, "Scale", run 2): 7,192 files of 2,520 days (18,123,840 rows) loaded into
/// an empty table in 45.8 s. Those files, as the bench generates them (`stockload sample --rows
/// 2520`), average 136,728 bytes (measured on the bench's own sample: the 1,000 listed files of
/// `scripts/bench.sh` are 137,275,263 bytes), so 983.4 MB in 45.8 s: 21.5 MB/s. `scripts/bench.sh`
/// run E agrees: those 137.3 MB in 6.30 s (median of three), 21.8 MB/s. Release build,
/// PostgreSQL 15 with default settings, client and server sharing 2 cores.
pub const BENCH_BYTES_PER_SEC: f64 = 983_350_000.0 / 45.8;

/// Seconds a run spends before and after its files: connecting, migrating, the index, the lock,
/// the ledger row, the commit. `scripts/bench.sh`'s daily append (a whole run of 1,000 one-row
/// files) took 0.17 s (run E); rounded up to 1 s for a database and an S3 across a network.
pub const STARTUP_SECS: f64 = 1.0;

/// Seconds per listed object for fetching it from S3. Not measured by the benches (they read a
/// local folder): S3's first-byte latency is documented as 100–200 ms; 200 ms over the
/// [`DEFAULT_CONCURRENCY`] objects fetched at once.
pub const S3_SECS_PER_OBJECT: f64 = 0.2 / DEFAULT_CONCURRENCY as f64;

/// Peak RSS of a load, flat in the batch's size: 29–32 MB from 2.5 M to 18 M rows
/// (`scripts/bench-scale.sh`, `/usr/bin/time -v`; docs/BENCHMARKS.md).
pub const BENCH_PEAK_RSS_MIB: f64 = 32.0;

/// The files in flight on top of that: at most [`DEFAULT_CONCURRENCY`] at once, each held as its
/// bytes, its parsed rows and their COPY text. The benches' files (137 kB) are too small to show
/// this term, so it was measured for this estimate (`/usr/bin/time -v stockload load`, debug
/// build, into an empty database; base peak 38 MB with 16 files of 2,520 days): 16 files of
/// 4.9 MB (78 MB in flight) peaked at 356 MB, 4.1× the bytes in flight over the base; 32 files
/// of 2.45 MB (the 16 largest: 39 MB) at 247 MB, 5.4×. The larger factor, rounded up.
pub const IN_FLIGHT_COPIES: f64 = 5.5;

/// The share of the function's remaining time an estimate may use for the load to stay here;
/// the rest is the margin for a slower database or S3 than the bench's and for the estimate's
/// own error.
pub const TIME_SHARE: f64 = 0.5;

/// The share of the function's memory the estimated peak may use to load here.
pub const MEMORY_SHARE: f64 = 0.5;

/// Lambda's limit on an invocation, assumed when the deadline is not known (outside Lambda).
pub const LAMBDA_MAX_SECS: f64 = 900.0;

/// Lambda's default memory, assumed when `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` is not set.
pub const LAMBDA_DEFAULT_MEMORY_MIB: u64 = 128;

/// Where a batch too big for the function goes (`STOCKLOAD_HANDOFF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handoff {
    /// `sqs:QUEUE_URL`: an S3 event for the marker, sent to the queue a long-running
    /// `stockload watch --queue` consumes (on EC2 or ECS).
    Queue(String),
    /// `pipeline`: start the Data Pipeline (accounts that still have it).
    Pipeline,
}

impl Handoff {
    /// Parses `sqs:QUEUE_URL` or `pipeline`.
    pub fn parse(text: &str) -> Result<Handoff> {
        let text = text.trim();
        match text.strip_prefix("sqs:") {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Ok(Handoff::Queue(url.to_string()))
            }
            _ if text == "pipeline" => Ok(Handoff::Pipeline),
            _ => Err(Error::Config(format!(
                "STOCKLOAD_HANDOFF is {text:?}: expected sqs:QUEUE_URL (https://sqs.…) or pipeline"
            ))),
        }
    }
}

impl fmt::Display for Handoff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handoff::Queue(url) => write!(f, "queue {url}"),
            Handoff::Pipeline => write!(f, "Data Pipeline"),
        }
    }
}

/// A batch as the listings show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSize {
    /// Entries of the index.
    pub entries: u64,
    /// Entries with an object under the source prefix.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The bytes of the [`DEFAULT_CONCURRENCY`] largest: the most a load holds in flight.
    pub in_flight: u64,
}

impl BatchSize {
    /// The size of a batch of `entries` index entries whose objects have `sizes`.
    pub fn new(entries: u64, mut sizes: Vec<u64>) -> BatchSize {
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        BatchSize {
            entries,
            files: sizes.len() as u64,
            bytes: sizes.iter().sum(),
            in_flight: sizes.iter().take(DEFAULT_CONCURRENCY).sum(),
        }
    }
}

/// Sizes the batch `plan` names: reads its index (one small GetObject) and lists the source
/// prefix (ListObjectsV2); no company file is read.
pub async fn measure(storage: &Storage, plan: &Plan) -> Result<BatchSize> {
    let origin = plan.companies.to_string();
    let index = storage.read_required(&plan.companies).await?;
    let text = String::from_utf8(index).map_err(|_| Error::Index {
        file: origin.clone(),
        reason: "is not UTF-8 text".into(),
    })?;
    let entries = parse_index(&text, &origin)?;
    let sizes = storage.sizes(&plan.source).await?;
    let found = entries
        .iter()
        .filter(|entry| entry.problem.is_none())
        .filter_map(|entry| {
            let location = plan.source.join(&entry.file_name).to_string();
            sizes.get(&location).copied()
        })
        .collect();
    Ok(BatchSize::new(entries.len() as u64, found))
}

/// What a load of a batch is expected to take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Wall time.
    pub secs: f64,
    /// Peak memory of the process.
    pub peak_mib: f64,
}

impl Estimate {
    /// The estimate for `batch`, from the measured constants above.
    pub fn of(batch: &BatchSize) -> Estimate {
        Estimate {
            secs: STARTUP_SECS
                + batch.files as f64 * S3_SECS_PER_OBJECT
                + batch.bytes as f64 / BENCH_BYTES_PER_SEC,
            peak_mib: BENCH_PEAK_RSS_MIB + IN_FLIGHT_COPIES * batch.in_flight as f64 / MIB,
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// What the function has for a load (per invocation: the time left changes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Time left before the invocation's deadline (unknown outside Lambda).
    pub remaining: Option<Duration>,
    /// The function's memory (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`).
    pub memory_mib: Option<u64>,
    /// `STOCKLOAD_DIRECT_MAX_BYTES`: load here up to this many bytes, whatever the estimate.
    pub direct_max_bytes: Option<u64>,
}

impl Limits {
    /// The time left until `deadline`. A deadline already past is not one an invocation can
    /// have (it would have been stopped): it is taken as unknown, and logged. (Lambda sends epoch
    /// milliseconds; cargo-lambda's emulator sends its timeout, 600000, which reads as 1970.)
    pub fn until(mut self, deadline: Option<SystemTime>) -> Limits {
        self.remaining = deadline.and_then(|deadline| {
            let left = deadline.duration_since(SystemTime::now()).ok();
            if left.is_none() {
                tracing::warn!(
                    "the invocation's deadline is already past; assuming Lambda's {LAMBDA_MAX_SECS} s"
                );
            }
            left
        });
        self
    }
}

/// Load here or hand off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Load in the function.
    Direct,
    /// Hand off to the long-running loader.
    Handoff,
}

impl Choice {
    /// As `marker_decisions.choice` stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            Choice::Direct => "direct",
            Choice::Handoff => "handoff",
        }
    }
}

/// The decision for one batch, with what it was based on.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The batch.
    pub batch: BatchSize,
    /// Its estimate.
    pub estimate: Estimate,
    /// The limits it was held against.
    pub limits: Limits,
    /// The choice.
    pub choice: Choice,
    /// Why, in a few words.
    pub why: String,
}

/// Decides where `batch` loads: here when `STOCKLOAD_DIRECT_MAX_BYTES` is set and the batch is
/// within it; without it, here when the estimate needs at most [`TIME_SHARE`] of the time left
/// and [`MEMORY_SHARE`] of the memory.
pub fn decide(batch: BatchSize, limits: Limits) -> Decision {
    let estimate = Estimate::of(&batch);
    let (choice, why) = match limits.direct_max_bytes {
        Some(max) if batch.bytes <= max => (
            Choice::Direct,
            format!("within STOCKLOAD_DIRECT_MAX_BYTES={}", thousands(max)),
        ),
        Some(max) => (
            Choice::Handoff,
            format!("over STOCKLOAD_DIRECT_MAX_BYTES={}", thousands(max)),
        ),
        None => by_estimate(&estimate, &limits),
    };
    Decision {
        batch,
        estimate,
        limits,
        choice,
        why,
    }
}

fn by_estimate(estimate: &Estimate, limits: &Limits) -> (Choice, String) {
    let left = limits
        .remaining
        .map_or(LAMBDA_MAX_SECS, |r| r.as_secs_f64());
    let memory = limits.memory_mib.unwrap_or(LAMBDA_DEFAULT_MEMORY_MIB) as f64;
    let time_ok = estimate.secs <= left * TIME_SHARE;
    let memory_ok = estimate.peak_mib <= memory * MEMORY_SHARE;
    let left = duration(left);
    match (time_ok, memory_ok) {
        (true, true) => (
            Choice::Direct,
            format!("fits in half of the {left} left and of {memory:.0} MiB"),
        ),
        (false, _) => (
            Choice::Handoff,
            format!("more than half of the {left} the function has left"),
        ),
        (true, false) => (
            Choice::Handoff,
            format!(
                "peak ~{:.0} MiB, more than half of the function's {memory:.0} MiB",
                estimate.peak_mib
            ),
        ),
    }
}

impl Decision {
    /// The decision as logged, notified and recorded: "1,000 files, 137 MB: loading here,
    /// estimated 17 s (fits …)" or "7,192 files, 983 MB: handed to queue …, estimated 2 min on
    /// the loader (…)".
    pub fn describe(&self, handoff: Option<&Handoff>) -> String {
        let files = self.batch.files;
        let size = format!(
            "{} file{}, {}",
            thousands(files),
            if files == 1 { "" } else { "s" },
            bytes(self.batch.bytes)
        );
        let missing = self.batch.entries - self.batch.files;
        let missing = if missing > 0 {
            format!(" ({} listed in the index not found)", thousands(missing))
        } else {
            String::new()
        };
        let secs = duration(self.estimate.secs);
        match (self.choice, handoff) {
            (Choice::Handoff, Some(to)) => format!(
                "{size}{missing}: handed to {to}, estimated {secs} on the loader ({})",
                self.why
            ),
            _ => format!(
                "{size}{missing}: loading here, estimated {secs} ({})",
                self.why
            ),
        }
    }
}

/// 7192 → "7,192".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Decimal units, as S3's console shows sizes.
fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} bytes"),
        1_000..1_000_000 => format!("{:.0} kB", n as f64 / 1e3),
        _ => format!("{} MB", thousands((n as f64 / 1e6).round() as u64)),
    }
}

fn duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{:.0} s", secs.max(1.0))
    } else if secs < 5400.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

/// The S3 event notification S3 itself would send for `marker` (bucket, URL-encoded key, eTag,
/// sequencer), plus the decision under `stockload` for whoever reads the queue: whoever consumes
/// it derives the same marker id as from S3's own event.
pub fn handoff_event(marker: &S3Marker, region: &str, note: &str) -> serde_json::Value {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    // S3 leaves these as they are in event keys; a space becomes '+'.
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/')
        .remove(b' ');
    let key = utf8_percent_encode(&marker.key, KEEP)
        .to_string()
        .replace(' ', "+");
    let bucket = &marker.bucket;
    serde_json::json!({
        "Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": region,
            "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "stockload-lambda"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "stockload-handoff",
                "bucket": {
                    "name": bucket,
                    "ownerIdentity": {"principalId": "stockload-lambda"},
                    "arn": format!("arn:aws:s3:::{bucket}"),
                },
                "object": {
                    "key": key,
                    "size": 0,
                    "eTag": marker.etag.clone().unwrap_or_default(),
                    "sequencer": marker.sequencer.clone().unwrap_or_default(),
                },
            },
        }],
        "stockload": {"handed_off_by": "stockload-lambda", "decision": note},
    })
}

/// Sends the hand-off event for `marker` to the queue; returns the message id.
pub async fn send_to_queue(
    aws: &Aws,
    queue_url: &str,
    marker: &S3Marker,
    note: &str,
) -> Result<String> {
    let region = aws
        .config
        .region()
        .map_or_else(|| "us-east-1".to_string(), |r| r.to_string());
    let body = handoff_event(marker, &region, note).to_string();
    let sent = aws
        .sqs()
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| aws_error("SQS", format!("SendMessage {queue_url}"), e))?;
    Ok(sent.message_id().unwrap_or_default().to_string())
}

/// One decision to record with its marker.
pub struct Record<'a> {
    /// The marker's id.
    pub marker: &'a str,
    /// The decision.
    pub decision: &'a Decision,
    /// Where it was handed (a hand-off).
    pub handed_to: Option<String>,
    /// Whether the run was started or the hand-off went through.
    pub sent: bool,
    /// Why the hand-off could not be sent.
    pub error: Option<String>,
}

/// Records a decision in `marker_decisions` (the table exists once the database was migrated,
/// as checking the marker does first).
pub async fn record(db: &Db, record: &Record<'_>) -> Result<()> {
    let decision = record.decision;
    let mut conn = db.connect().await?;
    sqlx::query(include_str!("../../sql/ledger/record_decision.sql"))
        .bind(record.marker)
        .bind(decision.choice.as_str())
        .bind(record.handed_to.as_deref())
        .bind(record.sent)
        .bind(i32::try_from(decision.batch.files).unwrap_or(i32::MAX))
        .bind(i64::try_from(decision.batch.bytes).unwrap_or(i64::MAX))
        .bind(decision.estimate.secs)
        .bind(decision.estimate.peak_mib)
        .bind(decision.limits.remaining.map(|r| r.as_secs_f64()))
        .bind(decision.limits.memory_mib.map(|m| m as i32))
        .bind(decision.describe(None))
        .bind(record.error.as_deref())
        .execute(&mut conn)
        .await
        .map_err(|e| Error::database("recording the decision in marker_decisions", e))?;
    Ok(())
}

/// The latest hand-off of any of the marker's `ids` that went through: where to and when.
pub async fn last_handoff(db: &Db, ids: &[String]) -> Result<Option<(String, String)>> {
    let mut conn = db.connect().await?;
    let row = sqlx::query(include_str!("../../sql/ledger/last_handoff.sql"))
        .bind(ids)
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| Error::database("checking marker_decisions", e))?;
    Ok(row.map(|row| {
        let to: Option<String> = row.get(0);
        (to.unwrap_or_default(), row.get(1))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn limits(remaining_secs: u64, memory_mib: u64) -> Limits {
        Limits {
            remaining: Some(Duration::from_secs(remaining_secs)),
            memory_mib: Some(memory_mib),
            direct_max_bytes: None,
        }
    }

    #[test]
    fn the_bench_batch_loads_here_and_the_whole_folder_is_handed_off() {
        // scripts/bench.sh's batch: 1,000 files, 137 MB: about 6.4 s of data + S3 + start-up.
        let bench = BatchSize::new(1000, vec![137_275; 1000]);
        let decision = decide(bench, limits(900, 1024));
        assert_eq!(decision.choice, Choice::Direct);
        assert!((decision.estimate.secs - 19.9).abs() < 0.5, "{decision:?}");
        assert_eq!(
            decision.describe(None),
            "1,000 files, 137 MB: loading here, estimated 20 s (fits in half of the 15 min left \
             and of 1024 MiB)"
        );
        // The whole folder of bench-scale.sh in a function with 60 s left: handed off.
        let folder = BatchSize::new(7192, vec![136_728; 7192]);
        let decision = decide(folder, limits(60, 1024));
        assert_eq!(decision.choice, Choice::Handoff);
        let to = Handoff::Queue("https://sqs.us-east-1.amazonaws.com/1/q".into());
        assert_eq!(
            decision.describe(Some(&to)),
            "7,192 files, 983 MB: handed to queue https://sqs.us-east-1.amazonaws.com/1/q, \
             estimated 2 min on the loader (more than half of the 60 s the function has left)"
        );
        // With the full 15 minutes it fits.
        assert_eq!(
            decide(decision.batch, limits(900, 1024)).choice,
            Choice::Direct
        );
    }

    #[test]
    fn memory_and_the_byte_override_decide_too() {
        // Sixteen 60 MB files in flight: ~5 GiB peak, more than half of 8 GiB.
        let big = BatchSize::new(16, vec![60 * MB; 16]);
        let decision = decide(big.clone(), limits(900, 8192));
        assert_eq!(decision.choice, Choice::Handoff);
        assert!(decision.why.contains("MiB"), "{}", decision.why);
        assert_eq!(
            decide(big.clone(), limits(900, 10240)).choice,
            Choice::Direct
        );
        // The override wins over the estimate, both ways.
        let mut over = limits(900, 10240);
        over.direct_max_bytes = Some(100);
        let decision = decide(big, over);
        assert_eq!(decision.choice, Choice::Handoff);
        assert_eq!(decision.why, "over STOCKLOAD_DIRECT_MAX_BYTES=100");
        let mut within = limits(1, 128);
        within.direct_max_bytes = Some(10 * MB);
        let small = BatchSize::new(3, vec![100, 200]);
        let decision = decide(small, within);
        assert_eq!(decision.choice, Choice::Direct);
        assert_eq!(
            decision.describe(None),
            "2 files, 300 bytes (1 listed in the index not found): loading here, estimated 1 s \
             (within STOCKLOAD_DIRECT_MAX_BYTES=10,000,000)"
        );
        // Outside Lambda: 15 minutes and 128 MiB assumed.
        let unknown = decide(BatchSize::new(1, vec![MB]), Limits::default());
        assert_eq!(unknown.choice, Choice::Direct);
        assert!(unknown.why.contains("15 min"), "{}", unknown.why);
    }

    #[test]
    fn the_handoff_setting_is_a_queue_url_or_pipeline() {
        assert_eq!(
            Handoff::parse("sqs:https://sqs.eu-west-1.amazonaws.com/1/q").unwrap(),
            Handoff::Queue("https://sqs.eu-west-1.amazonaws.com/1/q".into())
        );
        assert_eq!(Handoff::parse(" pipeline ").unwrap(), Handoff::Pipeline);
        for bad in ["sqs:", "sqs:queue-name", "queue", ""] {
            let err = Handoff::parse(bad).unwrap_err().to_string();
            assert!(err.contains("STOCKLOAD_HANDOFF"), "{err}");
        }
    }

    #[test]
    fn the_handoff_event_names_the_same_marker() {
        let marker = S3Marker {
            bucket: "monitored".into(),
            key: "daily run/2026+12/.SUCCESS".into(),
            etag: Some("0b0b".into()),
            sequencer: Some("0A1B".into()),
        };
        let event = handoff_event(&marker, "eu-west-1", "1 files, 10 bytes: handed to …");
        let seen = super::super::markers_in_json(&event);
        assert_eq!(seen, std::slice::from_ref(&marker));
        assert_eq!(seen[0].id(), marker.id());
        // The SDK's event type reads it too (the Lambda's own parser).
        let typed: aws_lambda_events::event::s3::S3Event =
            serde_json::from_value(event).expect("an S3 event");
        assert_eq!(super::super::markers_in_event(&typed), [marker]);
    }

    #[test]
    fn sizes_read_the_way_people_write_them() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(bytes(999), "999 bytes");
        assert_eq!(bytes(118_400), "118 kB");
        assert_eq!(bytes(872_000_000), "872 MB");
        assert_eq!(bytes(4_500_000_000), "4,500 MB");
        assert_eq!(duration(0.2), "1 s");
        assert_eq!(duration(9.4), "9 s");
        assert_eq!(duration(125.0), "2 min");
        assert_eq!(duration(7200.0), "2.0 h");
    }
}
