//! What every way of starting a run shares: where the database is, how to read sources, who to
//! tell. [`Context::run`] is the one place a run is started and its notice sent — the CLI `load`,
//! the watch loops, the queue consumer and the Lambda's direct mode all call it.

use indicatif::ProgressBar;

use crate::aws::Aws;
use crate::cli::RunArgs;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::load::{self, Report, RunStatus};
use crate::notify::{self, Notice, Target};
use crate::plan::Plan;
use crate::report::{self, ReportTo};
use crate::storage::Storage;

/// Who hears of a give-up: the notification targets, the notices' subject prefix (`NAME` in
/// `NAME_Pipeline_Failure`), and AWS for SNS topics. Built by [`Context::recipients`] and by the
/// Lambda from its configuration.
#[derive(Clone, Copy)]
pub struct Recipients<'a> {
    /// Notification targets.
    pub targets: &'a [Target],
    /// Subject prefix.
    pub notify_name: &'a str,
    /// AWS clients (SNS), when configured.
    pub aws: Option<&'a Aws>,
}

/// Shared run settings.
#[derive(Clone)]
pub struct Context {
    /// The database.
    pub db: Db,
    /// Local folders and S3.
    pub storage: Storage,
    /// AWS clients, when anything needs them.
    pub aws: Option<Aws>,
    /// Notification targets.
    pub targets: Vec<Target>,
    /// Subject prefix of notices.
    pub notify_name: String,
    /// Where each run's HTML report goes, if anywhere.
    pub report_to: Option<ReportTo>,
}

impl Context {
    /// A context for runs on `db`, reading local files and (with `aws`) S3, telling `targets`.
    pub fn new(db: Db, aws: Option<Aws>, targets: Vec<Target>, notify_name: String) -> Context {
        Context {
            db,
            storage: Storage::new(aws.clone()),
            aws,
            targets,
            notify_name,
            report_to: None,
        }
    }

    /// The same context, writing each run's report to `to`.
    pub fn with_report(mut self, to: Option<ReportTo>) -> Context {
        self.report_to = to;
        self
    }

    /// Runs one load, writes its report (when asked) and sends its notice, naming the report,
    /// to every target exactly once. A run that found its marker already loaded did nothing and
    /// sends nothing. A report that cannot be written is logged and told in the notice; it
    /// does not change the run's outcome. Each earlier run it found dead and closed as
    /// abandoned gets a failure notice of its own first.
    pub async fn run(&self, plan: &Plan, progress: &ProgressBar) -> Report {
        let outcome = load::run(&self.db, &self.storage, plan, progress).await;
        for run in &outcome.abandoned {
            let notice = Notice::abandoned(&self.notify_name, run);
            notify::send_all(&self.targets, &notice, self.aws.as_ref()).await;
        }
        if outcome.summary.status != RunStatus::AlreadyLoaded {
            let mut notice = Notice::from_summary(&self.notify_name, &outcome.summary);
            if let Some(to) = &self.report_to {
                let run_id = outcome.summary.run_id;
                match report::write_after_run(&self.db, &self.storage, to, run_id).await {
                    Ok(location) => notice.add_report(&location.to_string()),
                    Err(err) => {
                        tracing::warn!("could not write the run report: {err}");
                        notice.add_report_failure(&err.to_string());
                    }
                }
            }
            notify::send_all(&self.targets, &notice, self.aws.as_ref()).await;
        }
        outcome
    }

    /// Who hears of this context's give-ups ([`crate::trigger::give_up`]).
    pub fn recipients(&self) -> Recipients<'_> {
        Recipients {
            targets: &self.targets,
            notify_name: &self.notify_name,
            aws: self.aws.as_ref(),
        }
    }

    /// Sends the failure notice of a run that could not start.
    pub async fn notify_error(&self, what: &str, error: &Error) {
        notify_not_started(
            &self.targets,
            &self.notify_name,
            self.aws.as_ref(),
            what,
            error,
        )
        .await;
    }

    /// The one way the command line builds a run's context: notification targets first, so
    /// that any later problem with the configuration (`prepared`, the database settings) is still
    /// notified before it is returned. `prepared` is whatever the caller validated beforehand
    /// (a plan, a watch set-up); it comes back with the context.
    pub async fn from_args<T>(
        args: &RunArgs,
        needs_aws: bool,
        prepared: Result<T>,
    ) -> Result<(Context, T)> {
        let targets = notify::parse_targets(&args.notify.targets)?;
        let notify_name = args.notify.notify_name.clone();
        let report_to = args.report.as_deref().map(ReportTo::parse).transpose();
        let report_in_s3 = report_to
            .as_ref()
            .is_ok_and(|to| to.as_ref().is_some_and(ReportTo::is_s3));
        let (aws, aws_error) = if needs_aws || report_in_s3 || notify::needs_aws(&targets) {
            match crate::aws::load_for("S3 or SNS", &args.aws.options()).await {
                Ok(aws) => (Some(aws), None),
                Err(err) => (None, Some(err)),
            }
        } else {
            (None, None)
        };
        let prepared = args.db.db().and_then(|db| match aws_error {
            Some(err) => Err(err),
            None => Ok((db, prepared?, report_to?)),
        });
        match prepared {
            Ok((db, value, report_to)) => Ok((
                Context::new(db, aws, targets, notify_name).with_report(report_to),
                value,
            )),
            Err(err) => {
                notify_not_started(
                    &targets,
                    &notify_name,
                    aws.as_ref(),
                    "invalid configuration",
                    &err,
                )
                .await;
                Err(err)
            }
        }
    }
}

/// Sends the failure notice of a run that could not even start (bad configuration, unreachable
/// settings): every starter — CLI, watch, queue, Lambda — tells its targets the same way.
pub async fn notify_not_started(
    targets: &[Target],
    notify_name: &str,
    aws: Option<&Aws>,
    what: &str,
    error: &Error,
) {
    let notice = Notice::from_error(notify_name, what, error);
    notify::send_all(targets, &notice, aws).await;
}
