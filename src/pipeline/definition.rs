//! The definition's model — objects, parameters, values, each field a string, a `{"ref": ...}` or a
//! list of those — and the stockload pipeline built from [`PipelineSettings`].

use std::collections::BTreeMap;

use serde::de::Deserializer;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{PipelineError, PipelineSettings};

/// Id of the secret parameter holding the RDS password (the `*` asks Data Pipeline to encrypt it).
pub(crate) const PASSWORD_PARAMETER: &str = "*myRdsPassword";
/// Id of the parameter holding the RDS endpoint host name.
pub(crate) const ENDPOINT_PARAMETER: &str = "myRdsEndpoint";

/// One field value of a definition object.
///
/// `Invalid` keeps any JSON that Data Pipeline would reject (numbers, booleans,
/// null, other objects, nested lists) so that [`Definition::from_json`] can
/// read it and [`validate`] can report it; it serialises back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldValue {
    /// A plain string.
    String(String),
    /// A reference to another object, `{"ref": "Id"}`.
    Ref(String),
    /// Several values under one key; each item is a `String` or `Ref` when valid.
    List(Vec<FieldValue>),
    /// A JSON value that is none of the above.
    Invalid(Value),
}

impl FieldValue {
    /// A string value.
    pub(crate) fn string(s: impl Into<String>) -> FieldValue {
        FieldValue::String(s.into())
    }

    /// A reference to the object with id `id`.
    pub(crate) fn reference(id: impl Into<String>) -> FieldValue {
        FieldValue::Ref(id.into())
    }

    /// The string, if this is a plain string.
    #[cfg(test)]
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::String(s) => Some(s),
            _ => None,
        }
    }

    fn from_value(v: Value, top_level: bool) -> FieldValue {
        match v {
            Value::String(s) => FieldValue::String(s),
            Value::Object(map) => {
                if map.len() == 1 {
                    if let Some(Value::String(r)) = map.get("ref") {
                        return FieldValue::Ref(r.clone());
                    }
                }
                FieldValue::Invalid(Value::Object(map))
            }
            Value::Array(items) if top_level => FieldValue::List(
                items
                    .into_iter()
                    .map(|item| FieldValue::from_value(item, false))
                    .collect(),
            ),
            other => FieldValue::Invalid(other),
        }
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> FieldValue {
        FieldValue::String(s.to_string())
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> FieldValue {
        FieldValue::String(s)
    }
}

impl Serialize for FieldValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldValue::String(s) => serializer.serialize_str(s),
            FieldValue::Ref(r) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("ref", r)?;
                map.end()
            }
            FieldValue::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            FieldValue::Invalid(v) => v.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<FieldValue, D::Error> {
        Value::deserialize(deserializer).map(|v| FieldValue::from_value(v, true))
    }
}

/// One object of the definition: `id`, `name`, `type` and its other fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PipelineObject {
    /// Object id; empty when the JSON had none (reported by [`validate`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<String>,
    /// Object type, e.g. `SnsAlarm`; `None` for the `Default` object.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub(crate) object_type: Option<String>,
    /// Every other field, by key (keys starting with `*` are secret fields).
    #[serde(flatten)]
    pub(crate) fields: BTreeMap<String, FieldValue>,
}

impl PipelineObject {
    /// An object with id, name (same as the id) and type.
    pub(crate) fn new(id: &str, object_type: Option<&str>) -> PipelineObject {
        PipelineObject {
            id: id.to_string(),
            name: Some(id.to_string()),
            object_type: object_type.map(str::to_string),
            fields: BTreeMap::new(),
        }
    }

    /// Sets a field (builder style).
    pub(crate) fn with(mut self, key: &str, value: impl Into<FieldValue>) -> PipelineObject {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The field `key` of this object itself (no inheritance).
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&FieldValue> {
        self.fields.get(key)
    }
}

/// One parameter: its `id` and attributes such as `type`, `description`, `default`, `watermark`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Parameter {
    /// Parameter id; starts with `my`, or `*my` for a secret (encrypted) value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) id: String,
    /// Every other key of the parameter object.
    #[serde(flatten)]
    pub(crate) attributes: BTreeMap<String, FieldValue>,
}

