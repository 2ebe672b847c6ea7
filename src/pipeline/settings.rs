//! What the definition is built from. [`SettingsArgs`] is the settings as given — the flags of
//! `stockload pipeline definition` and the keys of its `--config` file are one struct of optional
//! fields, so a flag and its key cannot drift apart — and [`PipelineSettings`] the settings as
//! used: flags over the file, field by field, then the defaults; a required one missing is named.

use std::path::Path;

use serde::Deserialize;

use super::PipelineError;
use crate::error::{Error, Result};
use crate::secret::Secret;

/// Where `stockload pipeline definition --upload` puts the definition in the source bucket, and
/// where the Lambda reads it by default.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) const DEFAULT_DEFINITION_KEY: &str = "pipeline_definition.json";

const DEFAULT_REGION: &str = "us-east-1";
const DEFAULT_INSTANCE_TYPE: &str = "t2.micro";
const DEFAULT_TERMINATE_AFTER: &str = "2 Hours";
const DEFAULT_BINARY_KEY: &str = "Scripts/stockload";
const DEFAULT_UPDATE_SCRIPT_KEY: &str = "Scripts/recompute_changes.sql";
use crate::plan::{DEFAULT_COMPANIES_KEY, DEFAULT_DB_NAME, DEFAULT_STOCKS_PREFIX};
const DEFAULT_ROLE: &str = "DataPipelineDefaultRole";
const DEFAULT_RESOURCE_ROLE: &str = "DataPipelineDefaultResourceRole";

/// The pipeline settings as given, from flags or from the `--config` JSON file (its keys are the
/// field names; unknown keys are rejected). Every field is optional here; the `#[arg(skip)]` ones
/// can only be set in the file. See `PipelineSettings` for what each one means.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsArgs {
    /// Pipeline name.
    #[arg(long)]
    pub(crate) pipeline_name: Option<String>,
    /// Source bucket (Scripts/, Stocks/, CompanyNames/, Logs/).
    #[arg(long)]
    pub(crate) source_bucket: Option<String>,
    /// AWS region.
    #[arg(long)]
    pub(crate) region: Option<String>,
    /// AMI of the EC2 instance.
    #[arg(long)]
    pub(crate) ami_id: Option<String>,
    /// EC2 instance type (default t2.micro).
    #[arg(long)]
    pub(crate) instance_type: Option<String>,
    /// Security group id (repeatable).
    #[arg(long = "security-group-id")]
    pub(crate) security_group_ids: Option<Vec<String>>,
    /// Subnet id.
    #[arg(long)]
    pub(crate) subnet_id: Option<String>,
    /// EC2 key pair name (config file only).
    #[arg(skip)]
    pub(crate) key_pair: Option<String>,
    /// How long the EC2 instance may live (config file only).
    #[arg(skip)]
    pub(crate) terminate_after: Option<String>,
    /// RDS instance identifier.
    #[arg(long)]
    pub(crate) rds_instance_id: Option<String>,
    /// RDS endpoint host name (value of the myRdsEndpoint parameter).
    #[arg(long)]
    pub(crate) rds_endpoint: Option<String>,
    /// Database name.
    #[arg(long)]
    pub(crate) db_name: Option<String>,
    /// Database user.
    #[arg(long)]
    pub(crate) db_user: Option<String>,
    /// Database password (config file; with `--embed-password`, DB_PASSWORD).
    #[arg(skip)]
    pub(crate) db_password: Option<Secret>,
    /// SNS topic ARN for the success/failure alarms.
    #[arg(long)]
    pub(crate) topic_arn: Option<String>,
    /// Subject prefix (First_Surname).
    #[arg(long)]
    pub(crate) notify_name: Option<String>,
    /// Write the password into the definition in plain text (from DB_PASSWORD); otherwise it is
    /// the secret parameter *myRdsPassword, given at activation.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub(crate) embed_password: Option<bool>,
    /// S3 key of the stockload binary (config file only).
    #[arg(skip)]
    pub(crate) binary_key: Option<String>,
    /// S3 key of the recompute script (config file only).
    #[arg(skip)]
    pub(crate) update_script_key: Option<String>,
    /// S3 prefix of the stock files (config file only).
    #[arg(skip)]
    pub(crate) stocks_prefix: Option<String>,
    /// S3 key of the company list (config file only).
    #[arg(skip)]
    pub(crate) companies_key: Option<String>,
    /// IAM role of the pipeline (config file only).
    #[arg(skip)]
    pub(crate) role: Option<String>,
    /// IAM role of the EC2 instance (config file only).
    #[arg(skip)]
    pub(crate) resource_role: Option<String>,
}

