//! Memory is bounded by the budget, not by the files: a batch of big files loads through the
//! built binary, and the child's peak RSS (its VmHWM) stays under the promise.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::support::{stockload, TestDb};

const MIB: u64 = 1024 * 1024;

/// The promise (README, Memory): a batch of 16 files of 60 MiB peaks at 128 MiB at most.
const PEAK_RSS_LIMIT: u64 = 128 * MIB;

/// Writes a company file of at least `bytes` bytes, one trading day a row from the year 1000
/// on, each row padded with `pad` bytes in a column the loader ignores (`Note`): no padding
/// gives a real-shaped file (~40 bytes a row, 1.5 M rows in 60 MiB); padding gives few rows of
/// many bytes, so the file is big while the database has little to do.
fn write_company(path: &Path, bytes: u64, pad: usize) {
    let mut out = BufWriter::new(File::create(path).unwrap());
    writeln!(out, "Date,Open,High,Low,Close,Volume,Note").unwrap();
    let padding = "n".repeat(pad);
    let mut date = chrono::NaiveDate::from_ymd_opt(1000, 1, 1).unwrap();
    let mut written = 0;
    while written < bytes {
        let line = format!("{date},10.5,11.25,9.75,10.125,123456,{padding}\n");
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
        date = date.succ_opt().unwrap();
    }
    out.flush().unwrap();
}

/// The process's peak RSS so far in bytes (`VmHWM`: its own memory since it started the
/// binary; 0 once it has exited).
fn high_water_mark(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Runs `command` to its end; returns its exit code, stdout, stderr and peak RSS in bytes.
/// The peak is the child's `VmHWM`, sampled until it exits: it only grows, and the load's peak
/// is while it stages, long before its end. (wait4's ru_maxrss would not do: a child started
/// with vfork counts its parent's peak too, and this test process can be big.)
fn run_measured(mut command: Command, dir: &Path) -> (Option<i32>, String, String, u64) {
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = command
        .stdout(Stdio::from(File::create(&out).unwrap()))
        .stderr(Stdio::from(File::create(&err).unwrap()))
        .spawn()
        .unwrap();
    let mut peak = 0;
    let status = loop {
        peak = peak.max(high_water_mark(child.id()));
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(out).unwrap();
    let stderr = std::fs::read_to_string(err).unwrap();
    assert!(peak > 0, "no VmHWM read for the child");
    (status.code(), stdout, stderr, peak)
}

#[tokio::test]
async fn a_batch_of_big_files_stays_within_the_memory_promise() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let stocks = dir.path().join("Stocks");
    std::fs::create_dir(&stocks).unwrap();
    // 16 files of 60 MiB: one real-shaped (what a parse holds per row counts), fifteen with
    // wide rows (what the files in flight hold counts). With every file in memory at once, or a
    // parse holding several times its file, the peak is far over the limit.
    let mut names = Vec::new();
    for n in 0..16 {
        let name = format!("BIG{n:02}.csv");
        let pad = if n == 0 { 0 } else { 2000 };
        write_company(&stocks.join(&name), 60 * MIB, pad);
        names.push(name);
    }
    let index = dir.path().join("top_companies.txt");
    std::fs::write(&index, names.join("\n")).unwrap();

    // Into the empty table (staged in chunks by a second session), then the same files under
    // other company names (hard links) into the now filled table (the append path).
    let again = dir.path().join("Again");
    std::fs::create_dir(&again).unwrap();
    for name in &names {
        std::fs::hard_link(stocks.join(name), again.join(format!("NEW{name}"))).unwrap();
    }
    let index_again = dir.path().join("again.txt");
    let renamed: Vec<String> = names.iter().map(|name| format!("NEW{name}")).collect();
    std::fs::write(&index_again, renamed.join("\n")).unwrap();
    let mut loaded = 0;
    for (source, index) in [(&stocks, &index), (&again, &index_again)] {
        let mut command = stockload();
        command
            .env("DATABASE_URL", &db.url)
            .args(["load", "--json", "--source"])
            .arg(source)
            .arg("--companies")
            .arg(index);
        let (code, stdout, stderr, peak) = run_measured(command, dir.path());
        assert_eq!(code, Some(0), "{stderr}");
        let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(summary["files_loaded"], 16, "{summary}");
        assert_eq!(summary["rows_rejected"], 0, "{summary}");
        loaded += summary["rows_loaded"].as_u64().unwrap();
        let rows = db
            .scalar("SELECT count(*)::text FROM historical_stocks_data")
            .await;
        assert_eq!(rows, Some(loaded.to_string()));
        eprintln!(
            "peak RSS of the load from {}: {:.1} MiB",
            source.display(),
            peak as f64 / MIB as f64
        );
        assert!(
            peak <= PEAK_RSS_LIMIT,
            "peak RSS {:.1} MiB is over the promised {} MiB (load from {})",
            peak as f64 / MIB as f64,
            PEAK_RSS_LIMIT / MIB,
            source.display()
        );
    }
}
