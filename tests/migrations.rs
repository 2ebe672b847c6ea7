//! Landed migrations are immutable: every migration on main is held here with refinery's own
//! checksum, so editing, renaming or removing one fails the suite, and a new one fails it until
//! its checksum is added here on purpose. (A database that applied the old text would see the
//! edited file as divergent; new schema goes in a new `V{n}__name.sql`.)

use std::path::PathBuf;

use refinery_core::Migration;
use sqlx::Row;

use crate::support::TestDb;

/// (version, name, refinery checksum) of every landed migration (V1-V5 as on main at 4bda3ab,
/// V6 as it landed in 491c954).
/// A migration joins this list when it lands; it is never edited after that.
const LANDED: &[(i32, &str, u64)] = &[
    (1, "create_tables", 1312481866533681230),
    (2, "change_functions", 13498545325004184640),
    (4, "load_run_scope", 9319006518538150050),
    (5, "work_schema", 6874684254578440020),
    (6, "ledger_states", 7472833734298895816),
    (7, "quality_flags", 12908285351116042277),
    (8, "load_run_steps", 14295192238563565468),
    (9, "marker_decisions", 9364394000707718189),
    (10, "staged_counts", 5559151709382252346),
];

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// The migrations as refinery reads them from `migrations/` (the same files `embed_migrations!`
/// builds in), with their checksums.
fn on_disk() -> Vec<Migration> {
    refinery_core::load_sql_migrations(folder())
        .unwrap_or_else(|e| panic!("refinery cannot read {}: {e}", folder().display()))
}

fn file(version: i32, name: &str) -> String {
    format!("migrations/V{version}__{name}.sql")
}

#[test]
fn landed_migrations_are_never_edited_and_new_ones_are_added_knowingly() {
    let found = on_disk();
    let mut problems = Vec::new();
    for &(version, name, checksum) in LANDED {
        let path = file(version, name);
        match found
            .iter()
            .find(|m| m.version() == version && m.name() == name)
        {
            None => problems.push(format!(
                "{path} is gone or renamed: a landed migration stays as it is (restore it with \
                 `git checkout main -- {path}`)"
            )),
            Some(m) if m.checksum() != checksum => problems.push(format!(
                "{path} was edited (refinery checksum {} instead of {checksum}): a landed \
                 migration is never edited, since databases that applied it would refuse the \
                 new text; restore it (`git checkout main -- {path}`) and put the change in a \
                 new migration",
                m.checksum()
            )),
            Some(_) => {}
        }
    }
    for m in &found {
        if !LANDED
            .iter()
            .any(|&(version, name, _)| m.version() == version && m.name() == name)
        {
            problems.push(format!(
                "{} is not in the list of landed migrations: once it is final, add \
                 `({}, {:?}, {}),` to LANDED in tests/migrations.rs; from then on it is never \
                 edited",
                file(m.version(), m.name()),
                m.version(),
                m.name(),
                m.checksum()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_file_in_the_migrations_folder_is_a_migration_refinery_runs() {
    // refinery skips a misnamed file with only a log warning: it would never run.
    let mut names: Vec<String> = std::fs::read_dir(folder())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut read: Vec<String> = on_disk()
        .iter()
        .map(|m| format!("V{}__{}.sql", m.version(), m.name()))
        .collect();
    // By name, as the folder is listed (V10 before V2), not by version.
    read.sort();
    assert_eq!(
        names, read,
        "every file in migrations/ must be named V{{version}}__{{name}}.sql"
    );
}

#[tokio::test]
async fn the_held_checksums_are_the_ones_refinery_records_when_it_migrates() {
    let db = TestDb::new().await;
    let mut conn = db.db().connect().await.unwrap();
    stockload::db::migrate(&mut conn).await.unwrap();
    let mut conn = db.conn().await;
    let recorded: Vec<(i32, String, u64)> =
        sqlx::query("SELECT version, name, checksum FROM refinery_schema_history ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let checksum: String = row.get(2);
                (row.get(0), row.get(1), checksum.parse().unwrap())
            })
            .collect();
    let computed: Vec<(i32, String, u64)> = on_disk()
        .iter()
        .map(|m| (m.version(), m.name().to_string(), m.checksum()))
        .collect();
    assert_eq!(recorded, computed);
}
