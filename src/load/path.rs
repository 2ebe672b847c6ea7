//! A load's plan of steps, chosen once: which path the batch takes into historical_stocks_data
//! (append, empty table, Citus) and the scripts each phase of that path runs, in order. This is
//! the one place that names the scripts a load runs: adding a step is one entry here.

use sqlx::PgConnection;

use crate::db::engine;
use crate::error::Result;
use crate::transform::{Script, Scripts};

/// How a batch reaches historical_stocks_data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadPath {
    /// The table holds rows: stage the batch in the load's transaction, then upsert it and
    /// recompute the changes it moved (every daily load).
    Append,
    /// The table is empty (a first load): a second session stages committed chunks of whole
    /// companies while the load's transaction writes each one, without the key (rebuilt once at
    /// the end).
    Empty,
    /// historical_stocks_data is a Citus distributed table: the append path in the scripts'
    /// Citus forms (`sql/citus/`), for every batch (no key drop: DDL on the shards after this
    /// transaction's parallel reads of them).
    Citus,
}

/// Drops what failed or killed empty-table loads left in stockload_work: the first step of every
/// path but Citus (runs take turns: none is staging now), and run after a failed load.
pub const CLEAR_WORK_SCRIPT: &str = "clear_work.sql";

/// The data-quality checks (`sql/quality_checks.sql`): flag the rows the run wrote.
pub const QUALITY_CHECKS: &str = "quality_checks.sql";

impl LoadPath {
    /// Asks the database once, inside the load's transaction: a distributed table takes the
    /// Citus path; an empty one (then locked against other writers until commit) the empty-table
    /// path; any other the append path.
    pub async fn choose(tx: &mut PgConnection, distributed: bool) -> Result<LoadPath> {
        Ok(if distributed {
            LoadPath::Citus
        } else if engine::target_is_empty(tx).await? {
            LoadPath::Empty
        } else {
            LoadPath::Append
        })
    }

    /// The path's name, as the scripts see it (setting `stockload.load_path`).
    pub fn name(self) -> &'static str {
        match self {
            LoadPath::Append => "append",
            LoadPath::Empty => "empty",
            LoadPath::Citus => "citus",
        }
    }

    /// True on Citus: the scripts' inputs are set so that the workers see them too.
    pub fn distributed(self) -> bool {
        self == LoadPath::Citus
    }

    /// The path's script names, by phase.
    pub fn script_names(self) -> StepNames {
        const SWEEP: &str = CLEAR_WORK_SCRIPT;
        match self {
            LoadPath::Append => StepNames {
                prepare: vec![SWEEP],
                stage: "create_stage.sql",
                stage_chunk: vec![],
                per_chunk: vec![],
                transform: vec![
                    "record_rejects.sql",
                    "plan_scope.sql",
                    "insert_query.sql",
                    "update_changes.sql",
                ],
                checks: vec![QUALITY_CHECKS],
                cleanup: vec![],
            },
            LoadPath::Empty => StepNames {
                prepare: vec![SWEEP, "drop_key.sql"],
                stage: "create_stage.sql",
                stage_chunk: vec!["stage_rejects.sql", "stage_scope.sql"],
                per_chunk: vec!["insert_empty.sql"],
                transform: vec!["record_staged.sql", "add_key.sql"],
                checks: vec![QUALITY_CHECKS],
                cleanup: vec!["clear_staged.sql"],
            },
            LoadPath::Citus => StepNames {
                prepare: vec![],
                stage: "citus/create_stage.sql",
                stage_chunk: vec![],
                per_chunk: vec![],
                transform: vec![
                    "record_rejects.sql",
                    "citus/plan_scope.sql",
                    "citus/insert_query.sql",
                    "citus/update_changes.sql",
                ],
                checks: vec!["citus/quality_checks.sql"],
                cleanup: vec!["citus/clear_stage.sql"],
            },
        }
    }

    /// The path's scripts, read (embedded, or from `--sql-dir`) before any of them runs.
    pub fn steps(self, scripts: &Scripts) -> Result<Steps> {
        let names = self.script_names();
        let load = |names: &[&str]| -> Result<Vec<Script>> {
            names.iter().map(|n| scripts.load(n)).collect()
        };
        Ok(Steps {
            prepare: load(&names.prepare)?,
            stage: scripts.load(names.stage)?,
            stage_chunk: load(&names.stage_chunk)?,
            per_chunk: load(&names.per_chunk)?,
            finish: load(&names.finish())?,
        })
    }
}

