//! Test harness: one private PostgreSQL cluster per test process (or the server in DATABASE_URL),
//! a fresh database per test, and helpers to write batches and read the table back.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::{Connection, PgConnection, Row};
use stockload::db::Db;
use stockload::devdb::TempCluster;
use stockload::load::{self, Report};
use stockload::plan::{ChangeBasis, Plan};
use stockload::storage::{Location, Storage};

pub mod services;

/// Records that the running test could not run and returns, for the caller to end the test:
/// prints a SKIPPED line and, when STOCKLOAD_SKIP_LOG names a file, appends
/// `group<TAB>test<TAB>why` to it, so scripts/test.sh can count the skips in its summary
/// (`cargo test` hides a passing test's output).
pub fn skipped(group: &str, why: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    eprintln!("SKIPPED {test} ({group}): {why}");
    if let Some(path) = std::env::var_os("STOCKLOAD_SKIP_LOG") {
        use std::io::Write;
        let line = format!("{group}\t{test}\t{}\n", why.replace(['\t', '\n'], " "));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()))
            .unwrap_or_else(|e| panic!("cannot record the skip in {path:?}: {e}"));
    }
}

/// Polls `check` every 100 ms until it holds; fails the test after `limit`, naming `what`.
/// Polling re-checks the real condition each time: never a sleep standing in for an event.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_until_or(what, limit, check, String::new).await;
}

/// [`wait_until`], with `context` (e.g. a process's log) added to the timeout's message.
pub async fn wait_until_or<F, Fut>(
    what: &str,
    limit: Duration,
    mut check: F,
    context: impl Fn() -> String,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + limit;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

enum Server {
    Private(TempCluster),
    External(url::Url),
}

static SERVER: OnceLock<Server> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            Server::External(url::Url::parse(&url).expect("DATABASE_URL is not a valid URL"))
        }
        _ => Server::Private(
            TempCluster::start(&[("fsync", "off"), ("max_connections", "200")])
                .expect("cannot start the throwaway PostgreSQL for the tests"),
        ),
    })
}

/// A fresh, empty database of its own for one test.
pub struct TestDb {
    /// Its URL (with password).
    pub url: String,
    /// The password inside `url` (tests check it never leaks).
    pub password: String,
}

impl TestDb {
    /// Creates it.
    pub async fn new() -> TestDb {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::SeqCst)
        );
        match server() {
            Server::Private(cluster) => {
                cluster
                    .create_database(&name)
                    .await
                    .expect("create database");
                TestDb {
                    url: cluster.url(&name),
                    password: cluster.password().to_string(),
                }
            }
            Server::External(base) => {
                let mut conn = PgConnection::connect(base.as_str()).await.expect("connect");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let mut url = base.clone();
                url.set_path(&name);
                TestDb {
                    url: url.to_string(),
                    password: base.password().unwrap_or_default().to_string(),
                }
            }
        }
    }

    /// The stockload view of it.
    pub fn db(&self) -> Db {
        Db::new(Some(&self.url), "64MB", Duration::from_secs(30)).unwrap()
    }

    /// A plain connection.
    pub async fn conn(&self) -> PgConnection {
        PgConnection::connect(&self.url).await.expect("connect")
    }

    /// Every row of historical_stocks_data as text, in key order. A failed query (no table, no
    /// server) fails the test: "no rows" must never stand in for "could not look".
    pub async fn rows(&self) -> Vec<Vec<Option<String>>> {
        let mut conn = self.conn().await;
        sqlx::query(
            "SELECT company_name, stock_date::text, open_value::text, high_value::text, \
             low_value::text, close_value::text, volume_traded::text, value_change::text, \
             daily_percent_change::text FROM historical_stocks_data ORDER BY 1, 2",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("reading historical_stocks_data: {e}"))
        .iter()
        .map(|row| (0..9).map(|i| row.get::<Option<String>, _>(i)).collect())
        .collect()
    }

    /// (company, date, value_change, daily_percent_change) of every row.
    pub async fn changes(&self) -> Vec<(String, String, Option<String>, Option<String>)> {
        self.rows()
            .await
            .into_iter()
            .map(|r| {
                (
                    r[0].clone().unwrap(),
                    r[1].clone().unwrap(),
                    r[7].clone(),
                    r[8].clone(),
                )
            })
            .collect()
    }

    /// One scalar query result as text.
    pub async fn scalar(&self, sql: &str) -> Option<String> {
        let mut conn = self.conn().await;
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .get::<Option<String>, _>(0)
    }

    /// Succeeded runs so far (0 while no run has even created the ledger).
    pub async fn succeeded_runs(&self) -> usize {
        if self
            .scalar("SELECT to_regclass('load_runs')::text")
            .await
            .is_none()
        {
            return 0;
        }
        self.scalar("SELECT count(*)::text FROM load_runs WHERE status = 'succeeded'")
            .await
            .and_then(|n| n.parse().ok())
            .expect("count(*) is a number")
    }

    /// Loads a batch through the library's load function.
    pub async fn load(&self, batch: &Batch, basis: ChangeBasis) -> Report {
        let mut plan = batch.plan();
        plan.basis = basis;
        self.load_plan(&plan).await
    }

    /// Loads with a prepared plan.
    pub async fn load_plan(&self, plan: &Plan) -> Report {
        load::run(
            &self.db(),
            &Storage::new(None),
            plan,
            &indicatif::ProgressBar::hidden(),
        )
        .await
    }
}