impl Parameter {
    /// A `String` parameter with a description.
    pub(crate) fn string(id: &str, description: &str) -> Parameter {
        Parameter {
            id: id.to_string(),
            attributes: BTreeMap::new(),
        }
        .with("type", "String")
        .with("description", description)
    }

    /// Sets an attribute (builder style).
    pub(crate) fn with(mut self, key: &str, value: impl Into<FieldValue>) -> Parameter {
        self.attributes.insert(key.to_string(), value.into());
        self
    }
}

/// A whole pipeline definition: objects, parameters and parameter values.
///
/// `values` maps a parameter id to a string or a list of strings; the list
/// case is what `isArray` parameters take.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Definition {
    /// Pipeline objects, in order.
    pub(crate) objects: Vec<PipelineObject>,
    /// Parameter declarations.
    #[serde(default)]
    pub(crate) parameters: Vec<Parameter>,
    /// Parameter values by parameter id.
    #[serde(default)]
    pub(crate) values: BTreeMap<String, FieldValue>,
}

impl Definition {
    /// The definition as pretty JSON, ready for `put-pipeline-definition`.
    pub(crate) fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a definition always serialises")
    }

    /// Reads a definition from JSON; values Data Pipeline would reject are kept for [`validate`].
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(crate) fn from_json(text: &str) -> Result<Definition, PipelineError> {
        serde_json::from_str(text).map_err(PipelineError::DefinitionJson)
    }

    /// The object with id `id`.
    #[cfg(test)]
    pub(crate) fn object(&self, id: &str) -> Option<&PipelineObject> {
        self.objects.iter().find(|o| o.id == id)
    }
}

/// Quotes `s` for a POSIX shell when it holds anything but plainly safe characters.
fn shell_word(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for URL user info and path).
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The ShellCommandActivity command that fetches and runs `stockload load`.
///
/// Choice: the password and the endpoint reach the command as `scriptArgument`s
/// (`$1`, `$2`) rather than as `#{...}` expressions inlined in the command text.
/// The command field is shown as-is in the console and in the Task Runner
/// logs; keeping the secret expression out of it means the command text never
/// carries the password, and the script exports it as `PGPASSWORD` for the
/// loader (which reads PGPASSWORD when the URL carries none).
fn load_command(s: &PipelineSettings) -> String {
    let bucket = &s.source_bucket;
    let binary = shell_word(&format!("s3://{bucket}/{}", s.binary_key));
    let source = shell_word(&format!("s3://{bucket}/{}", s.stocks_prefix));
    let companies = shell_word(&format!("s3://{bucket}/{}", s.companies_key));
    let reports = shell_word(&format!(
        "s3://{bucket}/{}",
        crate::plan::DEFAULT_REPORTS_PREFIX
    ));
    let region = shell_word(&s.region);
    let user = percent_encode(&s.db_user);
    let db = percent_encode(&s.db_name);
    // stockload reads PGPASSWORD when the URL has no password, so the secret never has to be
    // spliced into a URL (or escaped for one).
    format!(
        "export AWS_REGION={region} AWS_DEFAULT_REGION={region} PGPASSWORD=\"$1\" && \
         aws s3 cp {binary} ./stockload && chmod +x ./stockload && \
         DATABASE_URL=\"postgres://{user}@$2:5432/{db}?sslmode=require\" \
         ./stockload load --source {source} --companies {companies} --report {reports}"
    )
}

/// Builds the stockload pipeline definition from `s`: one EC2 instance runs the load, then the
/// follow-up SQL on the RDS database, each step reporting to an SNS alarm.
pub(crate) fn build_definition(s: &PipelineSettings) -> Definition {
    let embedded_password = match (&s.db_password, s.embed_password) {
        (Some(p), true) => Some(p.expose().to_string()),
        _ => None,
    };
    // The password goes in as written only when it is to be embedded; otherwise as the
    // expression of its parameter, which Data Pipeline stores encrypted.
    let password_value = match &embedded_password {
        Some(p) => p.clone(),
        None => format!("#{{{PASSWORD_PARAMETER}}}"),
    };
    Definition {
        objects: vec![
            default_object(s),
            ec2_instance(s),
            load_activity(s, &password_value),
            rds_database(s, &password_value),
            update_changes_activity(s),
            success_alarm(s),
            failure_alarm(s),
        ],
        parameters: parameters(embedded_password.is_none()),
        values: parameter_values(s),
    }
}

