//! The only place company CSV files are read: one file's bytes in, staging rows out (valid rows,
//! rejected rows with their reason and raw text, or a single "file skipped" row), already encoded
//! for `COPY stockload_stage FROM STDIN` in PostgreSQL's text format.
//!
//! Nothing is dropped silently: every data line read becomes exactly one staging row, either a
//! row to load or a reject, so `rows_read = rows_loaded + rows_rejected` holds by construction.
//!
//! Memory stays close to the file's size: a first pass reads the file for what decides the
//! whole file (its header, whether it has rows, which rows a later row of the same date
//! supersedes); the second writes the staging rows and hands them on in pieces of
//! [`PIECE_BYTES`], so a big file's rows are never held whole beside its bytes. A small file
//! (up to 1 MiB: nearly all) is read once, its rows held until its end, and surveyed first only
//! when its dates turn out to be out of order.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

/// Columns of the CSV header we need, matched case-insensitively; others are ignored.
pub const REQUIRED_COLUMNS: [&str; 6] = ["Date", "Open", "High", "Low", "Close", "Volume"];

/// Staging rows are handed on in pieces of about this many bytes (the last piece is smaller).
pub const PIECE_BYTES: usize = 256 * 1024;

/// What happened to one listed file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The file was not loaded at all.
    Skipped {
        /// Why: missing, empty, header only, not UTF-8, missing column.
        reason: String,
    },
    /// The file was read; some rows may have been rejected.
    Parsed {
        /// Data lines read (not counting the header and blank lines).
        rows_read: u64,
        /// Rows sent to be loaded.
        rows_valid: u64,
        /// Rows rejected, each with its reason.
        rows_rejected: u64,
    },
}

/// What parsing one file gave, its staging rows handed on as they were written.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// What happened to it.
    pub outcome: Outcome,
    /// Staging rows written (loaded, rejected, or the one "file skipped" row).
    pub rows_staged: u64,
}

/// One parsed file held whole: for tests, and to find the line behind a failed COPY.
#[derive(Debug)]
pub struct ParsedFile {
    /// What happened to it.
    pub outcome: Outcome,
    /// The staging rows, COPY text format, one per line.
    pub copy_data: Vec<u8>,
    /// The CSV line each staging row came from, in `copy_data` order (0 for a skipped file),
    /// so a COPY error on staging row k can be reported as a line of this file.
    pub row_lines: Vec<u64>,
}

/// Parses one company file, holding its staging rows whole. `bytes` is `None` when the listed
/// file does not exist.
pub fn parse_file(company: &str, file: &str, bytes: Option<&[u8]>) -> ParsedFile {
    let mut copy_data = Vec::new();
    let mut row_lines = Vec::new();
    let mut keep = |piece: Vec<u8>| {
        copy_data.extend_from_slice(&piece);
        true
    };
    let mut out = Output::new(company, file, usize::MAX, &mut keep);
    out.lines = Some(&mut row_lines);
    let outcome = parse_into(bytes, &mut out);
    out.flush();
    drop(out);
    ParsedFile {
        outcome,
        copy_data,
        row_lines,
    }
}

/// Parses one company file, handing its staging rows to `sink` in pieces of about
/// [`PIECE_BYTES`] as they are written. `sink` returns false when nobody wants more (the run
/// stopped): parsing then ends early. `bytes` is `None` when the listed file does not exist.
pub fn parse_stream(
    company: &str,
    file: &str,
    bytes: Option<&[u8]>,
    sink: &mut dyn FnMut(Vec<u8>) -> bool,
) -> Parsed {
    let mut out = Output::new(company, file, PIECE_BYTES, sink);
    let outcome = parse_into(bytes, &mut out);
    out.flush();
    Parsed {
        outcome,
        rows_staged: out.rows,
    }
}

/// A listed file that is not read at all (an index entry that is not a plain file name, a
/// directory, a special file, one too large or unreadable): one "file skipped" staging row.
pub fn skipped_file(company: &str, file: &str, reason: String) -> ParsedFile {
    let mut copy_data = Vec::new();
    let mut keep = |piece: Vec<u8>| {
        copy_data.extend_from_slice(&piece);
        true
    };
    let mut out = Output::new(company, file, usize::MAX, &mut keep);
    let outcome = out.skip(reason);
    out.flush();
    drop(out);
    ParsedFile {
        outcome,
        copy_data,
        row_lines: vec![0],
    }
}

