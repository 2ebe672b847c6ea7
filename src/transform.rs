//! The versioned SQL scripts from `sql/`, embedded at build time: listing and printing them
//! (`stockload sql`), and running them in order inside a load's transaction.

use std::path::PathBuf;
use std::time::Instant;

use include_dir::{include_dir, Dir};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgConnection};
use tracing::Instrument;

use crate::error::{describe_sqlx, Error, Result};
use crate::plan::ChangeBasis;

static SQL_DIR: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/sql");

/// Creates the staging table; runs before COPY.
pub const STAGE_SCRIPT: &str = "create_stage.sql";

/// The transform scripts a load into a table that already holds rows runs after COPY, in this
/// order.
pub const APPEND_SCRIPTS: [&str; 4] = [
    "record_rejects.sql",
    "plan_scope.sql",
    INSERT_SCRIPT,
    "update_changes.sql",
];

/// Writes the batch into a table that already holds rows (upsert where needed).
pub const INSERT_SCRIPT: &str = "insert_query.sql";

/// A load into an empty table: runs once, before the first chunk.
pub const DROP_KEY_SCRIPT: &str = "drop_key.sql";

/// A load into an empty table: the staging session runs these on each chunk it staged, before
/// committing it.
pub const STAGE_CHUNK_SCRIPTS: [&str; 2] = ["stage_rejects.sql", "stage_scope.sql"];

/// Writes one chunk of the batch into an empty table: the load's transaction runs it on each
/// chunk.
pub const INSERT_EMPTY_SCRIPT: &str = "insert_empty.sql";

/// A load into an empty table: runs once, after the last chunk.
pub const ADD_KEY_SCRIPT: &str = "add_key.sql";

/// A load into an empty table: records what the staging session found (rejects, first days).
pub const RECORD_STAGED_SCRIPT: &str = "record_staged.sql";

/// Drops staging chunks and work rows a failed or killed run left in `stockload_work`.
pub const CLEAR_WORK_SCRIPT: &str = "clear_work.sql";

/// Every script a load may run, for checks and listings.
pub const LOAD_SCRIPTS: [&str; 12] = [
    STAGE_SCRIPT,
    "record_rejects.sql",
    "plan_scope.sql",
    INSERT_SCRIPT,
    "update_changes.sql",
    DROP_KEY_SCRIPT,
    "stage_rejects.sql",
    "stage_scope.sql",
    INSERT_EMPTY_SCRIPT,
    ADD_KEY_SCRIPT,
    RECORD_STAGED_SCRIPT,
    CLEAR_WORK_SCRIPT,
];

/// True when historical_stocks_data holds no row; then it stays empty until this transaction
/// ends (SHARE lock: other writers wait, readers do not). A non-empty table is not locked here.
pub async fn target_is_empty(conn: &mut PgConnection) -> Result<bool> {
    if !table_is_empty(conn).await? {
        return Ok(false);
    }
    sqlx::raw_sql("LOCK TABLE historical_stocks_data IN SHARE MODE")
        .execute(&mut *conn)
        .await
        .map_err(|e| Error::database("locking historical_stocks_data", e))?;
    table_is_empty(conn).await
}

async fn table_is_empty(conn: &mut PgConnection) -> Result<bool> {
    sqlx::query_scalar::<_, bool>("SELECT NOT EXISTS (SELECT 1 FROM historical_stocks_data)")
        .fetch_one(conn)
        .await
        .map_err(|e| Error::database("checking whether historical_stocks_data is empty", e))
}

/// The standalone follow-up for Data Pipeline's SqlActivity, psql and pgAdmin: recomputes the
/// changes within what the last run touched (O(run), not O(table)).
pub const RECOMPUTE_SCRIPT: &str = "recompute_changes.sql";

/// The standalone whole-table repair: recomputes every row's changes.
pub const RECOMPUTE_ALL_SCRIPT: &str = "recompute_all_changes.sql";

/// The scripts that have a Citus form in `sql/citus/` (same file name), run instead of the plain
/// one when historical_stocks_data is a distributed table (see [`for_engine`]). Every other
/// script runs unchanged on both engines.
pub const CITUS_FORMS: [&str; 6] = [
    STAGE_SCRIPT,
    "plan_scope.sql",
    INSERT_SCRIPT,
    "update_changes.sql",
    RECOMPUTE_SCRIPT,
    RECOMPUTE_ALL_SCRIPT,
];

