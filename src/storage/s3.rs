//! S3 reads and writes for sources, index files and exports, through aws-sdk-s3.

use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
use aws_sdk_s3::types::Object;
use aws_sdk_s3::Client;

use crate::aws::{describe_sdk_error, SdkFailure};
use crate::error::{BoxError, Error, Result};

/// GetObject: the response, `None` when the key does not exist, or the SDK's error.
async fn get_object(
    client: &Client,
    bucket: &str,
    key: &str,
) -> std::result::Result<Option<GetObjectOutput>, SdkFailure<GetObjectError>> {
    match client.get_object().bucket(bucket).key(key).send().await {
        Ok(response) => Ok(Some(response)),
        Err(err) if matches!(err.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// The whole body of a GetObject response.
async fn body(response: GetObjectOutput, bucket: &str, key: &str) -> Result<Vec<u8>> {
    let bytes = response.body.collect().await.map_err(|err| {
        s3_error_with(
            "get",
            bucket,
            key,
            format!("reading the body failed: {err}"),
            err,
        )
    })?;
    Ok(bytes.to_vec())
}

/// Reads a whole object; `Ok(None)` when the key does not exist. A missing bucket is an error.
pub async fn get(client: &Client, bucket: &str, key: &str) -> Result<Option<Vec<u8>>> {
    match get_object(client, bucket, key).await {
        Ok(Some(response)) => Ok(Some(body(response, bucket, key).await?)),
        Ok(None) => Ok(None),
        Err(err) => Err(s3_error("get", bucket, key, err)),
    }
}

/// Opens one listed company file (GetObject, its body not yet read): missing and
/// access-denied objects and objects over `max_bytes` are per-file outcomes (the file is skipped
/// with that reason); anything else — an outage, a missing bucket — fails the run, so a
/// transient fault is retried instead of loading a part.
pub async fn open_listed(
    client: &Client,
    bucket: &str,
    key: &str,
    max_bytes: u64,
) -> Result<super::Opened> {
    use super::Opened;
    let response = match get_object(client, bucket, key).await {
        Ok(Some(response)) => response,
        Ok(None) => return Ok(Opened::Missing),
        Err(err) => {
            let denied = err
                .as_service_error()
                .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
                == Some("AccessDenied");
            if denied {
                return Ok(Opened::Unusable(format!(
                    "cannot read: {}",
                    describe_sdk_error(&err)
                )));
            }
            return Err(s3_error("get", bucket, key, err));
        }
    };
    let size = response.content_length().unwrap_or(0).max(0) as u64;
    if size > max_bytes {
        return Ok(Opened::Unusable(super::too_large(size, max_bytes)));
    }
    Ok(Opened::File(super::OpenFile {
        size,
        body: super::Body::S3(Box::new(ListedBody {
            response,
            bucket: bucket.to_string(),
            key: key.to_string(),
        })),
    }))
}

/// The unread body of a listed object.
#[derive(Debug)]
pub struct ListedBody {
    response: GetObjectOutput,
    bucket: String,
    key: String,
}

impl ListedBody {
    /// Reads the body into one buffer of the object's `size` (collecting it in segments and
    /// copying them out would hold it twice).
    pub async fn read(self, size: u64) -> Result<super::FileRead> {
        let ListedBody {
            mut response,
            bucket,
            key,
        } = self;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = response.body.next().await {
            let chunk = chunk.map_err(|err| {
                s3_error_with(
                    "get",
                    &bucket,
                    &key,
                    format!("reading the body failed: {err}"),
                    err,
                )
            })?;
            if (bytes.len() + chunk.len()) as u64 > super::MAX_FILE_BYTES {
                let grown = (bytes.len() + chunk.len()) as u64;
                return Ok(super::FileRead::Unusable(super::too_large(
                    grown,
                    super::MAX_FILE_BYTES,
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(super::FileRead::Bytes(bytes))
    }
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
        .map_err(|err| s3_error("list", bucket, prefix, err))
}

/// Uploads a small object in one request. An `.html` object (a run report) is stored as
/// text/html, so a browser shows it rather than downloading it.
pub async fn put(client: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Result<()> {
    let html = key
        .ends_with(".html")
        .then(|| "text/html; charset=utf-8".to_string());
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .set_content_type(html)
        .body(body.into())
        .send()
        .await
        .map(|_| ())
        .map_err(|err| s3_error("put", bucket, key, err))
}

/// Every object under `prefix`, all pages (ListObjectsV2; nothing is read).
async fn objects(client: &Client, bucket: &str, prefix: &str) -> Result<Vec<Object>> {
    let mut found = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| s3_error("list", bucket, prefix, err))?;
        found.extend(page.contents.unwrap_or_default());
    }
    Ok(found)
}

/// Every object under `prefix` (all pages) whose key ends with `suffix`, with its ETag and
/// LastModified.
pub async fn list(
    client: &Client,
    bucket: &str,
    prefix: &str,
    suffix: &str,
) -> Result<Vec<super::Listed>> {
    let found = objects(client, bucket, prefix).await?;
    Ok(found
        .iter()
        .filter_map(|o| {
            let key = o.key().filter(|k| k.ends_with(suffix))?;
            Some(super::Listed {
                location: super::Location::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                },
                version: super::Version::S3 {
                    etag: o.e_tag().map(str::to_string),
                    last_modified: o.last_modified().map(|t| t.to_string()).unwrap_or_default(),
                },
            })
        })
        .collect())
}

/// The size in bytes of every object under `prefix` (all pages), by key: ListObjectsV2 only, no
/// object is read (the Lambda's auto mode sizes a batch this way before deciding where to load it).
pub async fn sizes(
    client: &Client,
    bucket: &str,
    prefix: &str,
) -> Result<std::collections::HashMap<String, u64>> {
    let found = objects(client, bucket, prefix).await?;
    Ok(found
        .iter()
        .filter_map(|o| Some((o.key()?.to_string(), o.size().unwrap_or(0).max(0) as u64)))
        .collect())
}

/// Builds the S3 error for `action` on `s3://bucket/key` from the SDK's error: its short
/// description ([`describe_sdk_error`]) for users, the error itself kept as the source.
pub fn s3_error<E>(action: &'static str, bucket: &str, key: &str, err: SdkFailure<E>) -> Error
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    s3_error_with(action, bucket, key, describe_sdk_error(&err), err)
}

/// Builds the S3 error for `action` on `s3://bucket/key` with `reason` for users and `source`.
pub fn s3_error_with(
    action: &'static str,
    bucket: &str,
    key: &str,
    reason: String,
    source: impl Into<BoxError>,
) -> Error {
    Error::S3 {
        action,
        bucket: bucket.to_string(),
        key: key.to_string(),
        reason,
        source: Some(source.into()),
    }
}

/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_SIZE: usize = 8 * 1024 * 1024;

/// An upload fed chunk by chunk: one PutObject when the whole body fits in one part, otherwise a
/// multipart upload with parts sent as they fill (aborted on error, so no orphaned parts remain).
pub struct Upload<'c> {
    client: &'c Client,
    bucket: String,
    key: String,
    buffer: Vec<u8>,
    multipart: Option<(String, Vec<aws_sdk_s3::types::CompletedPart>)>,
}

impl<'c> Upload<'c> {
    /// Starts an upload to `s3://bucket/key` (nothing is sent until a part fills or `finish`).
    pub fn new(client: &'c Client, bucket: &str, key: &str) -> Upload<'c> {
        Upload {
            client,
            bucket: bucket.to_string(),
            key: key.to_string(),
            buffer: Vec::with_capacity(PART_SIZE),
            multipart: None,
        }
    }

    /// Adds bytes; sends a part whenever one is full.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.buffer.extend_from_slice(bytes);
        while self.buffer.len() >= PART_SIZE {
            let rest = self.buffer.split_off(PART_SIZE);
            let part = std::mem::replace(&mut self.buffer, rest);
            if let Err(err) = self.send_part(part).await {
                self.abort().await;
                return Err(err);
            }
        }
        Ok(())
    }

    /// Sends what is left and completes the object.
    pub async fn finish(mut self) -> Result<()> {
        if self.multipart.is_none() {
            let body = std::mem::take(&mut self.buffer);
            return put(self.client, &self.bucket, &self.key, body).await;
        }
        let last = std::mem::take(&mut self.buffer);
        if !last.is_empty() {
            if let Err(err) = self.send_part(last).await {
                self.abort().await;
                return Err(err);
            }
        }
        let Some((upload_id, parts)) = self.multipart.take() else {
            return Ok(());
        };
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&upload_id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(err) = completed {
            self.multipart = Some((upload_id, Vec::new()));
            self.abort().await;
            return Err(s3_error("complete upload", &self.bucket, &self.key, err));
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Vec<u8>) -> Result<()> {
        if self.multipart.is_none() {
            let created = self
                .client
                .create_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .send()
                .await
                .map_err(|e| s3_error("start upload", &self.bucket, &self.key, e))?;
            let upload_id = created.upload_id().unwrap_or_default().to_string();
            self.multipart = Some((upload_id, Vec::new()));
        }
        let Some((upload_id, parts)) = self.multipart.as_mut() else {
            return Ok(());
        };
        let number = parts.len() as i32 + 1;
        let uploaded = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id.as_str())
            .part_number(number)
            .body(part.into())
            .send()
            .await
            .map_err(|e| s3_error("upload part", &self.bucket, &self.key, e))?;
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(uploaded.e_tag().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    async fn abort(&mut self) {
        if let Some((upload_id, _)) = self.multipart.take() {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id)
                .send()
                .await;
        }
    }
}
