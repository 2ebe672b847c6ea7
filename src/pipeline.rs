//! AWS Data Pipeline definition for the stockload run: typed settings, the definition JSON, its validation and its PutPipelineDefinition API form.
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
//! The RDS password never appears in the definition unless
//! [`PipelineSettings::embed_password`] is set: the definition declares the
//! secret parameter `*myRdsPassword` (the leading `*` makes Data Pipeline keep
//! the value encrypted) and refers to it as `#{*myRdsPassword}`. The RDS host
//! comes from the parameter `myRdsEndpoint`, since `rdsInstanceId` is not a
//! host name.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use serde::de::Deserializer;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Id of the secret parameter holding the RDS password (the `*` asks Data Pipeline to encrypt it).
pub const PASSWORD_PARAMETER: &str = "*myRdsPassword";
/// Id of the parameter holding the RDS endpoint host name.
pub const ENDPOINT_PARAMETER: &str = "myRdsEndpoint";

/// Object types Data Pipeline knows (plus the type-less `Default` object).
pub const KNOWN_TYPES: &[&str] = &[
    "Default",
    // activities
    "CopyActivity",
    "EmrActivity",
    "HadoopActivity",
    "HiveActivity",
    "HiveCopyActivity",
    "PigActivity",
    "RedshiftCopyActivity",
    "ShellCommandActivity",
    "SqlActivity",
    // data nodes
    "DynamoDBDataNode",
    "MySqlDataNode",
    "RedshiftDataNode",
    "S3DataNode",
    "SqlDataNode",
    // resources
    "Ec2Resource",
    "EmrCluster",
    "HttpProxy",
    // preconditions
    "DynamoDBDataExists",
    "DynamoDBTableExists",
    "Exists",
    "S3KeyExists",
    "S3PrefixNotEmpty",
    "ShellCommandPrecondition",
    // databases
    "JdbcDatabase",
    "RdsDatabase",
    "RedshiftDatabase",
    // data formats
    "CSV",
    "Custom",
    "DynamoDBDataFormat",
    "DynamoDBExportDataFormat",
    "RegEx",
    "TSV",
    // actions
    "SnsAlarm",
    "Terminate",
    // schedule and utilities
    "Schedule",
    "ShellScriptConfig",
    "EmrConfiguration",
    "Property",
];

/// Attribute keys a parameter object may carry besides `id`.
const PARAMETER_ATTRIBUTES: &[&str] = &[
    "type",
    "description",
    "default",
    "watermark",
    "optional",
    "allowedValues",
    "isArray",
    "helpText",
];

/// Parameter types Data Pipeline accepts.
const PARAMETER_TYPES: &[&str] = &["String", "Integer", "Double", "AWS::S3::ObjectKey"];

/// Data Pipeline's limit on parameters in one definition.
const MAX_PARAMETERS: usize = 50;

/// Fields whose value must be a `{"ref": ...}` (or a list of them).
const REF_FIELDS: &[&str] = &[
    "runsOn",
    "dependsOn",
    "onSuccess",
    "onFail",
    "onLateAction",
    "database",
    "schedule",
    "parent",
    "input",
    "output",
    "precondition",
    "dataFormat",
    "httpProxy",
];

/// Errors reading settings or a definition.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The pipeline definition is not valid JSON or not of the definition's shape.
    #[error("invalid pipeline definition json: {0}")]
    DefinitionJson(#[source] serde_json::Error),
    /// The pipeline settings are not valid JSON or not of the settings' shape.
    #[error("invalid pipeline settings json: {0}")]
    SettingsJson(#[source] serde_json::Error),
}

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

fn default_region() -> String {
    "us-east-1".into()
}
fn default_instance_type() -> String {
    "t2.micro".into()
}
fn default_terminate_after() -> String {
    "2 Hours".into()
}
fn default_db_name() -> String {
    "stocks".into()
}
fn default_binary_key() -> String {
    "Scripts/stockload".into()
}
fn default_update_script_key() -> String {
    "Scripts/recompute_changes.sql".into()
}
fn default_stocks_prefix() -> String {
    "Stocks/".into()
}
fn default_companies_key() -> String {
    "CompanyNames/top_companies.txt".into()
}
fn default_role() -> String {
    "DataPipelineDefaultRole".into()
}
fn default_resource_role() -> String {
    "DataPipelineDefaultResourceRole".into()
}

/// What the pipeline definition is built from; can be read from a JSON config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    /// Name of the pipeline (used in the notification messages).
    pub pipeline_name: String,
    /// S3 bucket holding the binary, the SQL script, the stock files and the logs.
    pub source_bucket: String,
    /// AWS region of the EC2 instance and the RDS database.
    #[serde(default = "default_region")]
    pub region: String,
    /// AMI the EC2 instance boots from.
    pub ami_id: String,
    /// EC2 instance type.
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    /// Security group ids for the EC2 instance (must allow reaching RDS on 5432).
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// VPC subnet for the EC2 instance, if any.
    #[serde(default)]
    pub subnet_id: Option<String>,
    /// EC2 key pair name, if SSH access is wanted.
    #[serde(default)]
    pub key_pair: Option<String>,
    /// How long the EC2 instance may live, in Data Pipeline period form.
    #[serde(default = "default_terminate_after")]
    pub terminate_after: String,
    /// RDS instance identifier (not a host name).
    pub rds_instance_id: String,
    /// RDS endpoint host name; when set it becomes the value of `myRdsEndpoint`.
    #[serde(default)]
    pub rds_endpoint: Option<String>,
    /// Database name.
    #[serde(default = "default_db_name")]
    pub db_name: String,
    /// Database user.
    pub db_user: String,
    /// Database password; only used when `embed_password` is true.
    #[serde(default)]
    pub db_password: Option<crate::secret::Secret>,
    /// Write `db_password` into the definition instead of the `*myRdsPassword` parameter.
    #[serde(default)]
    pub embed_password: bool,
    /// SNS topic the success and failure notifications go to.
    pub topic_arn: String,
    /// Prefix of the notification subjects, e.g. `First_Surname`.
    pub notify_name: String,
    /// S3 key of the stockload binary.
    #[serde(default = "default_binary_key")]
    pub binary_key: String,
    /// S3 key of the SQL script recomputing the changes.
    #[serde(default = "default_update_script_key")]
    pub update_script_key: String,
    /// S3 prefix of the stock CSV files.
    #[serde(default = "default_stocks_prefix")]
    pub stocks_prefix: String,
    /// S3 key of the company list.
    #[serde(default = "default_companies_key")]
    pub companies_key: String,
    /// IAM role of the pipeline.
    #[serde(default = "default_role")]
    pub role: String,
    /// IAM role (instance profile) of the EC2 instance.
    #[serde(default = "default_resource_role")]
    pub resource_role: String,
}

