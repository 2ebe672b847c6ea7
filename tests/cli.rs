//! The `stockload` binary as users run it: exit codes, output, redaction, export, demo.

use std::process::Output;

use crate::support::{csv, stockload, Batch, TestDb};

pub fn text(output: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn batch() -> Batch {
    Batch::new(
        &[
            (
                "ACME.csv",
                &csv(&[("2020-01-02", "10", "11"), ("2020-01-03", "11", "12.1")]),
            ),
            ("BETA.csv", &csv(&[("2020-01-02", "5", "5.5")])),
        ],
        "'ACME.csv', 'BETA.csv', 'GONE.csv'",
    )
}

fn load_args(batch: &Batch) -> Vec<String> {
    vec![
        "load".into(),
        "--source".into(),
        batch.stocks.display().to_string(),
        "--companies".into(),
        batch.companies.display().to_string(),
    ]
}

#[test]
fn help_lists_the_commands() {
    let output = stockload().arg("--help").output().unwrap();
    assert!(output.status.success());
    let out = String::from_utf8_lossy(&output.stdout);
    // The first word of each line of the "Commands:" section, not any word anywhere ("sql" is
    // in "PostgreSQL", "load" in the description).
    let commands: Vec<&str> = out
        .split_once("Commands:")
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no Commands: section in {out}"))
        .lines()
        .skip(1)
        .take_while(|line| !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    for command in ["migrate", "load", "sql", "stats", "export", "demo", "watch"] {
        assert!(commands.contains(&command), "{command} not in {commands:?}");
    }
}

#[test]
fn sql_prints_exactly_the_embedded_script() {
    let output = stockload()
        .args(["sql", "insert_query.sql"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/insert_query.sql"))
            .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), on_disk);
    let listing = stockload().arg("sql").output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("insert_query.sql"), "{listing}");
    assert!(listing.contains("recompute_changes.sql"), "{listing}");
    let missing = stockload().args(["sql", "nope.sql"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no script named nope.sql"));
}

/// `stockload sql | head -1`: a reader that closes the pipe early ends the output quietly (it
/// used to panic inside `println!`).
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // the reader is gone before the first write: every write fails with EPIPE
    let output = stockload()
        .args(["sql", "insert_query"])
        .stdout(writer)
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(!all.contains("panicked"), "{all}");
}

#[test]
fn an_unreachable_database_fails_without_showing_the_password() {
    let batch = batch();
    let output = stockload()
        .args(load_args(&batch))
        .args(["--connect-timeout", "5"])
        .env(
            "DATABASE_URL",
            "postgres://alice:hunter2-secret@127.0.0.1:1/stocks",
        )
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("cannot connect to PostgreSQL at postgres://alice@127.0.0.1:1/stocks"),
        "{all}"
    );
    assert!(!all.contains("hunter2"), "{all}");
}

#[tokio::test]
async fn load_json_stats_and_export_round_trip() {
    let db = TestDb::new().await;
    let batch = batch();
    let output = stockload()
        .args(load_args(&batch))
        .arg("--json")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(!all.contains(&db.password), "password leaked: {all}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect(&all);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["files_listed"], 3);
    assert_eq!(summary["files_skipped"], 1);
    assert_eq!(summary["rows_loaded"], 3);
    assert_eq!(summary["skipped_files"][0]["reason"], "file not found");

    let stats = stockload()
        .args(["stats", "--json"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(stats.status.success(), "{}", text(&stats));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["rows"], "3");
    assert_eq!(stats["companies"], "2");
    assert_eq!(stats["first_date"], "2020-01-02");
    assert_eq!(stats["sum_value_change"], "1.1");
    assert!(stats["last_run"]
        .as_str()
        .unwrap()
        .starts_with("succeeded (run 1"));

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("historical_stock_data.csv");
    let export = stockload()
        .args(["export", "--to"])
        .arg(&file)
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", text(&export));
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        exported,
        "2020-01-02,10,10,11,11,1000,,,ACME\n\
         2020-01-03,11,11,12.1,12.1,1000,10.000000,1.1,ACME\n\
         2020-01-02,5,5,5.5,5.5,1000,,,BETA\n"
    );
    // Round trip: the file loads back into an empty copy of the table unchanged.
    let mut conn = db.conn().await;
    sqlx::raw_sql("CREATE TABLE copy_back (LIKE historical_stocks_data INCLUDING ALL)")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut copy = conn
        .copy_in_raw("COPY copy_back FROM STDIN WITH (FORMAT csv)")
        .await
        .unwrap();
    copy.send(exported.as_bytes()).await.unwrap();
    assert_eq!(copy.finish().await.unwrap(), 3);
    assert_eq!(
        db.scalar(
            "SELECT count(*)::text FROM (SELECT * FROM historical_stocks_data EXCEPT SELECT * FROM copy_back) d"
        )
        .await,
        Some("0".into())
    );
}

#[tokio::test]
async fn a_wrong_database_name_is_reported_without_the_password() {
    let db = TestDb::new().await;
    let wrong = db.url.rsplit_once('/').unwrap().0.to_string() + "/no_such_db";
    let output = stockload()
        .args(["migrate"])
        .env("DATABASE_URL", &wrong)
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("no_such_db"), "{all}");
    assert!(all.contains("does not exist"), "{all}");
    assert!(!all.contains(&db.password), "password leaked: {all}");
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let db = TestDb::new().await;
    let first = stockload()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("applied V1__create_tables"),
        "{}",
        text(&first)
    );
    let second = stockload()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("schema is up to date"),
        "{}",
        text(&second)
    );
}

#[test]
fn demo_runs_on_a_private_throwaway_database() {
    let output = stockload()
        .args(["demo", "--files", "5", "--rows", "30"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("run 1 succeeded"), "{all}");
    assert!(all.contains("10 listed, 6 loaded, 4 skipped"), "{all}");
    assert!(all.contains("rows:              155"), "{all}");
    assert!(
        all.contains("rejected:  ZBADROWS.csv line 8: Open is negative: \"-4.5\""),
        "{all}"
    );
}