/// `Default`: on-demand runs, the log folder and the roles every object inherits.
fn default_object(s: &PipelineSettings) -> PipelineObject {
    PipelineObject::new("Default", None)
        .with("scheduleType", "ondemand")
        .with("failureAndRerunMode", "CASCADE")
        .with("pipelineLogUri", format!("s3://{}/Logs/", s.source_bucket))
        .with("role", s.role.as_str())
        .with("resourceRole", s.resource_role.as_str())
}

/// The EC2 instance the activities run on, in the configured network when one is given.
fn ec2_instance(s: &PipelineSettings) -> PipelineObject {
    let mut ec2 = PipelineObject::new("Ec2Instance", Some("Ec2Resource"))
        .with("imageId", s.ami_id.as_str())
        .with("instanceType", s.instance_type.as_str())
        .with("terminateAfter", s.terminate_after.as_str())
        .with("region", s.region.as_str())
        .with("actionOnTaskFailure", "terminate");
    match s.security_group_ids.as_slice() {
        [] => {}
        [one] => ec2 = ec2.with("securityGroupIds", one.as_str()),
        many => {
            ec2 = ec2.with(
                "securityGroupIds",
                FieldValue::List(
                    many.iter()
                        .map(|g| FieldValue::string(g.as_str()))
                        .collect(),
                ),
            )
        }
    }
    if let Some(subnet) = &s.subnet_id {
        ec2 = ec2.with("subnetId", subnet.as_str());
    }
    if let Some(key) = &s.key_pair {
        ec2 = ec2.with("keyPair", key.as_str());
    }
    ec2
}

/// The shell activity that runs `stockload load`; the password and endpoint reach it as script
/// arguments (see [`load_command`]).
fn load_activity(s: &PipelineSettings, password_value: &str) -> PipelineObject {
    let endpoint_value = format!("#{{{ENDPOINT_PARAMETER}}}");
    PipelineObject::new("LoadActivity", Some("ShellCommandActivity"))
        .with("runsOn", FieldValue::reference("Ec2Instance"))
        .with("command", load_command(s))
        .with(
            "scriptArgument",
            FieldValue::List(vec![
                FieldValue::string(password_value),
                FieldValue::string(endpoint_value.as_str()),
            ]),
        )
        .with("maximumRetries", "1")
        .with("onSuccess", FieldValue::reference("SuccessAlarm"))
        .with("onFail", FieldValue::reference("FailureAlarm"))
}

/// The RDS database the SQL activity connects to.
fn rds_database(s: &PipelineSettings, password_value: &str) -> PipelineObject {
    PipelineObject::new("RdsDatabase", Some("RdsDatabase"))
        .with("rdsInstanceId", s.rds_instance_id.as_str())
        .with("username", s.db_user.as_str())
        .with("*password", password_value)
        .with("databaseName", s.db_name.as_str())
        .with("region", s.region.as_str())
}

/// The SQL activity that runs the follow-up script from the bucket once the load is done.
fn update_changes_activity(s: &PipelineSettings) -> PipelineObject {
    PipelineObject::new("UpdateChangesActivity", Some("SqlActivity"))
        .with("database", FieldValue::reference("RdsDatabase"))
        .with(
            "scriptUri",
            format!("s3://{}/{}", s.source_bucket, s.update_script_key),
        )
        .with("runsOn", FieldValue::reference("Ec2Instance"))
        .with("dependsOn", FieldValue::reference("LoadActivity"))
        .with("onSuccess", FieldValue::reference("SuccessAlarm"))
        .with("onFail", FieldValue::reference("FailureAlarm"))
}

