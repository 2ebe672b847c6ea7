//! `stockload watch`: runs started by `.SUCCESS` markers in a folder, a bucket prefix (polling) or
//! an SQS queue of S3 events.

use std::time::Duration;

use crate::cli::WatchArgs;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::plan::DEFAULT_INDEX_NAME;
use crate::storage::Location;
use crate::trigger;

/// Watches a folder, a bucket prefix or a queue until stopped (or once).
pub(crate) async fn run(args: WatchArgs) -> Result<bool> {
    let parse = |text: &Option<String>| text.as_deref().map(Location::parse).transpose();
    let setup = (|| {
        let source = parse(&args.source)?;
        let companies = parse(&args.companies)?;
        let monitored = parse(&args.monitored)?;
        // A template plan: source and companies are settled per marker when not given.
        let placeholder = Location::Local(".".into());
        let template = super::run_plan(&args.run, placeholder.clone(), placeholder)?;
        Ok((source, companies, monitored, template))
    })();
    let needs_aws = args.queue.is_some()
        || setup
            .as_ref()
            .is_ok_and(|(source, companies, monitored, _)| {
                [source, companies, monitored]
                    .into_iter()
                    .flatten()
                    .any(Location::is_s3)
            });
    let (ctx, (source, companies, monitored, mut template)) =
        Context::from_args(&args.run, needs_aws, setup).await?;
    #[cfg(not(feature = "aws"))]
    if args.queue.is_some() {
        let err = crate::aws::without_aws("watch --queue");
        ctx.notify_error("invalid configuration", &err).await;
        return Err(err);
    }
    #[cfg(feature = "aws")]
    if let Some(queue_url) = &args.queue {
        let options = trigger::queue::QueueOptions {
            queue_url: queue_url.clone(),
            source,
            companies,
            max_attempts: args.max_attempts,
            once: args.once,
        };
        let runs = trigger::queue::consume(&ctx, &template, &options).await?;
        outln!("handled {runs} runs");
        return Ok(true);
    }
    let (Some(monitored), Some(source)) = (monitored, source) else {
        let err = Error::Config("watch --monitored needs --source (the company files)".into());
        ctx.notify_error("invalid configuration", &err).await;
        return Err(err);
    };
    template.companies = companies.unwrap_or_else(|| source.join(DEFAULT_INDEX_NAME));
    template.source = source;
    let options = trigger::watch::WatchOptions {
        monitored,
        interval: Duration::from_secs(args.interval.max(1)),
        once: args.once,
        max_attempts: args.max_attempts.max(1),
    };
    let runs = trigger::watch::watch(&ctx, &template, &options).await?;
    outln!("started {runs} runs");
    Ok(true)
}
