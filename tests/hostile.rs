//! Hostile input through the real load into a real PostgreSQL: whatever a listed entry is and
//! whatever bytes a file holds, at most that file is skipped or those rows are rejected, each with
//! its reason; the run succeeds and `rows read = loaded + rejected` holds. Generated inputs
//! (proptest) first, each batch loaded down both load paths (into an empty table, and appended to
//! one that holds rows), then one example test for each class the generator found.

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sqlx::Row;
use stockload::load::RunStatus;

use crate::support::{csv, Batch, TestDb};

/// What a listed name turns out to be on disk.
#[derive(Debug, Clone)]
enum Entry {
    File(Vec<u8>),
    Directory,
    Fifo,
    SymlinkLoop,
    Missing,
}

/// One generated batch: the always-good file plus generated entries and junk index lines.
#[derive(Debug, Clone)]
struct Case {
    entries: BTreeMap<String, Entry>,
    junk_lines: Vec<String>,
    comma_separated: bool,
}

/// Text that is mostly the characters that trouble CSV readers and COPY (NUL, quotes, separators,
/// backslashes, line ends, a BOM, non-ASCII), plus any other character.
fn nasty_text() -> impl Strategy<Value = String> {
    let nasty = prop::sample::select(vec![
        '\0', '\t', '\\', '\r', '\n', '"', '\'', ',', '.', '\u{feff}', 'é', '\u{2028}', '\u{7f}',
    ]);
    prop::collection::vec(prop_oneof![3 => nasty, 1 => any::<char>()], 0..12)
        .prop_map(String::from_iter)
}

/// A stray byte: mostly ones with a meaning to CSV, COPY or UTF-8.
fn stray_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(vec![0u8, b'\\', b'"', b'\r', b'\n', b',', 0xff, 0xc3, 0x80]),
        1 => any::<u8>(),
    ]
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[0-9]{1,4}(\\.[0-9]{1,4})?",
        1 => "[-+0-9.eE]{0,8}",
        1 => "[0-9]e[-+]?[0-9]{3,5}",
        1 => "0\\.[0]{10,40}1",
        1 => prop::sample::select(vec!["inf", "NaN", "-0", "1e308", "1_000", "0x10", " 7 ", "+.5", "5."])
            .prop_map(str::to_string),
        1 => nasty_text(),
    ]
}

fn date() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])",
        1 => "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        1 => "[0-9-]{0,12}",
        1 => nasty_text(),
    ]
}

fn row() -> impl Strategy<Value = String> {
    (
        date(),
        prop::collection::vec(number(), 4),
        number(),
        prop_oneof![4 => Just(7usize), 1 => 0usize..10],
    )
        .prop_map(|(date, prices, volume, fields)| {
            let mut all = vec![date];
            all.extend(prices);
            all.push(volume);
            all.push("0".to_string());
            all.truncate(fields);
            all.join(",")
        })
}

/// CSV-shaped text (so rows reach validation), sometimes with stray bytes dropped in, or plain
/// arbitrary bytes.
fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    let csv_like = (
        prop::sample::select(vec![
            "Date,Open,High,Low,Close,Volume,OpenInt",
            "\u{feff}date,open,high,low,close,volume,openint",
            "Date,Open,High,Low,Close",
            "",
        ]),
        prop::collection::vec(row(), 0..12),
        prop::sample::select(vec!["\n", "\r\n"]),
        any::<bool>(),
        prop::collection::vec((any::<prop::sample::Index>(), stray_byte()), 0..4),
    )
        .prop_map(|(header, rows, newline, trailing, stray)| {
            let mut text = header.to_string();
            for row in rows {
                text.push_str(newline);
                text.push_str(&row);
            }
            if trailing {
                text.push_str(newline);
            }
            let mut bytes = text.into_bytes();
            for (at, byte) in stray {
                let at = at.index(bytes.len() + 1);
                bytes.insert(at, byte);
            }
            bytes
        });
    prop_oneof![
        5 => csv_like,
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    prop_oneof![
        12 => file_bytes().prop_map(Entry::File),
        1 => Just(Entry::Directory),
        1 => Just(Entry::Fifo),
        1 => Just(Entry::SymlinkLoop),
        1 => Just(Entry::Missing),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::btree_map("[A-Za-z][A-Za-z0-9_.-]{0,7}", entry(), 1..5),
        prop::collection::vec(prop_oneof![nasty_text(), any::<String>()], 0..3),
        any::<bool>(),
    )
        .prop_map(|(entries, junk_lines, comma_separated)| Case {
            entries,
            junk_lines,
            comma_separated,
        })
}

