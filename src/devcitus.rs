//! A throwaway Citus cluster for the tests and the benchmark: a coordinator and workers, each a
//! [`TempCluster`] with `shared_preload_libraries = 'citus'` on a free loopback port. The nodes
//! share the coordinator's password (set on each worker after start), and each database made with
//! [`CitusCluster::create_database`] has the extension on every node, the workers registered on
//! the coordinator, and the node password in `pg_dist_authinfo` so the nodes can reach each other.

use std::path::PathBuf;
use std::process::Command;

use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::devdb::TempCluster;
use crate::error::{Error, Result};

/// A running coordinator with its workers.
pub struct CitusCluster {
    coordinator: TempCluster,
    workers: Vec<TempCluster>,
    /// Whether the workers' superuser has the coordinator's password yet (set once, by the
    /// first [`CitusCluster::create_database`]; roles are cluster-wide).
    password_shared: tokio::sync::Mutex<bool>,
    /// Held while a database's workers are added (see [`CitusCluster::create_database`]).
    adding_nodes: tokio::sync::Mutex<()>,
}

/// Server settings every node needs: Citus preloaded, prepared transactions for its two-phase
/// commit across workers.
const NODE_SETTINGS: [(&str, &str); 2] = [
    ("shared_preload_libraries", "citus"),
    ("max_prepared_transactions", "100"),
];

impl CitusCluster {
    /// Whether this machine's PostgreSQL has the Citus extension installed
    /// (`scripts/citus-build.sh` builds it from source).
    pub fn available() -> bool {
        Command::new("pg_config")
            .arg("--pkglibdir")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("citus.so"))
            .is_some_and(|path| path.is_file())
    }

    /// Starts a coordinator and `workers` workers (blocking: initdb + pg_ctl for each).
    /// `settings` are extra server settings for every node.
    pub fn start(workers: usize, settings: &[(&str, &str)]) -> Result<CitusCluster> {
        if !Self::available() {
            return Err(Error::Cluster(
                "the Citus extension is not installed (run scripts/citus-build.sh)".into(),
            ));
        }
        let mut all: Vec<(&str, &str)> = NODE_SETTINGS.to_vec();
        all.extend_from_slice(settings);
        let coordinator = TempCluster::start(&all)?;
        let workers = (0..workers)
            .map(|_| TempCluster::start(&all))
            .collect::<Result<Vec<_>>>()?;
        Ok(CitusCluster {
            coordinator,
            workers,
            password_shared: tokio::sync::Mutex::new(false),
            adding_nodes: tokio::sync::Mutex::new(()),
        })
    }

    /// URL of database `name` on the coordinator (where clients connect).
    pub fn url(&self, name: &str) -> String {
        self.coordinator.url(name)
    }

    /// The password every node's superuser has.
    pub fn password(&self) -> &str {
        self.coordinator.password()
    }

    /// The server logs: the coordinator's, then each worker's.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        std::iter::once(self.coordinator.log_path())
            .chain(self.workers.iter().map(TempCluster::log_path))
            .collect()
    }

    /// The coordinator's port, then each worker's.
    pub fn ports(&self) -> Vec<u16> {
        std::iter::once(self.coordinator.port())
            .chain(self.workers.iter().map(TempCluster::port))
            .collect()
    }

    /// Creates database `name` on every node with the citus extension, and makes the coordinator
    /// know its workers in it.
    pub async fn create_database(&self, name: &str) -> Result<()> {
        let quoted_password = self.password().replace('\'', "''");
        self.share_password(&quoted_password).await?;
        for worker in &self.workers {
            let mut conn = connect(&self.worker_url(worker, "postgres")).await?;
            // Identifier, not a value: quoted by hand since CREATE DATABASE takes no parameter.
            execute(
                &mut conn,
                &format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\"")),
            )
            .await?;
            let mut conn = connect(&self.worker_url(worker, name)).await?;
            execute(&mut conn, "CREATE EXTENSION IF NOT EXISTS citus").await?;
        }
        self.coordinator.create_database(name).await?;
        let mut conn = connect(&self.url(name)).await?;
        execute(&mut conn, "CREATE EXTENSION IF NOT EXISTS citus").await?;
        execute(
            &mut conn,
            &format!(
                "INSERT INTO pg_dist_authinfo (nodeid, rolename, authinfo) \
                 VALUES (0, '{}', 'password={quoted_password}')",
                crate::devdb::SUPERUSER
            ),
        )
        .await?;
        execute(
            &mut conn,
            &format!(
                "SELECT citus_set_coordinator_host('127.0.0.1', {})",
                self.coordinator.port()
            ),
        )
        .await?;
        // Adding a node copies the roles onto it (ALTER ROLE on the worker): two databases set
        // up at once would update the same role row and one would fail ("tuple concurrently
        // updated", reported as "failure on connection marked as essential"). One at a time.
        let _adding = self.adding_nodes.lock().await;
        for worker in &self.workers {
            execute(
                &mut conn,
                &format!("SELECT citus_add_node('127.0.0.1', {})", worker.port()),
            )
            .await?;
        }
        Ok(())
    }
}

impl CitusCluster {
    /// Gives every worker's superuser the coordinator's password, once: one password for the
    /// whole cluster, so `pg_dist_authinfo` needs one entry.
    async fn share_password(&self, quoted_password: &str) -> Result<()> {
        let mut shared = self.password_shared.lock().await;
        if !*shared {
            for worker in &self.workers {
                let mut conn = connect(&worker.url("postgres")).await?;
                execute(
                    &mut conn,
                    &format!(
                        "ALTER ROLE {} PASSWORD '{quoted_password}'",
                        crate::devdb::SUPERUSER
                    ),
                )
                .await?;
            }
            *shared = true;
        }
        Ok(())
    }

    /// URL of database `name` on a worker, with the shared password.
    fn worker_url(&self, worker: &TempCluster, name: &str) -> String {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/{name}",
            crate::devdb::SUPERUSER,
            self.password(),
            worker.port()
        )
    }
}

/// Citus turns TLS on with a self-signed certificate when its extension is created; the set-up
/// connections are loopback-only and need none.
async fn connect(url: &str) -> Result<PgConnection> {
    PgConnection::connect(&format!("{url}?sslmode=disable"))
        .await
        .map_err(|e| Error::database("connecting to a throwaway Citus node", e))
}

async fn execute(conn: &mut PgConnection, statement: &str) -> Result<()> {
    sqlx::raw_sql(AssertSqlSafe(statement.to_string()))
        .execute(conn)
        .await
        .map_err(|e| {
            // Only the text before the first literal: some statements carry the password.
            let shown = statement.split('\'').next().unwrap_or_default();
            Error::database(format!("setting up the Citus cluster ({shown:.40})"), e)
        })?;
    Ok(())
}