/// A batch on disk: `Stocks/` and `top_companies.txt` in a temporary folder.
pub struct Batch {
    pub dir: tempfile::TempDir,
    pub stocks: PathBuf,
    pub companies: PathBuf,
}

impl Batch {
    /// Writes the files (name, content) and the index text.
    pub fn new(files: &[(&str, &str)], index: &str) -> Batch {
        let dir = tempfile::tempdir().unwrap();
        let stocks = dir.path().join("Stocks");
        std::fs::create_dir_all(&stocks).unwrap();
        for (name, text) in files {
            std::fs::write(stocks.join(name), text).unwrap();
        }
        let companies = dir.path().join("top_companies.txt");
        std::fs::write(&companies, index).unwrap();
        Batch {
            dir,
            stocks,
            companies,
        }
    }

    /// Adds or replaces a raw file.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.stocks.join(name), bytes).unwrap();
    }

    /// The default plan for it.
    pub fn plan(&self) -> Plan {
        Plan::new(
            Location::Local(self.stocks.clone()),
            Location::Local(self.companies.clone()),
        )
    }
}

/// CSV text with the standard header from (date, open, high, low, close, volume) rows.
pub fn csv(rows: &[(&str, &str, &str)]) -> String {
    let mut text = String::from("Date,Open,High,Low,Close,Volume,OpenInt\n");
    for (date, open, close) in rows {
        text.push_str(&format!("{date},{open},{open},{close},{close},1000,0\n"));
    }
    text
}

/// The built `stockload` binary.
pub fn stockload() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stockload"));
    command.env("NO_COLOR", "1").env_remove("RUST_LOG");
    command
}

/// Certificates made for a test with the `openssl` command line (in a temporary folder).
pub struct Pki {
    pub dir: tempfile::TempDir,
}

/// A certificate and its key, as PEM files.
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        Pki {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn openssl(&self, args: &[&str]) {
        let output = std::process::Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("the TLS tests need the openssl command line (apt-get install openssl)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn files(&self, name: &str) -> CertFiles {
        CertFiles {
            cert: self.dir.path().join(format!("{name}.crt")),
            key: self.dir.path().join(format!("{name}.key")),
        }
    }

    /// A self-signed X.509 **v1** certificate (RSA, no extensions: `openssl x509 -req`), the kind
    /// some PostgreSQL distributions generate.
    pub fn self_signed_v1(&self, name: &str) -> CertFiles {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            "/CN=localhost",
            "-out",
            &csr,
        ]);
        self.openssl(&[
            "x509", "-req", "-in", &csr, "-signkey", &key, "-days", "30", "-out", &crt,
        ]);
        self.files(name)
    }

    /// A self-signed X.509 v3 certificate (ECDSA P-256) for localhost and 127.0.0.1.
    pub fn self_signed_v3(&self, name: &str) -> CertFiles {
        let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ]);
        self.files(name)
    }

    /// A certificate authority (self-signed, v3, CA:TRUE).
    pub fn ca(&self, name: &str) -> CertFiles {
        let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
        let subject = format!("/CN={name}");
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "30",
            "-subj",
            &subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        self.files(name)
    }

    /// A server certificate signed by `ca`, valid for `alt_names` (e.g. `DNS:localhost`).
    pub fn signed(&self, ca: &CertFiles, name: &str, alt_names: &str) -> CertFiles {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(
            self.dir.path().join(&ext),
            format!(
                "subjectAltName={alt_names}\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .unwrap();
        self.openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            "/CN=server",
            "-out",
            &csr,
        ]);
        let (ca_cert, ca_key) = (ca.cert.display().to_string(), ca.key.display().to_string());
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &crt,
            "-extfile",
            &ext,
        ]);
        self.files(name)
    }
}

/// A throwaway cluster of its own with `ssl=on` and this certificate.
pub fn tls_cluster(files: &CertFiles) -> TempCluster {
    TempCluster::start_tls(&[("fsync", "off")], &files.cert, &files.key)
        .expect("cannot start a throwaway PostgreSQL with ssl=on")
}

/// A proptest runner of `default_cases` cases (STOCKLOAD_PROPTEST_CASES overrides it), without
/// failure files: each failing case is printed, shrunk, in the test's panic.
pub fn proptest_runner(default_cases: u32) -> proptest::test_runner::TestRunner {
    let cases = std::env::var("STOCKLOAD_PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default_cases);
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}

/// `db`'s URL with another login.
pub fn url_as(db: &TestDb, user: &str, password: &str) -> String {
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(user).unwrap();
    url.set_password(Some(password)).unwrap();
    url.to_string()
}
