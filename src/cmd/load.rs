//! `stockload load`: one run from the command line.

use crate::cli::LoadArgs;
use crate::context::Context;
use crate::error::Result;
use crate::storage::Location;
use crate::summary::Summary;

/// Plans the run, builds its context (notifying a configuration error), runs it, prints the
/// summary. `Ok(false)` when the run failed.
pub(crate) async fn run(args: LoadArgs) -> Result<bool> {
    let plan = Location::parse(&args.source)
        .and_then(|source| super::run_plan(&args.run, source, Location::parse(&args.companies)?));
    let needs_aws = plan
        .as_ref()
        .is_ok_and(|p| p.source.is_s3() || p.companies.is_s3());
    let (ctx, plan) = Context::from_args(&args.run, needs_aws, plan).await?;
    let progress = super::progress_bar(!args.json);
    let report = ctx.run(&plan, &progress).await;
    print_summary(&report.summary, args.json);
    Ok(report.summary.ok())
}

fn print_summary(summary: &Summary, json: bool) {
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(summary).unwrap_or_default()
        );
    } else {
        out!("{summary}");
    }
}
