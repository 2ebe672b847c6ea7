//! The versioned SQL scripts from `sql/`, embedded at build time: listing and printing them
//! (`stockload sql`), and running them in order inside a load's transaction.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use include_dir::{include_dir, Dir};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgConnection};
use tracing::Instrument;

use crate::error::{describe_sqlx, Error, Result};
use crate::plan::{ChangeBasis, LOCK_RETRY_MAX_PAUSE, LOCK_TRY};

static SQL_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/sql");

/// The standalone follow-up for Data Pipeline's SqlActivity, psql and pgAdmin: recomputes the
/// changes within what the last run touched (O(run), not O(table)).
pub const RECOMPUTE_SCRIPT: &str = "recompute_changes.sql";

/// The standalone whole-table repair: recomputes every row's changes.
pub const RECOMPUTE_ALL_SCRIPT: &str = "recompute_all_changes.sql";

/// Run by `stockload migrate --distributed`: puts the schema on a Citus cluster.
pub const DISTRIBUTE_SCRIPT: &str = "citus/distribute.sql";

/// The script to run for `name` on a standalone run (psql, SqlActivity): its Citus form
/// (`citus/NAME`, when one is embedded) on a distributed table, otherwise `name` itself. A load
/// names its scripts per path instead (`load::path`).
pub fn for_engine(name: &str, distributed: bool) -> String {
    let citus = format!("citus/{name}");
    if distributed && embedded(&citus).is_some() {
        citus
    } else {
        name.to_string()
    }
}

/// One script's text and where it came from.
#[derive(Debug, Clone)]
pub struct Script {
    /// File name, e.g. `insert_query.sql`.
    pub name: String,
    /// The SQL text.
    pub text: String,
}

impl Script {
    /// First 12 hex digits of the SHA-256 of the text: recorded on each run, so a run can be tied
    /// to the exact scripts it executed.
    pub fn checksum(&self) -> String {
        let digest = Sha256::digest(self.text.as_bytes());
        digest[..6].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Timing of one executed script, reported in the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ScriptRun {
    /// Script name.
    pub name: String,
    /// Its checksum.
    pub checksum: String,
    /// Rows it changed.
    pub rows: u64,
    /// Wall time in milliseconds.
    pub millis: u64,
}

impl ScriptRun {
    /// A step of the run that is not a script (staging): no checksum.
    pub fn step(name: &str, rows: u64, took: Duration) -> ScriptRun {
        ScriptRun {
            name: name.to_string(),
            checksum: String::new(),
            rows,
            millis: took.as_millis() as u64,
        }
    }

    /// True for a script run (it has a checksum), false for another step.
    pub fn is_script(&self) -> bool {
        !self.checksum.is_empty()
    }
}

/// The user-facing scripts (top level of `sql/`, then the Citus forms in `sql/citus/`), sorted
/// by name.
pub fn list() -> Vec<&'static str> {
    let citus = SQL_DIR.get_dir("citus").into_iter().flat_map(|d| d.files());
    let mut names: Vec<&str> = SQL_DIR
        .files()
        .chain(citus)
        .filter_map(|f| f.path().to_str())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    names.sort_unstable_by_key(|name| (name.contains('/'), *name));
    names
}

/// The embedded text of a script, by file name (with or without `.sql`).
pub fn embedded(name: &str) -> Option<&'static str> {
    let name = if name.ends_with(".sql") {
        name.to_string()
    } else {
        format!("{name}.sql")
    };
    SQL_DIR.get_file(&name).and_then(|f| f.contents_utf8())
}

/// Where scripts are read from: the embedded copies, or a folder given with `--sql-dir` to try
/// changed scripts without rebuilding.
#[derive(Debug, Clone, Default)]
pub struct Scripts {
    /// Folder overriding the embedded scripts.
    pub dir: Option<PathBuf>,
}

impl Scripts {
    /// Loads one script.
    pub fn load(&self, name: &str) -> Result<Script> {
        let text = match &self.dir {
            Some(dir) => {
                let path = dir.join(name);
                std::fs::read_to_string(&path)
                    .map_err(|e| Error::io("cannot read script", path, e))?
            }
            None => embedded(name)
                .ok_or_else(|| Error::Config(format!("no embedded script named {name}")))?
                .to_string(),
        };
        Ok(Script {
            name: name.to_string(),
            text,
        })
    }
}

/// Passes the run's inputs to the scripts as transaction-local settings: `stockload.run_id`
/// (record_rejects.sql, the ledger), `stockload.change_basis` (insert_query.sql,
/// update_changes.sql) and `stockload.load_path`, the path's name (quality_checks.sql: on a
/// first load it finds its rows from the changes just stored). Must run inside the load
/// transaction, before the first script.
///
/// On Citus (`distributed`) the settings are made with `SET LOCAL` and
/// `citus.propagate_set_commands = 'local'`, so the statements Citus runs on the workers see them
/// too (a `set_config` call is not propagated).
pub async fn set_inputs(
    conn: &mut PgConnection,
    run_id: i64,
    basis: ChangeBasis,
    path: &str,
    distributed: bool,
) -> Result<()> {
    if distributed {
        // The values are ours (a number and fixed words): nothing to quote.
        let statements = format!(
            "SET LOCAL citus.propagate_set_commands = 'local'; \
             SET LOCAL stockload.run_id = '{run_id}'; \
             SET LOCAL stockload.change_basis = '{}'; \
             SET LOCAL stockload.load_path = '{path}'",
            basis.as_str()
        );
        sqlx::raw_sql(AssertSqlSafe(statements))
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::database("setting the run's inputs for the scripts", e))?;
        return Ok(());
    }
    sqlx::query(
        "SELECT set_config('stockload.run_id', $1, true), \
                set_config('stockload.change_basis', $2, true), \
                set_config('stockload.load_path', $3, true)",
    )
    .bind(run_id.to_string())
    .bind(basis.as_str())
    .bind(path)
    .execute(&mut *conn)
    .await
    .map_err(|e| Error::database("setting the run's inputs for the scripts", e))?;
    Ok(())
}

