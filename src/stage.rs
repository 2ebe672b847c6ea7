//! Staging: read and parse the listed files concurrently and stream their rows, in company order,
//! into staging with `COPY … FROM STDIN`. Memory holds at most `concurrency` parsed files.
//!
//! Two forms: [`stage_files`] streams the whole batch into the load transaction's temporary
//! table `stockload_stage`; [`stage_chunks`] (a load into an empty table) streams it from a second
//! session into committed chunks of whole companies, handing each to the load transaction as soon
//! as it is committed, so the transforms of one chunk run while the next is staged.

use std::pin::pin;

use futures::stream::{self, Stream, StreamExt};
use indicatif::ProgressBar;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tokio::sync::mpsc;

use crate::error::{describe_sqlx, Error, Result};
use crate::parse::{parse_file, skipped_file, Outcome, ParsedFile};
use crate::storage::index::Entry;
use crate::storage::{FileRead, Location, Storage};
use crate::transform::{self, Script, ScriptRun};

/// The staging table's columns, in the order `parse` writes them.
const COPY_COLUMNS: &str = "(company_name, line, stock_date, open_value, high_value, low_value, \
    close_value, volume_traded, reject_kind, reject_reason, source_file, raw_text)";

/// A listed file that was not loaded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SkippedFile {
    /// The file.
    pub file: String,
    /// Why.
    pub reason: String,
}

/// What staging counted.
#[derive(Debug, Default, Clone)]
pub struct StageCounts {
    /// Files with at least a header read.
    pub files_loaded: u64,
    /// Files skipped.
    pub skipped: Vec<SkippedFile>,
    /// Data lines read.
    pub rows_read: u64,
    /// Rows staged for loading.
    pub rows_valid: u64,
    /// Rows rejected.
    pub rows_rejected: u64,
}

/// Where each file's rows start in the COPY stream, to turn a COPY error's line into a file line.
struct StreamMap {
    starts: Vec<(u64, usize)>,
    next_line: u64,
}

/// The listed files of a batch, where they are and how to read them.
#[derive(Clone, Copy)]
pub struct Batch<'a> {
    /// Reads the files.
    pub reader: &'a Storage,
    /// The folder or prefix they are in.
    pub source: &'a Location,
    /// The index's entries.
    pub entries: &'a [Entry],
    /// How many files are read and parsed at once.
    pub concurrency: usize,
    /// Counts the files staged.
    pub progress: &'a ProgressBar,
}

/// Streams every listed file into `stockload_stage`. On any error the COPY is aborted.
pub async fn stage_files(conn: &mut PgConnection, batch: Batch<'_>) -> Result<StageCounts> {
    let statement = format!("COPY stockload_stage {COPY_COLUMNS} FROM STDIN");
    let mut counts = StageCounts::default();
    let mut files = pin!(parsed_files(batch).peekable());
    copy_files(conn, &statement, &mut files, None, &mut counts, batch).await?;
    Ok(counts)
}

/// A chunk of the batch, staged and committed: an unlogged table in `stockload_work`.
#[derive(Debug)]
pub struct Chunk {
    /// Its qualified name, `stockload_work.stage_<run>_<n>`.
    pub table: String,
}

/// How the staging session cuts a batch into chunks, and what it runs on each.
#[derive(Debug)]
pub struct Chunking<'a> {
    /// The run the chunks belong to (their names carry it).
    pub run_id: i64,
    /// A chunk ends after the first file that brings it to this many staging rows.
    pub rows: u64,
    /// create_stage.sql: the staging table each chunk is made like.
    pub create: &'a Script,
    /// Run on each chunk (as `stockload_stage`) before it is committed.
    pub per_chunk: &'a [Script],
}

