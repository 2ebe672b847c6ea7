//! Nothing outside the source folder is read: a listed name that is a symbolic link to a file
//! outside it is a recorded skip whose reason quotes nothing of the target; links (and chains of
//! links) that end inside the folder are read; `--follow-symlinks` reads the outside one too.

use std::os::unix::fs::symlink;

use sqlx::Row;

use crate::support::{csv, stockload, Batch, TestDb};

/// Text only the outside file holds: it must never reach the database unless followed.
const SECRET: &str = "TOPSECRET";

fn batch_with_links() -> (Batch, tempfile::TempDir) {
    let outside = tempfile::tempdir().unwrap();
    // CSV-shaped, with a rejected row whose raw text would carry the secret.
    let secret = format!(
        "{}2017-01-04,{SECRET},1,1,1,1,0\n",
        csv(&[("2017-01-03", "4242.42", "4242.42")])
    );
    std::fs::write(outside.path().join("SECRET.csv"), secret).unwrap();
    let batch = Batch::new(
        &[
            ("GOOD.csv", &csv(&[("2017-01-03", "1", "2")])),
            ("REAL.csv", &csv(&[("2017-01-03", "3", "4")])),
        ],
        "GOOD.csv\nIN.csv\nCHAIN.csv\nOUT.csv\nCHAINOUT.csv",
    );
    let stocks = &batch.stocks;
    std::fs::create_dir(stocks.join("sub")).unwrap();
    std::fs::write(
        stocks.join("sub/DEEP.csv"),
        csv(&[("2017-01-03", "5", "6")]),
    )
    .unwrap();
    symlink(stocks.join("REAL.csv"), stocks.join("IN.csv")).unwrap();
    // A chain, relative links, ending in a subfolder: inside.
    symlink("sub/DEEP.csv", stocks.join("LINK2.csv")).unwrap();
    symlink("LINK2.csv", stocks.join("CHAIN.csv")).unwrap();
    symlink(outside.path().join("SECRET.csv"), stocks.join("OUT.csv")).unwrap();
    // A chain that starts inside and ends outside.
    symlink("OUT.csv", stocks.join("CHAINOUT.csv")).unwrap();
    (batch, outside)
}

#[tokio::test]
async fn links_out_of_the_folder_are_skipped_unread_and_links_inside_are_read() {
    let db = TestDb::new().await;
    let (batch, _outside) = batch_with_links();
    let report = db.load_plan(&batch.plan()).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let s = &report.summary;
    assert_eq!((s.files_listed, s.files_loaded, s.files_skipped), (5, 3, 2));
    let mut skipped: Vec<_> = s.skipped_files.iter().collect();
    skipped.sort_by(|a, b| a.file.cmp(&b.file));
    assert!(skipped[0].file.ends_with("CHAINOUT.csv"), "{skipped:?}");
    assert!(skipped[1].file.ends_with("OUT.csv"), "{skipped:?}");
    for skip in &skipped {
        assert_eq!(skip.reason, stockload::storage::LINK_OUT_OF_FOLDER);
    }
    let companies: Vec<String> = db
        .rows()
        .await
        .iter()
        .map(|row| row[0].clone().unwrap_or_default())
        .collect();
    assert_eq!(companies, ["CHAIN", "GOOD", "IN"]);
    let mut conn = db.conn().await;
    let rejects =
        sqlx::query("SELECT coalesce(reason, '') || coalesce(raw_text, '') FROM load_rejects")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(rejects.len(), 2);
    for reject in rejects {
        let text: String = reject.get(0);
        assert!(!text.contains(SECRET) && !text.contains("4242"), "{text}");
    }
}

#[tokio::test]
async fn follow_symlinks_reads_links_out_of_the_folder() {
    let db = TestDb::new().await;
    let (batch, _outside) = batch_with_links();
    let output = stockload()
        .env("DATABASE_URL", &db.url)
        .args(["load", "--json", "--follow-symlinks", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["files_loaded"], 5, "{summary}");
    assert_eq!(summary["rows_rejected"], 2, "{summary}");
    let out = db
        .scalar(
            "SELECT max(close_value)::text FROM historical_stocks_data WHERE company_name = 'OUT'",
        )
        .await;
    assert_eq!(out.as_deref(), Some("4242.42"));
}