impl PipelineSettings {
    /// Reads settings from JSON (unknown keys are rejected, omitted keys take their defaults).
    pub fn from_json(text: &str) -> Result<PipelineSettings, PipelineError> {
        serde_json::from_str(text).map_err(PipelineError::SettingsJson)
    }

    /// Subject of the success notification, `NAME_Pipeline_Success`.
    pub fn success_subject(&self) -> String {
        format!("{}_Pipeline_Success", self.notify_name)
    }

    /// Subject of the failure notification, `NAME_Pipeline_Failure`.
    pub fn failure_subject(&self) -> String {
        format!("{}_Pipeline_Failure", self.notify_name)
    }
}

// ---------------------------------------------------------------------------
// Definition model
// ---------------------------------------------------------------------------

/// One field value of a definition object.
///
/// `Invalid` keeps any JSON that Data Pipeline would reject (numbers, booleans,
/// null, other objects, nested lists) so that [`Definition::from_json`] can
/// read it and [`validate`] can report it; it serialises back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
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
    pub fn string(s: impl Into<String>) -> FieldValue {
        FieldValue::String(s.into())
    }

    /// A reference to the object with id `id`.
    pub fn reference(id: impl Into<String>) -> FieldValue {
        FieldValue::Ref(id.into())
    }

    /// The string, if this is a plain string.
    pub fn as_str(&self) -> Option<&str> {
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
pub struct PipelineObject {
    /// Object id; empty when the JSON had none (reported by [`validate`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Object type, e.g. `SnsAlarm`; `None` for the `Default` object.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub object_type: Option<String>,
    /// Every other field, by key (keys starting with `*` are secret fields).
    #[serde(flatten)]
    pub fields: BTreeMap<String, FieldValue>,
}

impl PipelineObject {
    /// An object with id, name (same as the id) and type.
    pub fn new(id: &str, object_type: Option<&str>) -> PipelineObject {
        PipelineObject {
            id: id.to_string(),
            name: Some(id.to_string()),
            object_type: object_type.map(str::to_string),
            fields: BTreeMap::new(),
        }
    }

    /// Sets a field (builder style).
    pub fn with(mut self, key: &str, value: impl Into<FieldValue>) -> PipelineObject {
        self.fields.insert(key.to_string(), value.into());
        self
    }

    /// The field `key` of this object itself (no inheritance).
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.fields.get(key)
    }
}

/// One parameter: its `id` and attributes such as `type`, `description`, `default`, `watermark`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parameter {
    /// Parameter id; starts with `my`, or `*my` for a secret (encrypted) value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Every other key of the parameter object.
    #[serde(flatten)]
    pub attributes: BTreeMap<String, FieldValue>,
}

impl Parameter {
    /// A `String` parameter with a description.
    pub fn string(id: &str, description: &str) -> Parameter {
        Parameter {
            id: id.to_string(),
            attributes: BTreeMap::new(),
        }
        .with("type", "String")
        .with("description", description)
    }

    /// Sets an attribute (builder style).
    pub fn with(mut self, key: &str, value: impl Into<FieldValue>) -> Parameter {
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
pub struct Definition {
    /// Pipeline objects, in order.
    pub objects: Vec<PipelineObject>,
    /// Parameter declarations.
    #[serde(default)]
    pub parameters: Vec<Parameter>,
    /// Parameter values by parameter id.
    #[serde(default)]
    pub values: BTreeMap<String, FieldValue>,
}

impl Definition {
    /// The definition as pretty JSON, ready for `put-pipeline-definition`.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a definition always serialises")
    }

    /// Reads a definition from JSON; values Data Pipeline would reject are kept for [`validate`].
    pub fn from_json(text: &str) -> Result<Definition, PipelineError> {
        serde_json::from_str(text).map_err(PipelineError::DefinitionJson)
    }

    /// The object with id `id`.
    pub fn object(&self, id: &str) -> Option<&PipelineObject> {
        self.objects.iter().find(|o| o.id == id)
    }
}

// ---------------------------------------------------------------------------
// Building the stockload definition
// ---------------------------------------------------------------------------

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
    let region = shell_word(&s.region);
    let user = percent_encode(&s.db_user);
    let db = percent_encode(&s.db_name);
    // stockload reads PGPASSWORD when the URL has no password, so the secret never has to be
    // spliced into a URL (or escaped for one).
    format!(
        "export AWS_REGION={region} AWS_DEFAULT_REGION={region} PGPASSWORD=\"$1\" && \
         aws s3 cp {binary} ./stockload && chmod +x ./stockload && \
         DATABASE_URL=\"postgres://{user}@$2:5432/{db}?sslmode=require\" \
         ./stockload load --source {source} --companies {companies}"
    )
}