/// Streams every listed file, in company order, into chunks of about `chunk_rows` staging rows
/// that hold whole companies: each is an unlogged table `stockload_work.stage_<run>_<n>` made
/// like `stockload_stage` (create_stage.sql), filled with COPY, read by the per-chunk scripts
/// through a temporary view named `stockload_stage`, committed on `conn` (a session of its own)
/// and sent to `ready`. The receiver drops the chunks; after a failed run [`clear_chunks`] does.
/// Stops early, without error, when `ready` is closed (its receiver failed and reports why).
/// Returns the counts and the per-chunk scripts' total runs.
pub async fn stage_chunks(
    conn: &mut PgConnection,
    batch: Batch<'_>,
    chunking: &Chunking<'_>,
    ready: mpsc::Sender<Chunk>,
) -> Result<(StageCounts, Vec<ScriptRun>)> {
    let Chunking {
        run_id,
        rows: chunk_rows,
        create,
        per_chunk,
    } = *chunking;
    let mut counts = StageCounts::default();
    let mut runs = Vec::new();
    let mut files = pin!(parsed_files(batch).peekable());
    sqlx::query("SELECT set_config('stockload.run_id', $1, false)")
        .bind(run_id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("passing the run id to the staging session", e))?;
    let mut number = 0;
    while files.as_mut().peek().await.is_some() {
        number += 1;
        let table = format!("stockload_work.stage_{run_id}_{number}");
        let mut tx = conn
            .begin()
            .await
            .map_err(|e| Error::database("starting a staging chunk", e))?;
        transform::run_script(&mut tx, create).await?;
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE UNLOGGED TABLE {table} (LIKE stockload_stage) \
             WITH (autovacuum_enabled = false); \
             DROP TABLE stockload_stage; \
             CREATE TEMPORARY VIEW stockload_stage AS SELECT * FROM {table}"
        )))
        .execute(&mut *tx)
        .await
        .map_err(|e| Error::database(format!("creating the staging chunk {table}"), e))?;
        let statement = format!("COPY {table} {COPY_COLUMNS} FROM STDIN");
        copy_files(
            &mut tx,
            &statement,
            &mut files,
            Some(chunk_rows),
            &mut counts,
            batch,
        )
        .await?;
        for script in per_chunk {
            transform::add_run(&mut runs, transform::run_script(&mut tx, script).await?);
        }
        sqlx::raw_sql("DROP VIEW stockload_stage")
            .execute(&mut *tx)
            .await
            .map_err(|e| Error::database("closing a staging chunk", e))?;
        tx.commit()
            .await
            .map_err(|e| Error::database(format!("committing the staging chunk {table}"), e))?;
        if ready.send(Chunk { table }).await.is_err() {
            break;
        }
    }
    Ok((counts, runs))
}

/// Drops the staging chunks and work rows a failed run left behind (clear_work.sql limited to
/// `run_id`).
pub async fn clear_chunks(
    conn: &mut PgConnection,
    script: &Script,
    run_id: i64,
) -> Result<ScriptRun> {
    sqlx::query("SELECT set_config('stockload.clear_run', $1, false)")
        .bind(run_id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("naming the run whose staging chunks to drop", e))?;
    transform::run_script(conn, script).await
}

/// The listed files, read and parsed `concurrency` at a time, in company order: the staged rows
/// arrive sorted by (company_name, stock_date) (each file's rows are in file order, by date in
/// practice), so the transforms' window sort takes PostgreSQL's presorted fast path and the table
/// is written in key order.
fn parsed_files(batch: Batch<'_>) -> impl Stream<Item = Result<(usize, ParsedFile)>> + '_ {
    let Batch {
        reader,
        source,
        entries,
        concurrency,
        ..
    } = batch;
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].company.cmp(&entries[b].company));
    stream::iter(order)
        .map(move |index| read_and_parse(reader, source, &entries[index], index))
        .buffered(concurrency.max(1))
}

/// Runs one `COPY … FROM STDIN` (`statement`) and streams files into it: all of them, or with
/// `chunk_rows` until at least that many rows are sent. Chunks end between files, so they hold
/// whole companies: the index lists each company once (`parse_index`), as one file.
/// On any error the COPY is aborted and the error names the file and line when it can.
async fn copy_files<S>(
    conn: &mut PgConnection,
    statement: &str,
    files: &mut std::pin::Pin<&mut stream::Peekable<S>>,
    chunk_rows: Option<u64>,
    counts: &mut StageCounts,
    place: Batch<'_>,
) -> Result<()>
where
    S: Stream<Item = Result<(usize, ParsedFile)>>,
{
    let mut copy = conn
        .copy_in_raw(statement)
        .await
        .map_err(|e| Error::database("starting COPY into the staging table", e))?;
    let mut map = StreamMap {
        starts: Vec::new(),
        next_line: 1,
    };
    let outcome: Result<()> = async {
        loop {
            if chunk_rows.is_some_and(|limit| map.next_line > limit) {
                break;
            }
            let Some(next) = files.as_mut().next().await else {
                break;
            };
            let (index, parsed) = next?;
            count(counts, &parsed);
            map.starts.push((map.next_line, index));
            map.next_line += parsed.row_lines.len() as u64;
            place.progress.inc(1);
            let seconds = place.progress.elapsed().as_secs_f64().max(0.001);
            place.progress.set_message(format!(
                "{} rows, {:.0} rows/s",
                counts.rows_read,
                counts.rows_read as f64 / seconds
            ));
            if let Err(err) = copy.send(parsed.copy_data).await {
                return Err(copy_error(err, &map, place).await);
            }
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            if let Err(err) = copy.finish().await {
                return Err(copy_error(err, &map, place).await);
            }
            Ok(())
        }
        Err(err) => {
            // The stream is dead anyway; abort tells the server to discard it.
            let _ = copy.abort("stockload: staging failed").await;
            Err(err)
        }
    }
}