impl SettingsArgs {
    /// Reads settings from a JSON object (unknown keys are rejected).
    pub(crate) fn from_json(text: &str) -> Result<SettingsArgs, PipelineError> {
        // Through a map first: serde would also take a struct from a list, by position.
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(PipelineError::SettingsJson)?;
        serde_json::from_value(object.into()).map_err(PipelineError::SettingsJson)
    }

    /// Each setting given here, else the one in `file`: flags win over the config file.
    fn or(self, file: SettingsArgs) -> SettingsArgs {
        SettingsArgs {
            pipeline_name: self.pipeline_name.or(file.pipeline_name),
            source_bucket: self.source_bucket.or(file.source_bucket),
            region: self.region.or(file.region),
            ami_id: self.ami_id.or(file.ami_id),
            instance_type: self.instance_type.or(file.instance_type),
            security_group_ids: self.security_group_ids.or(file.security_group_ids),
            subnet_id: self.subnet_id.or(file.subnet_id),
            key_pair: self.key_pair.or(file.key_pair),
            terminate_after: self.terminate_after.or(file.terminate_after),
            rds_instance_id: self.rds_instance_id.or(file.rds_instance_id),
            rds_endpoint: self.rds_endpoint.or(file.rds_endpoint),
            db_name: self.db_name.or(file.db_name),
            db_user: self.db_user.or(file.db_user),
            db_password: self.db_password.or(file.db_password),
            topic_arn: self.topic_arn.or(file.topic_arn),
            notify_name: self.notify_name.or(file.notify_name),
            embed_password: self.embed_password.or(file.embed_password),
            binary_key: self.binary_key.or(file.binary_key),
            update_script_key: self.update_script_key.or(file.update_script_key),
            stocks_prefix: self.stocks_prefix.or(file.stocks_prefix),
            companies_key: self.companies_key.or(file.companies_key),
            role: self.role.or(file.role),
            resource_role: self.resource_role.or(file.resource_role),
        }
    }

    /// The settings with defaults filled in; the first required one missing is named.
    fn resolve(self) -> Result<PipelineSettings, PipelineError> {
        let required = |value: Option<String>, key: &'static str| {
            value.ok_or(PipelineError::MissingSetting(key))
        };
        let or_default =
            |value: Option<String>, default: &str| value.unwrap_or_else(|| default.to_string());
        // In the order of PipelineSettings: the first missing one is the one reported.
        Ok(PipelineSettings {
            pipeline_name: required(self.pipeline_name, "pipeline_name")?,
            source_bucket: required(self.source_bucket, "source_bucket")?,
            region: or_default(self.region, DEFAULT_REGION),
            ami_id: required(self.ami_id, "ami_id")?,
            instance_type: or_default(self.instance_type, DEFAULT_INSTANCE_TYPE),
            security_group_ids: self.security_group_ids.unwrap_or_default(),
            subnet_id: self.subnet_id,
            key_pair: self.key_pair,
            terminate_after: or_default(self.terminate_after, DEFAULT_TERMINATE_AFTER),
            rds_instance_id: required(self.rds_instance_id, "rds_instance_id")?,
            rds_endpoint: self.rds_endpoint,
            db_name: or_default(self.db_name, DEFAULT_DB_NAME),
            db_user: required(self.db_user, "db_user")?,
            db_password: self.db_password,
            embed_password: self.embed_password.unwrap_or(false),
            topic_arn: required(self.topic_arn, "topic_arn")?,
            notify_name: required(self.notify_name, "notify_name")?,
            binary_key: or_default(self.binary_key, DEFAULT_BINARY_KEY),
            update_script_key: or_default(self.update_script_key, DEFAULT_UPDATE_SCRIPT_KEY),
            stocks_prefix: or_default(self.stocks_prefix, DEFAULT_STOCKS_PREFIX),
            companies_key: or_default(self.companies_key, DEFAULT_COMPANIES_KEY),
            role: or_default(self.role, DEFAULT_ROLE),
            resource_role: or_default(self.resource_role, DEFAULT_RESOURCE_ROLE),
        })
    }
}