/// Builds the stockload pipeline definition from `s`.
pub fn build_definition(s: &PipelineSettings) -> Definition {
    let bucket = &s.source_bucket;
    let embedded_password = match (&s.db_password, s.embed_password) {
        (Some(p), true) => Some(p.expose().to_string()),
        _ => None,
    };
    let password_value = match &embedded_password {
        Some(p) => p.clone(),
        None => format!("#{{{PASSWORD_PARAMETER}}}"),
    };
    let endpoint_value = format!("#{{{ENDPOINT_PARAMETER}}}");

    let default = PipelineObject::new("Default", None)
        .with("scheduleType", "ondemand")
        .with("failureAndRerunMode", "CASCADE")
        .with("pipelineLogUri", format!("s3://{bucket}/Logs/"))
        .with("role", s.role.as_str())
        .with("resourceRole", s.resource_role.as_str());

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

    let load = PipelineObject::new("LoadActivity", Some("ShellCommandActivity"))
        .with("runsOn", FieldValue::reference("Ec2Instance"))
        .with("command", load_command(s))
        .with(
            "scriptArgument",
            FieldValue::List(vec![
                FieldValue::string(password_value.as_str()),
                FieldValue::string(endpoint_value.as_str()),
            ]),
        )
        .with("maximumRetries", "1")
        .with("onSuccess", FieldValue::reference("SuccessAlarm"))
        .with("onFail", FieldValue::reference("FailureAlarm"));

    let rds = PipelineObject::new("RdsDatabase", Some("RdsDatabase"))
        .with("rdsInstanceId", s.rds_instance_id.as_str())
        .with("username", s.db_user.as_str())
        .with("*password", password_value.as_str())
        .with("databaseName", s.db_name.as_str())
        .with("region", s.region.as_str());

    let update = PipelineObject::new("UpdateChangesActivity", Some("SqlActivity"))
        .with("database", FieldValue::reference("RdsDatabase"))
        .with(
            "scriptUri",
            format!("s3://{bucket}/{}", s.update_script_key),
        )
        .with("runsOn", FieldValue::reference("Ec2Instance"))
        .with("dependsOn", FieldValue::reference("LoadActivity"))
        .with("onSuccess", FieldValue::reference("SuccessAlarm"))
        .with("onFail", FieldValue::reference("FailureAlarm"));

    let name = &s.pipeline_name;
    let success = PipelineObject::new("SuccessAlarm", Some("SnsAlarm"))
        .with("topicArn", s.topic_arn.as_str())
        .with("subject", s.success_subject())
        .with(
            "message",
            format!(
                "Pipeline {name}: #{{node.name}} succeeded (started #{{node.@actualStartTime}}, \
                 ended #{{node.@actualEndTime}})."
            ),
        )
        .with("role", s.role.as_str());
    let failure = PipelineObject::new("FailureAlarm", Some("SnsAlarm"))
        .with("topicArn", s.topic_arn.as_str())
        .with("subject", s.failure_subject())
        .with(
            "message",
            format!(
                "Pipeline {name}: #{{node.name}} failed at #{{node.@actualEndTime}}: \
                 #{{node.errorMessage}}"
            ),
        )
        .with("role", s.role.as_str());

    let mut parameters = vec![Parameter::string(
        ENDPOINT_PARAMETER,
        "Endpoint host name of the RDS PostgreSQL instance",
    )
    .with("watermark", "mydb.abcdefghijkl.us-east-1.rds.amazonaws.com")];
    if embedded_password.is_none() {
        parameters.push(
            Parameter::string(PASSWORD_PARAMETER, "Password of the RDS database user")
                .with("watermark", "RDS password (stored encrypted)"),
        );
    }

    let mut values = BTreeMap::new();
    if let Some(endpoint) = &s.rds_endpoint {
        values.insert(
            ENDPOINT_PARAMETER.to_string(),
            FieldValue::string(endpoint.as_str()),
        );
    }

    Definition {
        objects: vec![default, ec2, load, rds, update, success, failure],
        parameters,
        values,
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

/// Describes a JSON value that is not allowed as a field value.
fn describe_invalid(v: &Value) -> &'static str {
    match v {
        Value::Null => "a null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a nested list",
        Value::Object(m) if m.contains_key("ref") => "a malformed {\"ref\": ...}",
        Value::Object(_) => "an object",
    }
}

/// How an object is named in messages: `object "Id" (Type)`.
fn label(o: &PipelineObject, index: usize) -> String {
    let id = if o.id.is_empty() {
        format!("#{}", index + 1)
    } else {
        format!("\"{}\"", o.id)
    };
    match &o.object_type {
        Some(t) => format!("object {id} ({t})"),
        None => format!("object {id}"),
    }
}

/// Parameter-like names (`my...` / `*my...`) used inside `#{...}` expressions of `text`.
///
/// Names after a `.` (`node.myField`) and inside single-quoted literals are skipped.
fn expression_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("#{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let expr = &after[..end];
        let mut in_quote = false;
        let mut prev_dot = false;
        let mut token = String::new();
        let flush = |token: &mut String, prev_dot: bool, names: &mut Vec<String>| {
            if !prev_dot && (token.starts_with("my") || token.starts_with("*my")) {
                names.push(token.clone());
            }
            token.clear();
        };
        let mut token_after_dot = false;
        for c in expr.chars() {
            if in_quote {
                if c == '\'' {
                    in_quote = false;
                }
                continue;
            }
            if c.is_ascii_alphanumeric() || c == '_' || c == '*' || c == '@' {
                if token.is_empty() {
                    token_after_dot = prev_dot;
                }
                token.push(c);
                continue;
            }
            if !token.is_empty() {
                flush(&mut token, token_after_dot, &mut names);
            }
            prev_dot = c == '.';
            if c == '\'' {
                in_quote = true;
            }
        }
        if !token.is_empty() {
            flush(&mut token, token_after_dot, &mut names);
        }
        rest = &after[end + 1..];
    }
    names
}

