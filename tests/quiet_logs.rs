//! Logs for people: a slow statement is a debug line, not a WARN with its SQL, and many skipped
//! files make one summary warning, not one per file.

use std::path::Path;

use crate::support::{csv, stockload, Batch, TestDb};

/// Copies the scripts (`sql/`, recursively) into `to`.
fn copy_scripts(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_scripts(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Loads `batch` through the binary with `RUST_LOG` as given (unset: the default levels).
fn load(db: &TestDb, batch: &Batch, rust_log: Option<&str>, args: &[&str]) -> String {
    let mut command = stockload();
    command
        .env("DATABASE_URL", &db.url)
        .args(["load", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .args(args);
    if let Some(filter) = rust_log {
        command.env("RUST_LOG", filter);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    stderr
}

#[tokio::test]
async fn a_slow_statement_is_a_debug_line_not_a_warning_with_its_sql() {
    let db = TestDb::new().await;
    let batch = Batch::new(
        &[("ACME.csv", &csv(&[("2017-01-03", "1", "2")]))],
        "ACME.csv",
    );
    // The scripts, with one made slow (over sqlx's 1 s threshold) by a statement of its own.
    let scripts = batch.dir.path().join("sql");
    copy_scripts(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sql"), &scripts);
    let slow = scripts.join("create_stage.sql");
    let mut text = std::fs::read_to_string(&slow).unwrap();
    text.push_str("\nSELECT pg_sleep(1.2) AS slow_on_purpose;\n");
    std::fs::write(&slow, text).unwrap();
    let sql_dir = scripts.to_str().unwrap();

    let stderr = load(&db, &batch, None, &["--sql-dir", sql_dir]);
    assert!(!stderr.contains("slow statement"), "{stderr}");
    assert!(!stderr.contains("slow_on_purpose"), "{stderr}");
    assert!(!stderr.contains("CREATE TEMPORARY TABLE"), "{stderr}");
    // The statement was slow, and is told at debug level to whoever asks for it.
    let stderr = load(&db, &batch, Some("sqlx=debug"), &["--sql-dir", sql_dir]);
    let line = stderr
        .lines()
        .find(|line| line.contains("slow statement"))
        .unwrap_or_else(|| panic!("no slow statement line at debug level: {stderr}"));
    assert!(line.contains("DEBUG"), "{line}");
}

#[tokio::test]
async fn many_missing_files_make_one_summary_warning() {
    let db = TestDb::new().await;
    let mut index = vec!["ACME.csv".to_string()];
    index.extend((0..200).map(|n| format!("GONE{n:03}.csv")));
    let batch = Batch::new(
        &[("ACME.csv", &csv(&[("2017-01-03", "1", "2")]))],
        &index.join("\n"),
    );
    let stderr = load(&db, &batch, None, &[]);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("200 of 201 listed files skipped (first: "),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("GONE000.csv: file not found"),
        "{}",
        warnings[0]
    );
    assert!(
        warnings[0].contains("load_rejects and --json"),
        "{}",
        warnings[0]
    );
}
