//! `stockload bucket init|upload-scripts|notify-queue`: the source bucket's layout and wiring.

use crate::aws::Aws;
use crate::bucket;
use crate::cli::BucketCommand;
use crate::error::Result;
use crate::trigger;

/// Does what the subcommand says and prints one line per thing done.
pub(crate) async fn run(command: BucketCommand) -> Result<bool> {
    let (args, aws_args) = match &command {
        BucketCommand::Init(a) | BucketCommand::UploadScripts(a) => (&a.bucket, &a.aws),
        BucketCommand::NotifyQueue(a) => (&a.bucket, &a.aws),
    };
    let bucket = super::bucket_name(args)?;
    let aws = Aws::load(&aws_args.options()).await;
    let done = match &command {
        BucketCommand::Init(_) => bucket::init(&aws, &bucket).await?,
        BucketCommand::UploadScripts(_) => bucket::upload_scripts(&aws, &bucket).await?,
        BucketCommand::NotifyQueue(a) => {
            bucket::notify_queue(&aws, &bucket, &a.queue_arn).await?;
            vec![format!(
                "s3://{bucket}: new *{} objects now notify {}",
                trigger::MARKER_SUFFIX,
                a.queue_arn
            )]
        }
    };
    for line in done {
        outln!("{line}");
    }
    Ok(true)
}
