//! Read-only commands never write: `stats` and `export` work for a role with SELECT only (an
//! analyst, the pgAdmin user), and say clearly when the schema is missing or too old instead of
//! migrating it.

use sqlx::Connection;
use stockload::plan::ChangeBasis;

use crate::support::{csv, stockload, url_as, Batch, TestDb};

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The tables and applied migrations: what a read-only command must leave as it found them.
async fn schema_state(db: &TestDb) -> String {
    let tables = db
        .scalar(
            "SELECT coalesce(string_agg(relname, ',' ORDER BY relname), '') FROM pg_class \
             WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace",
        )
        .await
        .unwrap();
    let migrations = if tables.contains("refinery_schema_history") {
        db.scalar(
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM refinery_schema_history",
        )
        .await
        .unwrap_or_default()
    } else {
        String::new()
    };
    format!("tables {tables}; migrations {migrations}")
}

#[tokio::test]
async fn stats_and_export_work_for_a_select_only_role() {
    let db = TestDb::new().await;
    let batch = Batch::new(
        &[(
            "ACME.csv",
            &csv(&[("2021-03-01", "10", "11"), ("2021-03-02", "11", "12")]),
        )],
        "ACME.csv",
    );
    let report = db.load(&batch, ChangeBasis::default()).await;
    assert!(report.summary.ok(), "{}", report.summary);

    let name = url::Url::parse(&db.url).unwrap().path()[1..].to_string();
    let (role, password) = (format!("analyst_{name}"), "analyst-pw-7f3a91");
    let mut conn = db.conn().await;
    for statement in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let analyst = url_as(&db, &role, password);
    // The role really cannot write: had stats migrated, it would have failed like this.
    let mut as_analyst = sqlx::PgConnection::connect(&analyst).await.unwrap();
    let write = sqlx::raw_sql("CREATE TABLE IF NOT EXISTS refinery_schema_history (version int)")
        .execute(&mut as_analyst)
        .await;
    assert!(write.is_err(), "the analyst role can create tables");
    let before = schema_state(&db).await;

    let stats = stockload()
        .args(["stats", "--json"])
        .env("DATABASE_URL", &analyst)
        .output()
        .unwrap();
    assert!(stats.status.success(), "{}", text(&stats));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["rows"], "2");
    assert_eq!(stats["companies"], "1");

    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("historical_stock_data.csv");
    let export = stockload()
        .args(["export", "--to"])
        .arg(&file)
        .env("DATABASE_URL", &analyst)
        .output()
        .unwrap();
    assert!(export.status.success(), "{}", text(&export));
    let exported = std::fs::read_to_string(&file).unwrap();
    assert_eq!(exported.lines().count(), 2, "{exported}");
    assert!(exported.starts_with("2021-03-01,10,"), "{exported}");
    assert_eq!(schema_state(&db).await, before);
}

#[tokio::test]
async fn without_a_schema_stats_and_export_say_so_and_create_nothing() {
    let db = TestDb::new().await;
    let before = schema_state(&db).await;
    let out = tempfile::tempdir().unwrap();
    let file = out.path().join("export.csv");
    let runs = [
        stockload()
            .args(["stats"])
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap(),
        stockload()
            .args(["export", "--to"])
            .arg(&file)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap(),
    ];
    for output in runs {
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "{all}");
        assert!(
            all.contains("the database has no stockload schema: run `stockload migrate`"),
            "{all}"
        );
    }
    assert!(!file.exists());
    assert_eq!(schema_state(&db).await, before, "a read-only command wrote");
    assert_eq!(
        db.scalar("SELECT to_regclass('refinery_schema_history')::text")
            .await,
        None
    );
}

#[tokio::test]
async fn an_old_schema_is_reported_not_migrated() {
    let db = TestDb::new().await;
    let migrate = stockload()
        .arg("migrate")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", text(&migrate));
    // Pretend the newest migration was never applied: an older stockload's schema.
    let newest = db
        .scalar("SELECT max(version)::text FROM refinery_schema_history")
        .await
        .unwrap();
    let mut conn = db.conn().await;
    sqlx::query("DELETE FROM refinery_schema_history WHERE version = $1::int")
        .bind(&newest)
        .execute(&mut conn)
        .await
        .unwrap();
    let before = schema_state(&db).await;
    assert!(!before.ends_with(&newest), "{before}");
    let stats = stockload()
        .arg("stats")
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let all = text(&stats);
    assert_eq!(stats.status.code(), Some(1), "{all}");
    assert!(all.contains("schema is too old"), "{all}");
    assert!(all.contains(&format!("needs version {newest}")), "{all}");
    assert!(all.contains("run `stockload migrate`"), "{all}");
    assert_eq!(schema_state(&db).await, before, "stats migrated the schema");
}
