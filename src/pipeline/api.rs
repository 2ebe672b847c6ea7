//! The definition in PutPipelineDefinition's form, as awscli's `definition_to_api_objects`,
//! `definition_to_api_parameters` and `definition_to_parameter_values` produce it: plain types,
//! turned into the SDK's by [`super::aws`].

use serde_json::Value;

use super::{Definition, FieldValue};

/// One field of an API pipeline object: exactly one of `string_value` / `ref_value` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiField {
    /// Field key, e.g. `type`, `runsOn`, `*password`.
    pub(crate) key: String,
    /// String value, for plain fields.
    pub(crate) string_value: Option<String>,
    /// Referenced object id, for `{"ref": ...}` fields.
    pub(crate) ref_value: Option<String>,
}

/// One pipeline object in the API's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiObject {
    /// Object id.
    pub(crate) id: String,
    /// Object name (the id when the definition had none).
    pub(crate) name: String,
    /// Fields sorted by key, `type` among them; list values become repeated keys.
    pub(crate) fields: Vec<ApiField>,
}

/// One parameter object in the API's form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiParameterObject {
    /// Parameter id.
    pub(crate) id: String,
    /// `(key, string_value)` attributes sorted by key; list values become repeated keys.
    pub(crate) attributes: Vec<(String, String)>,
}

/// The three lists of a PutPipelineDefinition request (without the pipeline id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiDefinition {
    /// `pipelineObjects`.
    pub(crate) pipeline_objects: Vec<ApiObject>,
    /// `parameterObjects`.
    pub(crate) parameter_objects: Vec<ApiParameterObject>,
    /// `parameterValues` as `(id, string_value)`; list values become repeated ids.
    pub(crate) parameter_values: Vec<(String, String)>,
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
pub(crate) fn to_api_objects(def: &Definition) -> ApiDefinition {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixtures::built;

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
    }
}