/// Looks `key` up on `obj`, then along its `parent` chain, then on `Default`, as Data Pipeline does.
fn inherited<'a>(
    def_objects: &HashMap<&str, &'a PipelineObject>,
    obj: &'a PipelineObject,
    key: &str,
) -> Option<&'a FieldValue> {
    let mut current = obj;
    for _ in 0..32 {
        if let Some(v) = current.fields.get(key) {
            return Some(v);
        }
        match current.fields.get("parent") {
            Some(FieldValue::Ref(p)) => match def_objects.get(p.as_str()) {
                Some(parent) => current = parent,
                None => break,
            },
            _ => break,
        }
    }
    def_objects.get("Default").and_then(|d| d.fields.get(key))
}

/// Required fields per type: each entry is a group of alternatives, one of which must be present.
fn required_fields(object_type: &str) -> &'static [&'static [&'static str]] {
    match object_type {
        "SnsAlarm" => &[&["topicArn"], &["subject"], &["message"], &["role"]],
        "RdsDatabase" => &[&["rdsInstanceId"], &["username"], &["*password"]],
        "JdbcDatabase" => &[
            &["connectionString"],
            &["jdbcDriverClass"],
            &["username"],
            &["*password"],
        ],
        "SqlActivity" => &[
            &["database"],
            &["script", "scriptUri"],
            &["runsOn", "workerGroup"],
        ],
        "ShellCommandActivity" => &[&["command", "scriptUri"], &["runsOn", "workerGroup"]],
        "Ec2Resource" => &[&["role"], &["resourceRole"]],
        "EmrCluster" => &[&["role"], &["resourceRole"]],
        "Schedule" => &[&["period"], &["startAt", "startDateTime"]],
        "S3DataNode" => &[&["directoryPath", "filePath", "manifestFilePath"]],
        "CopyActivity" => &[&["input"], &["output"], &["runsOn", "workerGroup"]],
        _ => &[],
    }
}

