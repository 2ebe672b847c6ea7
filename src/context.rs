//! What every way of starting a run shares: where the database is, how to read sources, who to
//! tell. [`Context::run`] is the one place a run is started and its notice sent — the CLI `load`,
//! the watch loops, the queue consumer and the Lambda's direct mode all call it.

use indicatif::ProgressBar;

use crate::aws::Aws;
use crate::db::Db;
use crate::error::Error;
use crate::load::{self, Report, RunStatus};
use crate::notify::{self, Notice, Target};
use crate::plan::Plan;
use crate::source::Reader;

/// Shared run settings.
#[derive(Clone)]
pub struct Context {
    /// The database.
    pub db: Db,
    /// Local and S3 reads.
    pub reader: Reader,
    /// AWS clients, when anything needs them.
    pub aws: Option<Aws>,
    /// Notification targets.
    pub targets: Vec<Target>,
    /// Subject prefix of notices.
    pub notify_name: String,
}

impl Context {
    /// Runs one load and sends its notice to every target exactly once. A run that found its
    /// marker already loaded did nothing and sends nothing.
    pub async fn run(&self, plan: &Plan, progress: &ProgressBar) -> Report {
        let report = load::run(&self.db, &self.reader, plan, progress).await;
        if report.summary.status != RunStatus::AlreadyLoaded {
            let notice = Notice::from_summary(&self.notify_name, &report.summary);
            notify::send_all(&self.targets, &notice, self.aws.as_ref()).await;
        }
        report
    }

    /// Sends the failure notice of a run that could not start.
    pub async fn notify_error(&self, what: &str, error: &Error) {
        let notice = Notice::from_error(&self.notify_name, what, error);
        notify::send_all(&self.targets, &notice, self.aws.as_ref()).await;
    }
}