/// What the pipeline definition is built from.
#[derive(Debug, Clone)]
pub(crate) struct PipelineSettings {
    /// Name of the pipeline (used in the notification messages).
    pub(crate) pipeline_name: String,
    /// S3 bucket holding the binary, the SQL script, the stock files and the logs.
    pub(crate) source_bucket: String,
    /// AWS region of the EC2 instance and the RDS database.
    pub(crate) region: String,
    /// AMI the EC2 instance boots from.
    pub(crate) ami_id: String,
    /// EC2 instance type.
    pub(crate) instance_type: String,
    /// Security group ids for the EC2 instance (must allow reaching RDS on 5432).
    pub(crate) security_group_ids: Vec<String>,
    /// VPC subnet for the EC2 instance, if any.
    pub(crate) subnet_id: Option<String>,
    /// EC2 key pair name, if SSH access is wanted.
    pub(crate) key_pair: Option<String>,
    /// How long the EC2 instance may live, in Data Pipeline period form.
    pub(crate) terminate_after: String,
    /// RDS instance identifier (not a host name).
    pub(crate) rds_instance_id: String,
    /// RDS endpoint host name; when set it becomes the value of `myRdsEndpoint`.
    pub(crate) rds_endpoint: Option<String>,
    /// Database name.
    pub(crate) db_name: String,
    /// Database user.
    pub(crate) db_user: String,
    /// Database password; only used when `embed_password` is true.
    pub(crate) db_password: Option<Secret>,
    /// Write `db_password` into the definition instead of the `*myRdsPassword` parameter.
    pub(crate) embed_password: bool,
    /// SNS topic the success and failure notifications go to.
    pub(crate) topic_arn: String,
    /// Prefix of the notification subjects, e.g. `First_Surname`.
    pub(crate) notify_name: String,
    /// S3 key of the stockload binary.
    pub(crate) binary_key: String,
    /// S3 key of the SQL script recomputing the changes.
    pub(crate) update_script_key: String,
    /// S3 prefix of the stock CSV files.
    pub(crate) stocks_prefix: String,
    /// S3 key of the company list.
    pub(crate) companies_key: String,
    /// IAM role of the pipeline.
    pub(crate) role: String,
    /// IAM role (instance profile) of the EC2 instance.
    pub(crate) resource_role: String,
}