const GOOD_ROWS: usize = 3;

fn good_file() -> String {
    csv(&[
        ("2020-01-02", "10", "11"),
        ("2020-01-03", "11", "12"),
        ("2020-01-06", "12", "13"),
    ])
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Writes the case to disk: `zzGOOD.csv` (the one file sure to load) and each generated entry.
fn write_case(case: &Case) -> Batch {
    let mut index = vec!["zzGOOD.csv".to_string()];
    let batch = Batch::new(&[("zzGOOD.csv", &good_file())], "");
    for (name, entry) in &case.entries {
        let file_name = format!("{name}.csv");
        let path = batch.stocks.join(&file_name);
        match entry {
            Entry::File(bytes) => batch.write_bytes(&file_name, bytes),
            Entry::Directory => std::fs::create_dir(&path).unwrap(),
            Entry::Fifo => mkfifo(&path),
            Entry::SymlinkLoop => std::os::unix::fs::symlink(&path, &path).unwrap(),
            Entry::Missing => {}
        }
        index.push(file_name);
    }
    index.extend(case.junk_lines.iter().cloned());
    let separator = if case.comma_separated { ", " } else { "\n" };
    std::fs::write(&batch.companies, index.join(separator)).unwrap();
    batch
}

/// The two ways a plain load writes the table, chosen by whether it already holds rows.
#[derive(Debug, Clone, Copy)]
enum LoadPath {
    /// The table is empty: bulk insert, the key dropped and added back.
    Empty,
    /// The table holds rows (the preloaded company's): upsert into it.
    Append,
}

impl LoadPath {
    /// The transform script only this path runs, as the ledger names it.
    fn insert_script(self) -> &'static str {
        match self {
            LoadPath::Empty => "insert_empty.sql",
            LoadPath::Append => "insert_query.sql",
        }
    }

    /// Rows the table holds before each case: none, or the preloaded company's.
    fn rows_before(self) -> u64 {
        match self {
            LoadPath::Empty => 0,
            LoadPath::Append => GOOD_ROWS as u64,
        }
    }
}

/// A company the generator cannot name (its names have at most 8 characters), loaded into the
/// append path's database once so that its table is never empty.
const PRELOADED: &str = "zzPRELOADED";

/// A migrated database for `path`: empty, or holding the [`PRELOADED`] company.
async fn database_for(path: LoadPath) -> TestDb {
    let db = TestDb::new().await;
    let mut conn = db.db().connect().await.unwrap();
    stockload::db::migrate(&mut conn).await.unwrap();
    if let LoadPath::Append = path {
        let file = format!("{PRELOADED}.csv");
        let batch = Batch::new(&[(file.as_str(), &good_file())], &file);
        let report = db.load(&batch, Default::default()).await;
        assert!(report.error.is_none(), "preloading: {:?}", report.error);
    }
    db
}

/// Empties the table down to what `path` starts from: nothing, or the preloaded company.
async fn reset(db: &TestDb, path: LoadPath) -> Result<(), TestCaseError> {
    let keep = match path {
        LoadPath::Empty => None,
        LoadPath::Append => Some(PRELOADED),
    };
    let mut conn = db.conn().await;
    sqlx::query("DELETE FROM historical_stocks_data WHERE company_name IS DISTINCT FROM $1")
        .bind(keep)
        .execute(&mut conn)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(())
}

