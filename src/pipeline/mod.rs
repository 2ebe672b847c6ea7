//! AWS Data Pipeline: the definition of the stockload run and the calls that start it.
//!
//! - `settings`: what the definition is built from — flags and `--config` keys through one
//!   struct of optional fields, flags over the file, then the defaults.
//! - `definition`: the definition's model and the stockload pipeline built from the settings.
//! - `validate`: what AWS would reject, found before anything is sent.
//! - `api`: the definition in PutPipelineDefinition's form.
//! - [`aws`]: the Data Pipeline calls that find, create, define, activate and delete pipelines,
//!   and `aws::start`, the idempotent start the Lambda's pipeline mode uses.
//!
//! The JSON is the format `aws datapipeline put-pipeline-definition
//! --pipeline-definition file://x.json` takes:
//! `{"objects": [...], "parameters": [...], "values": {...}}`, where every
//! object field is a string, a `{"ref": "OtherId"}` or a list of those.
//!
//! The pipeline (on demand) is:
//!
//! ```text
//! Ec2Instance (Ec2Resource)
//!   └─ LoadActivity (ShellCommandActivity): fetch the stockload binary from S3, run `stockload load`
//!        └─ UpdateChangesActivity (SqlActivity on RdsDatabase): run the recompute script from S3
//! SuccessAlarm / FailureAlarm (SnsAlarm): onSuccess / onFail of both activities
//! ```
//!
//! The RDS password never appears in the definition unless `embed_password` is set: the
//! definition declares the secret parameter `*myRdsPassword` (the leading `*` makes Data Pipeline
//! keep the value encrypted) and refers to it as `#{*myRdsPassword}`. The RDS host comes from the
//! parameter `myRdsEndpoint`, since `rdsInstanceId` is not a host name.

#[cfg(feature = "aws")]
mod api;
#[cfg(feature = "aws")]
pub mod aws;
mod definition;
mod settings;
mod validate;

#[cfg(feature = "aws")]
pub(crate) use api::to_api_objects;
#[cfg_attr(not(feature = "aws"), allow(unused_imports))]
pub(crate) use definition::{
    build_definition, Definition, FieldValue, PipelineObject, ENDPOINT_PARAMETER,
    PASSWORD_PARAMETER,
};
pub use settings::SettingsArgs;
#[cfg_attr(not(feature = "aws"), allow(unused_imports))]
pub(crate) use settings::{PipelineSettings, DEFAULT_DEFINITION_KEY};
pub(crate) use validate::validate;

/// Errors reading settings or a definition.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PipelineError {
    /// The pipeline definition is not valid JSON or not of the definition's shape.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    #[error("invalid pipeline definition json: {0}")]
    DefinitionJson(#[source] serde_json::Error),
    /// The pipeline settings are not valid JSON or not of the settings' shape.
    #[error("invalid pipeline settings json: {0}")]
    SettingsJson(#[source] serde_json::Error),
    /// A required setting is neither a flag nor in the config file.
    #[error("missing field `{0}`")]
    MissingSetting(&'static str),
}

impl PipelineError {
    /// This error as stockload's, for the file `file` it came from (the JSON errors keep
    /// serde_json's error as their source).
    pub(crate) fn in_file(self, file: impl std::fmt::Display) -> crate::error::Error {
        use crate::error::Error;
        let json = |what, source| Error::Json {
            file: file.to_string(),
            what,
            source,
        };
        match self {
            PipelineError::DefinitionJson(source) => json("pipeline definition", source),
            PipelineError::SettingsJson(source) => json("pipeline settings", source),
            other @ PipelineError::MissingSetting(_) => Error::Config(format!("{file}: {other}")),
        }
    }
}

/// Settings and definitions the unit tests of every part share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::settings::SettingsArgs;
    use super::*;

    pub(crate) fn settings_json(extra: &str) -> String {
        format!(
            r#"{{
                "pipeline_name": "stockload",
                "source_bucket": "stock-bucket",
                "ami_id": "ami-0123456789abcdef0",
                "security_group_ids": ["sg-1", "sg-2"],
                "subnet_id": "subnet-1",
                "rds_instance_id": "stocks-db",
                "db_user": "loader",
                "topic_arn": "arn:aws:sns:us-east-1:123456789012:stock-topic",
                "notify_name": "First_Surname"{extra}
            }}"#
        )
    }

    /// The settings of `settings_json(extra)`, as `--config` would give them.
    pub(crate) fn settings_with(extra: &str) -> PipelineSettings {
        let file = SettingsArgs::from_json(&settings_json(extra)).unwrap();
        PipelineSettings::merge(SettingsArgs::default(), file, || None).unwrap()
    }

    pub(crate) fn settings() -> PipelineSettings {
        settings_with("")
    }

    pub(crate) fn built() -> Definition {
        build_definition(&settings())
    }

    pub(crate) fn obj_mut<'a>(def: &'a mut Definition, id: &str) -> &'a mut PipelineObject {
        def.objects.iter_mut().find(|o| o.id == id).unwrap()
    }

    pub(crate) fn assert_error(def: &Definition, needle: &str) {
        let errors = validate(def).expect_err("definition should fail validation");
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "no error containing {needle:?} in {errors:#?}"
        );
    }
}