impl PipelineSettings {
    /// The settings of `stockload pipeline definition`: each flag given, else the key of the
    /// `--config` file, else the default. `--embed-password` takes the password from DB_PASSWORD.
    pub(crate) fn from_args(
        flags: SettingsArgs,
        config: Option<&Path>,
    ) -> Result<PipelineSettings> {
        let file = match config {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| Error::io("cannot read", path, e))?;
                SettingsArgs::from_json(&text).map_err(|e| e.in_file(path.display()))?
            }
            None => SettingsArgs::default(),
        };
        Self::merge(flags, file, || std::env::var("DB_PASSWORD").ok())
    }

    /// [`PipelineSettings::from_args`] with the file read and DB_PASSWORD behind `db_password`.
    pub(super) fn merge(
        mut flags: SettingsArgs,
        file: SettingsArgs,
        db_password: impl FnOnce() -> Option<String>,
    ) -> Result<PipelineSettings> {
        if flags.embed_password == Some(true) {
            let password = db_password().ok_or_else(|| {
                Error::Config(
                    "--embed-password takes the password from DB_PASSWORD, which is not set".into(),
                )
            })?;
            flags.db_password = Some(Secret::new(password));
        }
        flags.or(file).resolve().map_err(|e| {
            Error::Config(format!(
                "pipeline settings: {e} (give it as a flag or in --config)"
            ))
        })
    }

    /// Subject of the success notification, `NAME_Pipeline_Success`.
    pub(crate) fn success_subject(&self) -> String {
        format!("{}_Pipeline_Success", self.notify_name)
    }

    /// Subject of the failure notification, `NAME_Pipeline_Failure`.
    pub(crate) fn failure_subject(&self) -> String {
        format!("{}_Pipeline_Failure", self.notify_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixtures::{settings, settings_json};

    #[test]
    fn settings_defaults_and_unknown_keys() {
        let s = settings();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.instance_type, "t2.micro");
        assert_eq!(s.terminate_after, "2 Hours");
        assert_eq!(s.db_name, "stocks");
        assert_eq!(s.binary_key, "Scripts/stockload");
        assert_eq!(s.update_script_key, "Scripts/recompute_changes.sql");
        assert_eq!(s.stocks_prefix, "Stocks/");
        assert_eq!(s.companies_key, "CompanyNames/top_companies.txt");
        assert_eq!(s.role, "DataPipelineDefaultRole");
        assert_eq!(s.resource_role, "DataPipelineDefaultResourceRole");
        assert!(!s.embed_password);
        let err = SettingsArgs::from_json(&settings_json(r#", "typo_key": 1"#)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid pipeline settings json:"),
            "{err}"
        );
        assert!(err.to_string().contains("typo_key"), "{err}");
        let err = SettingsArgs::from_json("[1]").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid type: sequence, expected a map"),
            "{err}"
        );
    }

    fn file() -> SettingsArgs {
        SettingsArgs::from_json(&settings_json(
            r#", "instance_type": "t3.large", "role": "FileRole""#,
        ))
        .unwrap()
    }

    #[test]
    fn flags_win_over_the_file_field_by_field() {
        let flags = SettingsArgs {
            instance_type: Some("t3.small".into()),
            security_group_ids: Some(vec!["sg-flag".into()]),
            ..SettingsArgs::default()
        };
        let s = PipelineSettings::merge(flags, file(), || None).unwrap();
        assert_eq!(s.instance_type, "t3.small", "the flag wins");
        assert_eq!(
            s.security_group_ids,
            ["sg-flag"],
            "the flag's list replaces the file's"
        );
        assert_eq!(s.role, "FileRole", "a setting only in the file is kept");
        assert_eq!(s.pipeline_name, "stockload", "from the file");
        assert_eq!(s.db_name, "stocks", "neither: the default");

        let s = PipelineSettings::merge(SettingsArgs::default(), file(), || None).unwrap();
        assert_eq!(s.instance_type, "t3.large");
        assert_eq!(s.security_group_ids, ["sg-1", "sg-2"]);
    }

    #[test]
    fn a_missing_required_setting_is_named() {
        let flags = SettingsArgs {
            source_bucket: Some("b".into()),
            ..SettingsArgs::default()
        };
        let err = PipelineSettings::merge(flags, SettingsArgs::default(), || None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "pipeline settings: missing field `pipeline_name` (give it as a flag or in --config)"
        );
        let mut file = file();
        file.topic_arn = None;
        let err = PipelineSettings::merge(SettingsArgs::default(), file, || None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `topic_arn`"), "{err}");
    }

    #[test]
    fn embed_password_flag_reads_db_password_and_never_shows_it() {
        let flags = || SettingsArgs {
            embed_password: Some(true),
            ..SettingsArgs::default()
        };
        let err = PipelineSettings::merge(flags(), file(), || None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("DB_PASSWORD, which is not set"), "{err}");

        let s = PipelineSettings::merge(flags(), file(), || Some("Env#Secret".into())).unwrap();
        assert!(s.embed_password);
        assert_eq!(
            s.db_password.as_ref().map(Secret::expose),
            Some("Env#Secret")
        );
        assert!(!format!("{s:?}").contains("Env#Secret"));
        assert!(!format!("{:?}", flags().or(file())).contains("Env#Secret"));

        // Without the flag, DB_PASSWORD is not read; the file may set both keys itself.
        let file = SettingsArgs::from_json(&settings_json(
            r#", "embed_password": true, "db_password": "File#Secret""#,
        ))
        .unwrap();
        let s = PipelineSettings::merge(SettingsArgs::default(), file, || {
            panic!("DB_PASSWORD read without --embed-password")
        })
        .unwrap();
        assert!(s.embed_password);
        assert_eq!(
            s.db_password.as_ref().map(Secret::expose),
            Some("File#Secret")
        );
    }

    #[test]
    fn the_flags_parse_as_before() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            settings: SettingsArgs,
        }
        let none = Flags::try_parse_from(["x"]).unwrap().settings;
        assert_eq!(none.embed_password, None);
        assert_eq!(none.security_group_ids, None);
        let given = Flags::try_parse_from([
            "x",
            "--embed-password",
            "--security-group-id",
            "sg-a",
            "--security-group-id",
            "sg-b",
            "--db-name",
            "d",
        ])
        .unwrap()
        .settings;
        assert_eq!(given.embed_password, Some(true));
        assert_eq!(
            given.security_group_ids,
            Some(vec!["sg-a".to_string(), "sg-b".to_string()])
        );
        assert_eq!(given.db_name.as_deref(), Some("d"));
        assert!(Flags::try_parse_from(["x", "--embed-password=false"]).is_err());
        assert!(
            Flags::try_parse_from(["x", "--role", "r"]).is_err(),
            "file-only key"
        );
    }
}
