//! The run report: written by `stockload report` and `load --report` for the sample batch with
//! its faulty cases, for a failed run and for a run with hostile names and lines; its numbers
//! are checked against the ledger, and the page is opened in a real browser (Debian's chromium,
//! headless): no console message, no network request, no element from a payload. Screenshots
//! land in target/tmp/report-*.png for a person to look at.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::cli_text as text;
use crate::support::{csv, stockload, Batch, TestDb};
use stockload::sample::{self, SampleSpec};

/// The page as a browser would serialise its text: askama writes `<` as `&#60;`, a browser's
/// DOM as `&lt;` (both are text, never markup).
fn entities_named(html: &str) -> String {
    html.replace("&#60;", "&lt;")
        .replace("&#62;", "&gt;")
        .replace("&#34;", "\"")
        .replace("&#38;", "&amp;")
}

/// The text of the element with id `id`, up to its first tag.
fn by_id(html: &str, id: &str) -> String {
    let open = format!("id=\"{id}\">");
    let at = html
        .find(&open)
        .unwrap_or_else(|| panic!("the page has no element #{id}"));
    let rest = &html[at + open.len()..];
    rest[..rest.find('<').unwrap()].to_string()
}

/// A count shown in element `id` (thousands separators removed).
fn count_in(html: &str, id: &str) -> i64 {
    let shown = by_id(html, id);
    shown
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("#{id} shows {shown:?}, not a count"))
}

/// The body rows of the table with id `id` (0 when the page has no such table).
fn table_rows(html: &str, id: &str) -> Vec<String> {
    let Some(at) = html.find(&format!("<table id=\"{id}\"")) else {
        return Vec::new();
    };
    let table = &html[at..at + html[at..].find("</table>").unwrap()];
    let body = &table[table.find("<tbody>").unwrap()..];
    body.split("<tr")
        .skip(1)
        .map(|row| row.to_string())
        .collect()
}

/// The cells' text of a table row, tags removed.
fn cells(row: &str) -> Vec<String> {
    row.split("<td")
        .skip(1)
        .map(|cell| {
            let mut text = String::new();
            let mut in_tag = true;
            for c in cell[..cell.find("</td>").unwrap_or(cell.len())].chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text
        })
        .collect()
}

async fn number(db: &TestDb, sql: &str) -> i64 {
    db.scalar(sql)
        .await
        .unwrap_or_else(|| panic!("{sql}: NULL"))
        .parse()
        .unwrap()
}

/// Checks every number the page shows against the ledger of run `run_id`.
async fn numbers_match_the_ledger(db: &TestDb, html: &str, run_id: i64) {
    assert_eq!(count_in(html, "run-id"), run_id);
    for (id, column) in [
        ("files-listed", "files_listed"),
        ("files-loaded", "files_loaded"),
        ("files-skipped", "files_skipped"),
        ("rows-read", "rows_read"),
        ("rows-loaded", "rows_loaded"),
        ("rows-rejected", "rows_rejected"),
    ] {
        let ledger = number(
            db,
            &format!("SELECT {column}::text FROM load_runs WHERE id = {run_id}"),
        )
        .await;
        assert_eq!(
            count_in(html, id),
            ledger,
            "#{id} against load_runs.{column}"
        );
    }
    let status = db
        .scalar(&format!("SELECT status FROM load_runs WHERE id = {run_id}"))
        .await
        .unwrap();
    assert_eq!(by_id(html, "run-status"), status);
    let rejects_of = |kind: &str| {
        format!(
            "SELECT count(*)::text FROM load_rejects WHERE run_id = {run_id} AND kind = '{kind}'"
        )
    };
    let rejected = number(db, &rejects_of("row")).await;
    let kinds: i64 = table_rows(html, "reject-kinds")
        .iter()
        .map(|row| cells(row)[1].replace(',', "").parse::<i64>().unwrap())
        .sum();
    assert_eq!(
        kinds, rejected,
        "the rejects by reason add up to load_rejects"
    );
    assert_eq!(
        table_rows(html, "rejected-lines").len() as i64,
        rejected.min(100)
    );
    assert_eq!(
        table_rows(html, "skipped").len() as i64,
        number(db, &rejects_of("file")).await
    );
    let steps = table_rows(html, "steps");
    let recorded = number(
        db,
        &format!("SELECT count(*)::text FROM load_run_steps WHERE run_id = {run_id}"),
    )
    .await;
    assert_eq!(
        steps
            .iter()
            .filter(|r| r.starts_with(" class=\"step\""))
            .count() as i64,
        recorded
    );
    let millis: i64 = number(
        db,
        &format!(
            "SELECT coalesce(sum(millis), 0)::text FROM load_run_steps WHERE run_id = {run_id}"
        ),
    )
    .await;
    let shown: i64 = steps
        .iter()
        .filter(|r| r.starts_with(" class=\"step\""))
        .map(|row| cells(row)[4].replace(',', "").parse::<i64>().unwrap())
        .sum();
    assert_eq!(shown, millis, "the steps' times are the ledger's");
    assert_eq!(
        table_rows(html, "history").len() as i64,
        number(
            db,
            &format!("SELECT least(count(*), 30)::text FROM load_runs WHERE id <= {run_id}")
        )
        .await
    );
    assert_eq!(
        table_rows(html, "companies").len() as i64,
        number(
            db,
            &format!("SELECT count(*)::text FROM load_run_scope WHERE run_id = {run_id}")
        )
        .await
    );
}

