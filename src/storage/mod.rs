//! Local folders and S3 prefixes behind one type, [`Storage`]: read (company files, the index),
//! list (watch's markers) and write (bucket files, the definition, the streamed export), so the rest
//! of the code never matches on which.

pub mod index;
#[cfg(feature = "aws")]
pub mod s3;

use std::fmt;
use std::path::{Path, PathBuf};

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
            Location::S3 { bucket, key } => Location::S3 {
                bucket: bucket.clone(),
                key: join_key(key, name),
            },
        }
    }

    /// True for S3 locations.
    pub fn is_s3(&self) -> bool {
        matches!(self, Location::S3 { .. })
    }
}

/// The key of `name` under the S3 prefix `key`.
fn join_key(key: &str, name: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        format!("{key}{name}")
    } else {
        format!("{key}/{name}")
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

/// A listed company file, opened: its size is known before its bytes are read, so the reader
/// can wait for room in its memory budget first.
#[derive(Debug)]
pub enum Opened {
    /// Open, ready to read.
    File(OpenFile),
    /// No such file.
    Missing,
    /// It exists but is not read: the reason (a directory, a special file, a link out of the
    /// folder, too large, unreadable).
    Unusable(String),
}

impl Opened {
    /// Reads the whole file (the other outcomes as they are).
    pub async fn read(self) -> Result<FileRead> {
        match self {
            Opened::File(file) => file.read().await,
            Opened::Missing => Ok(FileRead::Missing),
            Opened::Unusable(reason) => Ok(FileRead::Unusable(reason)),
        }
    }
}

/// An open company file, not yet read.
#[derive(Debug)]
pub struct OpenFile {
    size: u64,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Local(tokio::fs::File),
    #[cfg(feature = "aws")]
    S3(Box<s3::ListedBody>),
}

impl OpenFile {
    /// Its size in bytes (at most [`MAX_FILE_BYTES`]).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads it whole, into one buffer of its size.
    pub async fn read(self) -> Result<FileRead> {
        match self.body {
            Body::Local(file) => Ok(read_local_body(file, self.size).await),
            #[cfg(feature = "aws")]
            Body::S3(body) => body.read(self.size).await,
        }
    }
}

/// Why a listed name is not read when it leads out of the source folder. It names neither the
/// target nor anything in it: the target is not the user's to show.
pub const LINK_OUT_OF_FOLDER: &str =
    "is a symbolic link to a file outside the source folder: not read (--follow-symlinks reads it)";

/// Where a listed local name leads: the path to open, or why it is not read. Links (and chains
/// of links) are resolved; unless `follow_symlinks`, the file they end at must be inside the
/// folder (both compared canonical).
fn resolve_local(
    folder: &Path,
    name: &str,
    follow_symlinks: bool,
) -> std::result::Result<PathBuf, Opened> {
    let path = folder.join(name);
    let resolved = match std::fs::canonicalize(&path) {
        Ok(resolved) => resolved,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(Opened::Missing),
        Err(err) => return Err(Opened::Unusable(format!("cannot open: {err}"))),
    };
    if follow_symlinks {
        return Ok(path);
    }
    let inside = std::fs::canonicalize(folder).is_ok_and(|folder| resolved.starts_with(folder));
    if inside {
        Ok(resolved)
    } else {
        Err(Opened::Unusable(LINK_OUT_OF_FOLDER.to_string()))
    }
}

/// Opens a local company file without ever blocking on what is not a regular file: opened with
/// O_NONBLOCK (a FIFO must not wait for a writer), then checked on the open handle (no race
/// between checking and reading). Unless `follow_symlinks`, a name that leads out of `folder` is
/// not opened, and the file opened is checked again to be inside (a link swapped in between).
async fn open_local_listed(
    folder: &Path,
    name: &str,
    follow_symlinks: bool,
    max_bytes: u64,
) -> Opened {
    use std::os::unix::fs::FileTypeExt;
    let (folder_path, name_owned) = (folder.to_path_buf(), name.to_string());
    let resolved = tokio::task::spawn_blocking(move || {
        resolve_local(&folder_path, &name_owned, follow_symlinks)
    })
    .await;
    let path = match resolved {
        Ok(Ok(path)) => path,
        Ok(Err(opened)) => return opened,
        Err(err) => return Opened::Unusable(format!("cannot open: {err}")),
    };
    let mut options = tokio::fs::OpenOptions::new();
    let no_follow = if follow_symlinks { 0 } else { libc::O_NOFOLLOW };
    options
        .read(true)
        .custom_flags(libc::O_NONBLOCK | no_follow);
    let file = match options.open(&path).await {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Opened::Missing,
        Err(err) => return Opened::Unusable(format!("cannot open: {err}")),
    };
    if !follow_symlinks && !opened_inside(&file, folder) {
        return Opened::Unusable(LINK_OUT_OF_FOLDER.to_string());
    }
    let meta = match file.metadata().await {
        Ok(meta) => meta,
        Err(err) => return Opened::Unusable(format!("cannot read its metadata: {err}")),
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
        return Opened::Unusable(format!("is {what}, not a regular file"));
    }
    if meta.len() > max_bytes {
        return Opened::Unusable(too_large(meta.len(), max_bytes));
    }
    Opened::File(OpenFile {
        size: meta.len(),
        body: Body::Local(file),
    })
}

/// Whether the open file is inside `folder`, as the kernel names it (`/proc/self/fd`); true
/// where that cannot be asked (the name was checked before opening).
fn opened_inside(file: &tokio::fs::File, folder: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", file.as_raw_fd());
    match (std::fs::read_link(link), std::fs::canonicalize(folder)) {
        (Ok(real), Ok(folder)) => real.starts_with(folder),
        _ => true,
    }
}

/// Reads an open local file whole; a file that grew past `size` since it was opened is read up
/// to the cap and then refused.
async fn read_local_body(file: tokio::fs::File, size: u64) -> FileRead {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::with_capacity(size as usize);
    if let Err(err) = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).await {
        return FileRead::Unusable(format!("cannot read: {err}"));
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return FileRead::Unusable(too_large(bytes.len() as u64, MAX_FILE_BYTES));
    }
    FileRead::Bytes(bytes)
}

