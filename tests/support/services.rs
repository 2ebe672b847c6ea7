//! External services the tests start themselves, once per test process, on free loopback ports:
//! `moto_server` (S3, SNS, SQS, Data Pipeline wire protocols) and an `aiosmtpd` SMTP server.
//! Each runs under a small `sh` guard that waits on a pipe from us and kills the service when the
//! pipe closes, so nothing outlives the test process.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// A running service.
pub struct Service {
    /// Its http(s)/smtp endpoint on loopback.
    pub port: u16,
    _guard: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

/// Finds a program installed by scripts/test.sh into .venv, or on PATH.
pub fn tool(name: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if venv.exists() {
        return venv;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join(name).exists() {
                return dir.join(name);
            }
        }
    }
    panic!(
        "{name} not found in .venv/bin or on PATH: run `bash scripts/test.sh` (it installs the \
         test tools into .venv) or `pip install -r scripts/requirements-test.txt`"
    )
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts `command` (a shell snippet) under the guard and waits until it prints `ready` on
/// stdout or stderr (merged). Output after that is drained in the background.
pub fn start(command: &str, ready: &str, port: u16) -> Service {
    let script =
        format!("{command} 2>&1 & pid=$!; read _ignored; kill $pid 2>/dev/null; wait $pid");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                let found = line.contains(ready);
                seen.push(line);
                if found {
                    break;
                }
            }
            _ => panic!("{command} exited before it was ready:\n{}", seen.join("\n")),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let guard = child.stdin.take().unwrap();
    Service {
        port,
        _guard: Mutex::new(guard),
        _child: Mutex::new(child),
    }
}

impl Service {
    /// Stops it and waits until it is gone (its port is free again).
    pub fn stop(self) {
        drop(self._guard);
        let mut child = self._child.into_inner().unwrap();
        let _ = child.wait();
    }
}

fn start_moto(port: u16) -> Service {
    let program = tool("moto_server");
    start(
        &format!("'{}' -H 127.0.0.1 -p {port}", program.display()),
        "Running on",
        port,
    )
}

/// A moto_server of one test's own, which it may restart (emptying it) to play an AWS outage
/// without disturbing the other tests.
pub struct PrivateMoto {
    service: Option<Service>,
    port: u16,
}

impl PrivateMoto {
    /// Starts it on a free port.
    pub fn start() -> PrivateMoto {
        let port = free_port();
        PrivateMoto {
            service: Some(start_moto(port)),
            port,
        }
    }

    /// Its endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it (everything it held is lost); requests fail until [`PrivateMoto::resume`].
    pub fn stop(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop();
        }
    }

    /// Starts it again, empty, on the same port.
    pub fn resume(&mut self) {
        self.stop();
        self.service = Some(start_moto(self.port));
    }

    /// Points a child process at it.
    pub fn env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        moto_env(command).env("AWS_ENDPOINT_URL", self.endpoint())
    }

    /// In-process AWS clients pointed at it.
    pub async fn aws(&self) -> stockload::aws::Aws {
        aws_at(&self.endpoint()).await
    }
}

/// The moto_server of this test process.
pub fn moto() -> &'static Service {
    static MOTO: OnceLock<Service> = OnceLock::new();
    MOTO.get_or_init(|| start_moto(free_port()))
}

/// moto's endpoint URL.
pub fn moto_endpoint() -> String {
    format!("http://127.0.0.1:{}", moto().port)
}

/// Points a child process at moto with the fake credentials moto accepts.
pub fn moto_env(command: &mut Command) -> &mut Command {
    command
        .env("AWS_ENDPOINT_URL", moto_endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
}

/// In-process AWS clients pointed at moto.
pub async fn aws() -> stockload::aws::Aws {
    aws_at(&moto_endpoint()).await
}

/// In-process AWS clients pointed at an emulator's endpoint.
pub async fn aws_at(endpoint: &str) -> stockload::aws::Aws {
    let credentials =
        aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests");
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(credentials);
    stockload::aws::Aws::from_loader(loader, &Default::default()).await
}

/// A bucket name no other test of this process uses.
pub fn unique_bucket(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// The aiosmtpd server of this test process and the Maildir it writes to.
pub struct Smtp {
    /// The server.
    pub service: Service,
    /// Its Maildir.
    pub maildir: PathBuf,
    /// The one user it accepts for AUTH (sending without AUTH works too).
    pub user: String,
    /// That user's password, made up for this test process.
    pub password: String,
}

/// Starts (once) and returns the SMTP server.
pub fn smtp() -> &'static Smtp {
    static SMTP: OnceLock<Smtp> = OnceLock::new();
    SMTP.get_or_init(|| {
        let port = free_port();
        let maildir = std::env::temp_dir().join(format!("stockload-mail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&maildir);
        let (user, password) = (
            "ops".to_string(),
            format!(
                "smtp-PLANT-{}-{:016x}",
                std::process::id(),
                fastrand::u64(..)
            ),
        );
        let python = tool("python3");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_server.py");
        let service = start(
            &format!(
                "'{}' '{}' {port} '{}' '{user}' '{password}'",
                python.display(),
                script.display(),
                maildir.display()
            ),
            "READY",
            port,
        );
        Smtp {
            service,
            maildir,
            user,
            password,
        }
    })
}

impl Smtp {
    /// A target URL delivering to `to` without TLS.
    pub fn target(&self, to: &str) -> String {
        format!(
            "smtp://127.0.0.1:{}?from=stockload@example.com&to={to}&tls=none",
            self.service.port
        )
    }

    /// The raw text of every received message whose Subject is `subject`.
    pub fn messages(&self, subject: &str) -> Vec<String> {
        self.matching(&format!("Subject: {subject}"))
    }

    /// The raw text of every received message addressed to `to` (one recipient).
    pub fn messages_to(&self, to: &str) -> Vec<String> {
        self.matching(&format!("X-RcptTo: {to}"))
    }

    /// The raw text of every received message with this header line.
    fn matching(&self, header: &str) -> Vec<String> {
        let mut found = Vec::new();
        for folder in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(folder)) else {
                continue;
            };
            for entry in entries.flatten() {
                let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
                if text.lines().any(|l| l == header) {
                    found.push(text);
                }
            }
        }
        found
    }
}
