//! Staging: read and parse the listed files concurrently and stream their rows, in company order,
//! into the temporary staging table with one `COPY … FROM STDIN`. Memory holds at most
//! `concurrency` parsed files.

use futures::stream::{self, StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde::Serialize;
use sqlx::PgConnection;

use crate::error::{describe_sqlx, Error, Result};
use crate::parse::{parse_file, skipped_file, Outcome, ParsedFile};
use crate::storage::index::Entry;
use crate::storage::{FileRead, Location, Storage};

/// The staging table's columns, in the order `parse` writes them.
const COPY_STATEMENT: &str = "COPY stockload_stage (company_name, line, stock_date, open_value, \
    high_value, low_value, close_value, volume_traded, reject_kind, reject_reason, source_file, \
    raw_text) FROM STDIN";

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

/// Streams every listed file into `stockload_stage`. On any error the COPY is aborted.
pub async fn stage_files(
    conn: &mut PgConnection,
    reader: &Storage,
    source: &Location,
    entries: &[Entry],
    concurrency: usize,
    progress: &ProgressBar,
) -> Result<StageCounts> {
    let mut copy = conn
        .copy_in_raw(COPY_STATEMENT)
        .await
        .map_err(|e| Error::database("starting COPY into the staging table", e))?;
    let mut counts = StageCounts::default();
    let mut map = StreamMap {
        starts: Vec::with_capacity(entries.len()),
        next_line: 1,
    };
    // Files go in company order, and each file's rows in file order (by date in practice), so
    // the staged rows arrive sorted by (company_name, stock_date): the transforms' window sort
    // then takes PostgreSQL's presorted fast path and the table is written in key order.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| entries[a].company.cmp(&entries[b].company));
    let mut parsed_files = stream::iter(order)
        .map(|index| read_and_parse(reader, source, &entries[index], index))
        .buffered(concurrency.max(1));
    let outcome: Result<()> = async {
        while let Some((index, parsed)) = parsed_files.try_next().await? {
            count(&mut counts, &parsed);
            map.starts.push((map.next_line, index));
            map.next_line += parsed.row_lines.len() as u64;
            progress.inc(1);
            let seconds = progress.elapsed().as_secs_f64().max(0.001);
            progress.set_message(format!(
                "{} rows, {:.0} rows/s",
                counts.rows_read,
                counts.rows_read as f64 / seconds
            ));
            if let Err(err) = copy.send(parsed.copy_data).await {
                return Err(copy_error(err, &map, entries, source, reader).await);
            }
        }
        Ok(())
    }
    .await;
    drop(parsed_files);
    match outcome {
        Ok(()) => {
            if let Err(err) = copy.finish().await {
                return Err(copy_error(err, &map, entries, source, reader).await);
            }
            Ok(counts)
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
async fn copy_error(
    err: sqlx::Error,
    map: &StreamMap,
    entries: &[Entry],
    source: &Location,
    reader: &Storage,
) -> Error {
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