/// Loads one case down `path` and checks every promise; returns the run id.
async fn check_case(
    db: &TestDb,
    batch: &Batch,
    case: &Case,
    path: LoadPath,
) -> Result<i64, TestCaseError> {
    reset(db, path).await?;
    let mut plan = batch.plan();
    plan.max_reject_ratio = 1.0;
    let report = db.load_plan(&plan).await;
    let s = &report.summary;
    prop_assert!(
        report.error.is_none(),
        "{:?}: run failed: {:?}",
        path,
        report.error
    );
    prop_assert_eq!(s.status, RunStatus::Succeeded);
    prop_assert_eq!(s.rows_read, s.rows_loaded + s.rows_rejected);
    prop_assert_eq!(s.files_listed, s.files_loaded + s.files_skipped);
    prop_assert!(s.files_listed > case.entries.len() as u64 / 2);
    let run_id = s.run_id.expect("a succeeded run has an id");

    let mut conn = db.conn().await;
    let counts = sqlx::query(include_str!("sql/hostile_counts.sql"))
        .bind(run_id)
        .bind(PRELOADED)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let get = |i: usize| counts.get::<i64, _>(i) as u64;
    prop_assert_eq!(get(0), s.rows_rejected, "{:?}: row rejects recorded", path);
    prop_assert_eq!(
        get(1),
        s.files_skipped,
        "{:?}: skipped files recorded",
        path
    );
    prop_assert_eq!(
        get(2),
        s.rows_loaded,
        "{:?}: rows in the table, but the preloaded",
        path
    );
    prop_assert_eq!(
        get(3),
        0,
        "{:?}: row rejects without raw text or line",
        path
    );
    prop_assert_eq!(get(4), GOOD_ROWS as u64, "{:?}: the good file's rows", path);
    prop_assert_eq!(get(5), 0, "{:?}: rejects without a reason", path);
    prop_assert_eq!(
        get(6),
        path.rows_before(),
        "{:?}: the preloaded rows, untouched",
        path
    );
    let scripts: String = counts.get(7);
    prop_assert!(
        scripts.contains(path.insert_script()),
        "{:?}: the run took the other path: {}",
        path,
        scripts
    );
    Ok(run_id)
}

