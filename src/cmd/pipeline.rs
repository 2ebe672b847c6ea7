//! `stockload pipeline definition`: the AWS Data Pipeline definition for the EC2 load and its
//! SqlActivity follow-up.

use crate::aws::Aws;
use crate::cli::DefinitionArgs;
use crate::error::{Error, Result};
use crate::{pipeline, source};

/// Builds, validates and prints the definition (and uploads it with `--upload`).
pub(crate) async fn run(args: DefinitionArgs) -> Result<bool> {
    let settings = pipeline::PipelineSettings::from_args(*args.settings, args.config.as_deref())?;
    let definition = pipeline::build_definition(&settings);
    pipeline::validate(&definition).map_err(Error::Definition)?;
    let json = definition.to_json_pretty();
    println!("{json}");
    if args.upload {
        let aws = Aws::load(&super::aws_options(&args.aws)).await;
        let key = pipeline::DEFAULT_DEFINITION_KEY;
        source::s3::put(&aws.s3, &settings.source_bucket, key, json.into_bytes()).await?;
        tracing::info!("uploaded to s3://{}/{key}", settings.source_bucket);
    }
    Ok(true)
}
