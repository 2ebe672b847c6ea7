//! `stockload pipeline definition`: the AWS Data Pipeline definition for the EC2 load and its
//! SqlActivity follow-up.

use crate::cli::DefinitionArgs;
use crate::error::{Error, Result};
use crate::pipeline;

/// Builds, validates and prints the definition (and uploads it with `--upload`).
pub(crate) async fn run(args: DefinitionArgs) -> Result<bool> {
    let settings = pipeline::PipelineSettings::from_args(*args.settings, args.config.as_deref())?;
    let definition = pipeline::build_definition(&settings);
    pipeline::validate(&definition).map_err(Error::Definition)?;
    let json = definition.to_json_pretty();
    outln!("{json}");
    if args.upload {
        upload(&args.aws, &settings.source_bucket, json).await?;
    }
    Ok(true)
}

/// Puts the definition where the Lambda reads it (`s3://BUCKET/pipeline_definition.json`).
#[cfg(feature = "aws")]
async fn upload(aws: &crate::cli::AwsArgs, bucket: &str, json: String) -> Result<()> {
    let aws = crate::aws::load_for("--upload", &aws.options()).await?;
    let key = pipeline::DEFAULT_DEFINITION_KEY;
    let target = crate::storage::Location::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
    };
    crate::storage::Storage::new(Some(aws))
        .write(&target, json.into_bytes())
        .await?;
    tracing::info!("uploaded to s3://{bucket}/{key}");
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn upload(_: &crate::cli::AwsArgs, _: &str, _: String) -> Result<()> {
    Err(crate::aws::without_aws("--upload"))
}
