//! A realistic sample batch (random-walk prices on business days, the Kaggle CSV shape), with
//! optional faulty files: used by `stockload demo`, `stockload sample`, the tests and the benchmark.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use crate::error::{Error, Result};

/// What to generate.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Company files written to `Stocks/`.
    pub files: usize,
    /// How many of them the index lists.
    pub listed: usize,
    /// Trading days per file.
    pub rows: usize,
    /// Add the faulty cases: an empty file, a header-only file, bad rows, a duplicate date, a
    /// non-UTF-8 file, and an index entry without a file.
    pub faulty: bool,
    /// PRNG seed: the same seed gives the same files.
    pub seed: u64,
}

/// Where the sample was written.
#[derive(Debug, Clone)]
pub struct SampleBatch {
    /// The `Stocks/` folder.
    pub stocks: PathBuf,
    /// The `CompanyNames/top_companies.txt` index.
    pub companies: PathBuf,
    /// Tickers listed in the index, in order.
    pub listed: Vec<String>,
}

/// The faulty files `faulty: true` adds (all listed), and the missing one.
pub const FAULTY_FILES: [&str; 5] = ["ZEMPTY", "ZHEADER", "ZBADROWS", "ZLATIN1", "ZMISSING"];

/// Writes `Stocks/*.csv` and `CompanyNames/top_companies.txt` under `root`.
pub fn generate(root: &Path, spec: &SampleSpec) -> Result<SampleBatch> {
    let stocks = root.join("Stocks");
    let names = root.join("CompanyNames");
    for dir in [&stocks, &names] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    }
    let mut rng = XorShift(spec.seed.max(1));
    let tickers: Vec<String> = (0..spec.files).map(ticker).collect();
    let mut text = String::new();
    for ticker in &tickers {
        text.clear();
        write_company(&mut text, &mut rng, spec.rows);
        write(&stocks.join(format!("{ticker}.csv")), text.as_bytes())?;
    }
    let mut listed: Vec<String> = tickers.iter().take(spec.listed).cloned().collect();
    if spec.faulty {
        const HEADER: &str = "Date,Open,High,Low,Close,Volume,OpenInt\n";
        write(&stocks.join("ZEMPTY.csv"), b"")?;
        write(&stocks.join("ZHEADER.csv"), HEADER.as_bytes())?;
        let mut bad = String::new();
        write_company(&mut bad, &mut rng, 5);
        bad.push_str("2099-13-01,1,1,1,1,100,0\n");
        bad.push_str("2099-01-02,-4.5,1,1,1,100,0\n");
        bad.push_str("2099-01-03,1.5,2,1,1.75,12.5,0\n");
        let first_line = bad.lines().nth(1).unwrap_or_default().to_string();
        bad.push_str(&first_line.replace(",0", ",1"));
        bad.push('\n');
        bad.push_str("2099-01-04,1,1");
        write(&stocks.join("ZBADROWS.csv"), bad.as_bytes())?;
        write(
            &stocks.join("ZLATIN1.csv"),
            b"Date,Open,High,Low,Close,Volume,OpenInt\n2017-01-03,1,1,1,1,100,0 \xe9\n",
        )?;
        listed.extend(FAULTY_FILES.iter().map(|s| s.to_string()));
    }
    let index: Vec<String> = listed.iter().map(|t| format!("'{t}.csv'")).collect();
    let companies = names.join(crate::plan::DEFAULT_INDEX_NAME);
    write(&companies, format!("{}\n", index.join(", ")).as_bytes())?;
    Ok(SampleBatch {
        stocks,
        companies,
        listed,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io("cannot write", path, e))
}

/// AAAA, AAAB, ...: distinct four-letter tickers.
fn ticker(mut n: usize) -> String {
    let mut letters = [b'A'; 4];
    for slot in letters.iter_mut().rev() {
        *slot = b'A' + (n % 26) as u8;
        n /= 26;
    }
    String::from_utf8_lossy(&letters).into_owned()
}

fn write_company(out: &mut String, rng: &mut XorShift, rows: usize) {
    out.push_str("Date,Open,High,Low,Close,Volume,OpenInt\n");
    let mut day = NaiveDate::from_ymd_opt(2008, 1, 2).unwrap_or_default();
    let mut close = 5.0 + rng.unit() * 200.0;
    for _ in 0..rows {
        while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            day += Duration::days(1);
        }
        let open = (close * (1.0 + (rng.unit() - 0.5) * 0.02)).max(0.01);
        close = (open * (1.0 + (rng.unit() - 0.5) * 0.04)).max(0.01);
        let high = open.max(close) * (1.0 + rng.unit() * 0.01);
        let low = open.min(close) * (1.0 - rng.unit() * 0.01);
        let volume = 10_000 + (rng.unit() * 5_000_000.0) as u64;
        let _ = writeln!(
            out,
            "{},{open:.4},{high:.4},{low:.4},{close:.4},{volume},0",
            day.format("%Y-%m-%d")
        );
        day += Duration::days(1);
    }
}

/// A tiny deterministic PRNG: sample data needs repeatability, not quality.
struct XorShift(u64);

impl XorShift {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_listed_files_and_faulty_cases() {
        let dir = tempfile::tempdir().unwrap();
        let spec = SampleSpec {
            files: 3,
            listed: 2,
            rows: 4,
            faulty: true,
            seed: 7,
        };
        let batch = generate(dir.path(), &spec).unwrap();
        assert_eq!(batch.listed.len(), 2 + FAULTY_FILES.len());
        let index = std::fs::read_to_string(&batch.companies).unwrap();
        assert!(
            index.starts_with("'AAAA.csv', 'AAAB.csv', 'ZEMPTY.csv'"),
            "{index}"
        );
        let aaaa = std::fs::read_to_string(batch.stocks.join("AAAA.csv")).unwrap();
        assert_eq!(aaaa.lines().count(), 5);
        assert!(!batch.stocks.join("ZMISSING.csv").exists());
        let again = tempfile::tempdir().unwrap();
        let batch2 = generate(again.path(), &spec).unwrap();
        assert_eq!(
            aaaa,
            std::fs::read_to_string(batch2.stocks.join("AAAA.csv")).unwrap()
        );
    }
}