/// Checks what AWS would reject at PutPipelineDefinition time but neither the
/// AWS CLI's translator nor botocore's parameter validation catches.
///
/// Returns every problem found, each message naming the object and field.
pub fn validate(def: &Definition) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();

    // Ids: present and unique.
    let mut by_id: HashMap<&str, &PipelineObject> = HashMap::new();
    for (i, o) in def.objects.iter().enumerate() {
        if o.id.is_empty() {
            errors.push(format!("object #{} is missing \"id\"", i + 1));
            continue;
        }
        if by_id.insert(o.id.as_str(), o).is_some() {
            errors.push(format!("duplicate object id \"{}\"", o.id));
        }
    }

    // Parameters: ids, attributes, count.
    let mut parameter_ids: BTreeSet<&str> = BTreeSet::new();
    if def.parameters.len() > MAX_PARAMETERS {
        errors.push(format!(
            "{} parameters declared; Data Pipeline allows at most {MAX_PARAMETERS}",
            def.parameters.len()
        ));
    }
    for (i, p) in def.parameters.iter().enumerate() {
        let plabel = if p.id.is_empty() {
            format!("parameter #{}", i + 1)
        } else {
            format!("parameter \"{}\"", p.id)
        };
        if p.id.is_empty() {
            errors.push(format!("{plabel} is missing \"id\""));
        } else {
            if !(p.id.starts_with("my") || p.id.starts_with("*my")) {
                errors.push(format!(
                    "{plabel}: id must start with \"my\" (or \"*my\" for a secret value)"
                ));
            }
            if !parameter_ids.insert(p.id.as_str()) {
                errors.push(format!("duplicate parameter id \"{}\"", p.id));
            }
        }
        for (key, value) in &p.attributes {
            if !PARAMETER_ATTRIBUTES.contains(&key.as_str()) {
                errors.push(format!("{plabel} has unknown attribute \"{key}\""));
            }
            check_string_value(value, &format!("{plabel} attribute \"{key}\""), &mut errors);
        }
        if let Some(FieldValue::String(t)) = p.attributes.get("type") {
            if !PARAMETER_TYPES.contains(&t.as_str()) {
                errors.push(format!(
                    "{plabel} has unknown type \"{t}\" (expected one of {})",
                    PARAMETER_TYPES.join(", ")
                ));
            }
        }
    }

    // Values: declared parameter, strings only.
    for (id, value) in &def.values {
        if !parameter_ids.contains(id.as_str()) {
            errors.push(format!("value \"{id}\" has no matching parameter"));
        }
        check_string_value(value, &format!("value \"{id}\""), &mut errors);
    }

    // Objects.
    for (i, o) in def.objects.iter().enumerate() {
        let l = label(o, i);
        let is_default = o.id == "Default";
        if o.name.as_deref().is_none_or(str::is_empty) {
            errors.push(format!("{l} is missing \"name\""));
        }
        match &o.object_type {
            None if !is_default => errors.push(format!("{l} is missing \"type\"")),
            Some(t) if !KNOWN_TYPES.contains(&t.as_str()) => {
                errors.push(format!("{l} has unknown type \"{t}\""))
            }
            _ => {}
        }

        for (key, value) in &o.fields {
            let items: Vec<&FieldValue> = match value {
                FieldValue::List(items) => items.iter().collect(),
                single => vec![single],
            };
            for item in items {
                match item {
                    FieldValue::Invalid(v) => errors.push(format!(
                        "{l} field \"{key}\" has {} value; only strings, {{\"ref\": ...}} and lists of those are allowed",
                        describe_invalid(v)
                    )),
                    FieldValue::List(_) => errors.push(format!(
                        "{l} field \"{key}\" has a nested list value; only strings, {{\"ref\": ...}} and lists of those are allowed"
                    )),
                    FieldValue::Ref(target) => {
                        if !by_id.contains_key(target.as_str()) {
                            errors.push(format!(
                                "{l} field \"{key}\" refers to \"{target}\", which is not an object id"
                            ));
                        }
                    }
                    FieldValue::String(text) => {
                        if REF_FIELDS.contains(&key.as_str()) {
                            errors.push(format!(
                                "{l} field \"{key}\" must be a {{\"ref\": ...}}, not the string \"{text}\""
                            ));
                        }
                        for name in expression_names(text) {
                            let declared = parameter_ids.contains(name.as_str())
                                || inherited(&by_id, o, &name).is_some();
                            if !declared {
                                errors.push(format!(
                                    "{l} field \"{key}\" uses \"#{{{name}}}\", but no parameter \"{name}\" is declared"
                                ));
                            }
                        }
                    }
                }
            }
        }

        if let Some(t) = &o.object_type {
            for group in required_fields(t) {
                let present = group.iter().any(|k| inherited(&by_id, o, k).is_some());
                if !present {
                    let wanted = group
                        .iter()
                        .map(|k| format!("\"{k}\""))
                        .collect::<Vec<_>>()
                        .join(" or ");
                    errors.push(format!("{l} is missing required field {wanted}"));
                }
            }
        }
    }

    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Reports a parameter attribute or value that is not a string or list of strings.