/// Files up to this size (nearly all: a company's whole history is well under 1 MB) are read in
/// one pass, their rows held until the end, and surveyed only when their dates are out of order.
const ONE_PASS_BYTES: usize = 4 * PIECE_BYTES;

fn parse_into(bytes: Option<&[u8]>, out: &mut Output) -> Outcome {
    let Some(bytes) = bytes else {
        return out.skip("file not found".to_string());
    };
    let text = match text_of(bytes) {
        Ok(text) => text,
        Err(reason) => return out.skip(reason),
    };
    if text.len() <= ONE_PASS_BYTES {
        let head = match header(text) {
            Ok(head) => head,
            Err(reason) => return out.skip(reason),
        };
        let (mut last, mut disordered) = (None, false);
        let mut in_order = |date: NaiveDate| {
            disordered = last.is_some_and(|last| last >= date);
            last = Some(date);
            !disordered
        };
        // Held whole (never handed on in pieces) until it is known to be in order.
        let piece_bytes = std::mem::replace(&mut out.piece_bytes, usize::MAX);
        let outcome = stage_rows(text, &head, &mut in_order, out);
        out.piece_bytes = piece_bytes;
        if !disordered {
            return match outcome {
                Outcome::Parsed { rows_read: 0, .. } => {
                    out.skip("header only: no data rows".to_string())
                }
                outcome => outcome,
            };
        }
        // A date out of order: a row may supersede another, so the file is surveyed first.
        out.discard();
    }
    match survey(text) {
        Ok(survey) => stage_rows(text, &survey, &mut |_| true, out),
        Err(reason) => out.skip(reason),
    }
}

/// What the first pass found: everything that decides the file as a whole.
struct Survey {
    /// Positions of the required columns.
    columns: [usize; 6],
    /// Fields in the header (every row must have as many).
    field_count: usize,
    /// Valid rows (by index among the data rows, in order) that a later valid row of the same
    /// date supersedes, with that row's line: the last row of a date is kept.
    superseded: Vec<(u32, u32)>,
}

/// One data row as [`Rows`] reads it (its fields are in `Rows::record`).
struct Row<'t> {
    /// Index among the data rows.
    index: u64,
    /// CSV line it starts on.
    line: u64,
    /// Its text, without the line end.
    raw: &'t str,
    /// The last row, without a line end: a short one was cut off.
    at_eof_without_newline: bool,
}

/// The records of a file's text, with their lines and raw text.
struct Rows<'t> {
    text: &'t str,
    reader: csv::Reader<&'t [u8]>,
    record: csv::StringRecord,
    next_index: u64,
}

impl<'t> Rows<'t> {
    fn new(text: &'t str) -> Self {
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.as_bytes());
        Rows {
            text,
            reader,
            record: csv::StringRecord::new(),
            next_index: 0,
        }
    }

    /// The next record (the header first), or `None` at the end.
    fn next(&mut self) -> Result<Option<Row<'t>>, String> {
        let text = self.text;
        let start = self.reader.position().byte() as usize;
        let more = self
            .reader
            .read_record(&mut self.record)
            .map_err(|err| format!("unreadable CSV: {err}"))?;
        if !more {
            return Ok(None);
        }
        let end = self.reader.position().byte() as usize;
        // Record boundaries are line ends, so these are char boundaries; `get` keeps that an
        // assumption we never panic on.
        let raw_start = start.min(text.len());
        let raw = text
            .get(raw_start..end.min(text.len()))
            .unwrap_or_default()
            .trim_end_matches(['\r', '\n']);
        let index = self.next_index;
        self.next_index += 1;
        Ok(Some(Row {
            // The header is record 0: data rows count from 0 after it.
            index: index.saturating_sub(1),
            line: self.record.position().map_or(0, |p| p.line()),
            raw,
            at_eof_without_newline: end >= text.len() && !text.ends_with('\n'),
        }))
    }

    fn field(&self, columns: &[usize; 6], slot: usize) -> &str {
        self.record.get(columns[slot]).unwrap_or("").trim()
    }
}

