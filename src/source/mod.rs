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

/// Largest company file a run reads (real ones are well under 1 MB); a larger one is skipped with
/// its size as the reason, so one stray file cannot exhaust memory.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// What reading one listed company file gave.
#[derive(Debug)]
pub enum FileRead {
    /// Its whole content.
    Bytes(Vec<u8>),
    /// No such file.
    Missing,
    /// It exists but cannot be a company file: the reason (a directory, a special file, too
    /// large, unreadable).
    Unusable(String),
}

fn too_large(size: u64, max: u64) -> String {
    format!(
        "file is {:.1} MiB, larger than the {} MiB a company file may have",
        size as f64 / 1048576.0,
        max / 1048576
    )
}

/// Reads a local company file without ever blocking on what is not a regular file: opened with
/// O_NONBLOCK (a FIFO must not wait for a writer), then checked on the open handle (no race
/// between checking and reading).
async fn read_local_listed(path: &std::path::Path, max_bytes: u64) -> FileRead {
    use std::os::unix::fs::FileTypeExt;
    use tokio::io::AsyncReadExt;
    let mut options = tokio::fs::OpenOptions::new();
    options.read(true).custom_flags(libc::O_NONBLOCK);
    let file = match options.open(path).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return FileRead::Missing,
        Err(err) => return FileRead::Unusable(format!("cannot open: {err}")),
    };
    let meta = match file.metadata().await {
        Ok(meta) => meta,
        Err(err) => return FileRead::Unusable(format!("cannot read its metadata: {err}")),
    };
    let kind = meta.file_type();
    let what = if kind.is_file() {
        None
    } else if kind.is_dir() {
        Some("a directory")
    } else if kind.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else {
        Some("not a regular file")
    };
    if let Some(what) = what {
        return FileRead::Unusable(format!("is {what}, not a regular file"));
    }
    if meta.len() > max_bytes {
        return FileRead::Unusable(too_large(meta.len(), max_bytes));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    if let Err(err) = file.take(max_bytes + 1).read_to_end(&mut bytes).await {
        return FileRead::Unusable(format!("cannot read: {err}"));
    }
    if bytes.len() as u64 > max_bytes {
        return FileRead::Unusable(too_large(bytes.len() as u64, max_bytes));
    }
    FileRead::Bytes(bytes)
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

    /// Reads one company file listed by the index. Only faults that concern the whole source
    /// (S3 unreachable, a missing bucket) are errors; whatever the entry itself is, the answer is
    /// its bytes, `Missing` or `Unusable` with the reason.
    pub async fn read_listed(&self, location: &Location) -> Result<FileRead> {
        match location {
            Location::Local(path) => Ok(read_local_listed(path, MAX_FILE_BYTES).await),
            Location::S3 { bucket, key } => {
                s3::get_listed(self.s3(location)?, bucket, key, MAX_FILE_BYTES).await
            }
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
                source: None,
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
