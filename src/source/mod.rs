//! Where a batch's bytes come from: a local folder or an S3 prefix, behind one type, so the rest of
//! the pipeline never knows which.

pub mod index;
pub mod s3;

use std::fmt;
use std::path::PathBuf;

use crate::aws::Aws;
use crate::error::{Error, Result};

/// A file or folder, local or in S3 (`s3://bucket/key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A path on this machine.
    Local(PathBuf),
    /// An S3 object or prefix.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key, or prefix for a folder (may be empty).
        key: String,
    },
}

impl Location {
    /// Parses a user-given location: `s3://bucket/key` or a local path.
    pub fn parse(text: &str) -> Result<Location> {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(Error::Config(format!(
                        "{text:?} names no bucket: write s3://BUCKET/KEY"
                    )));
                }
                Ok(Location::S3 {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                })
            }
            None if text.is_empty() => Err(Error::Config("an empty path was given".into())),
            None => Ok(Location::Local(PathBuf::from(text))),
        }
    }

    /// The location of `name` inside this folder or prefix.
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Local(dir) => Location::Local(dir.join(name)),
            Location::S3 { bucket, key } => {
                let key = if key.is_empty() || key.ends_with('/') {
                    format!("{key}{name}")
                } else {
                    format!("{key}/{name}")
                };
                Location::S3 {
                    bucket: bucket.clone(),
                    key,
                }
            }
        }
    }

    /// True for S3 locations.
    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
        }
    }
}

/// Reads files from local disk or S3. Cheap to clone; the S3 client is built only when an
/// `s3://` location is used, so purely local runs need no AWS configuration at all.
#[derive(Clone, Default)]
pub struct Reader {
    aws: Option<Aws>,
}

impl Reader {
    /// A reader for local files, and for S3 when `aws` is given.
    pub fn new(aws: Option<Aws>) -> Reader {
        Reader { aws }
    }

    /// Reads a whole file; `Ok(None)` when it does not exist.
    pub async fn read(&self, location: &Location) -> Result<Option<Vec<u8>>> {
        match location {
            Location::Local(path) => match tokio::fs::read(path).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(Error::io("cannot read", path, err)),
            },
            Location::S3 { bucket, key } => s3::get(self.s3(location)?, bucket, key).await,
        }
    }

    /// Reads a file that must exist (the companies index, a definition).
    pub async fn read_required(&self, location: &Location) -> Result<Vec<u8>> {
        self.read(location).await?.ok_or_else(|| match location {
            Location::Local(path) => Error::io(
                "cannot read",
                path,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ),
            Location::S3 { bucket, key } => Error::S3 {
                action: "get",
                bucket: bucket.clone(),
                key: key.clone(),
                reason: "NoSuchKey: the object does not exist".into(),
            },
        })
    }

    /// Checks that a source folder or prefix can be read before a run starts, so a wrong path
    /// or a missing bucket fails the run up front instead of turning every file into a skip.
    pub async fn check_folder(&self, location: &Location) -> Result<()> {
        match location {
            Location::Local(path) => match tokio::fs::metadata(path).await {
                Ok(meta) if meta.is_dir() => Ok(()),
                Ok(_) => Err(Error::Config(format!(
                    "source {} is not a folder",
                    path.display()
                ))),
                Err(err) => Err(Error::io("cannot open source folder", path, err)),
            },
            Location::S3 { bucket, key } => s3::check_prefix(self.s3(location)?, bucket, key).await,
        }
    }

    /// The S3 client, or a configuration error naming the location that needed it.
    pub fn s3(&self, location: &Location) -> Result<&aws_sdk_s3::Client> {
        self.aws.as_ref().map(|aws| &aws.s3).ok_or_else(|| {
            Error::Config(format!(
                "{location} is in S3 but no AWS configuration was loaded"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_joins_locations() {
        let s3 = Location::parse("s3://bucket/Stocks").unwrap();
        assert_eq!(s3.join("A.csv").to_string(), "s3://bucket/Stocks/A.csv");
        let s3 = Location::parse("s3://bucket/Stocks/").unwrap();
        assert_eq!(s3.join("A.csv").to_string(), "s3://bucket/Stocks/A.csv");
        let root = Location::parse("s3://bucket").unwrap();
        assert_eq!(root.join("A.csv").to_string(), "s3://bucket/A.csv");
        assert!(Location::parse("s3:///key").is_err());
        let local = Location::parse("data/Stocks").unwrap();
        assert_eq!(
            local.join("A.csv"),
            Location::Local("data/Stocks/A.csv".into())
        );
    }
}
