//! S3 reads and writes for sources, index files and exports, through aws-sdk-s3.

use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::Client;

use crate::aws::describe_sdk_error;
use crate::error::{Error, Result};

/// Reads a whole object; `Ok(None)` when the key does not exist. A missing bucket is an error.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    let response = match client.get_object().bucket(bucket).key(key).send().await {
        Ok(response) => response,
        Err(err) => {
            if let Some(GetObjectError::NoSuchKey(_)) = err.as_service_error() {
                return Ok(None);
            }
            return Err(s3_error("get", bucket, key, describe_sdk_error(&err)));
        }
    };
    let bytes = response.body.collect().await.map_err(|err| {
        s3_error(
            "get",
            bucket,
            key,
            format!("reading the body failed: {err}"),
        )
    })?;
    Ok(Some(bytes.to_vec()))
}

/// Checks that the bucket exists and can be listed under `prefix`.
pub async fn check_prefix(client: &Client, bucket: &str, prefix: &str) -> Result<()> {
    client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .max_keys(1)
        .send()
        .await
        .map(|_| ())
        .map_err(|err| s3_error("list", bucket, prefix, describe_sdk_error(&err)))
}

/// Uploads a small object in one request.
pub async fn put(client: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .map(|_| ())
        .map_err(|err| s3_error("put", bucket, key, describe_sdk_error(&err)))
}

/// Lists every key under `prefix` (all pages).
pub async fn list(client: &Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page =
            page.map_err(|err| s3_error("list", bucket, prefix, describe_sdk_error(&err)))?;
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
    }
    Ok(keys)
}

/// Builds the S3 error for `action` on `s3://bucket/key`.
pub fn s3_error(action: &'static str, bucket: &str, key: &str, reason: String) -> Error {
    Error::S3 {
        action,
        bucket: bucket.to_string(),
        key: key.to_string(),
        reason,
    }
}