/// A path's script names, by phase (see [`Steps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepNames {
    /// Run in the load's transaction before staging; they may take strong locks (DDL), so each
    /// is run patiently (`transform::run_script_patiently`): readers never pile up behind them.
    pub prepare: Vec<&'static str>,
    /// Creates the staging table (the chunks of the empty-table path are made like it).
    pub stage: &'static str,
    /// Empty-table path: run by the staging session on each chunk before committing it.
    pub stage_chunk: Vec<&'static str>,
    /// Empty-table path: run by the load's transaction on each committed chunk.
    pub per_chunk: Vec<&'static str>,
    /// Writes the staged batch (or finishes writing it), after the reject limits are checked.
    pub transform: Vec<&'static str>,
    /// Checks over what the run wrote (the data-quality flags; `quality::review` reads what
    /// they found), after the transform.
    pub checks: Vec<&'static str>,
    /// Runs last.
    pub cleanup: Vec<&'static str>,
}

impl StepNames {
    /// What runs in the load's transaction after staging: the transform, the checks, the
    /// clean-up.
    pub fn finish(&self) -> Vec<&'static str> {
        let mut names = self.transform.clone();
        names.extend_from_slice(&self.checks);
        names.extend_from_slice(&self.cleanup);
        names
    }

    /// Every script of the path, in the order it first runs.
    pub fn all(&self) -> Vec<&'static str> {
        let mut names = self.prepare.clone();
        names.push(self.stage);
        names.extend_from_slice(&self.stage_chunk);
        names.extend_from_slice(&self.per_chunk);
        names.extend(self.finish());
        names
    }
}

/// A path's scripts, read and ready to run.
#[derive(Debug)]
pub struct Steps {
    /// Run in the load's transaction before staging, patiently (they may take strong locks).
    pub prepare: Vec<Script>,
    /// Creates the staging table.
    pub stage: Script,
    /// Empty-table path: run by the staging session on each chunk.
    pub stage_chunk: Vec<Script>,
    /// Empty-table path: run by the load's transaction on each committed chunk.
    pub per_chunk: Vec<Script>,
    /// Run in the load's transaction after staging and the reject limits.
    pub finish: Vec<Script>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::embedded;

    const PATHS: [LoadPath; 3] = [LoadPath::Append, LoadPath::Empty, LoadPath::Citus];

    #[test]
    fn every_script_of_every_path_is_embedded_and_loads() {
        for path in PATHS {
            for name in path.script_names().all() {
                assert!(embedded(name).is_some(), "{path:?}: {name} is not embedded");
            }
            let steps = path.steps(&Scripts::default()).unwrap();
            assert_eq!(steps.finish.len(), path.script_names().finish().len());
        }
    }

    #[test]
    fn only_the_citus_path_runs_citus_forms_and_every_path_writes_the_batch() {
        for path in PATHS {
            let all = path.script_names().all();
            assert_eq!(
                all.iter().any(|n| n.starts_with("citus/")),
                path == LoadPath::Citus,
                "{path:?}: {all:?}"
            );
            assert!(
                all.iter().any(|n| n.contains("insert_")),
                "{path:?} writes nothing: {all:?}"
            );
        }
        // The key is dropped only where it is built again.
        let empty = LoadPath::Empty.script_names();
        assert!(empty.prepare.contains(&"drop_key.sql"));
        assert!(empty.finish().contains(&"add_key.sql"));
        // Every path checks what it wrote, after writing it.
        for path in PATHS {
            let names = path.script_names();
            let finish = names.finish();
            let check = finish
                .iter()
                .position(|n| n.ends_with(QUALITY_CHECKS))
                .unwrap_or_else(|| panic!("{path:?} runs no quality checks"));
            assert!(check >= names.transform.len(), "{path:?}: {finish:?}");
        }
        // The staging session's counts are removed last, after the checks that read them.
        assert_eq!(
            LoadPath::Empty.script_names().finish().last(),
            Some(&"clear_staged.sql")
        );
        // Citus empties its staging tables last, after any check that reads them.
        assert_eq!(
            LoadPath::Citus.script_names().finish().last(),
            Some(&"citus/clear_stage.sql")
        );
    }
}
