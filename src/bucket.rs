//! The source bucket's layout (`CompanyNames/`, `Logs/`, `Output/`, `Scripts/`, `Stocks/`) and the
//! files stockload keeps in it: the embedded SQL scripts and the Data Pipeline definition.

use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};

use crate::aws::{describe_sdk_error, Aws};
use crate::error::Result;
use crate::source::s3::{put, s3_error};
use crate::transform;

/// The folders of the source bucket.
pub const FOLDERS: [&str; 5] = ["CompanyNames/", "Logs/", "Output/", "Scripts/", "Stocks/"];

/// Creates the bucket when it does not exist, the folder keys, and uploads the SQL scripts.
/// Safe to run again: existing objects are simply rewritten with the same content.
pub async fn init(aws: &Aws, bucket: &str) -> Result<Vec<String>> {
    let client = &aws.s3;
    let mut done = Vec::new();
    if client.head_bucket().bucket(bucket).send().await.is_err() {
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
                let reason = describe_sdk_error(&err);
                // Someone else's bucket, or ours created meanwhile: only the latter is fine.
                if !reason.contains("BucketAlreadyOwnedByYou") {
                    return Err(s3_error("create bucket", bucket, "", reason));
                }
            }
        }
    }
    for folder in FOLDERS {
        put(client, bucket, folder, Vec::new()).await?;
        done.push(format!("s3://{bucket}/{folder}"));
    }
    done.extend(upload_scripts(aws, bucket).await?);
    Ok(done)
}

/// Uploads every embedded SQL script to `Scripts/` (what a SqlActivity's scriptUri points at).
pub async fn upload_scripts(aws: &Aws, bucket: &str) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for name in transform::list() {
        let text = transform::embedded(name).unwrap_or_default();
        let key = format!("Scripts/{name}");
        put(&aws.s3, bucket, &key, text.as_bytes().to_vec()).await?;
        done.push(format!("s3://{bucket}/{key}"));
    }
    Ok(done)
}
