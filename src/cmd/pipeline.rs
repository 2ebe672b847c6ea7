//! `stockload pipeline definition`: the AWS Data Pipeline definition for the EC2 load and its
//! SqlActivity follow-up.

use crate::aws::Aws;
use crate::cli::DefinitionArgs;
use crate::error::{Error, Result};
use crate::{pipeline, source, trigger};

/// Builds, validates and prints the definition (and uploads it with `--upload`).
pub(crate) async fn run(args: DefinitionArgs) -> Result<bool> {
    let mut settings = match &args.config {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| Error::Config(format!("{}: not valid JSON: {e}", path.display())))?
        }
        None => serde_json::json!({}),
    };
    let overrides = [
        ("pipeline_name", &args.pipeline_name),
        ("source_bucket", &args.source_bucket),
        ("region", &args.region),
        ("ami_id", &args.ami_id),
        ("instance_type", &args.instance_type),
        ("subnet_id", &args.subnet_id),
        ("rds_instance_id", &args.rds_instance_id),
        ("rds_endpoint", &args.rds_endpoint),
        ("db_name", &args.db_name),
        ("db_user", &args.db_user),
        ("topic_arn", &args.topic_arn),
        ("notify_name", &args.notify_name),
    ];
    let object = settings
        .as_object_mut()
        .ok_or_else(|| Error::Config("the pipeline config must be a JSON object".into()))?;
    for (key, value) in overrides {
        if let Some(value) = value {
            object.insert(key.into(), value.clone().into());
        }
    }
    if !args.security_group_ids.is_empty() {
        object.insert(
            "security_group_ids".into(),
            args.security_group_ids.clone().into(),
        );
    }
    if args.embed_password {
        let password = std::env::var("DB_PASSWORD").map_err(|_| {
            Error::Config(
                "--embed-password takes the password from DB_PASSWORD, which is not set".into(),
            )
        })?;
        object.insert("embed_password".into(), true.into());
        object.insert("db_password".into(), password.into());
    }
    let settings: pipeline::PipelineSettings = serde_json::from_value(settings).map_err(|e| {
        Error::Config(format!(
            "pipeline settings: {e} (give it as a flag or in --config)"
        ))
    })?;
    let definition = pipeline::build_definition(&settings);
    pipeline::validate(&definition).map_err(Error::Definition)?;
    let json = definition.to_json_pretty();
    println!("{json}");
    if args.upload {
        let aws = Aws::load(&super::aws_options(&args.aws)).await;
        let key = trigger::lambda::DEFAULT_DEFINITION_KEY;
        source::s3::put(&aws.s3, &settings.source_bucket, key, json.into_bytes()).await?;
        tracing::info!("uploaded to s3://{}/{key}", settings.source_bucket);
    }
    Ok(true)
}