/// Debian's chromium in headless mode, or `None` when `STOCKLOAD_SKIP_BROWSER` says why it
/// cannot be there (scripts/test.sh sets it only when chromium cannot be installed).
struct Browser(PathBuf);

/// What the browser saw when it opened a page.
struct Opened {
    /// The DOM after loading, as the browser serialises it.
    dom: String,
    /// Console messages (CSP violations land here too).
    console: Vec<String>,
    /// URLs the page asked the network for.
    requests: Vec<String>,
}

impl Browser {
    fn find() -> Option<Browser> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let found = std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|candidate| candidate.is_file());
        if let Some(exe) = found {
            return Some(Browser(exe));
        }
        match std::env::var("STOCKLOAD_SKIP_BROWSER") {
            Ok(reason) if !reason.trim().is_empty() => {
                eprintln!("SKIPPED the browser checks of the run report: {reason}");
                None
            }
            _ => panic!(
                "chromium is not installed: the report's browser checks need it \
                 (apt-get install -y chromium; scripts/test.sh installs it), or set \
                 STOCKLOAD_SKIP_BROWSER=<why> to skip them"
            ),
        }
    }

    fn command(&self, profile: &Path) -> Command {
        let mut command = Command::new(&self.0);
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]);
        command.arg(format!("--user-data-dir={}", profile.display()));
        command
    }

    fn run(command: &mut Command) -> Output {
        let output = command.output().expect("chromium starts");
        assert!(
            output.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Opens `page` and reports what happened.
    fn open(&self, page: &Path) -> Opened {
        let profile = tempfile::tempdir().unwrap();
        let logs = tempfile::tempdir().unwrap();
        let netlog = logs.path().join("net.json");
        let url = url::Url::from_file_path(page).unwrap();
        let output = Browser::run(
            self.command(profile.path())
                .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
                .arg(format!("--log-net-log={}", netlog.display()))
                .arg(url.as_str()),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        let console = stderr
            .lines()
            .filter(|line| line.contains(":CONSOLE"))
            .map(str::to_string)
            .collect();
        Opened {
            dom: String::from_utf8_lossy(&output.stdout).into_owned(),
            console,
            requests: page_requests(&netlog),
        }
    }

    /// Saves a screenshot of `page`, 1280 pixels wide.
    fn screenshot(&self, page: &Path, png: &Path) {
        let profile = tempfile::tempdir().unwrap();
        let url = url::Url::from_file_path(page).unwrap();
        Browser::run(
            self.command(profile.path())
                .arg("--hide-scrollbars")
                .arg("--window-size=1280,2400")
                .arg(format!("--screenshot={}", png.display()))
                .arg(url.as_str()),
        );
        assert!(png.is_file(), "no screenshot at {}", png.display());
        eprintln!("screenshot of the report: {}", png.display());
    }
}

/// The URLs of the network requests a page started, from chromium's net log. The browser's own
/// background requests (time, updates) have no initiator ("not an origin"); a page's have one
/// (a page opened from a file: "null").
fn page_requests(netlog: &Path) -> Vec<String> {
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(netlog).expect("chromium wrote its net log"))
            .expect("the net log is JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"].clone();
    log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["type"] == start_job)
        .filter(|event| {
            event["params"]["initiator"]
                .as_str()
                .is_some_and(|initiator| initiator != "not an origin")
        })
        .map(|event| event["params"]["url"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Where screenshots go: target/tmp, kept after the tests.
fn screenshot_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("report-{name}.png"))
}

/// Opens the report in the browser (when there is one): it must load with no console message
/// and no network request; returns the DOM the browser built, or the file itself without a
/// browser.
fn open_in_browser(page: &Path, name: &str) -> String {
    let html = std::fs::read_to_string(page).unwrap();
    let Some(browser) = Browser::find() else {
        return html;
    };
    let opened = browser.open(page);
    assert!(
        opened.console.is_empty(),
        "console messages: {:?}",
        opened.console
    );
    assert!(
        opened.requests.is_empty(),
        "network requests: {:?}",
        opened.requests
    );
    assert!(
        opened.dom.contains("id=\"run-id\""),
        "the browser did not render the report: {}",
        opened.dom
    );
    browser.screenshot(page, &screenshot_path(name));
    opened.dom
}

fn sample_batch(dir: &Path, files: usize, rows: usize) -> sample::SampleBatch {
    let spec = SampleSpec {
        files,
        listed: files,
        rows,
        faulty: true,
        seed: 42,
    };
    sample::generate(dir, &spec).unwrap()
}

fn load_command(db: &TestDb, batch: &sample::SampleBatch) -> Command {
    let mut command = stockload();
    command
        .args(["load", "--source"])
        .arg(&batch.stocks)
        .arg("--companies")
        .arg(&batch.companies)
        .env("DATABASE_URL", &db.url);
    command
}

fn report_command(url: &str, to: &Path) -> Command {
    let mut command = stockload();
    command
        .args(["report", "--to"])
        .arg(to)
        .env("DATABASE_URL", url);
    command
}

#[test]
fn the_browser_checks_see_scripts_and_requests() {
    // The checks below could only pass: a page that does run a script and fetch something
    // must be caught by the same harness.
    let Some(browser) = Browser::find() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("canary.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html lang=\"en\"><head><title>canary</title></head><body>\
         <img src=\"https://example.invalid/canary.png\">\
         <script>console.error('canary ran')</script></body></html>",
    )
    .unwrap();
    let opened = browser.open(&page);
    assert!(
        opened.console.iter().any(|l| l.contains("canary ran")),
        "{:?}",
        opened.console
    );
    assert!(
        opened
            .requests
            .iter()
            .any(|url| url.contains("example.invalid")),
        "{:?}",
        opened.requests
    );
}

#[tokio::test]
async fn the_report_of_the_sample_batch_shows_the_ledger() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let batch = sample_batch(dir.path(), 12, 120);
    // Two runs: into the empty table, then the same batch again (the append path).
    for _ in 0..2 {
        let output = load_command(&db, &batch).output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
    let page = dir.path().join("report.html");
    let output = report_command(&db.url, &page).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("wrote the report"),
        "{}",
        text(&output)
    );

    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'"
    ));
    for forbidden in [
        "<script", "<link", "<img", "<iframe", "@import", "url(", "http://", "https://",
    ] {
        let outside_svg_namespace = html.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !outside_svg_namespace.contains(forbidden),
            "the page holds {forbidden}"
        );
    }
    let dom = open_in_browser(&page, "sample");
    let last = number(&db, "SELECT max(id)::text FROM load_runs").await;
    numbers_match_the_ledger(&db, &dom, last).await;
    // The faulty cases are all there: every skipped file by name, the rejected lines.
    for skipped in ["ZEMPTY.csv", "ZHEADER.csv", "ZLATIN1.csv", "ZMISSING.csv"] {
        assert!(
            table_rows(&dom, "skipped")
                .iter()
                .any(|r| r.contains(skipped)),
            "{skipped} is not among the skipped files"
        );
    }
    assert!(table_rows(&dom, "rejected-lines")
        .iter()
        .all(|r| r.contains("ZBADROWS.csv:")));
    assert!(
        dom.contains("No quality flags are recorded"),
        "quality section"
    );
    assert_eq!(table_rows(&dom, "history").len(), 2);
    assert_eq!(
        dom.matches("<svg").count(),
        5,
        "timeline, rejects, 3 history charts"
    );

    // The first run, by number, and a role that may only read gets the same page.
    let name = url::Url::parse(&db.url).unwrap().path()[1..].to_string();
    let (role, password) = (format!("reader_{name}"), "reader-pw-5c1e");
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
    let mut reader = url::Url::parse(&db.url).unwrap();
    reader.set_username(&role).unwrap();
    reader.set_password(Some(password)).unwrap();
    let folder = dir.path().join("reports");
    std::fs::create_dir(&folder).unwrap();
    let output = report_command(reader.as_str(), &folder)
        .args(["--run", &(last - 1).to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let first = std::fs::read_to_string(folder.join(format!("run-{}.html", last - 1))).unwrap();
    numbers_match_the_ledger(&db, &first, last - 1).await;
    let output = report_command(reader.as_str(), &folder)
        .args(["--run", "999"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        text(&output).contains("load_runs has no run 999"),
        "{}",
        text(&output)
    );
}

#[tokio::test]
async fn a_failed_run_writes_its_report_and_the_notice_names_it() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let batch = sample_batch(dir.path(), 4, 30);
    let reports = dir.path().join("reports");
    let output = load_command(&db, &batch)
        .args(["--max-reject-ratio", "0", "--notify", "console", "--report"])
        .arg(format!("{}/", reports.display()))
        .output()
        .unwrap();
    assert!(!output.status.success(), "{}", text(&output));
    let run_id = number(&db, "SELECT max(id)::text FROM load_runs").await;
    let page = reports.join(format!("run-{run_id}.html"));
    assert!(
        text(&output).contains(&format!("Report: {}", page.display())),
        "the notice names the report: {}",
        text(&output)
    );
    let dom = open_in_browser(&page, "failed");
    numbers_match_the_ledger(&db, &dom, run_id).await;
    assert_eq!(by_id(&dom, "run-status"), "failed");
    let error = db
        .scalar(&format!("SELECT error FROM load_runs WHERE id = {run_id}"))
        .await
        .unwrap();
    assert!(error.contains("too many rejected rows"), "{error}");
    assert_eq!(by_id(&dom, "run-error"), error.replace('>', "&gt;"));
    assert!(dom.contains("No company is recorded for this run (a failed run writes nothing)"));
    // The failed run's start is when it started, not when its failure was recorded.
    let seconds: f64 = db
        .scalar(&format!(
            "SELECT extract(epoch FROM finished_at - started_at)::text FROM load_runs WHERE id = {run_id}"
        ))
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(seconds > 0.0, "{seconds}");
}

#[tokio::test]
async fn hostile_names_and_lines_stay_text() {
    let db = TestDb::new().await;
    let file = "<img src=x onerror=alert(1)>.csv";
    let mut body = csv(&[("2021-03-01", "10", "11"), ("2021-03-02", "11", "12")]);
    body.push_str("<script>alert(2)</script>,1,1,1,1,100,0\n");
    let batch = Batch::new(
        &[(file, &body)],
        &format!(
            "'{file}', '<svg onload=alert(3)>.csv', \"</script><script>alert(4)</script>.csv\""
        ),
    );
    let report = db.load(&batch, Default::default()).await;
    assert!(report.summary.ok(), "{}", report.summary);
    assert_eq!(report.summary.rows_rejected, 1);
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("hostile.html");
    let output = report_command(&db.url, &page).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let html = entities_named(&std::fs::read_to_string(&page).unwrap());
    for payload in ["<img", "<script", "<svg onload", "</script>"] {
        assert!(
            !html.contains(payload),
            "the page holds {payload} unescaped"
        );
    }
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "the company shows as text"
    );
    assert!(
        html.contains("&lt;script&gt;alert(2)&lt;/script&gt;,1,1,1,1,100,0"),
        "the line shows as text"
    );
    assert!(
        html.contains("&lt;svg onload=alert(3)&gt;.csv"),
        "the skipped file shows as text"
    );
    let dom = open_in_browser(&page, "hostile");
    numbers_match_the_ledger(&db, &dom, report.summary.run_id.unwrap()).await;
    // No element came from a payload: the only <svg> elements are the report's charts, and
    // there is no <img> nor <script> at all.
    assert!(!dom.contains("<img") && !dom.contains("<script"), "{dom}");
    assert_eq!(
        dom.matches("<svg").count(),
        dom.matches("<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart")
            .count()
    );
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"));
    assert!(dom.contains("&lt;/script&gt;&lt;script&gt;alert(4)&lt;/script&gt;.csv"));
}