/// The first pass: the file's text and what decides it as a whole, or why it is skipped.
/// Dates only are read for the rows, unless they are not in increasing order: only then can a
/// row supersede another, and the rows are checked in full to find which.
fn survey(text: &str) -> Result<Survey, String> {
    let mut survey = header(text)?;
    let mut rows = Rows::new(text);
    rows.next()?;
    let (columns, field_count) = (survey.columns, survey.field_count);
    let (mut count, mut increasing, mut last) = (0u64, true, None);
    while rows.next()?.is_some() {
        count += 1;
        if increasing && rows.record.len() == field_count {
            if let Ok(date) = parse_date(rows.field(&columns, 0)) {
                increasing = last.is_none_or(|last| last < date);
                last = Some(date);
            }
        }
    }
    if count == 0 {
        return Err("header only: no data rows".to_string());
    }
    if !increasing {
        survey.superseded = superseded_rows(text, &survey)?;
    }
    Ok(survey)
}

/// The file's text, or why it is not read as one.
fn text_of(bytes: &[u8]) -> Result<&str, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("empty file".to_string());
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|err| format!("not UTF-8 (invalid byte at offset {})", err.valid_up_to()))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// The header's columns: a survey that knows nothing of the rows yet.
fn header(text: &str) -> Result<Survey, String> {
    let mut rows = Rows::new(text);
    if rows.next()?.is_none() {
        return Err("empty file".to_string());
    }
    Ok(Survey {
        columns: header_columns(&rows.record)?,
        field_count: rows.record.len(),
        superseded: Vec::new(),
    })
}

/// Which valid rows a later valid row of the same date supersedes, and by which line, in row
/// order. Held as 12 bytes a valid row while it is worked out (files are at most 64 MiB, so
/// row indexes and lines fit in u32).
fn superseded_rows(text: &str, survey: &Survey) -> Result<Vec<(u32, u32)>, String> {
    let mut rows = Rows::new(text);
    rows.next()?;
    let mut dated: Vec<(NaiveDate, u32, u32)> = Vec::new();
    let mut scratch = String::new();
    while let Some(row) = rows.next()? {
        scratch.clear();
        let valid = validate_row(
            &rows.record,
            &survey.columns,
            survey.field_count,
            row.at_eof_without_newline,
            &mut scratch,
        );
        if let Ok(date) = valid {
            dated.push((date, row.index as u32, row.line as u32));
        }
    }
    dated.sort_unstable();
    let mut superseded: Vec<(u32, u32)> = dated
        .windows(2)
        .filter(|pair| pair[0].0 == pair[1].0)
        .map(|pair| (pair[0].1, pair[1].2))
        .collect();
    superseded.sort_unstable();
    Ok(superseded)
}

/// The second pass (or the only one): every data row becomes a staging row to load or a reject.
/// `go_on` is shown each valid row's date and stops the pass when it answers false.
fn stage_rows(
    text: &str,
    survey: &Survey,
    go_on: &mut dyn FnMut(NaiveDate) -> bool,
    out: &mut Output,
) -> Outcome {
    let mut rows = Rows::new(text);
    let (mut rows_read, mut rows_valid, mut rows_rejected) = (0u64, 0u64, 0u64);
    let mut values = String::with_capacity(128);
    // The next superseded row: rows come in index order, as the list is sorted.
    let mut superseded = survey.superseded.iter().peekable();
    // The first pass read these same bytes without an error.
    let _header = rows.next();
    while let Ok(Some(row)) = rows.next() {
        rows_read += 1;
        values.clear();
        let checked = validate_row(
            &rows.record,
            &survey.columns,
            survey.field_count,
            row.at_eof_without_newline,
            &mut values,
        );
        if checked.as_ref().is_ok_and(|date| !go_on(*date)) {
            break;
        }
        let later = superseded
            .next_if(|(index, _)| u64::from(*index) == row.index)
            .map(|(_, line)| line);
        match (checked, later) {
            (Ok(_), None) => {
                rows_valid += 1;
                out.valid(row.line, &values);
            }
            (Ok(date), Some(later)) => {
                rows_rejected += 1;
                let reason = format!(
                    "duplicate date {}: superseded by line {later}",
                    date.format("%Y-%m-%d")
                );
                out.reject(row.line, &reason, row.raw);
            }
            (Err(reason), _) => {
                rows_rejected += 1;
                out.reject(row.line, &reason, row.raw);
            }
        }
        if out.stopped {
            break;
        }
    }
    Outcome::Parsed {
        rows_read,
        rows_valid,
        rows_rejected,
    }
}