/// Runs last in a load on Citus: empties the distributed staging tables again.
pub const CITUS_CLEAR_SCRIPT: &str = "citus/clear_stage.sql";

/// Run by `stockload migrate --distributed`: puts the schema on a Citus cluster.
pub const DISTRIBUTE_SCRIPT: &str = "citus/distribute.sql";

/// The script to run for `name`: its Citus form (`citus/NAME`) on a distributed table,
/// otherwise `name` itself.
pub fn for_engine(name: &str, distributed: bool) -> String {
    if distributed && CITUS_FORMS.contains(&name) {
        format!("citus/{name}")
    } else {
        name.to_string()
    }
}

/// True when historical_stocks_data is a Citus distributed table (the citus extension is there
/// and the table is in its metadata); then the load runs the scripts' Citus forms.
pub async fn is_distributed(conn: &mut PgConnection) -> Result<bool> {
    let has_citus: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')")
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Error::database("looking for the citus extension", e))?;
    if !has_citus {
        return Ok(false);
    }
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_dist_partition \
         WHERE logicalrelid = to_regclass('historical_stocks_data') AND partmethod = 'h')",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| {
        Error::database(
            "asking Citus whether historical_stocks_data is distributed",
            e,
        )
    })
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
/// (record_rejects.sql, the ledger) and `stockload.change_basis` (insert_query.sql,
/// update_changes.sql). Must run inside the load transaction, before the first script.
///
/// On Citus (`distributed`) the settings are made with `SET LOCAL` and
/// `citus.propagate_set_commands = 'local'`, so the statements Citus runs on the workers see them
/// too (a `set_config` call is not propagated).
pub async fn set_inputs(
    conn: &mut PgConnection,
    run_id: i64,
    basis: ChangeBasis,
    distributed: bool,
) -> Result<()> {
    if distributed {
        // Both values are ours (a number and one of two fixed words): nothing to quote.
        let statements = format!(
            "SET LOCAL citus.propagate_set_commands = 'local'; \
             SET LOCAL stockload.run_id = '{run_id}'; \
             SET LOCAL stockload.change_basis = '{}'",
            basis.as_str()
        );
        sqlx::raw_sql(AssertSqlSafe(statements))
            .execute(&mut *conn)
            .await
            .map_err(|e| Error::database("setting the run's inputs for the scripts", e))?;
        return Ok(());
    }
    sqlx::query("SELECT set_config('stockload.run_id', $1, true), set_config('stockload.change_basis', $2, true)")
        .bind(run_id.to_string())
        .bind(basis.as_str())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_a_load_runs_is_embedded_and_documented() {
        for name in [RECOMPUTE_SCRIPT, RECOMPUTE_ALL_SCRIPT]
            .iter()
            .chain(LOAD_SCRIPTS.iter())
        {
            let text = embedded(name).unwrap_or_else(|| panic!("{name} is not embedded"));
            assert!(text.starts_with("-- "), "{name} must open with a comment");
            assert!(text.contains("Reads"), "{name} must say what it reads");
        }
        assert!(list().contains(&"insert_query.sql"));
        assert_eq!(embedded("insert_query"), embedded("insert_query.sql"));
    }

    #[test]
    fn every_citus_form_is_embedded_documented_and_chosen_only_on_citus() {
        for name in CITUS_FORMS
            .iter()
            .chain([&"distribute.sql", &"clear_stage.sql"])
        {
            let citus = format!("citus/{name}");
            let text = embedded(&citus).unwrap_or_else(|| panic!("{citus} is not embedded"));
            assert!(text.starts_with("-- "), "{citus} must open with a comment");
            assert!(text.contains("Reads"), "{citus} must say what it reads");
        }
        assert_eq!(for_engine("plan_scope.sql", true), "citus/plan_scope.sql");
        assert_eq!(for_engine("plan_scope.sql", false), "plan_scope.sql");
        assert_eq!(for_engine("record_rejects.sql", true), "record_rejects.sql");
        assert_eq!(for_engine(INSERT_SCRIPT, true), "citus/insert_query.sql");
        assert_eq!(for_engine(INSERT_EMPTY_SCRIPT, true), INSERT_EMPTY_SCRIPT);
        assert_eq!(embedded(DISTRIBUTE_SCRIPT), embedded("citus/distribute"));
        assert!(list().contains(&"citus/plan_scope.sql"));
    }
}