/// One file found by [`Storage::list`], with what tells two versions of it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Where it is (local paths canonical).
    pub location: Location,
    /// Which version of it.
    pub version: Version,
}

/// What identifies one version of a listed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// A local file: size and modification time (nanoseconds since the epoch).
    Local {
        /// Bytes.
        size: u64,
        /// Modification time.
        modified_nanos: u128,
    },
    /// An S3 object: its ETag and LastModified as S3 lists them.
    S3 {
        /// ETag (quotes as S3 sends them).
        etag: Option<String>,
        /// LastModified, as text.
        last_modified: String,
    },
}

/// Every file under a local folder (recursively) whose name ends with `suffix`.
fn list_local(dir: &std::path::Path, suffix: &str) -> Result<Vec<Listed>> {
    use std::time::UNIX_EPOCH;
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| Error::io("cannot list", &folder, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                let modified_nanos = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                found.push(Listed {
                    location: Location::Local(path),
                    version: Version::Local {
                        size: meta.len(),
                        modified_nanos,
                    },
                });
            }
        }
    }
    Ok(found)
}

/// A file being written by [`Storage::create`]: a local file under a temporary name, renamed when
/// complete (a failed write never leaves a truncated file), or an S3 object (multipart when large).
pub enum Sink<'c> {
    /// A local file.
    File {
        /// The open temporary file.
        file: tokio::fs::File,
        /// Its temporary name.
        partial: PathBuf,
        /// The name it gets when complete.
        path: PathBuf,
    },
    /// An S3 object.
    #[cfg(feature = "aws")]
    S3(s3::Upload<'c>),
    /// Keeps the lifetime in builds without S3.
    #[cfg(not(feature = "aws"))]
    #[doc(hidden)]
    Never(std::marker::PhantomData<&'c ()>),
}

impl Sink<'_> {
    /// Appends bytes.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            Sink::File { file, partial, .. } => file
                .write_all(bytes)
                .await
                .map_err(|e| Error::io("cannot write", partial.as_path(), e)),
            #[cfg(feature = "aws")]
            Sink::S3(upload) => upload.write(bytes).await,
            #[cfg(not(feature = "aws"))]
            Sink::Never(_) => Ok(()),
        }
    }

    /// Completes the file: renamed into place, or the upload completed.
    pub async fn finish(self) -> Result<()> {
        use tokio::io::AsyncWriteExt;
        match self {
            Sink::File {
                mut file,
                partial,
                path,
            } => {
                file.flush()
                    .await
                    .map_err(|e| Error::io("cannot write", partial.as_path(), e))?;
                drop(file);
                tokio::fs::rename(&partial, &path)
                    .await
                    .map_err(|e| Error::io("cannot rename into place", path, e))
            }
            #[cfg(feature = "aws")]
            Sink::S3(upload) => upload.finish().await,
            #[cfg(not(feature = "aws"))]
            Sink::Never(_) => Ok(()),
        }
    }

    /// Gives up: the temporary file is removed (an unfinished S3 upload is aborted when dropped).
    pub async fn discard(self) {
        if let Sink::File { partial, .. } = self {
            let _ = tokio::fs::remove_file(&partial).await;
        }
    }
}

