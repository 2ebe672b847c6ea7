//! `stockload watch --monitored DIR|s3://bucket/prefix`: the event-driven behaviour without AWS
//! Data Pipeline. Polls the monitored location; each new `.SUCCESS` marker starts one run (one at a
//! time), whose notice is sent, and the marker is recorded in the run's own transaction, so a
//! restart never reruns it.
//!
//! The loop rides out faults: a poll that cannot list the markers or check them in the database
//! (S3 or PostgreSQL down, throttling) is retried with [`Backoff`], each retry logged once; a
//! marker whose run fails is retried on later polls, also backed off, until `max_attempts`, and a
//! notice says when it is given up.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use super::backoff::{pause, Backoff};
use super::{listed_marker_ids, MARKER_SUFFIX};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ledger;
use crate::load::RunStatus;
use crate::plan::Plan;
use crate::storage::Location;

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
pub async fn watch(ctx: &Context, template: &Plan, options: &WatchOptions) -> Result<u64> {
    let mut attempts: HashMap<String, Attempts> = HashMap::new();
    let mut runs = 0;
    let mut backoff = Backoff::new();
    tracing::info!(monitored = %options.monitored, "watching for {MARKER_SUFFIX} markers");
    loop {
        let wait = match poll(ctx, template, options, &mut attempts, &mut runs).await {
            Ok(()) => {
                if backoff.failures() > 0 {
                    tracing::info!("polling works again");
                }
                backoff.reset();
                options.interval
            }
            Err(err) if options.once => return Err(err),
            Err(err) => {
                let delay = backoff.next_delay().max(options.interval);
                tracing::warn!(
                    retry = backoff.failures(),
                    "cannot check for markers: {err}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                delay
            }
        };
        if options.once {
            return Ok(runs);
        }
        if !pause(wait).await {
            tracing::info!("interrupted; stopping");
            return Ok(runs);
        }
    }
}

/// One pass: list the markers, check which are done, run the others that are due.
async fn poll(
    ctx: &Context,
    template: &Plan,
    options: &WatchOptions,
    attempts: &mut HashMap<String, Attempts>,
    runs: &mut u64,
) -> Result<()> {
    let markers = find_markers(ctx, &options.monitored).await?;
    let ids: Vec<String> = markers
        .iter()
        .flat_map(|m| std::iter::once(m.id.clone()).chain(m.legacy_ids.iter().cloned()))
        .collect();
    let done = ledger::processed_markers(&ctx.db, &ids).await?;
    for marker in markers {
        if done.contains(&marker.id) || marker.legacy_ids.iter().any(|id| done.contains(id)) {
            attempts.remove(&marker.id);
            continue;
        }
        if let Some(tried) = attempts.get(&marker.id) {
            if tried.failures >= options.max_attempts || Instant::now() < tried.not_before {
                continue;
            }
        }
        if crate::shutdown::requested().is_some() {
            // Stopping: leave the remaining markers to the next start.
            return Ok(());
        }
        tracing::info!(marker = %marker.id, "new marker: starting a run");
        let mut plan = template.clone();
        plan.marker = Some(marker.id.clone());
        let report = ctx.run(&plan, &ProgressBar::hidden()).await;
        *runs += 1;
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
        let error = report.summary.error.as_deref().unwrap_or("unknown error");
        if tried.failures >= options.max_attempts {
            let err = Error::GaveUp(format!(
                "giving up on marker {} after {} failed runs (until watch restarts). Last error: \
                 {error}",
                marker.id, tried.failures
            ));
            tracing::error!("{err}");
            ctx.notify_error("giving up on a marker", &err).await;
        } else {
            let delay = tried.backoff.next_delay();
            tried.not_before = Instant::now() + delay;
            tracing::warn!(
                marker = %marker.id,
                "run {} of {} failed: {error}; retrying in {:.1} s or later",
                tried.failures,
                options.max_attempts,
                delay.as_secs_f64()
            );
        }
    }
    Ok(())
}

/// Every marker under the monitored location, ordered by id.
pub async fn find_markers(ctx: &Context, monitored: &Location) -> Result<Vec<FoundMarker>> {
    let mut markers: Vec<FoundMarker> = ctx
        .storage
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