async fn read_and_parse(
    reader: &Storage,
    source: &Location,
    entry: &Entry,
    index: usize,
) -> Result<(usize, ParsedFile)> {
    if let Some(problem) = &entry.problem {
        let parsed = skipped_file(&entry.company, &entry.file_name, problem.clone());
        return Ok((index, parsed));
    }
    let location = source.join(&entry.file_name);
    let file = location.to_string();
    let bytes = match reader.read_listed(&location).await? {
        FileRead::Bytes(bytes) => Some(bytes),
        FileRead::Missing => None,
        FileRead::Unusable(reason) => {
            return Ok((index, skipped_file(&entry.company, &file, reason)));
        }
    };
    let company = entry.company.clone();
    let parsed = tokio::task::spawn_blocking(move || parse_file(&company, &file, bytes.as_deref()))
        .await
        .map_err(|e| Error::task(format!("parsing {location}"), e))?;
    Ok((index, parsed))
}

fn count(counts: &mut StageCounts, parsed: &ParsedFile) {
    match &parsed.outcome {
        Outcome::Skipped { reason } => {
            tracing::warn!(file = %parsed.file, "skipped: {reason}");
            counts.skipped.push(SkippedFile {
                file: parsed.file.clone(),
                reason: reason.clone(),
            });
        }
        Outcome::Parsed {
            rows_read,
            rows_valid,
            rows_rejected,
        } => {
            counts.files_loaded += 1;
            counts.rows_read += rows_read;
            counts.rows_valid += rows_valid;
            counts.rows_rejected += rows_rejected;
            if *rows_rejected > 0 {
                tracing::warn!(file = %parsed.file, "{rows_rejected} of {rows_read} rows rejected");
            }
        }
    }
}

/// Names the CSV file and line behind a failed COPY. PostgreSQL reports the COPY stream's line in
/// the error context ("COPY stockload_stage, line 1234, column ..."); sqlx's own "at line N" is a
/// line of PostgreSQL's C source and is ignored. The file is parsed again to find the line.
async fn copy_error(err: sqlx::Error, map: &StreamMap, place: Batch<'_>) -> Error {
    let Batch {
        reader,
        source,
        entries,
        ..
    } = place;
    let reason = describe_sqlx(&err);
    let stream_line = match &err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|pg| pg.r#where())
            .and_then(copy_line_from_context),
        _ => None,
    };
    let Some(stream_line) = stream_line else {
        return Error::Database {
            action: "streaming rows into the staging table".into(),
            reason,
            source: Some(err),
        };
    };
    let position = map
        .starts
        .partition_point(|(start, _)| *start <= stream_line);
    let Some(&(start, index)) = position.checked_sub(1).and_then(|p| map.starts.get(p)) else {
        return Error::Database {
            action: format!("streaming row {stream_line} into the staging table"),
            reason,
            source: Some(err),
        };
    };
    let entry = &entries[index];
    let location = source.join(&entry.file_name);
    let line = match reader.read_listed(&location).await {
        Ok(FileRead::Bytes(bytes)) => {
            let parsed = parse_file(&entry.company, &location.to_string(), Some(&bytes));
            parsed
                .row_lines
                .get((stream_line - start) as usize)
                .copied()
                .unwrap_or(0)
        }
        _ => 0,
    };
    Error::Copy {
        file: location.to_string(),
        line,
        reason,
        source: err,
    }
}

/// Extracts N from a COPY error context such as `COPY stockload_stage, line 12, column x: "y"`.
fn copy_line_from_context(context: &str) -> Option<u64> {
    let rest = &context[context.find(", line ")? + ", line ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_copy_line_from_postgres_context() {
        assert_eq!(
            copy_line_from_context("COPY stockload_stage, line 1234, column open_value: \"x\""),
            Some(1234)
        );
        assert_eq!(
            copy_line_from_context("COPY stockload_stage, line 7"),
            Some(7)
        );
        assert_eq!(copy_line_from_context("SQL statement"), None);
    }
}