/// The one storage type: reads, lists and writes files in local folders and S3. Cheap to clone;
/// the S3 client is built only when an `s3://` location is used, so purely local runs need no AWS
/// configuration at all.
#[derive(Clone, Default)]
pub struct Storage {
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    aws: Option<Aws>,
}

impl Storage {
    /// A reader for local files, and for S3 when `aws` is given.
    pub fn new(aws: Option<Aws>) -> Storage {
        Storage { aws }
    }

    /// Reads a whole file; `Ok(None)` when it does not exist.
    pub async fn read(&self, location: &Location) -> Result<Option<Vec<u8>>> {
        match location {
            Location::Local(path) => match tokio::fs::read(path).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(Error::io("cannot read", path, err)),
            },
            #[cfg(feature = "aws")]
            Location::S3 { bucket, key } => s3::get(self.s3(location)?, bucket, key).await,
            #[cfg(not(feature = "aws"))]
            Location::S3 { .. } => Err(crate::aws::without_aws(&location.to_string())),
        }
    }

    /// Opens one company file listed by the index: `name` in `folder`. Only faults that concern
    /// the whole source (S3 unreachable, a missing bucket) are errors; whatever the entry itself
    /// is, the answer is an open file, `Missing` or `Unusable` with the reason. A local name that
    /// leads out of the folder (a symbolic link) is `Unusable` unless `follow_symlinks`.
    pub async fn open_listed(
        &self,
        folder: &Location,
        name: &str,
        follow_symlinks: bool,
    ) -> Result<Opened> {
        match folder {
            Location::Local(dir) => {
                Ok(open_local_listed(dir, name, follow_symlinks, MAX_FILE_BYTES).await)
            }
            #[cfg(not(feature = "aws"))]
            Location::S3 { .. } => Err(crate::aws::without_aws(&folder.to_string())),
            #[cfg(feature = "aws")]
            Location::S3 { bucket, key } => {
                let key = join_key(key, name);
                s3::open_listed(self.s3(folder)?, bucket, &key, MAX_FILE_BYTES).await
            }
        }
    }

    /// Reads one listed company file whole: [`Storage::open_listed`], then its bytes.
    pub async fn read_listed(
        &self,
        folder: &Location,
        name: &str,
        follow_symlinks: bool,
    ) -> Result<FileRead> {
        self.open_listed(folder, name, follow_symlinks)
            .await?
            .read()
            .await
    }

    /// Every file under a folder or prefix (recursively) whose name ends with `suffix`.
    pub async fn list(&self, location: &Location, suffix: &str) -> Result<Vec<Listed>> {
        match location {
            Location::Local(dir) => {
                let (dir, suffix) = (dir.clone(), suffix.to_string());
                tokio::task::spawn_blocking(move || list_local(&dir, &suffix))
                    .await
                    .map_err(|e| Error::task(format!("listing {location}"), e))?
            }
            #[cfg(feature = "aws")]
            Location::S3 { bucket, key } => s3::list(self.s3(location)?, bucket, key, suffix).await,
            #[cfg(not(feature = "aws"))]
            Location::S3 { .. } => Err(crate::aws::without_aws(&location.to_string())),
        }
    }

    /// The size in bytes of every file directly in a folder or under a prefix, by location (as
    /// [`Location::join`] names them): a listing only, nothing is read.
    pub async fn sizes(&self, folder: &Location) -> Result<std::collections::HashMap<String, u64>> {
        match folder {
            Location::Local(dir) => {
                let entries =
                    std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
                Ok(entries
                    .flatten()
                    .filter_map(|entry| {
                        let meta = entry.metadata().ok().filter(|m| m.is_file())?;
                        let location = Location::Local(dir.join(entry.file_name()));
                        Some((location.to_string(), meta.len()))
                    })
                    .collect())
            }
            #[cfg(feature = "aws")]
            Location::S3 { bucket, key } => Ok(s3::sizes(self.s3(folder)?, bucket, key)
                .await?
                .into_iter()
                .map(|(key, size)| (format!("s3://{bucket}/{key}"), size))
                .collect()),
            #[cfg(not(feature = "aws"))]
            Location::S3 { .. } => Err(crate::aws::without_aws(&folder.to_string())),
        }
    }

    /// Writes a whole (small) file: a local file (folders created) or an S3 object.
    pub async fn write(&self, location: &Location, bytes: Vec<u8>) -> Result<()> {
        match location {
            Location::Local(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| Error::io("cannot create", parent, e))?;
                }
                tokio::fs::write(path, bytes)
                    .await
                    .map_err(|e| Error::io("cannot write", path, e))
            }
            #[cfg(feature = "aws")]
            Location::S3 { bucket, key } => s3::put(self.s3(location)?, bucket, key, bytes).await,
            #[cfg(not(feature = "aws"))]
            Location::S3 { .. } => Err(crate::aws::without_aws(&location.to_string())),
        }
    }

    /// Starts writing a file of any size; [`Sink::finish`] completes it.
    pub async fn create(&self, location: &Location) -> Result<Sink<'_>> {
        match location {
            Location::Local(path) => {
                let mut partial = path.clone().into_os_string();
                partial.push(".partial");
                let partial = PathBuf::from(partial);
                let file = tokio::fs::File::create(&partial)
                    .await
                    .map_err(|e| Error::io("cannot create", &partial, e))?;
                Ok(Sink::File {
                    file,
                    partial,
                    path: path.clone(),
                })
            }
            #[cfg(feature = "aws")]
            Location::S3 { bucket, key } => {
                Ok(Sink::S3(s3::Upload::new(self.s3(location)?, bucket, key)))
            }
            #[cfg(not(feature = "aws"))]
            Location::S3 { .. } => Err(crate::aws::without_aws(&location.to_string())),
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
            #[cfg(feature = "aws")]
            Location::S3 { bucket, key } => s3::check_prefix(self.s3(location)?, bucket, key).await,
            #[cfg(not(feature = "aws"))]
            Location::S3 { .. } => Err(crate::aws::without_aws(&location.to_string())),
        }
    }

    /// The S3 client, or a configuration error naming the location that needed it.
    #[cfg(feature = "aws")]
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

    #[tokio::test]
    async fn local_write_list_and_create_go_through_one_storage() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::new(None);
        let root = Location::Local(dir.path().to_path_buf());
        storage
            .write(&root.join("day1/.SUCCESS"), b"x".to_vec())
            .await
            .unwrap();
        storage
            .write(&root.join("other.txt"), Vec::new())
            .await
            .unwrap();
        let listed = storage.list(&root, ".SUCCESS").await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(matches!(listed[0].version, Version::Local { size: 1, .. }));

        let out = root.join("export.csv");
        let mut sink = storage.create(&out).await.unwrap();
        sink.write(b"a,b\n").await.unwrap();
        assert!(dir.path().join("export.csv.partial").exists());
        sink.finish().await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("export.csv")).unwrap(),
            b"a,b\n"
        );
        assert!(!dir.path().join("export.csv.partial").exists());

        let sink = storage.create(&root.join("gone.csv")).await.unwrap();
        sink.discard().await;
        assert!(!dir.path().join("gone.csv.partial").exists());
        assert!(!dir.path().join("gone.csv").exists());
    }

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
