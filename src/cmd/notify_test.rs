//! `stockload notify-test`: send a test notice to every target.

use crate::cli::NotifyTestArgs;
use crate::error::{Error, Result};
use crate::notify;

/// Sends one test notice per target; `Ok(false)` when any could not be delivered.
pub(crate) async fn run(args: NotifyTestArgs) -> Result<bool> {
    let targets = notify::parse_targets(&args.notify.targets)?;
    if targets.is_empty() {
        return Err(Error::Config(
            "no notification target: give --notify or set STOCKLOAD_NOTIFY".into(),
        ));
    }
    let aws = if notify::needs_aws(&targets) {
        Some(crate::aws::load_for("an SNS target", &args.aws.options()).await?)
    } else {
        None
    };
    let notice = notify::Notice::test(&args.notify.notify_name);
    let failures = notify::send_all(&targets, &notice, aws.as_ref()).await;
    for target in &targets {
        outln!("{target}");
    }
    outln!(
        "sent {:?} to {} of {} targets",
        notice.subject,
        targets.len() - failures.len(),
        targets.len()
    );
    Ok(failures.is_empty())
}
