//! `stockload watch --monitored DIR|s3://bucket/prefix`: the event-driven behaviour without AWS
//! Data Pipeline. Polls the monitored location; each new `.SUCCESS` marker starts one run (one at a
//! time), whose notice is sent, and the marker is recorded in the run's own transaction, so a
//! restart never reruns it.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use indicatif::ProgressBar;

use super::MARKER_SUFFIX;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ledger;
use crate::load::RunStatus;
use crate::plan::Plan;
use crate::source::{s3, Location};

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
    /// Where it is and when it was written: a rewritten marker is a new one.
    pub id: String,
}

/// Watches until interrupted (or after one pass with `once`). Returns the number of runs started.
pub async fn watch(ctx: &Context, template: &Plan, options: &WatchOptions) -> Result<u64> {
    let mut attempts: HashMap<String, u32> = HashMap::new();
    let mut runs = 0;
    tracing::info!(monitored = %options.monitored, "watching for {MARKER_SUFFIX} markers");
    loop {
        match find_markers(ctx, &options.monitored).await {
            Ok(markers) => {
                let ids: Vec<String> = markers.iter().map(|m| m.id.clone()).collect();
                let done = ledger::processed_markers(&ctx.db, &ids).await?;
                for marker in markers {
                    let tried = attempts.get(&marker.id).copied().unwrap_or(0);
                    if tried >= options.max_attempts || done.contains(&marker.id) {
                        continue;
                    }
                    tracing::info!(marker = %marker.id, "new marker: starting a run");
                    let mut plan = template.clone();
                    plan.marker = Some(marker.id.clone());
                    let report = ctx.run(&plan, &ProgressBar::hidden()).await;
                    runs += 1;
                    if report.summary.status == RunStatus::Failed {
                        let tried = tried + 1;
                        attempts.insert(marker.id.clone(), tried);
                        if tried >= options.max_attempts {
                            tracing::error!(marker = %marker.id, "giving up after {tried} failed runs");
                        }
                    }
                }
            }
            Err(err) if options.once => return Err(err),
            Err(err) => tracing::error!("cannot look for markers: {err}"),
        }
        if options.once {
            return Ok(runs);
        }
        tokio::select! {
            _ = tokio::time::sleep(options.interval) => {}
            _ = crate::shutdown::requested_wait() => {
                tracing::info!("interrupted; stopping");
                return Ok(runs);
            }
        }
    }
}

/// Every marker under the monitored location, oldest id first.
pub async fn find_markers(ctx: &Context, monitored: &Location) -> Result<Vec<FoundMarker>> {
    let mut markers = match monitored {
        Location::Local(dir) => {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || local_markers(&dir))
                .await
                .map_err(|e| Error::Config(format!("listing markers stopped: {e}")))??
        }
        Location::S3 { bucket, key } => {
            let client = ctx.reader.s3(monitored)?;
            s3::list_dated(client, bucket, key)
                .await?
                .into_iter()
                .filter(|(k, _)| k.ends_with(MARKER_SUFFIX))
                .map(|(k, modified)| FoundMarker {
                    id: format!("s3://{bucket}/{k}@{modified}"),
                })
                .collect()
        }
    };
    markers.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(markers)
}

fn local_markers(dir: &std::path::Path) -> Result<Vec<FoundMarker>> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| Error::io("cannot list", &folder, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(MARKER_SUFFIX) {
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                found.push(FoundMarker {
                    id: format!("file://{}@{modified}", path.display()),
                });
            }
        }
    }
    Ok(found)
}
