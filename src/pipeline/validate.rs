//! Checks what AWS would reject at PutPipelineDefinition time but neither the AWS CLI's translator
//! nor botocore's parameter validation catches: ids, types, required fields (with `parent` and
//! `Default` inheritance), references, parameters and the `#{...}` expressions that use them.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::{Definition, FieldValue, PipelineObject};

/// Object types Data Pipeline knows (plus the type-less `Default` object).
pub(crate) const KNOWN_TYPES: &[&str] = &[
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
/// Returns every problem found, each message naming the object and field, in the order: ids,
/// parameters, values, then each object (name, type, fields, required fields).
pub(crate) fn validate(def: &Definition) -> Result<(), Vec<String>> {
    let mut errors = Vec::new();
    let by_id = check_ids(def, &mut errors);
    let parameter_ids = check_parameters(def, &mut errors);
    check_values(def, &parameter_ids, &mut errors);
    let names = Names {
        by_id: &by_id,
        parameter_ids: &parameter_ids,
    };
    for (i, o) in def.objects.iter().enumerate() {
        names.check_object(o, &label(o, i), &mut errors);
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Ids: present and unique. Returns the objects by id (the last of a duplicated id wins).
fn check_ids<'a>(
    def: &'a Definition,
    errors: &mut Vec<String>,
) -> HashMap<&'a str, &'a PipelineObject> {
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
    by_id
}

/// Parameters: count, ids, attributes and types. Returns the declared parameter ids.
fn check_parameters<'a>(def: &'a Definition, errors: &mut Vec<String>) -> BTreeSet<&'a str> {
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
            check_string_value(value, &format!("{plabel} attribute \"{key}\""), errors);
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
    parameter_ids
}

/// Values: each for a declared parameter, strings only.
fn check_values(def: &Definition, parameter_ids: &BTreeSet<&str>, errors: &mut Vec<String>) {
    for (id, value) in &def.values {
        if !parameter_ids.contains(id.as_str()) {
            errors.push(format!("value \"{id}\" has no matching parameter"));
        }
        check_string_value(value, &format!("value \"{id}\""), errors);
    }
}

/// What an object's fields may name: the objects by id (for refs and inherited fields) and the
/// declared parameters (for `#{...}` expressions).
struct Names<'a> {
    by_id: &'a HashMap<&'a str, &'a PipelineObject>,
    parameter_ids: &'a BTreeSet<&'a str>,
}

impl Names<'_> {
    /// One object, labelled `l`: name, type, every field, then the required fields of its type.
    fn check_object(&self, o: &PipelineObject, l: &str, errors: &mut Vec<String>) {
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
                self.check_field_item(o, l, key, item, errors);
            }
        }
        if let Some(t) = &o.object_type {
            self.check_required(o, l, t, errors);
        }
    }

    /// One value of field `key` (the field itself, or one item of its list).
    fn check_field_item(
        &self,
        o: &PipelineObject,
        l: &str,
        key: &str,
        item: &FieldValue,
        errors: &mut Vec<String>,
    ) {
        match item {
            FieldValue::Invalid(v) => errors.push(format!(
                "{l} field \"{key}\" has {} value; only strings, {{\"ref\": ...}} and lists of those are allowed",
                describe_invalid(v)
            )),
            FieldValue::List(_) => errors.push(format!(
                "{l} field \"{key}\" has a nested list value; only strings, {{\"ref\": ...}} and lists of those are allowed"
            )),
            FieldValue::Ref(target) => {
                if !self.by_id.contains_key(target.as_str()) {
                    errors.push(format!(
                        "{l} field \"{key}\" refers to \"{target}\", which is not an object id"
                    ));
                }
            }
            FieldValue::String(text) => {
                if REF_FIELDS.contains(&key) {
                    errors.push(format!(
                        "{l} field \"{key}\" must be a {{\"ref\": ...}}, not the string \"{text}\""
                    ));
                }
                for name in expression_names(text) {
                    let declared = self.parameter_ids.contains(name.as_str())
                        || inherited(self.by_id, o, &name).is_some();
                    if !declared {
                        errors.push(format!(
                            "{l} field \"{key}\" uses \"#{{{name}}}\", but no parameter \"{name}\" is declared"
                        ));
                    }
                }
            }
        }
    }

    /// The required fields of type `t`, found on the object, its parents or `Default`.
    fn check_required(&self, o: &PipelineObject, l: &str, t: &str, errors: &mut Vec<String>) {
        for group in required_fields(t) {
            let present = group.iter().any(|k| inherited(self.by_id, o, k).is_some());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::definition::Parameter;
    use crate::pipeline::fixtures::{assert_error, built, obj_mut};

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
}
