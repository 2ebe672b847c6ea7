//! `stockload watch --monitored DIR|s3://bucket/prefix`: the event-driven behaviour without AWS
//! Data Pipeline. Polls the monitored location; each new `.SUCCESS` marker starts one run (one at a
//! time), whose notice is sent, and the marker is recorded in the run's own transaction, so a
//! restart never reruns it.
//!
//! The loop rides out faults: a poll that cannot list the markers or check them in the database
//! (S3 or PostgreSQL down, throttling) is retried through [`retry`], each retry logged once; a
//! marker whose run fails is retried on later polls, also backed off, until `max_attempts`, and
//! [`give_up`] says when it is given up. The schema is migrated once at start; polls only read.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::backoff::{pause, retry, Backoff};
use super::{give_up, listed_marker_ids, marker_given_up, migrate_at_start, MARKER_SUFFIX};
use crate::context::Context;
use crate::db::Db;
use crate::error::Result;
use crate::ledger;
use crate::load::RunStatus;
use crate::plan::Plan;
use crate::storage::{Location, Storage};

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Folder or S3 prefix to look for markers in (recursively).
    pub monitored: Location,
    /// Time between polls.
    pub interval: Duration,
    /// Look once, run what is new, and return.
    pub once: bool,
    /// Runs tried per marker before it is given up (until restart).
    pub max_attempts: u32,
}

/// A marker found by polling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundMarker {
    /// Its one identity (see [`super`]): the same object seen by another trigger has this id.
    pub id: String,
    /// Ids under which an earlier stockload version recorded it (so an upgrade reloads nothing).
    pub legacy_ids: Vec<String>,
}

/// Failed runs of one marker and when it may be tried again.
struct Attempts {
    failures: u32,
    backoff: Backoff,
    not_before: Instant,
}

/// Watches until interrupted (or after one pass with `once`). Returns the number of runs started.
/// The schema is migrated once here, before the first poll; the polls only read.
pub async fn watch(ctx: &Context, template: &Plan, options: &WatchOptions) -> Result<u64> {
    // With --once every step is tried once and its error returned; otherwise retried.
    let backoff = if options.once {
        Backoff::new().tries(1)
    } else {
        Backoff::new().at_least(options.interval)
    };
    let migrated = migrate_at_start(&ctx.db, backoff.clone()).await;
    if migrated.into_result()?.is_none() {
        return Ok(0);
    }
    let mut attempts: HashMap<String, Attempts> = HashMap::new();
    let mut runs = 0;
    tracing::info!(monitored = %options.monitored, "watching for {MARKER_SUFFIX} markers");
    loop {
        let pending = retry("polling", backoff.clone(), || {
            pending_markers(&ctx.storage, &ctx.db, &options.monitored)
        });
        let Some(markers) = pending.await.into_result()? else {
            break;
        };
        runs += run_due(ctx, template, options, &mut attempts, markers).await;
        if options.once {
            return Ok(runs);
        }
        if !pause(options.interval).await {
            break;
        }
    }
    tracing::info!("interrupted; stopping");
    Ok(runs)
}

/// The markers under the monitored location that no committed run has loaded yet (checked in
/// the ledger with one read; nothing is migrated here).
pub async fn pending_markers(
    storage: &Storage,
    db: &Db,
    monitored: &Location,
) -> Result<Vec<FoundMarker>> {
    let markers = find_markers(storage, monitored).await?;
    let ids: Vec<String> = markers
        .iter()
        .flat_map(|m| std::iter::once(m.id.clone()).chain(m.legacy_ids.iter().cloned()))
        .collect();
    let done = ledger::processed_markers(db, &ids).await?;
    Ok(markers
        .into_iter()
        .filter(|m| !done.contains(&m.id) && !m.legacy_ids.iter().any(|id| done.contains(id)))
        .collect())
}

/// Runs the pending markers that are due (not given up, not backing off), one at a time;
/// returns the runs started. A failed run is retried on a later poll, backed off, until
/// `max_attempts`; then the marker is given up until watch restarts.
async fn run_due(
    ctx: &Context,
    template: &Plan,
    options: &WatchOptions,
    attempts: &mut HashMap<String, Attempts>,
    markers: Vec<FoundMarker>,
) -> u64 {
    // Markers loaded meanwhile (by this watch or another trigger) need no bookkeeping.
    attempts.retain(|id, _| markers.iter().any(|m| &m.id == id));
    let mut runs = 0;
    for marker in markers {
        if let Some(tried) = attempts.get(&marker.id) {
            if tried.failures >= options.max_attempts || Instant::now() < tried.not_before {
                continue;
            }
        }
        if crate::shutdown::requested().is_some() {
            // Stopping: leave the remaining markers to the next start.
            break;
        }
        tracing::info!(marker = %marker.id, "new marker: starting a run");
        let mut plan = template.clone();
        plan.marker = Some(marker.id.clone());
        let report = ctx.run(&plan, &ProgressBar::hidden()).await;
        runs += 1;
        if report.summary.status != RunStatus::Failed {
            attempts.remove(&marker.id);
            continue;
        }
        let tried = attempts
            .entry(marker.id.clone())
            .or_insert_with(|| Attempts {
                failures: 0,
                backoff: Backoff::new(),
                not_before: Instant::now(),
            });
        tried.failures += 1;
        if tried.failures >= options.max_attempts {
            let fate = "not retried until watch restarts";
            let err = marker_given_up(&marker.id, tried.failures, fate, &report.summary);
            give_up(ctx.recipients(), "giving up on a marker", &err).await;
        } else {
            let delay = tried.backoff.next_delay();
            tried.not_before = Instant::now() + delay;
            tracing::warn!(
                marker = %marker.id,
                "run {} of {} failed: {}; retrying in {:.1} s or later",
                tried.failures,
                options.max_attempts,
                report.summary.error.as_deref().unwrap_or("unknown error"),
                delay.as_secs_f64()
            );
        }
    }
    runs
}

/// Every marker under the monitored location, ordered by id.
pub async fn find_markers(storage: &Storage, monitored: &Location) -> Result<Vec<FoundMarker>> {
    let mut markers: Vec<FoundMarker> = storage
        .list(monitored, MARKER_SUFFIX)
        .await?
        .iter()
        .map(|listed| {
            let (id, legacy_ids) = listed_marker_ids(listed);
            FoundMarker { id, legacy_ids }
        })
        .collect();
    markers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(markers)
}
