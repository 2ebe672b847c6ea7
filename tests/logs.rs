//! Logs fit where they go: no colour codes when stderr is not a terminal, and with
//! `--log-format json` (or STOCKLOAD_LOG_FORMAT=json) every stderr line is one JSON object.

use crate::support::{stockload, TestDb};

/// A load that fails (its index file does not exist) after logging, through the binary, with
/// stderr a pipe and NO_COLOR unset.
fn failing_load(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = stockload();
    command
        .env_remove("NO_COLOR")
        .env_remove("STOCKLOAD_LOG_FORMAT")
        .env("RUST_LOG", "stockload=debug")
        .env("DATABASE_URL", &db.url)
        .args(args)
        .args(["load", "--notify", "console", "--source"])
        .arg(dir.path())
        .arg("--companies")
        .arg(dir.path().join("missing.txt"));
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(1), "the load should fail");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains(&db.password), "{stderr}");
    (stdout, stderr)
}

#[tokio::test]
async fn text_logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let db = TestDb::new().await;
    let (_, stderr) = failing_load(&db, &[], &[]);
    assert!(stderr.contains("missing.txt"), "{stderr}");
    assert!(stderr.lines().count() >= 2, "expected log lines: {stderr}");
    assert!(
        !stderr.contains("\x1b["),
        "colour codes in a pipe: {stderr:?}"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_by_flag_and_by_environment() {
    let db = TestDb::new().await;
    let runs = [
        failing_load(&db, &["--log-format", "json"], &[]),
        failing_load(&db, &[], &[("STOCKLOAD_LOG_FORMAT", "json")]),
    ];
    for (_, stderr) in runs {
        assert!(!stderr.contains("\x1b["), "{stderr:?}");
        let lines: Vec<serde_json::Value> = stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{stderr}"))
            })
            .collect();
        assert!(lines.len() >= 2, "{stderr}");
        assert!(lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string()));
        let notice = lines
            .iter()
            .find(|l| l["message"] == "notice")
            .unwrap_or_else(|| panic!("no notice line: {stderr}"));
        assert!(
            notice["body"].as_str().unwrap().contains("missing.txt"),
            "{notice}"
        );
    }
    // A command that ends in an error (stats on an empty database): the error is a JSON line too.
    let db = TestDb::new().await;
    let output = stockload()
        .env_remove("NO_COLOR")
        .env("DATABASE_URL", &db.url)
        .args(["--log-format", "json", "stats"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("no stockload schema"),
        "{stderr}"
    );
}

#[test]
fn colour_only_for_a_terminal_without_no_color() {
    use std::ffi::OsStr;
    use stockload::use_colour;
    assert!(use_colour(true, None));
    assert!(use_colour(true, Some(OsStr::new(""))));
    assert!(!use_colour(true, Some(OsStr::new("1"))));
    assert!(!use_colour(false, None));
}

#[test]
fn the_lambda_logs_json_by_default() {
    // No configuration: the Lambda stops at once, and says why in a JSON line.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_stockload-lambda"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("STOCKLOAD_MODE", "no-such-mode")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("\x1b["), "{stderr:?}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(
        lines[0]["message"]
            .as_str()
            .unwrap()
            .contains("STOCKLOAD_MODE"),
        "{stderr}"
    );
}