/// Adds `run` to `runs`: to the run of the same script when there is one (a script run on each
/// chunk is reported once, with its total rows and time).
pub fn add_run(runs: &mut Vec<ScriptRun>, run: ScriptRun) {
    match runs.iter_mut().find(|r| r.name == run.name) {
        Some(total) => {
            total.rows += run.rows;
            total.millis += run.millis;
        }
        None => runs.push(run),
    }
}

/// Runs one script (possibly several statements) on the connection.
pub async fn run_script(conn: &mut PgConnection, script: &Script) -> Result<ScriptRun> {
    let started = Instant::now();
    let result = sqlx::raw_sql(AssertSqlSafe(script.text.clone()))
        .execute(&mut *conn)
        .instrument(tracing::info_span!("script", name = %script.name))
        .await
        .map_err(|err| Error::Script {
            script: script.name.clone(),
            reason: describe_sqlx(&err),
            source: err,
        })?;
    let run = ScriptRun {
        name: script.name.clone(),
        checksum: script.checksum(),
        rows: result.rows_affected(),
        millis: started.elapsed().as_millis() as u64,
    };
    tracing::info!(rows = run.rows, ms = run.millis, "ran {}", script.name);
    Ok(run)
}

/// Runs a script that takes a strong lock (DDL) without letting readers pile up behind it: each
/// try waits at most `plan::LOCK_TRY` for its locks (readers that arrived behind the request
/// then get through), in a savepoint rolled back when the time is up, and is tried again after a
/// pause that doubles up to `plan::LOCK_RETRY_MAX_PAUSE`. After `give_up_after` the run fails
/// naming the sessions that hold locks on historical_stocks_data.
pub async fn run_script_patiently(
    conn: &mut PgConnection,
    script: &Script,
    give_up_after: Duration,
) -> Result<ScriptRun> {
    let started = Instant::now();
    let mut pause = LOCK_TRY;
    let previous: String = sqlx::query_scalar("SELECT current_setting('lock_timeout')")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| Error::database("reading lock_timeout", e))?;
    set_lock_timeout(conn, &format!("{}ms", LOCK_TRY.as_millis())).await?;
    loop {
        savepoint(conn, "SAVEPOINT stockload_lock_try").await?;
        match run_script(conn, script).await {
            Ok(run) => {
                savepoint(conn, "RELEASE SAVEPOINT stockload_lock_try").await?;
                set_lock_timeout(conn, &previous).await?;
                return Ok(run);
            }
            Err(err) if is_lock_timeout(&err) => {
                savepoint(conn, "ROLLBACK TO SAVEPOINT stockload_lock_try").await?;
                if started.elapsed() >= give_up_after {
                    return Err(Error::LockWait {
                        script: script.name.clone(),
                        waited_secs: started.elapsed().as_secs_f64(),
                        holders: lock_holders(conn).await?,
                    });
                }
                tracing::info!(
                    script = %script.name,
                    "waiting for a lock held by other sessions; trying again in {pause:?}"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LOCK_RETRY_MAX_PAUSE);
            }
            Err(err) => return Err(err),
        }
    }
}

fn is_lock_timeout(err: &Error) -> bool {
    matches!(err, Error::Script { source: sqlx::Error::Database(db), .. }
        if db.code().as_deref() == Some("55P03"))
}

async fn savepoint(conn: &mut PgConnection, statement: &'static str) -> Result<()> {
    sqlx::raw_sql(statement)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| Error::database("managing the lock-wait savepoint", e))
}

async fn set_lock_timeout(conn: &mut PgConnection, value: &str) -> Result<()> {
    sqlx::query("SELECT set_config('lock_timeout', $1, true)")
        .bind(value)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| Error::database("setting lock_timeout", e))
}

async fn lock_holders(conn: &mut PgConnection) -> Result<String> {
    let holders: Vec<String> = sqlx::query_scalar(include_str!("../sql/engine/lock_holders.sql"))
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| Error::database("asking which sessions hold the lock", e))?;
    Ok(if holders.is_empty() {
        "sessions that have ended since".to_string()
    } else {
        holders.join("; ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_script_says_what_it_reads() {
        let names = list();
        assert!(names.contains(&"insert_query.sql"));
        assert!(names.contains(&"citus/plan_scope.sql"));
        for name in names {
            let text = embedded(name).unwrap_or_else(|| panic!("{name} is not embedded"));
            assert!(text.starts_with("-- "), "{name} must open with a comment");
            assert!(text.contains("Reads"), "{name} must say what it reads");
        }
        assert_eq!(embedded("insert_query"), embedded("insert_query.sql"));
        assert_eq!(embedded(DISTRIBUTE_SCRIPT), embedded("citus/distribute"));
    }

    #[test]
    fn citus_forms_are_chosen_only_on_citus_and_only_where_one_exists() {
        assert_eq!(for_engine("plan_scope.sql", true), "citus/plan_scope.sql");
        assert_eq!(for_engine("plan_scope.sql", false), "plan_scope.sql");
        assert_eq!(for_engine("record_rejects.sql", true), "record_rejects.sql");
        assert_eq!(
            for_engine(RECOMPUTE_SCRIPT, true),
            "citus/recompute_changes.sql"
        );
        assert_eq!(for_engine("insert_empty.sql", true), "insert_empty.sql");
    }
}