#[test]
fn generated_files_and_index_lines_never_sink_a_batch() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let paths = [LoadPath::Empty, LoadPath::Append];
    let dbs = paths.map(|path| runtime.block_on(database_for(path)));
    let mut runner = crate::support::proptest_runner(64);
    // Each case down both paths, from the same files.
    let result = runner.run(&case(), |case| {
        let batch = write_case(&case);
        for (db, path) in dbs.iter().zip(paths) {
            runtime.block_on(check_case(db, &batch, &case, path))?;
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// Runs a batch of `zzGOOD.csv` plus the given entries; returns the reject rows of the run as
/// (kind, file name, line, reason, raw text).
async fn load_entries(
    entries: &[(&str, Entry)],
    junk_lines: &[&str],
) -> (
    stockload::load::Summary,
    Vec<(String, String, Option<i64>, String, Option<String>)>,
) {
    let db = TestDb::new().await;
    let case = Case {
        entries: entries
            .iter()
            .map(|(n, e)| (n.to_string(), e.clone()))
            .collect(),
        junk_lines: junk_lines.iter().map(|l| l.to_string()).collect(),
        comma_separated: false,
    };
    let batch = write_case(&case);
    let mut plan = batch.plan();
    plan.max_reject_ratio = 1.0;
    let report = db.load_plan(&plan).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let s = report.summary;
    assert_eq!(s.rows_read, s.rows_loaded + s.rows_rejected);
    let mut conn = db.conn().await;
    let rejects = sqlx::query_as(
        "SELECT kind, regexp_replace(file, '^.*/', ''), line, reason, raw_text FROM load_rejects \
         WHERE run_id = $1 ORDER BY kind, file, line",
    )
    .bind(s.run_id.unwrap())
    .fetch_all(&mut conn)
    .await
    .unwrap();
    (s, rejects)
}

fn header_and(rows: &[&str]) -> Vec<u8> {
    let mut text = "Date,Open,High,Low,Close,Volume,OpenInt\n".to_string();
    for row in rows {
        text.push_str(row);
        text.push('\n');
    }
    text.into_bytes()
}

#[tokio::test]
async fn entries_that_are_not_regular_files_are_skipped_with_their_kind() {
    let (s, rejects) = load_entries(
        &[
            ("DIR", Entry::Directory),
            ("FIFO", Entry::Fifo),
            ("LOOP", Entry::SymlinkLoop),
        ],
        &[],
    )
    .await;
    assert_eq!((s.files_listed, s.files_loaded, s.files_skipped), (4, 1, 3));
    let reasons: Vec<(&str, &str)> = rejects
        .iter()
        .map(|r| (r.1.as_str(), r.3.as_str()))
        .collect();
    assert_eq!(reasons[0].0, "DIR.csv");
    assert!(reasons[0].1.contains("is a directory"), "{reasons:?}");
    assert_eq!(reasons[1].0, "FIFO.csv");
    assert!(reasons[1].1.contains("named pipe"), "{reasons:?}");
    assert_eq!(reasons[2].0, "LOOP.csv");
    assert!(reasons[2].1.starts_with("cannot open"), "{reasons:?}");
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_skipped_unread() {
    let db = TestDb::new().await;
    let batch = Batch::new(&[("GOOD.csv", &good_file())], "GOOD.csv\nHUGE.csv");
    // Sparse: the size is over the limit without writing it.
    let huge = std::fs::File::create(batch.stocks.join("HUGE.csv")).unwrap();
    huge.set_len(stockload::storage::MAX_FILE_BYTES + 1)
        .unwrap();
    let report = db.load(&batch, Default::default()).await;
    assert!(report.error.is_none(), "{:?}", report.error);
    let skipped = &report.summary.skipped_files;
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0].reason.contains("larger than the 64 MiB"),
        "{skipped:?}"
    );
}

#[tokio::test]
async fn a_nul_in_a_rejected_row_is_stored_escaped() {
    let (s, rejects) = load_entries(
        &[(
            "NUL",
            Entry::File(header_and(&[
                "2020-01-02,1,1,1,1,1,0",
                "2020-01-03,1\0,1,1,1,1,0",
                "2020-01-06,\\x00,1,1,1,1,0",
            ])),
        )],
        &[],
    )
    .await;
    assert_eq!((s.rows_loaded, s.rows_rejected), (GOOD_ROWS as u64 + 1, 2));
    let raw: Vec<Option<&str>> = rejects.iter().map(|r| r.4.as_deref()).collect();
    assert_eq!(
        raw,
        [
            Some("2020-01-03,1\\x00,1,1,1,1,0"),
            Some("2020-01-06,\\x00,1,1,1,1,0")
        ]
    );
    assert!(
        rejects[0].3.starts_with("Open is not a number"),
        "{rejects:?}"
    );
}

#[tokio::test]
async fn numbers_and_dates_postgres_refuses_are_rejected_rows() {
    let rows = [
        "0000-01-03,1,1,1,1,1,0",
        "2020-01-06,0e2000,1,1,1,1,0",
        "2020-01-07,1,1e-1001,1,1,1,0",
        "2020-01-08,1,1,0.0000000000000000000000000000000000000000001,1,1,0",
        "2020-01-09,1,1,1,1,1e5000,0",
        "2020-01-10,1_0,1,1,1,1,0",
        "2020-01-13,+.5,5.,1e2,-0,1e3,0",
    ];
    let (s, rejects) = load_entries(&[("NUM", Entry::File(header_and(&rows)))], &[]).await;
    let reasons: Vec<&str> = rejects.iter().map(|r| r.3.as_str()).collect();
    assert_eq!(s.rows_rejected, 6, "{reasons:#?}");
    assert!(
        reasons[0].starts_with("bad date \"0000-01-03\""),
        "{reasons:?}"
    );
    assert!(
        reasons[1].starts_with("Open is not a number"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].starts_with("High is not a number"),
        "{reasons:?}"
    );
    assert!(reasons[3].starts_with("Low is too long"), "{reasons:?}");
    assert!(
        reasons[4].starts_with("Volume is not finite"),
        "{reasons:?}"
    );
    assert!(
        reasons[5].starts_with("Open is not a number"),
        "{reasons:?}"
    );
    // The last row is valid in both Rust and PostgreSQL syntax and loads as written.
    assert_eq!(s.rows_loaded, GOOD_ROWS as u64 + 1);
}

#[tokio::test]
async fn odd_index_entries_are_skipped_not_fatal() {
    let long_name = format!("{}.csv", "L".repeat(300));
    let (s, rejects) = load_entries(
        &[],
        &[
            "'../secret.csv'",
            "a/b.csv",
            "'unbalanced",
            "tab\there",
            "nul\0byte",
            &long_name,
        ],
    )
    .await;
    assert_eq!((s.files_listed, s.files_loaded, s.files_skipped), (7, 1, 6));
    let reasons: Vec<&str> = rejects.iter().map(|r| r.3.as_str()).collect();
    let joined = reasons.join("\n");
    assert!(
        joined.contains("entry \"../secret.csv\" is not a plain file name"),
        "{joined}"
    );
    assert!(joined.contains("has unbalanced quotes"), "{joined}");
    assert!(joined.contains("contains a control character"), "{joined}");
    assert!(joined.contains("File name too long"), "{joined}");
    // The NUL of the entry is stored escaped in the reject's file column.
    assert!(rejects.iter().any(|r| r.1 == "nul\\x00byte"), "{rejects:?}");
}