/// Positions of the required columns in the header, in `REQUIRED_COLUMNS` order.
fn header_columns(header: &csv::StringRecord) -> Result<[usize; 6], String> {
    let mut positions = [usize::MAX; 6];
    let mut missing = Vec::new();
    for (slot, name) in REQUIRED_COLUMNS.iter().enumerate() {
        match header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
        {
            Some(position) => positions[slot] = position,
            None => missing.push(*name),
        }
    }
    if missing.is_empty() {
        Ok(positions)
    } else {
        let shown: Vec<&str> = header.iter().take(12).collect();
        Err(format!(
            "missing required column(s) {} (header: {:?})",
            missing.join(", "),
            shown.join(",")
        ))
    }
}

/// Checks one data row; on success returns its date and appends the COPY text of its date and
/// five values to `values` (on error `values` may hold a partial row: the caller truncates).
fn validate_row(
    record: &csv::StringRecord,
    columns: &[usize; 6],
    field_count: usize,
    at_eof_without_newline: bool,
    values: &mut String,
) -> Result<NaiveDate, String> {
    if record.len() != field_count {
        let what = if at_eof_without_newline && record.len() < field_count {
            "truncated last line"
        } else {
            "wrong field count"
        };
        return Err(format!(
            "{what}: expected {field_count} fields, found {}",
            record.len()
        ));
    }
    let field = |slot: usize| record.get(columns[slot]).unwrap_or("").trim();
    let date_text = field(0);
    let date = parse_date(date_text)?;
    // A date that parsed is exactly `YYYY-MM-DD` (checked shape): its text is its COPY form.
    values.push_str(date_text);
    for (slot, name) in REQUIRED_COLUMNS.iter().enumerate().skip(1).take(4) {
        let text = field(slot);
        check_price(name, text)?;
        values.push('\t');
        values.push_str(text);
    }
    values.push('\t');
    push_volume(field(5), values)?;
    Ok(date)
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    // Year 0000 is a valid chrono date but not a PostgreSQL one (there is no year 0 AD).
    let number = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |n, digit| n * 10 + u32::from(digit - b'0'))
    };
    shaped
        .then(|| NaiveDate::from_ymd_opt(number(0..4) as i32, number(5..7), number(8..10)))
        .flatten()
        .filter(|date| date.year() >= 1)
        .ok_or_else(|| format!("bad date {text:?} in Date (expected YYYY-MM-DD)"))
}

/// Longest price text accepted: far beyond any real price, and it keeps every accepted text
/// within what PostgreSQL's `numeric` input takes (exponent and scale limits).
const MAX_NUMBER_LEN: usize = 40;

/// True for `[+-]digits[.digits][(e|E)[+-]digits]` with at least one mantissa digit and at most
/// three exponent digits: the decimal forms both Rust and PostgreSQL's `numeric` read the same
/// way (Rust alone also reads `inf`, `NaN`, `infinity`; PostgreSQL refuses exponents past 1000).
fn is_decimal(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let mut mantissa = digits(&mut i);
    if b.get(i) == Some(&b'.') {
        i += 1;
        mantissa += digits(&mut i);
    }
    if mantissa == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !(1..=3).contains(&digits(&mut i)) {
            return false;
        }
    }
    i == b.len()
}

fn check_price(name: &str, text: &str) -> Result<(), String> {
    if text.len() > MAX_NUMBER_LEN {
        return Err(format!(
            "{name} is too long to be a price ({} characters)",
            text.len()
        ));
    }
    if !is_decimal(text) && !text.parse::<f64>().is_ok_and(|v| !v.is_finite()) {
        return Err(format!("{name} is not a number: {text:?}"));
    }
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{name} is not a number: {text:?}"))?;
    if !value.is_finite() {
        return Err(format!("{name} is not finite: {text:?}"));
    }
    if value < 0.0 {
        return Err(format!("{name} is negative: {text:?}"));
    }
    Ok(())
}