fn check_string_value(value: &FieldValue, what: &str, errors: &mut Vec<String>) {
    let items: Vec<&FieldValue> = match value {
        FieldValue::List(items) => items.iter().collect(),
        single => vec![single],
    };
    for item in items {
        match item {
            FieldValue::String(_) => {}
            FieldValue::Ref(_) => errors.push(format!(
                "{what} is a {{\"ref\": ...}}; only strings are allowed here"
            )),
            FieldValue::List(_) => errors.push(format!(
                "{what} has a nested list; only strings are allowed here"
            )),
            FieldValue::Invalid(v) => errors.push(format!(
                "{what} is {}; only strings are allowed here",
                describe_invalid(v)
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// API form (PutPipelineDefinition)
// ---------------------------------------------------------------------------

/// One field of an API pipeline object: exactly one of `string_value` / `ref_value` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiField {
    /// Field key, e.g. `type`, `runsOn`, `*password`.
    pub key: String,
    /// String value, for plain fields.
    pub string_value: Option<String>,
    /// Referenced object id, for `{"ref": ...}` fields.
    pub ref_value: Option<String>,
}

/// One pipeline object in the API's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiObject {
    /// Object id.
    pub id: String,
    /// Object name (the id when the definition had none).
    pub name: String,
    /// Fields sorted by key, `type` among them; list values become repeated keys.
    pub fields: Vec<ApiField>,
}

/// One parameter object in the API's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiParameterObject {
    /// Parameter id.
    pub id: String,
    /// `(key, string_value)` attributes sorted by key; list values become repeated keys.
    pub attributes: Vec<(String, String)>,
}

/// The three lists of a PutPipelineDefinition request (without the pipeline id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiDefinition {
    /// `pipelineObjects`.
    pub pipeline_objects: Vec<ApiObject>,
    /// `parameterObjects`.
    pub parameter_objects: Vec<ApiParameterObject>,
    /// `parameterValues` as `(id, string_value)`; list values become repeated ids.
    pub parameter_values: Vec<(String, String)>,
}

impl ApiDefinition {
    /// The request lists as JSON in the API's (botocore's) shape:
    /// `{"pipelineObjects": [{"id","name","fields":[{"key","stringValue"|"refValue"}]}],
    /// "parameterObjects": [{"id","attributes":[{"key","stringValue"}]}],
    /// "parameterValues": [{"id","stringValue"}]}`.
    pub fn to_api_json(&self) -> Value {
        let objects: Vec<Value> = self
            .pipeline_objects
            .iter()
            .map(|o| {
                let fields: Vec<Value> = o
                    .fields
                    .iter()
                    .map(|f| {
                        let mut m = serde_json::Map::new();
                        m.insert("key".into(), Value::String(f.key.clone()));
                        if let Some(s) = &f.string_value {
                            m.insert("stringValue".into(), Value::String(s.clone()));
                        }
                        if let Some(r) = &f.ref_value {
                            m.insert("refValue".into(), Value::String(r.clone()));
                        }
                        Value::Object(m)
                    })
                    .collect();
                serde_json::json!({"id": o.id, "name": o.name, "fields": fields})
            })
            .collect();
        let parameters: Vec<Value> = self
            .parameter_objects
            .iter()
            .map(|p| {
                let attributes: Vec<Value> = p
                    .attributes
                    .iter()
                    .map(|(k, v)| serde_json::json!({"key": k, "stringValue": v}))
                    .collect();
                serde_json::json!({"id": p.id, "attributes": attributes})
            })
            .collect();
        let values: Vec<Value> = self
            .parameter_values
            .iter()
            .map(|(id, v)| serde_json::json!({"id": id, "stringValue": v}))
            .collect();
        serde_json::json!({
            "pipelineObjects": objects,
            "parameterObjects": parameters,
            "parameterValues": values,
        })
    }
}

/// The text of a value that is not a string or ref (only reachable for definitions that fail [`validate`]).
fn invalid_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Expands one definition value into `(key, value)` API fields, repeating the key for lists.
fn api_fields(key: &str, value: &FieldValue, out: &mut Vec<ApiField>) {
    match value {
        FieldValue::String(s) => out.push(ApiField {
            key: key.to_string(),
            string_value: Some(s.clone()),
            ref_value: None,
        }),
        FieldValue::Ref(r) => out.push(ApiField {
            key: key.to_string(),
            string_value: None,
            ref_value: Some(r.clone()),
        }),
        FieldValue::List(items) => {
            for item in items {
                api_fields(key, item, out);
            }
        }
        FieldValue::Invalid(v) => out.push(ApiField {
            key: key.to_string(),
            string_value: Some(invalid_text(v)),
            ref_value: None,
        }),
    }
}

/// Expands a parameter attribute or value into strings (refs by their id), repeating for lists.
fn api_strings(value: &FieldValue, out: &mut Vec<String>) {
    match value {
        FieldValue::String(s) | FieldValue::Ref(s) => out.push(s.clone()),
        FieldValue::List(items) => {
            for item in items {
                api_strings(item, out);
            }
        }
        FieldValue::Invalid(v) => out.push(invalid_text(v)),
    }
}

/// Converts a definition to the PutPipelineDefinition form, as awscli's
/// `definition_to_api_objects`, `definition_to_api_parameters` and
/// `definition_to_parameter_values` do.
///
/// Objects keep their order; each object's fields (with `type`) are sorted by
/// key; a missing name becomes the id. Run [`validate`] first: values it
/// rejects are passed on as their JSON text.
pub fn to_api_objects(def: &Definition) -> ApiDefinition {
    let pipeline_objects = def
        .objects
        .iter()
        .map(|o| {
            let mut entries: Vec<(&str, FieldValue)> = o
                .fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.clone()))
                .collect();
            if let Some(t) = &o.object_type {
                entries.push(("type", FieldValue::String(t.clone())));
            }
            // Stable sort: a `type` key also present in `fields` cannot happen
            // (serde routes it to `object_type`), so keys are unique.
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let mut fields = Vec::new();
            for (k, v) in &entries {
                api_fields(k, v, &mut fields);
            }
            ApiObject {
                id: o.id.clone(),
                name: o.name.clone().unwrap_or_else(|| o.id.clone()),
                fields,
            }
        })
        .collect();

    let parameter_objects = def
        .parameters
        .iter()
        .map(|p| {
            let mut attributes = Vec::new();
            for (k, v) in &p.attributes {
                let mut strings = Vec::new();
                api_strings(v, &mut strings);
                attributes.extend(strings.into_iter().map(|s| (k.clone(), s)));
            }
            ApiParameterObject {
                id: p.id.clone(),
                attributes,
            }
        })
        .collect();

    let mut parameter_values = Vec::new();
    for (id, v) in &def.values {
        let mut strings = Vec::new();
        api_strings(v, &mut strings);
        parameter_values.extend(strings.into_iter().map(|s| (id.clone(), s)));
    }

    ApiDefinition {
        pipeline_objects,
        parameter_objects,
        parameter_values,
    }
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings_json(extra: &str) -> String {
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

    fn settings() -> PipelineSettings {
        PipelineSettings::from_json(&settings_json("")).unwrap()
    }

    fn built() -> Definition {
        build_definition(&settings())
    }

    fn obj_mut<'a>(def: &'a mut Definition, id: &str) -> &'a mut PipelineObject {
        def.objects.iter_mut().find(|o| o.id == id).unwrap()
    }

    fn assert_error(def: &Definition, needle: &str) {
        let errors = validate(def).expect_err("definition should fail validation");
        assert!(
            errors.iter().any(|e| e.contains(needle)),
            "no error containing {needle:?} in {errors:#?}"
        );
    }

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
        let err = PipelineSettings::from_json(&settings_json(r#", "typo_key": 1"#)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid pipeline settings json:"),
            "{err}"
        );
        assert!(err.to_string().contains("typo_key"), "{err}");
    }

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
            "./stockload load --source s3://stock-bucket/Stocks/ --companies s3://stock-bucket/CompanyNames/top_companies.txt"
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
        let s = PipelineSettings::from_json(&settings_json(
            r#", "key_pair": "my-key", "rds_endpoint": "db.example.com""#,
        ))
        .map(|mut s| {
            s.security_group_ids = vec!["sg-only".into()];
            s
        })
        .unwrap();
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
    fn invalid_values_survive_parsing_and_round_trip() {
        let json = r#"{"objects": [{"id": "A", "name": "A", "type": "Schedule",
            "period": "1 day", "startAt": "FIRST_ACTIVATION_DATE_TIME",
            "occurrences": 3, "flag": true, "nested": [["x"]], "obj": {"a": "b"},
            "badref": {"ref": "A", "extra": "x"}}]}"#;
        let def = Definition::from_json(json).unwrap();
        let a = def.object("A").unwrap();
        assert_eq!(
            a.get("occurrences"),
            Some(&FieldValue::Invalid(serde_json::json!(3)))
        );
        assert_eq!(
            a.get("nested"),
            Some(&FieldValue::List(vec![FieldValue::Invalid(
                serde_json::json!(["x"])
            )]))
        );
        let back = Definition::from_json(&def.to_json_pretty()).unwrap();
        assert_eq!(back, def);
        let errors = validate(&def).unwrap_err();
        for needle in [
            "field \"occurrences\" has a number value",
            "field \"flag\" has a boolean value",
            "field \"nested\" has a nested list value",
            "field \"obj\" has an object value",
            "field \"badref\" has a malformed {\"ref\": ...} value",
        ] {
            assert!(
                errors.iter().any(|e| e.contains(needle)),
                "{needle:?} not in {errors:#?}"
            );
        }
    }

    #[test]
    fn missing_required_field_is_reported() {
        let mut def = built();
        obj_mut(&mut def, "FailureAlarm").fields.remove("topicArn");
        assert_eq!(
            validate(&def),
            Err(vec![
                "object \"FailureAlarm\" (SnsAlarm) is missing required field \"topicArn\""
                    .to_string()
            ])
        );
    }

    #[test]
    fn alternatives_and_default_inheritance() {
        let mut def = built();
        obj_mut(&mut def, "UpdateChangesActivity")
            .fields
            .remove("scriptUri");
        assert_error(
            &def,
            "object \"UpdateChangesActivity\" (SqlActivity) is missing required field \"script\" or \"scriptUri\"",
        );

        // role on the alarm may come from Default ...
        let mut def = built();
        obj_mut(&mut def, "SuccessAlarm").fields.remove("role");
        assert_eq!(validate(&def), Ok(()));
        // ... but not once Default lacks it too.
        obj_mut(&mut def, "Default").fields.remove("role");
        assert_error(
            &def,
            "object \"SuccessAlarm\" (SnsAlarm) is missing required field \"role\"",
        );
        assert_error(
            &def,
            "object \"Ec2Instance\" (Ec2Resource) is missing required field \"role\"",
        );
    }

    #[test]
    fn unknown_type_and_missing_type_or_name() {
        let mut def = built();
        obj_mut(&mut def, "SuccessAlarm").object_type = Some("SnsAlarms".into());
        assert_error(
            &def,
            "object \"SuccessAlarm\" (SnsAlarms) has unknown type \"SnsAlarms\"",
        );

        let mut def = built();
        obj_mut(&mut def, "RdsDatabase").object_type = None;
        obj_mut(&mut def, "Ec2Instance").name = None;
        assert_error(&def, "object \"RdsDatabase\" is missing \"type\"");
        assert_error(
            &def,
            "object \"Ec2Instance\" (Ec2Resource) is missing \"name\"",
        );
    }

    #[test]
    fn dangling_ref_and_duplicate_id() {
        let mut def = built();
        obj_mut(&mut def, "LoadActivity")
            .fields
            .insert("runsOn".into(), FieldValue::reference("Ec2Instanse"));
        assert_error(
            &def,
            "object \"LoadActivity\" (ShellCommandActivity) field \"runsOn\" refers to \"Ec2Instanse\", which is not an object id",
        );

        let mut def = built();
        let copy = def.object("SuccessAlarm").unwrap().clone();
        def.objects.push(copy);
        assert_error(&def, "duplicate object id \"SuccessAlarm\"");

        let mut def = built();
        def.objects[1].id.clear();
        assert_error(&def, "object #2 is missing \"id\"");
    }

    #[test]
    fn ref_field_given_as_string() {
        let mut def = built();
        obj_mut(&mut def, "UpdateChangesActivity")
            .fields
            .insert("database".into(), "RdsDatabase".into());
        assert_error(&def, "field \"database\" must be a {\"ref\": ...}");
    }

    #[test]
    fn number_value_is_reported() {
        let mut def = built();
        obj_mut(&mut def, "LoadActivity").fields.insert(
            "maximumRetries".into(),
            FieldValue::Invalid(serde_json::json!(1)),
        );
        assert_eq!(
            validate(&def),
            Err(vec![
                "object \"LoadActivity\" (ShellCommandActivity) field \"maximumRetries\" has a number value; only strings, {\"ref\": ...} and lists of those are allowed"
                    .to_string()
            ])
        );
    }

    #[test]
    fn parameter_references_and_ids() {
        let mut def = built();
        def.parameters.retain(|p| p.id != "*myRdsPassword");
        let errors = validate(&def).unwrap_err();
        assert!(errors.iter().any(|e| e
            == "object \"RdsDatabase\" (RdsDatabase) field \"*password\" uses \"#{*myRdsPassword}\", but no parameter \"*myRdsPassword\" is declared"));
        assert!(errors
            .iter()
            .any(|e| e.contains("\"LoadActivity\"") && e.contains("scriptArgument")));

        let mut def = built();
        def.parameters.push(Parameter::string("rdsPort", "port"));
        def.parameters
            .push(Parameter::string("myX", "x").with("colour", "red"));
        def.values.insert("myUnknown".into(), "1".into());
        assert_error(&def, "parameter \"rdsPort\": id must start with \"my\"");
        assert_error(&def, "parameter \"myX\" has unknown attribute \"colour\"");
        assert_error(&def, "value \"myUnknown\" has no matching parameter");

        let mut def = built();
        def.parameters[0]
            .attributes
            .insert("type".into(), "Text".into());
        assert_error(
            &def,
            "parameter \"myRdsEndpoint\" has unknown type \"Text\"",
        );
    }

    #[test]
    fn expression_scanning() {
        assert_eq!(expression_names("#{myA} and #{*myB}"), ["myA", "*myB"]);
        assert_eq!(
            expression_names("#{format(myDate,'my-literal')} #{node.myField} #{node.name}"),
            ["myDate"]
        );
        assert!(expression_names("no expressions ${PW_ENC} $1 my").is_empty());
        // a user-defined field (my...) on the object itself or on Default is not a parameter
        let mut def = built();
        obj_mut(&mut def, "SuccessAlarm")
            .fields
            .insert("myNote".into(), "hello".into());
        obj_mut(&mut def, "SuccessAlarm")
            .fields
            .insert("message".into(), "#{myNote} #{node.name}".into());
        assert_eq!(validate(&def), Ok(()));
    }

    #[test]
    fn api_objects_conversion() {
        let def = built();
        let api = to_api_objects(&def);
        assert_eq!(api.pipeline_objects.len(), def.objects.len());

        let default = &api.pipeline_objects[0];
        assert_eq!(default.id, "Default");
        assert_eq!(default.name, "Default");
        assert!(default.fields.iter().all(|f| f.key != "type"));

        let ec2 = &api.pipeline_objects[1];
        let keys: Vec<&str> = ec2.fields.iter().map(|f| f.key.as_str()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted, "fields are sorted by key");
        let groups: Vec<&ApiField> = ec2
            .fields
            .iter()
            .filter(|f| f.key == "securityGroupIds")
            .collect();
        assert_eq!(groups.len(), 2, "a list becomes repeated fields");
        assert_eq!(groups[0].string_value.as_deref(), Some("sg-1"));
        assert_eq!(groups[1].string_value.as_deref(), Some("sg-2"));
        assert!(ec2.fields.contains(&ApiField {
            key: "type".into(),
            string_value: Some("Ec2Resource".into()),
            ref_value: None
        }));

        let load = api
            .pipeline_objects
            .iter()
            .find(|o| o.id == "LoadActivity")
            .unwrap();
        assert!(load.fields.contains(&ApiField {
            key: "runsOn".into(),
            string_value: None,
            ref_value: Some("Ec2Instance".into())
        }));
        let args: Vec<&str> = load
            .fields
            .iter()
            .filter(|f| f.key == "scriptArgument")
            .map(|f| f.string_value.as_deref().unwrap())
            .collect();
        assert_eq!(args, ["#{*myRdsPassword}", "#{myRdsEndpoint}"]);
        for f in api.pipeline_objects.iter().flat_map(|o| &o.fields) {
            assert!(f.string_value.is_some() != f.ref_value.is_some(), "{f:?}");
        }

        let password = api
            .parameter_objects
            .iter()
            .find(|p| p.id == "*myRdsPassword")
            .unwrap();
        assert_eq!(
            password
                .attributes
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            ["description", "type", "watermark"]
        );
        assert!(password
            .attributes
            .contains(&("type".into(), "String".into())));
    }

    #[test]
    fn api_values_lists_and_missing_names() {
        let json = r#"{"objects": [{"id": "Default", "scheduleType": "ondemand"}],
            "parameters": [{"id": "myList", "type": "String", "isArray": "true",
                            "allowedValues": ["a", "b"]}],
            "values": {"myList": ["a", "b"], "myOne": "x"}}"#;
        let def = Definition::from_json(json).unwrap();
        let api = to_api_objects(&def);
        assert_eq!(
            api.pipeline_objects[0].name, "Default",
            "name defaults to id"
        );
        assert_eq!(
            api.parameter_values,
            [
                ("myList".to_string(), "a".to_string()),
                ("myList".to_string(), "b".to_string()),
                ("myOne".to_string(), "x".to_string())
            ]
        );
        assert_eq!(
            api.parameter_objects[0].attributes,
            [
                ("allowedValues".to_string(), "a".to_string()),
                ("allowedValues".to_string(), "b".to_string()),
                ("isArray".to_string(), "true".to_string()),
                ("type".to_string(), "String".to_string())
            ]
        );
        let v = api.to_api_json();
        assert_eq!(
            v["parameterValues"][1],
            serde_json::json!({"id": "myList", "stringValue": "b"})
        );
        assert_eq!(
            v["pipelineObjects"][0]["fields"][0],
            serde_json::json!({"key": "scheduleType", "stringValue": "ondemand"})
        );
    }

    #[test]
    fn shell_helpers() {
        assert_eq!(shell_word("s3://b/Stocks/"), "s3://b/Stocks/");
        assert_eq!(shell_word("s3://b/my key"), "'s3://b/my key'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
        assert_eq!(percent_encode("a b@c"), "a%20b%40c");
    }
}
