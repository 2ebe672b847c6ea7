//! The source bucket's layout (`CompanyNames/`, `Logs/`, `Output/`, `Scripts/`, `Stocks/`) and the
//! files stockload keeps in it: the embedded SQL scripts and the Data Pipeline definition.

use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::operation::head_bucket::HeadBucketError;
use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use crate::aws::Aws;
use crate::error::Result;
use crate::storage::s3::{s3_error, s3_error_with};
use crate::storage::{Location, Storage};
use crate::transform;

/// The folders of the source bucket.
pub const FOLDERS: [&str; 5] = ["CompanyNames/", "Logs/", "Output/", "Scripts/", "Stocks/"];

/// Creates the bucket when it does not exist, the folder keys, and uploads the SQL scripts.
/// Safe to run again: existing objects are simply rewritten with the same content.
pub async fn init(aws: &Aws, bucket: &str) -> Result<Vec<String>> {
    let client = &aws.s3;
    let mut done = Vec::new();
    // Only a bucket that does not exist is created; AccessDenied, a timeout or an outage is an
    // error to report, not a reason to try creating someone else's bucket.
    let missing = match client.head_bucket().bucket(bucket).send().await {
        Ok(_) => false,
        Err(err) => match err.as_service_error() {
            Some(HeadBucketError::NotFound(_)) => true,
            _ => return Err(s3_error("head bucket", bucket, "", err)),
        },
    };
    if missing {
        let mut create = client.create_bucket().bucket(bucket);
        if let Some(region) = aws.config.region().map(|r| r.as_ref().to_string()) {
            if region != "us-east-1" {
                create = create.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region.as_str()))
                        .build(),
                );
            }
        }
        match create.send().await {
            Ok(_) => done.push(format!("created bucket s3://{bucket}")),
            Err(err) => {
                // Someone else's bucket, or ours created meanwhile: only the latter is fine.
                if !matches!(
                    err.as_service_error(),
                    Some(CreateBucketError::BucketAlreadyOwnedByYou(_))
                ) {
                    return Err(s3_error("create bucket", bucket, "", err));
                }
            }
        }
    }
    let storage = Storage::new(Some(aws.clone()));
    for folder in FOLDERS {
        storage.write(&object(bucket, folder), Vec::new()).await?;
        done.push(format!("s3://{bucket}/{folder}"));
    }
    done.extend(upload_scripts(aws, bucket).await?);
    Ok(done)
}

/// Uploads every embedded SQL script to `Scripts/` (what a SqlActivity's scriptUri points at).
pub async fn upload_scripts(aws: &Aws, bucket: &str) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let storage = Storage::new(Some(aws.clone()));
    for name in transform::list() {
        let text = transform::embedded(name).unwrap_or_default();
        let key = format!("Scripts/{name}");
        storage
            .write(&object(bucket, &key), text.as_bytes().to_vec())
            .await?;
        done.push(format!("s3://{bucket}/{key}"));
    }
    Ok(done)
}

fn object(bucket: &str, key: &str) -> Location {
    Location::S3 {
        bucket: bucket.to_string(),
        key: key.to_string(),
    }
}

/// Id of the notification rule `notify_queue` manages.
pub const NOTIFY_RULE_ID: &str = "stockload-success-marker";

/// Makes the bucket notify the SQS queue `queue_arn` whenever an object ending in `.SUCCESS` is
/// created. Other notification rules of the bucket are kept; ours is replaced. (The queue's policy
/// must allow s3.amazonaws.com to SendMessage from this bucket; deploy/ sets that up.)
pub async fn notify_queue(aws: &Aws, bucket: &str, queue_arn: &str) -> Result<()> {
    use aws_sdk_s3::types::{
        Event, FilterRule, FilterRuleName, NotificationConfiguration,
        NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter,
    };
    let client = &aws.s3;
    let current = match client
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(current) => current,
        // A 200 whose body the SDK cannot read (seen with S3 emulators): there is nothing we can
        // keep, so only our rule is set. Any real error (AccessDenied, NoSuchBucket) stops here.
        Err(aws_sdk_s3::error::SdkError::ServiceError(e)) if e.raw().status().as_u16() == 200 => {
            tracing::warn!(
                "could not read the bucket's current notification rules; setting only ours"
            );
            aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput::builder().build()
        }
        Err(e) => return Err(s3_error("get notification configuration", bucket, "", e)),
    };
    let ours = QueueConfiguration::builder()
        .id(NOTIFY_RULE_ID)
        .queue_arn(queue_arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .filter(
            NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(
                            FilterRule::builder()
                                .name(FilterRuleName::Suffix)
                                .value(crate::trigger::MARKER_SUFFIX)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
        .map_err(|e| {
            s3_error_with(
                "put notification configuration",
                bucket,
                "",
                e.to_string(),
                e,
            )
        })?;
    let mut queues: Vec<QueueConfiguration> = current
        .queue_configurations()
        .iter()
        .filter(|q| q.id() != Some(NOTIFY_RULE_ID))
        .cloned()
        .collect();
    queues.push(ours);
    let configuration = NotificationConfiguration::builder()
        .set_queue_configurations(Some(queues))
        .set_topic_configurations(Some(current.topic_configurations().to_vec()))
        .set_lambda_function_configurations(Some(current.lambda_function_configurations().to_vec()))
        .set_event_bridge_configuration(current.event_bridge_configuration().cloned())
        .build();
    client
        .put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(configuration)
        .send()
        .await
        .map_err(|e| s3_error("put notification configuration", bucket, "", e))?;
    Ok(())
}