/// A volume is a whole, non-negative number of shares; `1200.0` is accepted as `1200`. Appends
/// its COPY text to `out`.
fn push_volume(text: &str, out: &mut String) -> Result<(), String> {
    use std::fmt::Write;
    let volume = parse_volume(text)?;
    // Writing an integer into a String cannot fail.
    let _ = write!(out, "{volume}");
    Ok(())
}

/// A volume is a whole, non-negative number of shares; `1200.0` is accepted as `1200`.
fn parse_volume(text: &str) -> Result<i64, String> {
    if text.len() > MAX_NUMBER_LEN {
        return Err(format!(
            "Volume is too long to be a number ({} characters)",
            text.len()
        ));
    }
    if let Ok(volume) = text.parse::<i64>() {
        return if volume < 0 {
            Err(format!("Volume is negative: {text:?}"))
        } else {
            Ok(volume)
        };
    }
    if !is_decimal(text) && !text.parse::<f64>().is_ok_and(|v| !v.is_finite()) {
        return Err(format!("Volume is not a number: {text:?}"));
    }
    let value: f64 = text
        .parse()
        .map_err(|_| format!("Volume is not a number: {text:?}"))?;
    if !value.is_finite() {
        Err(format!("Volume is not finite: {text:?}"))
    } else if value < 0.0 {
        Err(format!("Volume is negative: {text:?}"))
    } else if value.fract() != 0.0 {
        Err(format!("Volume is fractional: {text:?}"))
    } else if value >= 9.2e18 {
        Err(format!("Volume is too large: {text:?}"))
    } else {
        Ok(value as i64)
    }
}

/// Builds the COPY text of one file's staging rows. Columns, in order: company_name, line,
/// stock_date, open_value, high_value, low_value, close_value, volume_traded, reject_kind,
/// reject_reason, source_file, raw_text (see `sql/create_stage.sql`).
struct Output<'a> {
    /// The company name, escaped for COPY once per file.
    company: Vec<u8>,
    file: &'a str,
    /// Rows written and not yet handed on.
    data: Vec<u8>,
    /// Hand `data` on once it holds this many bytes.
    piece_bytes: usize,
    sink: &'a mut dyn FnMut(Vec<u8>) -> bool,
    /// The sink wants no more.
    stopped: bool,
    /// Staging rows written.
    rows: u64,
    /// The line of each staging row, when asked for.
    lines: Option<&'a mut Vec<u64>>,
}

impl<'a> Output<'a> {
    fn new(
        company: &str,
        file: &'a str,
        piece_bytes: usize,
        sink: &'a mut dyn FnMut(Vec<u8>) -> bool,
    ) -> Self {
        let mut escaped = Vec::with_capacity(company.len());
        escape_copy_text(company, &mut escaped);
        Output {
            company: escaped,
            file,
            data: Vec::new(),
            piece_bytes,
            sink,
            stopped: false,
            rows: 0,
            lines: None,
        }
    }

    /// `values`: the row's date and five values, tab-separated, already in COPY form.
    fn valid(&mut self, line: u64, values: &str) {
        use std::io::Write;
        self.data.extend_from_slice(&self.company);
        // Writing into a Vec cannot fail.
        let _ = write!(self.data, "\t{line}\t");
        self.data.extend_from_slice(values.as_bytes());
        self.data.extend_from_slice(b"\t\\N\t\\N\t\\N\t\\N\n");
        self.row_written(line);
    }

    fn reject(&mut self, line: u64, reason: &str, raw: &str) {
        self.data.extend_from_slice(&self.company);
        self.data
            .extend_from_slice(format!("\t{line}\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\trow\t").as_bytes());
        escape_copy_text(reason, &mut self.data);
        self.data.push(b'\t');
        escape_copy_text(self.file, &mut self.data);
        self.data.push(b'\t');
        escape_copy_text(raw, &mut self.data);
        self.data.push(b'\n');
        self.row_written(line);
    }

    /// The file's only staging row. Files are skipped before any row is written (the first
    /// pass decides), so nothing handed on has to be taken back.
    fn skip(&mut self, reason: String) -> Outcome {
        debug_assert_eq!(
            self.rows, 0,
            "a file is skipped before its rows are written"
        );
        self.data.extend_from_slice(&self.company);
        self.data
            .extend_from_slice(b"\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\tfile\t");
        escape_copy_text(&reason, &mut self.data);
        self.data.push(b'\t');
        escape_copy_text(self.file, &mut self.data);
        self.data.extend_from_slice(b"\t\\N\n");
        self.row_written(0);
        Outcome::Skipped { reason }
    }

