//! Stopping is clean: SIGTERM cancels the load's statement on the server, records the run as
//! failed, sends its notice and exits non-zero; a client killed without a word (SIGKILL) never
//! leaves its backend working on. The load is caught deterministically inside its transaction by
//! holding the load lock ourselves.

use std::process::{Child, Stdio};
use std::time::Duration;

use crate::support::services::smtp;
use crate::support::{csv, stockload, wait_until, Batch, TestDb};

/// Backends of stockload sessions waiting for the load lock.
async fn waiting_loads(db: &TestDb) -> String {
    db.scalar(&format!(
        "SELECT count(*)::text FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = {} \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        stockload::db::LOAD_LOCK_KEY & 0xffff_ffff
    ))
    .await
    .expect("count")
}

/// Starts a load that will wait for the lock we hold; returns it once it waits.
async fn load_caught_in_its_transaction(
    db: &TestDb,
    batch: &Batch,
    notify: &str,
) -> (Child, sqlx::PgConnection) {
    let mut blocker = db.conn().await;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(stockload::db::LOAD_LOCK_KEY)
        .execute(&mut blocker)
        .await
        .unwrap();
    let child = stockload()
        .args(["load", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .args(["--notify", notify, "--notify-name", "StopTest"])
        .env("DATABASE_URL", &db.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "the load to wait for the lock",
        Duration::from_secs(60),
        || async { waiting_loads(db).await == "1" },
    )
    .await;
    (child, blocker)
}

fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sigterm_cancels_records_notifies_and_exits_non_zero() {
    let db = TestDb::new().await;
    let smtp = smtp();
    let batch = Batch::new(
        &[("ACME.csv", &csv(&[("2020-01-02", "1", "2")]))],
        "ACME.csv",
    );
    let (child, _blocker) =
        load_caught_in_its_transaction(&db, &batch, &smtp.target("ops@example.com")).await;
    signal(&child, "TERM");
    let output = child.wait_with_output().unwrap();
    let all = crate::cli_text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("error:     interrupted by SIGTERM"), "{all}");
    assert!(all.contains("cancelled the load's statement"), "{all}");
    // Nothing waits on the server any more, though we still hold the lock.
    assert_eq!(waiting_loads(&db).await, "0");
    assert_eq!(
        db.scalar("SELECT status || ': ' || error FROM load_runs").await,
        Some(
            "failed: interrupted by SIGTERM: the load was cancelled and rolled back, nothing was written"
                .into()
        )
    );
    assert_eq!(db.rows().await.len(), 0);
    let notices = smtp.messages("StopTest_Pipeline_Failure");
    assert_eq!(notices.len(), 1, "one failure notice");
    assert!(
        notices[0].contains("interrupted by SIGTERM"),
        "{}",
        notices[0]
    );
}

#[tokio::test]
async fn a_killed_client_never_leaves_its_backend_working() {
    let db = TestDb::new().await;
    let batch = Batch::new(
        &[("ACME.csv", &csv(&[("2020-01-02", "1", "2")]))],
        "ACME.csv",
    );
    let (mut child, _blocker) = load_caught_in_its_transaction(&db, &batch, "console").await;
    child.kill().unwrap();
    child.wait().unwrap();
    // The server notices the vanished client at its next connection check (2 s), not when the
    // lock is finally granted: we still hold it.
    wait_until(
        "the killed load's backend to stop",
        Duration::from_secs(30),
        || async {
            db.scalar(
                "SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'stockload' \
                 AND datname = current_database()",
            )
            .await
            .as_deref()
                == Some("0")
        },
    )
    .await;
    assert_eq!(waiting_loads(&db).await, "0");
}
