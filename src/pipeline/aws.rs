//! The AWS Data Pipeline calls of the Lambda's pipeline mode: `start`, which finishes what it
//! starts, over the [`PipelineApi`] trait so its resume logic can be exercised with a failure
//! injected at any step (the tests wrap [`SdkPipelines`] on moto_server). [`SdkPipelines`] is the
//! real client.
//!
//! The pipeline `start` creates is tagged with the marker's id (and CreatePipeline gets an
//! idempotency token derived from it), so a retry of the same event after a failure at any step
//! finds it. A pipeline of the marker that is still PENDING (created, but PutPipelineDefinition or
//! ActivatePipeline failed) gets its definition put again and is activated; one already activated
//! is left alone ("already started"). A previous marker's pipeline is deleted only when it is idle
//! (never activated, or all its instances finished); while it may still be running, the start
//! fails with an error saying so: a running load is never cancelled.

use std::future::Future;

use aws_sdk_datapipeline::types::{
    Field, ParameterAttribute, ParameterObject, ParameterValue, PipelineObject, Tag,
};
use sha2::{Digest, Sha256};

use super::api::ApiDefinition;
use super::{to_api_objects, validate, Definition, ENDPOINT_PARAMETER, PASSWORD_PARAMETER};
use crate::aws::{aws_error, Aws};
use crate::error::{Error, Result};
use crate::secret::Secret;
use crate::storage::{Location, Storage};

/// Tag on each pipeline we create: which marker started it.
pub(crate) const MARKER_TAG: &str = "stockload:marker";

/// A pipeline as DescribePipelines shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineInfo {
    /// Its id (`df-…`).
    pub id: String,
    /// `@pipelineState`: PENDING until activated, then SCHEDULED, FINISHED, … (None if absent).
    pub state: Option<String>,
    /// The marker that started it (its `stockload:marker` tag), if any.
    pub marker: Option<String>,
}

impl PipelineInfo {
    /// Created but never activated (a step after CreatePipeline failed).
    pub(crate) fn is_pending(&self) -> bool {
        self.state.as_deref() == Some("PENDING")
    }

    /// States in which the pipeline runs nothing and never will without a new activation.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(
            self.state.as_deref(),
            Some("PENDING" | "FINISHED" | "INACTIVE" | "FAILED" | "CANCELED")
        )
    }
}

/// The objects, parameters and values PutPipelineDefinition takes.
pub type SdkDefinition = (
    Vec<PipelineObject>,
    Vec<ParameterObject>,
    Vec<ParameterValue>,
);

/// What PutPipelineDefinition answered.
#[derive(Debug, Clone, Default)]
pub struct PutOutcome {
    /// AWS refused the definition.
    pub errored: bool,
    /// Validation errors, one line per object.
    pub errors: Vec<String>,
    /// Validation warnings, one line per object.
    pub warnings: Vec<String>,
}

/// The Data Pipeline operations the handler uses. Every failure is an [`Error::Aws`] naming the
/// action and pipeline.
pub trait PipelineApi: Sync {
    /// Ids of every pipeline with this name (all pages of ListPipelines).
    fn list_named(&self, name: &str) -> impl Future<Output = Result<Vec<String>>> + Send;
    /// DescribePipelines for these ids.
    fn describe(&self, ids: &[String]) -> impl Future<Output = Result<Vec<PipelineInfo>>> + Send;
    /// CreatePipeline, tagged with the marker, with an idempotency token; returns the id.
    fn create(
        &self,
        name: &str,
        unique_id: &str,
        marker: &str,
    ) -> impl Future<Output = Result<String>> + Send;
    /// PutPipelineDefinition.
    fn put_definition(
        &self,
        id: &str,
        definition: SdkDefinition,
    ) -> impl Future<Output = Result<PutOutcome>> + Send;
    /// ActivatePipeline with parameter values.
    fn activate(
        &self,
        id: &str,
        values: Vec<ParameterValue>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// DeletePipeline.
    fn delete(&self, id: &str) -> impl Future<Output = Result<()>> + Send;
    /// Whether any run of an activated pipeline may still be working: Ok(false) only when it has
    /// instances and every one has a final `@status` (QueryObjects + DescribeObjects).
    fn has_running_instances(&self, id: &str) -> impl Future<Output = Result<bool>> + Send;
}

/// The real Data Pipeline client.
#[derive(Clone, Debug)]
pub struct SdkPipelines(pub aws_sdk_datapipeline::Client);

/// The service name in errors of Data Pipeline calls.
const DATA_PIPELINE: &str = "Data Pipeline";

/// Builds the error for a Data Pipeline call stockload found wrong (no SDK error behind it).
pub(crate) fn dp_error(action: impl Into<String>, reason: String) -> Error {
    Error::Aws {
        service: DATA_PIPELINE,
        action: action.into(),
        reason,
        source: None,
    }
}

/// Final statuses of a pipeline instance: nothing of it runs any more.
const FINAL_STATUSES: [&str; 6] = [
    "FINISHED",
    "FAILED",
    "CANCELED",
    "CASCADE_FAILED",
    "SKIPPED",
    "TIMEDOUT",
];

impl PipelineApi for SdkPipelines {
    async fn list_named(&self, name: &str) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let mut page_marker: Option<String> = None;
        loop {
            let page = self
                .0
                .list_pipelines()
                .set_marker(page_marker.clone())
                .send()
                .await
                .map_err(|e| aws_error(DATA_PIPELINE, "ListPipelines", e))?;
            ids.extend(
                page.pipeline_id_list()
                    .iter()
                    .filter(|p| p.name() == Some(name))
                    .filter_map(|p| p.id().map(str::to_string)),
            );
            match (page.has_more_results(), page.marker()) {
                (true, Some(next)) if !next.is_empty() => page_marker = Some(next.to_string()),
                _ => return Ok(ids),
            }
        }
    }

