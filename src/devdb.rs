//! A private, throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary folder, loopback only)
//! for `stockload demo`, the tests and the benchmark. Removed when dropped — and, through a small
//! watcher process that waits for our end of a pipe to close, also when this process dies.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::{Error, Result};

/// A running throwaway cluster.
pub struct TempCluster {
    dir: PathBuf,
    port: u16,
    password: String,
    watcher: Option<Child>,
    bin: PathBuf,
    as_postgres: bool,
    options: String,
}

/// The superuser of throwaway clusters.
pub const SUPERUSER: &str = "stockload";

impl TempCluster {
    /// initdb + start on a free loopback port. `settings` are extra `-c name=value` server settings.
    pub fn start(settings: &[(&str, &str)]) -> Result<TempCluster> {
        TempCluster::start_with(settings, None)
    }

    /// Like [`TempCluster::start`], with `ssl=on` and the server certificate and key from these
    /// PEM files (copied into the cluster's folder, the key readable by the server only).
    /// Plain connections are still accepted, so `sslmode` decides.
    pub fn start_tls(settings: &[(&str, &str)], cert: &Path, key: &Path) -> Result<TempCluster> {
        TempCluster::start_with(settings, Some((cert, key)))
    }

    fn start_with(settings: &[(&str, &str)], tls: Option<(&Path, &Path)>) -> Result<TempCluster> {
        let bin = bin_dir()?;
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("stockload-pg-")
            .tempdir()
            .map_err(|e| Error::cluster_io("cannot create a temporary folder", e))?
            .keep();
        let cleanup_on_error = |err: Error| {
            let _ = std::fs::remove_dir_all(&dir);
            err
        };
        let password = random_password();
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n"))
            .map_err(|e| cleanup_on_error(Error::cluster_io("cannot write pwfile", e)))?;
        let mut tls_settings = Vec::new();
        if let Some((cert, key)) = tls {
            let copy = |from: &Path, name: &str| {
                let to = dir.join(name);
                std::fs::copy(from, &to)
                    .and_then(|_| {
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600))
                    })
                    .map_err(|e| Error::io("cannot copy", from, e))?;
                Ok::<_, Error>(to)
            };
            let cert = copy(cert, "server.crt").map_err(cleanup_on_error)?;
            let key = copy(key, "server.key").map_err(cleanup_on_error)?;
            tls_settings.push(("ssl".to_string(), "on".to_string()));
            tls_settings.push(("ssl_cert_file".into(), format!("'{}'", cert.display())));
            tls_settings.push(("ssl_key_file".into(), format!("'{}'", key.display())));
        }
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status();
            if !status.is_ok_and(|s| s.success()) {
                return Err(cleanup_on_error(Error::Cluster(
                    "running as root, but cannot hand the folder to the postgres user".into(),
                )));
            }
        }
        let data = dir.join("data");
        run(
            pg_command(&bin, "initdb", as_postgres)
                .arg("-D")
                .arg(&data)
                .args(["-U", SUPERUSER, "--auth=scram-sha-256", "--encoding=UTF8"])
                .args(["--locale=C", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
            "initdb",
        )
        .map_err(cleanup_on_error)?;
        let _ = std::fs::remove_file(&pwfile);

        let port = free_port().map_err(cleanup_on_error)?;
        let mut options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{}'",
            dir.display()
        );
        let tls_settings = tls_settings.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        for (name, value) in settings.iter().copied().chain(tls_settings) {
            options.push_str(&format!(" -c {name}={value}"));
        }
        pg_ctl_start(&bin, &dir, as_postgres, &options).map_err(cleanup_on_error)?;

        let watcher = spawn_watcher(&bin, &dir, as_postgres);
        Ok(TempCluster {
            dir,
            port,
            password,
            watcher,
            bin,
            as_postgres,
            options,
        })
    }

    /// Stops the server (fast shutdown: sessions are ended), keeping its data: tests use it to
    /// take the database away from a running loader. [`TempCluster::restart`] brings it back.
    pub fn stop(&self) -> Result<()> {
        run(
            pg_command(&self.bin, "pg_ctl", self.as_postgres)
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-w", "-t", "60", "-m", "fast", "stop"]),
            "pg_ctl stop",
        )
    }

    /// Starts a stopped server again, on the same port with the same settings.
    pub fn restart(&self) -> Result<()> {
        pg_ctl_start(&self.bin, &self.dir, self.as_postgres, &self.options)
    }

    /// URL of database `name` on this cluster (with the superuser's password).
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{name}",
            self.password, self.port
        )
    }

    /// The superuser's password (tests check it never leaks).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server log, for diagnosing failures.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Creates an empty database.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        let url = self.url("postgres");
        let db = crate::db::Db::new(Some(&url), "4MB", std::time::Duration::from_secs(30))?;
        let mut conn = db.connect().await?;
        // Identifier, not a value: quoted by hand since CREATE DATABASE takes no bind parameter.
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .map_err(|e| Error::database(format!("creating database {name}"), e))?;
        Ok(())
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        // Closing the watcher's stdin makes it stop the server and remove the folder.
        if let Some(mut watcher) = self.watcher.take() {
            drop(watcher.stdin.take());
            let _ = watcher.wait();
        }
    }
}

fn pg_ctl_start(bin: &Path, dir: &Path, as_postgres: bool, options: &str) -> Result<()> {
    run(
        pg_command(bin, "pg_ctl", as_postgres)
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "-o", options, "start"]),
        "pg_ctl start",
    )
}

fn spawn_watcher(bin: &Path, dir: &Path, as_postgres: bool) -> Option<Child> {
    let pg_ctl = bin.join("pg_ctl");
    let data = dir.join("data");
    let stop = if as_postgres {
        format!(
            "runuser -u postgres -- '{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    } else {
        format!(
            "'{}' -D '{}' -m immediate stop",
            pg_ctl.display(),
            data.display()
        )
    };
    let script = format!(
        "read _ignored; {stop} >/dev/null 2>&1; rm -rf '{}'",
        dir.display()
    );
    // Nothing is ever written to its stdin: EOF (our exit or drop) is the signal.
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

fn pg_command(bin: &Path, program: &str, as_postgres: bool) -> Command {
    let path = bin.join(program);
    let mut command = if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(path);
        c
    } else {
        Command::new(path)
    };
    command.stdin(Stdio::null()).env_remove("PGDATA");
    command
}

fn run(command: &mut Command, what: &str) -> Result<()> {
    let output = command
        .output()
        .map_err(|e| Error::cluster_io(format!("cannot run {what}"), e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Cluster(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        )))
    }
}

/// Finds PostgreSQL's server programs: `pg_config --bindir`, the PATH, then Debian's folders.
fn bin_dir() -> Result<PathBuf> {
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Ok(std::fs::canonicalize(dir.join("initdb"))
                    .ok()
                    .and_then(|p| p.parent().map(Path::to_path_buf))
                    .unwrap_or(dir));
            }
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|dir| dir.join("initdb").exists())
        .ok_or_else(|| {
            Error::Cluster(
                "initdb and pg_ctl were not found (looked at pg_config --bindir, PATH and \
                 /usr/lib/postgresql/*/bin): install PostgreSQL, e.g. apt-get install postgresql"
                    .into(),
            )
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::cluster_io("cannot find a free port", e))
}

fn random_password() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("pw{:016x}", hasher.finish())
}