/// The SNS notice of a step that succeeded.
fn success_alarm(s: &PipelineSettings) -> PipelineObject {
    let name = &s.pipeline_name;
    PipelineObject::new("SuccessAlarm", Some("SnsAlarm"))
        .with("topicArn", s.topic_arn.as_str())
        .with("subject", s.success_subject())
        .with(
            "message",
            format!(
                "Pipeline {name}: #{{node.name}} succeeded (started #{{node.@actualStartTime}}, \
                 ended #{{node.@actualEndTime}})."
            ),
        )
        .with("role", s.role.as_str())
}

/// The SNS notice of a step that failed, with its error message.
fn failure_alarm(s: &PipelineSettings) -> PipelineObject {
    let name = &s.pipeline_name;
    PipelineObject::new("FailureAlarm", Some("SnsAlarm"))
        .with("topicArn", s.topic_arn.as_str())
        .with("subject", s.failure_subject())
        .with(
            "message",
            format!(
                "Pipeline {name}: #{{node.name}} failed at #{{node.@actualEndTime}}: \
                 #{{node.errorMessage}}"
            ),
        )
        .with("role", s.role.as_str())
}

/// The parameters: the RDS endpoint, and the password unless it is embedded.
fn parameters(password_parameter: bool) -> Vec<Parameter> {
    let mut parameters = vec![Parameter::string(
        ENDPOINT_PARAMETER,
        "Endpoint host name of the RDS PostgreSQL instance",
    )
    .with("watermark", "mydb.abcdefghijkl.us-east-1.rds.amazonaws.com")];
    if password_parameter {
        parameters.push(
            Parameter::string(PASSWORD_PARAMETER, "Password of the RDS database user")
                .with("watermark", "RDS password (stored encrypted)"),
        );
    }
    parameters
}