    async fn describe(&self, ids: &[String]) -> Result<Vec<PipelineInfo>> {
        let mut infos = Vec::new();
        // DescribePipelines takes at most 25 ids per call.
        for chunk in ids.chunks(25) {
            let described = self
                .0
                .describe_pipelines()
                .set_pipeline_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| aws_error(DATA_PIPELINE, "DescribePipelines", e))?;
            for description in described.pipeline_description_list() {
                infos.push(PipelineInfo {
                    id: description.pipeline_id().to_string(),
                    state: field(description.fields(), "@pipelineState"),
                    marker: description
                        .tags()
                        .iter()
                        .find(|t| t.key() == MARKER_TAG)
                        .map(|t| t.value().to_string()),
                });
            }
        }
        Ok(infos)
    }

    async fn create(&self, name: &str, unique_id: &str, marker: &str) -> Result<String> {
        let tag = Tag::builder()
            .key(MARKER_TAG)
            .value(marker)
            .build()
            .map_err(|e| dp_error("CreatePipeline", e.to_string()))?;
        let created = self
            .0
            .create_pipeline()
            .name(name)
            .unique_id(unique_id)
            .description(format!("stockload run for {marker}"))
            .tags(tag)
            .send()
            .await
            .map_err(|e| aws_error(DATA_PIPELINE, format!("CreatePipeline {name}"), e))?;
        Ok(created.pipeline_id().to_string())
    }

    async fn put_definition(&self, id: &str, definition: SdkDefinition) -> Result<PutOutcome> {
        let (objects, parameters, values) = definition;
        let put = self
            .0
            .put_pipeline_definition()
            .pipeline_id(id)
            .set_pipeline_objects(Some(objects))
            .set_parameter_objects(Some(parameters))
            .set_parameter_values(Some(values))
            .send()
            .await
            .map_err(|e| aws_error(DATA_PIPELINE, format!("PutPipelineDefinition {id}"), e))?;
        let lines = |id: Option<&str>, texts: &[String]| {
            format!("{}: {}", id.unwrap_or("?"), texts.join("; "))
        };
        Ok(PutOutcome {
            errored: put.errored(),
            errors: put
                .validation_errors()
                .iter()
                .map(|e| lines(e.id(), e.errors()))
                .collect(),
            warnings: put
                .validation_warnings()
                .iter()
                .map(|w| lines(w.id(), w.warnings()))
                .collect(),
        })
    }

    async fn activate(&self, id: &str, values: Vec<ParameterValue>) -> Result<()> {
        self.0
            .activate_pipeline()
            .pipeline_id(id)
            .set_parameter_values(Some(values))
            .send()
            .await
            .map_err(|e| aws_error(DATA_PIPELINE, format!("ActivatePipeline {id}"), e))?;
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.0
            .delete_pipeline()
            .pipeline_id(id)
            .send()
            .await
            .map_err(|e| aws_error(DATA_PIPELINE, format!("DeletePipeline {id}"), e))?;
        Ok(())
    }

    async fn has_running_instances(&self, id: &str) -> Result<bool> {
        let mut instances = Vec::new();
        let mut page_marker: Option<String> = None;
        loop {
            let page = self
                .0
                .query_objects()
                .pipeline_id(id)
                .sphere("INSTANCE")
                .set_marker(page_marker.clone())
                .send()
                .await
                .map_err(|e| aws_error(DATA_PIPELINE, format!("QueryObjects {id}"), e))?;
            instances.extend(page.ids().iter().cloned());
            match (page.has_more_results(), page.marker()) {
                (true, Some(next)) if !next.is_empty() => page_marker = Some(next.to_string()),
                _ => break,
            }
        }
        if instances.is_empty() {
            // Activated but not yet scheduled: about to run.
            return Ok(true);
        }
        for chunk in instances.chunks(25) {
            let described = self
                .0
                .describe_objects()
                .pipeline_id(id)
                .set_object_ids(Some(chunk.to_vec()))
                .evaluate_expressions(false)
                .send()
                .await
                .map_err(|e| aws_error(DATA_PIPELINE, format!("DescribeObjects {id}"), e))?;
            let running = described.pipeline_objects().iter().any(|object| {
                field(object.fields(), "@status")
                    .is_none_or(|status| !FINAL_STATUSES.contains(&status.as_str()))
            });
            if running {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

fn field(fields: &[Field], key: &str) -> Option<String> {
    fields
        .iter()
        .find(|f| f.key() == key)
        .and_then(|f| f.string_value())
        .map(str::to_string)
}

/// Makes sure exactly one pipeline named `name` is defined (from the definition at `location`)
/// and activated for the marker `id`, resuming a previous attempt that failed part-way, and
/// replacing the previous marker's pipeline only when nothing of it can still be running (see the
/// module documentation). `activation` (the parameter values) is awaited only right before
/// ActivatePipeline, so the secret is not read for a duplicate event or a refused start.
pub(crate) async fn start<P: PipelineApi>(
    aws: &Aws,
    api: &P,
    name: &str,
    location: &Location,
    id: &str,
    activation: impl Future<Output = Result<Option<Activation>>>,
) -> Result<String> {
    // Read and check the definition first: a bad one must not cost us the current pipeline.
    let definition = read_definition(aws, location).await?;

    let existing = api.describe(&api.list_named(name).await?).await?;
    let (ours, others): (Vec<PipelineInfo>, Vec<PipelineInfo>) = existing
        .into_iter()
        .partition(|p| p.marker.as_deref() == Some(id));

    // Already activated for this marker: a duplicate event, or a retry after a lost answer.
    if let Some(active) = ours.iter().find(|p| !p.is_pending()) {
        for extra in ours.iter().filter(|p| p.id != active.id) {
            api.delete(&extra.id).await?;
            tracing::info!(pipeline = %extra.id, "deleted a second, never activated pipeline for the marker");
        }
        return Ok(format!(
            "{id}: pipeline {} was already started for this marker (duplicate event)",
            active.id
        ));
    }

    refuse_while_running(api, name, &others).await?;
    for other in &others {
        api.delete(&other.id).await?;
        tracing::info!(pipeline = %other.id, "deleted previous pipeline {name}");
    }
    let pipeline_id = resume_or_create(api, name, id, &ours).await?;
    put_definition(api, &pipeline_id, &definition).await?;
    api.activate(&pipeline_id, activation_values(activation.await?)?)
        .await?;
    Ok(format!(
        "{id}: pipeline {name} ({pipeline_id}) created and activated"
    ))
}

/// Reads the definition at `location` and checks it as AWS would.
async fn read_definition(aws: &Aws, location: &Location) -> Result<Definition> {
    let bytes = Storage::new(Some(aws.clone()))
        .read_required(location)
        .await?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Config(format!("{location} is not UTF-8 JSON")))?;
    let definition = Definition::from_json(&text).map_err(|e| e.in_file(location))?;
    validate(&definition).map_err(Error::Definition)?;
    tracing::info!(%location, objects = definition.objects.len(), "definition read and checked");
    Ok(definition)
}

/// Fails while a previous marker's pipeline (one of `others`) may still be running: it is
/// replaced only when nothing of it can, and never cancelled.
async fn refuse_while_running<P: PipelineApi>(
    api: &P,
    name: &str,
    others: &[PipelineInfo],
) -> Result<()> {
    for other in others {
        if other.is_idle() {
            continue;
        }
        let why = match api.has_running_instances(&other.id).await {
            Ok(false) => continue,
            Ok(true) => "its run has not finished".to_string(),
            Err(err) => format!("cannot tell whether its run finished: {err}"),
        };
        return Err(dp_error(
            format!("replacing pipeline {name}"),
            format!(
                "pipeline {} (started for {}) is {} and may still be running ({why}); it is not \
                 cancelled. This event fails so that Lambda retries it later; the pipeline is \
                 replaced once its run has finished",
                other.id,
                other.marker.as_deref().unwrap_or("another marker"),
                other.state.as_deref().unwrap_or("in an unknown state"),
            ),
        ));
    }
    Ok(())
}

/// The id of the marker's pipeline: its pending one (`ours`, none activated) resumed, extra ones
/// deleted, or a new one. The unique id is derived from the marker: AWS answers a repeated
/// CreatePipeline (a retry, concurrent duplicates) with the same pipeline.
async fn resume_or_create<P: PipelineApi>(
    api: &P,
    name: &str,
    id: &str,
    ours: &[PipelineInfo],
) -> Result<String> {
    match ours.split_first() {
        Some((pending, extras)) => {
            for extra in extras {
                api.delete(&extra.id).await?;
            }
            tracing::info!(pipeline = %pending.id, "resuming the marker's pending pipeline");
            Ok(pending.id.clone())
        }
        None => {
            let digest = Sha256::digest(id.as_bytes());
            let unique_id: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
            let created = api
                .create(name, &format!("stockload-{unique_id}"), id)
                .await?;
            tracing::info!(pipeline = %created, "created pipeline {name}");
            Ok(created)
        }
    }
}

/// Puts `definition` on the pipeline (again, for a pending one: its definition is simply
/// replaced), logging AWS's warnings and failing on its errors.
async fn put_definition<P: PipelineApi>(
    api: &P,
    pipeline_id: &str,
    definition: &Definition,
) -> Result<()> {
    let api_definition = to_api_objects(definition);
    let put = api
        .put_definition(pipeline_id, sdk_objects(&api_definition)?)
        .await?;
    for warning in &put.warnings {
        tracing::warn!("definition warning: {warning}");
    }
    if put.errored || !put.errors.is_empty() {
        return Err(dp_error(
            format!("PutPipelineDefinition {pipeline_id}"),
            format!("the definition was rejected: {}", put.errors.join(" | ")),
        ));
    }
    tracing::info!(pipeline = %pipeline_id, "definition put");
    Ok(())
}

/// Parameter values given to ActivatePipeline when the caller knows the database, so they never
/// have to be stored in the definition.
pub(crate) struct Activation {
    /// Value of the secret `*myRdsPassword` parameter.
    pub(crate) password: Secret,
    /// Value of the `myRdsEndpoint` parameter.
    pub(crate) endpoint: String,
}

/// The SDK's parameter values for `activation` (none when the caller does not know them).
fn activation_values(activation: Option<Activation>) -> Result<Vec<ParameterValue>> {
    let Some(Activation { password, endpoint }) = activation else {
        return Ok(Vec::new());
    };
    [
        (PASSWORD_PARAMETER, password.expose().to_string()),
        (ENDPOINT_PARAMETER, endpoint),
    ]
    .into_iter()
    .map(|(id, value)| {
        ParameterValue::builder()
            .id(id)
            .string_value(value)
            .build()
            .map_err(|e| dp_error("ActivatePipeline", e.to_string()))
    })
    .collect()
}

/// Converts the plain API objects into the SDK's types.
fn sdk_objects(api: &ApiDefinition) -> Result<SdkDefinition> {
    let build = |e: aws_sdk_datapipeline::error::BuildError| {
        dp_error("PutPipelineDefinition", e.to_string())
    };
    let mut objects = Vec::new();
    for object in &api.pipeline_objects {
        let mut fields = Vec::new();
        for field in &object.fields {
            fields.push(
                Field::builder()
                    .key(&field.key)
                    .set_string_value(field.string_value.clone())
                    .set_ref_value(field.ref_value.clone())
                    .build()
                    .map_err(build)?,
            );
        }
        objects.push(
            PipelineObject::builder()
                .id(&object.id)
                .name(&object.name)
                .set_fields(Some(fields))
                .build()
                .map_err(build)?,
        );
    }
    let mut parameters = Vec::new();
    for parameter in &api.parameter_objects {
        let mut attributes = Vec::new();
        for (key, value) in &parameter.attributes {
            attributes.push(
                ParameterAttribute::builder()
                    .key(key)
                    .string_value(value)
                    .build()
                    .map_err(build)?,
            );
        }
        parameters.push(
            ParameterObject::builder()
                .id(&parameter.id)
                .set_attributes(Some(attributes))
                .build()
                .map_err(build)?,
        );
    }
    let mut values = Vec::new();
    for (id, value) in &api.parameter_values {
        values.push(
            ParameterValue::builder()
                .id(id)
                .string_value(value)
                .build()
                .map_err(build)?,
        );
    }
    Ok((objects, parameters, values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::fixtures::built;

    #[test]
    fn the_sdk_request_carries_lists_as_repeated_keys_and_values() {
        let json = r#"{"objects": [{"id": "Default", "scheduleType": "ondemand"}],
            "parameters": [{"id": "myList", "type": "String", "isArray": "true",
                            "allowedValues": ["a", "b"]}],
            "values": {"myList": ["a", "b"], "myOne": "x"}}"#;
        let def = Definition::from_json(json).unwrap();
        let (objects, parameters, values) = sdk_objects(&to_api_objects(&def)).unwrap();
        assert_eq!(objects[0].name(), "Default", "name defaults to id");
        let field = &objects[0].fields()[0];
        assert_eq!(
            (field.key(), field.string_value(), field.ref_value()),
            ("scheduleType", Some("ondemand"), None)
        );
        let values: Vec<(&str, &str)> = values.iter().map(|v| (v.id(), v.string_value())).collect();
        assert_eq!(values, [("myList", "a"), ("myList", "b"), ("myOne", "x")]);
        let attributes: Vec<(&str, &str)> = parameters[0]
            .attributes()
            .iter()
            .map(|a| (a.key(), a.string_value()))
            .collect();
        assert_eq!(
            attributes,
            [
                ("allowedValues", "a"),
                ("allowedValues", "b"),
                ("isArray", "true"),
                ("type", "String")
            ]
        );
    }

    #[test]
    fn the_sdk_request_of_the_built_definition_keeps_refs_and_secrets_apart() {
        let (objects, parameters, values) = sdk_objects(&to_api_objects(&built())).unwrap();
        assert_eq!(objects.len(), 7);
        let load = objects.iter().find(|o| o.id() == "LoadActivity").unwrap();
        let runs_on = load.fields().iter().find(|f| f.key() == "runsOn").unwrap();
        assert_eq!(
            (runs_on.string_value(), runs_on.ref_value()),
            (None, Some("Ec2Instance"))
        );
        let rds = objects.iter().find(|o| o.id() == "RdsDatabase").unwrap();
        let password = rds
            .fields()
            .iter()
            .find(|f| f.key() == "*password")
            .unwrap();
        assert_eq!(password.string_value(), Some("#{*myRdsPassword}"));
        for field in objects.iter().flat_map(|o| o.fields()) {
            assert!(
                field.string_value().is_some() != field.ref_value().is_some(),
                "{field:?}"
            );
        }
        let ids: Vec<&str> = parameters.iter().map(|p| p.id()).collect();
        assert_eq!(ids, [ENDPOINT_PARAMETER, PASSWORD_PARAMETER]);
        assert!(values.is_empty());
    }

    #[test]
    fn activation_gives_the_password_and_endpoint_parameters() {
        assert!(activation_values(None).unwrap().is_empty());
        let values = activation_values(Some(Activation {
            password: Secret::new("pw#1"),
            endpoint: "db.example.com".into(),
        }))
        .unwrap();
        let values: Vec<(&str, &str)> = values.iter().map(|v| (v.id(), v.string_value())).collect();
        assert_eq!(
            values,
            [
                ("*myRdsPassword", "pw#1"),
                ("myRdsEndpoint", "db.example.com")
            ]
        );
    }

    #[test]
    fn pending_and_idle_states() {
        let info = |state: Option<&str>| PipelineInfo {
            id: "df-1".into(),
            state: state.map(str::to_string),
            marker: None,
        };
        assert!(info(Some("PENDING")).is_pending() && info(Some("PENDING")).is_idle());
        assert!(!info(Some("SCHEDULED")).is_pending());
        assert!(!info(Some("SCHEDULED")).is_idle());
        assert!(info(Some("FINISHED")).is_idle());
        assert!(!info(None).is_idle(), "an unknown state may be running");
    }
}