#[tokio::test]
async fn the_report_of_a_thousand_files_stays_under_one_mebibyte() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let batch = sample_batch(dir.path(), 1000, 5);
    let output = load_command(&db, &batch).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let page = dir.path().join("big.html");
    let output = report_command(&db.url, &page).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let size = std::fs::metadata(&page).unwrap().len();
    eprintln!("the report of 1000 files is {size} bytes");
    assert!(size <= 1024 * 1024, "{size} bytes");
    let html = std::fs::read_to_string(&page).unwrap();
    // The thousand and the file with bad rows.
    assert_eq!(table_rows(&html, "companies").len(), 1001);
    assert_eq!(count_in(&html, "files-listed"), 1000 + 5);
}

/// The quality checks' flags of a run, as the checks raised them (a bar whose low is above its
/// high, a frozen zero-volume bar under a hostile company name), are shown by check and row,
/// equal to quality_flags, escaped.
#[tokio::test]
async fn quality_flags_are_shown_as_the_checks_raised_them() {
    let db = TestDb::new().await;
    let header = "Date,Open,High,Low,Close,Volume,OpenInt\n";
    let acme = format!(
        "{header}2021-03-01,10,11,9,10.5,1000,0\n2021-03-02,10,9,11,10,1000,0\n\
         2021-03-03,10,11,9,10.5,1000,0\n"
    );
    let bold = format!("{header}2021-03-01,5,5,5,5,0,0\n2021-03-02,5,6,4,5,100,0\n");
    let batch = Batch::new(
        &[("ACME.csv", &acme), ("<u>BOLD.csv", &bold)],
        "ACME.csv, <u>BOLD.csv",
    );
    let report = db.load(&batch, Default::default()).await;
    assert!(report.summary.ok(), "{}", report.summary);
    let run_id = report.summary.run_id.unwrap();
    let flags_by_check = db
        .scalar(&format!(
            "SELECT string_agg(check_name || ' ' || severity || ' ' || n, ', ' ORDER BY check_name) \
             FROM (SELECT check_name, severity, count(*) AS n FROM quality_flags \
                   WHERE run_id = {run_id} GROUP BY 1, 2) AS c"
        ))
        .await
        .expect("the checks raised flags");
    assert!(
        flags_by_check.contains("ohlc_inconsistent error 1")
            && flags_by_check.contains("stale_bar warning 1"),
        "{flags_by_check}"
    );
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("quality.html");
    let output = report_command(&db.url, &page).output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let html = entities_named(&std::fs::read_to_string(&page).unwrap());
    let mut shown: Vec<String> = table_rows(&html, "quality-checks")
        .iter()
        .map(|row| cells(row).join(" "))
        .collect();
    shown.sort();
    assert_eq!(shown.join(", "), flags_by_check, "{html}");
    let flagged: Vec<Vec<String>> = table_rows(&html, "flagged-rows")
        .iter()
        .map(|row| cells(row))
        .collect();
    assert!(
        flagged
            .iter()
            .any(|row| row[..3] == ["ACME", "2021-03-02", "ohlc_inconsistent"]),
        "{flagged:?}"
    );
    assert!(
        flagged
            .iter()
            .any(|row| row[..3] == ["&lt;u&gt;BOLD", "2021-03-01", "stale_bar"]),
        "{flagged:?}"
    );
    assert!(!html.contains("<u>"));
    open_in_browser(&page, "quality");
}