/// The parameter values known when the definition is built: the endpoint, when given.
fn parameter_values(s: &PipelineSettings) -> BTreeMap<String, FieldValue> {
    let mut values = BTreeMap::new();
    if let Some(endpoint) = &s.rds_endpoint {
        values.insert(
            ENDPOINT_PARAMETER.to_string(),
            FieldValue::string(endpoint.as_str()),
        );
    }
    values
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixtures::{built, settings, settings_with};
    use crate::pipeline::validate;

    #[test]
    fn built_definition_validates() {
        let def = built();
        assert_eq!(validate(&def), Ok(()));
        let ids: Vec<&str> = def.objects.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "Default",
                "Ec2Instance",
                "LoadActivity",
                "RdsDatabase",
                "UpdateChangesActivity",
                "SuccessAlarm",
                "FailureAlarm"
            ]
        );
        let default = def.object("Default").unwrap();
        assert_eq!(default.object_type, None);
        assert_eq!(default.get("scheduleType"), Some(&"ondemand".into()));
        assert_eq!(
            default.get("pipelineLogUri"),
            Some(&"s3://stock-bucket/Logs/".into())
        );
        let ec2 = def.object("Ec2Instance").unwrap();
        assert_eq!(
            ec2.get("securityGroupIds"),
            Some(&FieldValue::List(vec!["sg-1".into(), "sg-2".into()]))
        );
        assert_eq!(ec2.get("subnetId"), Some(&"subnet-1".into()));
        assert_eq!(ec2.get("keyPair"), None);
        assert_eq!(
            def.object("SuccessAlarm").unwrap().get("subject"),
            Some(&"First_Surname_Pipeline_Success".into())
        );
        assert_eq!(
            def.object("FailureAlarm").unwrap().get("subject"),
            Some(&"First_Surname_Pipeline_Failure".into())
        );
        let rds = def.object("RdsDatabase").unwrap();
        assert_eq!(rds.get("*password"), Some(&"#{*myRdsPassword}".into()));
        let update = def.object("UpdateChangesActivity").unwrap();
        assert_eq!(
            update.get("scriptUri"),
            Some(&"s3://stock-bucket/Scripts/recompute_changes.sql".into())
        );
        assert_eq!(
            update.get("dependsOn"),
            Some(&FieldValue::reference("LoadActivity"))
        );
        let load = def.object("LoadActivity").unwrap();
        let command = load.get("command").unwrap().as_str().unwrap();
        assert!(command.contains(
            "aws s3 cp s3://stock-bucket/Scripts/stockload ./stockload && chmod +x ./stockload"
        ));
        assert!(command.contains(
            "./stockload load --source s3://stock-bucket/Stocks/ --companies s3://stock-bucket/CompanyNames/top_companies.txt --report s3://stock-bucket/Output/reports/"
        ));
        assert!(command.contains("postgres://loader@$2:5432/stocks?sslmode=require"));
        assert!(command.contains("PGPASSWORD=\"$1\""));
        assert!(
            !command.contains("#{"),
            "secrets stay out of the command text"
        );
        assert_eq!(
            load.get("scriptArgument"),
            Some(&FieldValue::List(vec![
                "#{*myRdsPassword}".into(),
                "#{myRdsEndpoint}".into()
            ]))
        );
        let ids: Vec<&str> = def.parameters.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["myRdsEndpoint", "*myRdsPassword"]);
        assert!(def.values.is_empty());
    }

    #[test]
    fn single_security_group_is_a_plain_string_and_endpoint_becomes_a_value() {
        let mut s = settings_with(r#", "key_pair": "my-key", "rds_endpoint": "db.example.com""#);
        s.security_group_ids = vec!["sg-only".into()];
        let def = build_definition(&s);
        let ec2 = def.object("Ec2Instance").unwrap();
        assert_eq!(ec2.get("securityGroupIds"), Some(&"sg-only".into()));
        assert_eq!(ec2.get("keyPair"), Some(&"my-key".into()));
        assert_eq!(
            def.values.get("myRdsEndpoint"),
            Some(&"db.example.com".into())
        );
        assert_eq!(validate(&def), Ok(()));
    }

    #[test]
    fn json_round_trip() {
        let def = built();
        let json = def.to_json_pretty();
        let back = Definition::from_json(&json).unwrap();
        assert_eq!(back, def);
        let raw: Value = serde_json::from_str(&json).unwrap();
        assert!(raw["objects"].is_array());
        assert_eq!(raw["objects"][0]["id"], "Default");
        assert!(raw["objects"][0].get("type").is_none());
        assert_eq!(
            raw["objects"][2]["runsOn"],
            serde_json::json!({"ref": "Ec2Instance"})
        );
        assert_eq!(raw["parameters"][1]["id"], "*myRdsPassword");
        assert_eq!(raw["parameters"][1]["type"], "String");
        assert!(raw["parameters"][1]["watermark"].is_string());
    }

    #[test]
    fn password_only_in_json_when_embedded() {
        let mut s = settings();
        s.db_password = Some("S3cret#Pass?word".into());
        assert!(!format!("{s:?}").contains("S3cret"));
        let json = build_definition(&s).to_json_pretty();
        assert!(
            !json.contains("S3cret"),
            "password leaked without embed_password"
        );

        s.embed_password = true;
        let def = build_definition(&s);
        let json = def.to_json_pretty();
        assert!(json.contains("S3cret#Pass?word"));
        assert!(!json.contains("myRdsPassword"));
        assert_eq!(
            def.object("RdsDatabase").unwrap().get("*password"),
            Some(&"S3cret#Pass?word".into())
        );
        assert_eq!(validate(&def), Ok(()));
    }

    #[test]
    fn from_json_rejects_malformed_input() {
        let err = Definition::from_json("{").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid pipeline definition json:"),
            "{err}"
        );
        let err = Definition::from_json(r#"{"parameters": []}"#).unwrap_err();
        assert!(err.to_string().contains("objects"), "{err}");
        let err = Definition::from_json(r#"{"objects": [], "paramters": []}"#).unwrap_err();
        assert!(err.to_string().contains("paramters"), "{err}");
    }

    #[test]
    fn shell_helpers() {
        assert_eq!(shell_word("s3://b/Stocks/"), "s3://b/Stocks/");
        assert_eq!(shell_word("s3://b/my key"), "'s3://b/my key'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(percent_encode("a b@c"), "a%20b%40c");
    }
}
