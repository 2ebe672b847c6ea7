//! The AWS Data Pipeline calls of the Lambda's pipeline mode, behind one small trait so the
//! handler's resume logic can be exercised with a failure injected at any step (the tests wrap
//! [`SdkPipelines`] on moto_server). [`SdkPipelines`] is the real client.

use std::future::Future;

use aws_sdk_datapipeline::types::{Field, ParameterObject, ParameterValue, PipelineObject, Tag};

use crate::aws::describe_sdk_error;
use crate::error::{Error, Result};

/// Tag on each pipeline we create: which marker started it.
pub const MARKER_TAG: &str = "stockload:marker";

/// A pipeline as DescribePipelines shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineInfo {
    /// Its id (`df-…`).
    pub id: String,
    /// `@pipelineState`: PENDING until activated, then SCHEDULED, FINISHED, … (None if absent).
    pub state: Option<String>,
    /// The marker that started it (the [`MARKER_TAG`] tag), if any.
    pub marker: Option<String>,
}

impl PipelineInfo {
    /// Created but never activated (a step after CreatePipeline failed).
    pub fn is_pending(&self) -> bool {
        self.state.as_deref() == Some("PENDING")
    }

    /// States in which the pipeline runs nothing and never will without a new activation.
    pub fn is_idle(&self) -> bool {
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

/// Builds the error for a failed Data Pipeline call.
pub fn dp_error(action: impl Into<String>, reason: String) -> Error {
    Error::Aws {
        service: "Data Pipeline",
        action: action.into(),
        reason,
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
                .map_err(|e| dp_error("ListPipelines", describe_sdk_error(&e)))?;
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
                .map_err(|e| dp_error("DescribePipelines", describe_sdk_error(&e)))?;
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
            .map_err(|e| dp_error(format!("CreatePipeline {name}"), describe_sdk_error(&e)))?;
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
            .map_err(|e| {
                dp_error(
                    format!("PutPipelineDefinition {id}"),
                    describe_sdk_error(&e),
                )
            })?;
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
            .map_err(|e| dp_error(format!("ActivatePipeline {id}"), describe_sdk_error(&e)))?;
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<()> {
        self.0
            .delete_pipeline()
            .pipeline_id(id)
            .send()
            .await
            .map_err(|e| dp_error(format!("DeletePipeline {id}"), describe_sdk_error(&e)))?;
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
                .map_err(|e| dp_error(format!("QueryObjects {id}"), describe_sdk_error(&e)))?;
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
                .map_err(|e| dp_error(format!("DescribeObjects {id}"), describe_sdk_error(&e)))?;
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
