//! The companies index (`top_companies.txt`): which files of the source folder make up the batch.
//!
//! Accepted forms: comma-separated entries with optional single or double quotes
//! (`'AAPL.csv', 'MSFT.csv'`), one entry per line, or a mix; entries with or without `.csv`.
//! Duplicates are ignored (first occurrence wins). An entry that is not a plain file name is never
//! read (the index must never make us read outside the source folder): it becomes a skipped file
//! with its reason, like a missing one, so one odd line never sinks the rest of the batch.

use crate::error::{Error, Result};

/// One company of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// File name inside the source folder, e.g. `AAPL.csv`.
    pub file_name: String,
    /// company_name stored in the table, e.g. `AAPL`.
    pub company: String,
    /// Why this entry cannot name a file of the batch (it is then skipped, never read).
    pub problem: Option<String>,
}

/// Parses the text of an index file; `origin` names the file in error messages.
pub fn parse_index(text: &str, origin: &str) -> Result<Vec<Entry>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries: Vec<Entry> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line_index, line) in text.lines().enumerate() {
        for raw in line.split(',') {
            let entry = unquote(raw.trim());
            if entry.is_empty() {
                continue;
            }
            let parsed = parse_entry(entry).unwrap_or_else(|reason| Entry {
                file_name: entry.to_string(),
                company: entry.to_string(),
                problem: Some(format!(
                    "{origin} line {}: entry {entry:?} {reason}",
                    line_index + 1
                )),
            });
            if seen.insert(parsed.company.clone()) {
                entries.push(parsed);
            }
        }
    }
    if entries.is_empty() {
        return Err(Error::Index {
            file: origin.to_string(),
            reason: "lists no company files".to_string(),
        });
    }
    Ok(entries)
}

/// Removes one pair of matching single or double quotes around an entry.
fn unquote(entry: &str) -> &str {
    for quote in ['\'', '"'] {
        if let Some(inner) = entry
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            return inner.trim();
        }
    }
    entry
}

fn parse_entry(entry: &str) -> std::result::Result<Entry, String> {
    if entry.contains(['/', '\\', '\0']) || entry.contains("..") {
        return Err("is not a plain file name (it contains '/', '\\', '..' or NUL)".to_string());
    }
    if entry.contains(['\'', '"']) {
        return Err("has unbalanced quotes".to_string());
    }
    if entry.chars().any(char::is_control) {
        return Err("contains a control character".to_string());
    }
    let company = match entry.len().checked_sub(4) {
        Some(cut) if entry.is_char_boundary(cut) && entry[cut..].eq_ignore_ascii_case(".csv") => {
            &entry[..cut]
        }
        _ => entry,
    };
    if company.is_empty() || company == "." {
        return Err("has no company name".to_string());
    }
    Ok(Entry {
        file_name: format!("{company}.csv"),
        company: company.to_string(),
        problem: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn companies(text: &str) -> Vec<String> {
        parse_index(text, "index")
            .unwrap()
            .into_iter()
            .map(|e| e.company)
            .collect()
    }

    #[test]
    fn quoted_comma_separated_list() {
        assert_eq!(
            companies("'AAPL.csv', 'MSFT.csv',\"GOOG.csv\" , IBM"),
            ["AAPL", "MSFT", "GOOG", "IBM"]
        );
    }

    #[test]
    fn one_per_line_with_bom_crlf_blank_lines_and_duplicates() {
        assert_eq!(
            companies("\u{feff}AAPL.csv\r\n\r\nmsft\nAAPL.CSV\nMSFT.csv\n"),
            ["AAPL", "msft", "MSFT"]
        );
        let entries = parse_index("x.CSV", "i").unwrap();
        assert_eq!(entries[0].file_name, "x.csv");
    }

    #[test]
    fn paths_become_problem_entries_and_empty_lists_fail() {
        for bad in [
            "'../etc/passwd'",
            "a/b.csv",
            "..",
            "a\\b.csv",
            "x\0y",
            "'unbalanced",
            ".csv",
            "tab\there",
        ] {
            let entries = parse_index(&format!("GOOD.csv\n{bad}"), "top.txt").unwrap();
            assert_eq!(entries.len(), 2, "{bad:?}");
            assert_eq!(entries[0].problem, None);
            let problem = entries[1].problem.as_deref().unwrap_or_default();
            assert!(problem.contains("top.txt line 2"), "{problem}");
        }
        let err = parse_index(" , ,\n", "top.txt").unwrap_err().to_string();
        assert!(err.contains("lists no company files"), "{err}");
    }
}