    fn row_written(&mut self, line: u64) {
        self.rows += 1;
        if let Some(lines) = self.lines.as_deref_mut() {
            lines.push(line);
        }
        if self.data.len() >= self.piece_bytes {
            // A full piece's room (rows end near the limit), so a piece is allocated once.
            let room = self.piece_bytes.min(PIECE_BYTES) + 4096;
            let piece = std::mem::replace(&mut self.data, Vec::with_capacity(room));
            self.hand_on(piece);
        }
    }

    /// Forgets the rows written and not handed on (a pass begun again).
    fn discard(&mut self) {
        self.data.clear();
        self.rows = 0;
        if let Some(lines) = self.lines.as_deref_mut() {
            lines.clear();
        }
    }

    /// Hands the rows written so far on (at the end of the file).
    fn flush(&mut self) {
        let piece = std::mem::take(&mut self.data);
        self.hand_on(piece);
    }

    fn hand_on(&mut self, piece: Vec<u8>) {
        if !piece.is_empty() && !self.stopped {
            self.stopped = !(self.sink)(piece);
        }
    }
}

/// Appends `value` escaped for COPY's text format (backslash, tab, newline, carriage return).
/// PostgreSQL text cannot hold a NUL character at all, so a NUL (possible in a rejected line's raw
/// text) is stored as the four characters `\x00` instead of poisoning the COPY stream.
pub fn escape_copy_text(value: &str, out: &mut Vec<u8>) {
    for byte in value.bytes() {
        match byte {
            0 => out.extend_from_slice(b"\\\\x00"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Date,Open,High,Low,Close,Volume,OpenInt\n";

    fn parse(text: &[u8]) -> ParsedFile {
        parse_file("ACME", "Stocks/ACME.csv", Some(text))
    }

    fn rows(parsed: &ParsedFile) -> Vec<Vec<String>> {
        String::from_utf8(parsed.copy_data.clone())
            .unwrap()
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn valid_rows_become_staging_rows() {
        let parsed = parse(
            format!(
                "{HEADER}2017-01-03,1.5,2,1,1.75,1200,0\n2017-01-04,1.75,2.5,1.5,2.25,1300.0,0"
            )
            .as_bytes(),
        );
        assert_eq!(
            parsed.outcome,
            Outcome::Parsed {
                rows_read: 2,
                rows_valid: 2,
                rows_rejected: 0
            }
        );
        let rows = rows(&parsed);
        assert_eq!(
            rows[0][..8],
            ["ACME", "2", "2017-01-03", "1.5", "2", "1", "1.75", "1200"]
        );
        assert_eq!(rows[1][7], "1300");
        assert_eq!(rows[1][8], "\\N");
        assert_eq!(parsed.row_lines, [2, 3]);
    }

    #[test]
    fn header_by_name_any_case_with_bom_crlf_and_extra_columns() {
        let text =
            "\u{feff}volume,close,Adj Close,LOW,high,open,date\r\n10,4,4,1,5,2,2020-02-29\r\n";
        let parsed = parse(text.as_bytes());
        let rows = rows(&parsed);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0][2..8], ["2020-02-29", "2", "5", "1", "4", "10"]);
    }

    #[test]
    fn each_bad_row_is_rejected_with_line_reason_and_raw_text() {
        let cases = [
            ("2017-02-30,1,1,1,1,1,0", "bad date \"2017-02-30\""),
            ("17-01-03,1,1,1,1,1,0", "bad date"),
            ("2017-01-03,abc,1,1,1,1,0", "Open is not a number: \"abc\""),
            ("2017-01-03,1,inf,1,1,1,0", "High is not finite"),
            ("2017-01-03,1,1,NaN,1,1,0", "Low is not finite"),
            ("2017-01-03,1,1,1,-2,1,0", "Close is negative"),
            ("2017-01-03,1,1,1,1,-5,0", "Volume is negative"),
            ("2017-01-03,1,1,1,1,1.5,0", "Volume is fractional"),
            (
                "2017-01-03,1,1,1,1,0",
                "wrong field count: expected 7 fields, found 6",
            ),
        ];
        for (line, reason) in cases {
            let parsed = parse(format!("{HEADER}{line}\n2017-01-09,1,1,1,1,1,0\n").as_bytes());
            assert_eq!(
                parsed.outcome,
                Outcome::Parsed {
                    rows_read: 2,
                    rows_valid: 1,
                    rows_rejected: 1
                },
                "{line}"
            );
            let rows = rows(&parsed);
            let reject = &rows[0];
            assert_eq!(reject[1], "2", "{line}");
            assert_eq!(reject[8], "row");
            assert!(reject[9].contains(reason), "{line}: {}", reject[9]);
            assert_eq!(reject[10], "Stocks/ACME.csv");
            assert_eq!(reject[11], line);
        }
    }

    #[test]
    fn truncated_last_line_is_named() {
        let parsed = parse(format!("{HEADER}2017-01-03,1,1,1,1,1,0\n2017-01-04,1,1").as_bytes());
        let rows = rows(&parsed);
        let reject = rows.iter().find(|r| r[8] == "row").unwrap();
        assert!(reject[9].starts_with("truncated last line"), "{reject:?}");
        assert_eq!(reject[11], "2017-01-04,1,1");
    }

    #[test]
    fn repeated_date_keeps_the_last_row() {
        let parsed = parse(
            format!(
                "{HEADER}2017-01-03,1,1,1,1,1,0\n2017-01-04,1,1,1,1,1,0\n2017-01-03,2,2,2,2,2,0\n"
            )
            .as_bytes(),
        );
        assert_eq!(
            parsed.outcome,
            Outcome::Parsed {
                rows_read: 3,
                rows_valid: 2,
                rows_rejected: 1
            }
        );
        let rows = rows(&parsed);
        let reject = rows.iter().find(|r| r[8] == "row").unwrap();
        assert_eq!(reject[1], "2");
        assert_eq!(reject[9], "duplicate date 2017-01-03: superseded by line 4");
        let kept: Vec<_> = rows
            .iter()
            .filter(|r| r[8] == "\\N")
            .map(|r| r[3].clone())
            .collect();
        assert_eq!(kept, ["1", "2"]);
    }

    #[test]
    fn unusable_files_are_skipped_with_a_reason() {
        let cases: [(Option<&[u8]>, &str); 6] = [
            (None, "file not found"),
            (Some(b""), "empty file"),
            (Some(b"\n \n"), "empty file"),
            (Some(HEADER.as_bytes()), "header only"),
            (
                Some(b"Date,Open,High,Low,Close,Volume\n\xff\xfe,1\n"),
                "not UTF-8",
            ),
            (
                Some(b"Date,Open,High,Low,Volume\n2017-01-03,1,1,1,1\n"),
                "missing required column(s) Close",
            ),
        ];
        for (bytes, reason) in cases {
            let parsed = parse_file("ACME", "ACME.csv", bytes);
            match &parsed.outcome {
                Outcome::Skipped { reason: got } => assert!(got.starts_with(reason), "{got}"),
                other => panic!("{reason}: {other:?}"),
            }
            let rows = rows(&parsed);
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0][8], "file");
        }
    }

    #[test]
    fn quoted_fields_with_newlines_keep_line_numbers() {
        let text = format!("{HEADER}2017-01-03,1,1,1,1,1,\"a\nb\"\n2017-01-04,x,1,1,1,1,0\n");
        let parsed = parse(text.as_bytes());
        let rows = rows(&parsed);
        let reject = rows.iter().find(|r| r[8] == "row").unwrap();
        assert_eq!(reject[1], "4");
    }

    #[test]
    fn dates_out_of_order_supersede_in_a_chain() {
        let parsed = parse(
            format!(
                "{HEADER}2017-01-04,1,1,1,1,1,0\n2017-01-03,2,2,2,2,2,0\n\
                 2017-01-04,3,3,3,3,3,0\n2017-01-04,4,4,4,4,4,0\n"
            )
            .as_bytes(),
        );
        let rows = rows(&parsed);
        let reasons: Vec<(&str, &str)> = rows
            .iter()
            .filter(|r| r[8] == "row")
            .map(|r| (r[1].as_str(), r[9].as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("2", "duplicate date 2017-01-04: superseded by line 4"),
                ("4", "duplicate date 2017-01-04: superseded by line 5")
            ]
        );
        let kept: Vec<&str> = rows
            .iter()
            .filter(|r| r[8] == "\\N")
            .map(|r| r[1].as_str())
            .collect();
        assert_eq!(kept, ["3", "5"]);
    }

    /// A file of `rows` rows (some rejected, some dates repeated out of order).
    fn big_text(rows: usize) -> String {
        let mut text = HEADER.to_string();
        for i in 0..rows {
            let day = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()
                + chrono::Duration::days((i - i % 7 / 6) as i64);
            let open = if i % 11 == 5 { "x" } else { "1.5" };
            text.push_str(&format!("{day},{open},2,1,1.75,{i},0\n"));
        }
        text
    }

    #[test]
    fn streamed_pieces_are_small_and_make_the_whole_file() {
        let text = big_text(40_000);
        let whole = parse(text.as_bytes());
        let mut pieces: Vec<Vec<u8>> = Vec::new();
        let mut sink = |piece: Vec<u8>| {
            pieces.push(piece);
            true
        };
        let streamed = parse_stream("ACME", "Stocks/ACME.csv", Some(text.as_bytes()), &mut sink);
        assert!(pieces.len() > 3, "{}", pieces.len());
        assert!(pieces.iter().all(|p| p.len() < PIECE_BYTES + 512));
        assert_eq!(pieces.concat(), whole.copy_data);
        assert_eq!(streamed.outcome, whole.outcome);
        assert_eq!(streamed.rows_staged, whole.row_lines.len() as u64);
        assert!(matches!(
            streamed.outcome,
            Outcome::Parsed { rows_rejected, .. } if rows_rejected > 3000
        ));
    }

    #[test]
    fn a_sink_that_wants_no_more_ends_the_parse() {
        let text = big_text(40_000);
        let mut pieces = 0;
        let mut sink = |_piece: Vec<u8>| {
            pieces += 1;
            false
        };
        let streamed = parse_stream("ACME", "Stocks/ACME.csv", Some(text.as_bytes()), &mut sink);
        assert_eq!(pieces, 1);
        assert!(streamed.rows_staged < 40_000, "{streamed:?}");
    }

    proptest::proptest! {
        /// Whatever the order of dates and whichever rows are bad: the last valid row of each
        /// date is loaded, every other row is rejected, and nothing is lost.
        #[test]
        fn the_last_valid_row_of_each_date_is_kept(
            rows in proptest::collection::vec((0u32..12, proptest::bool::ANY), 1..60)
        ) {
            let mut text = HEADER.to_string();
            for (i, (day, valid)) in rows.iter().enumerate() {
                let price = if *valid { "1.5" } else { "bad" };
                text.push_str(&format!("2017-01-{:02},{price},2,1,1.75,{i},0\n", day + 1));
            }
            let parsed = parse(text.as_bytes());
            let mut last: std::collections::BTreeMap<u32, usize> = Default::default();
            for (i, (day, valid)) in rows.iter().enumerate() {
                if *valid {
                    last.insert(*day, i);
                }
            }
            let mut expected: Vec<String> =
                last.values().map(|i| (i + 2).to_string()).collect();
            expected.sort();
            let staged = super::tests::rows(&parsed);
            let mut kept: Vec<String> = staged
                .iter()
                .filter(|r| r[8] == "\\N")
                .map(|r| r[1].clone())
                .collect();
            kept.sort();
            proptest::prop_assert_eq!(kept, expected);
            proptest::prop_assert_eq!(staged.len(), rows.len());
            proptest::prop_assert_eq!(
                parsed.outcome,
                Outcome::Parsed {
                    rows_read: rows.len() as u64,
                    rows_valid: last.len() as u64,
                    rows_rejected: (rows.len() - last.len()) as u64,
                }
            );
        }
    }

    #[test]
    fn copy_text_is_escaped() {
        let mut out = Vec::new();
        escape_copy_text("a\tb\\c\nd\re", &mut out);
        assert_eq!(out, b"a\\tb\\\\c\\nd\\re");
    }
}
