//! `stockload dev-postgres` (hidden): a throwaway PostgreSQL (or, with `--citus-workers N`, a
//! Citus coordinator with N workers) for scripts and benchmarks; prints its URL and removes it
//! when stdin closes.

use crate::cli::DevPostgresArgs;
use crate::devcitus::CitusCluster;
use crate::devdb;
use crate::error::{Error, Result};

/// Starts the cluster and holds it until whoever started us closes our stdin.
pub(crate) async fn run(args: DevPostgresArgs) -> Result<bool> {
    if args.citus_workers > 0 {
        let workers = args.citus_workers;
        let cluster = tokio::task::spawn_blocking(move || CitusCluster::start(workers, &[]))
            .await
            .map_err(|e| Error::Cluster(e.to_string()))??;
        cluster.create_database("stockload").await?;
        outln!("{}", cluster.url("stockload"));
        wait_for_stdin_to_close().await;
        drop(cluster);
        return Ok(true);
    }
    let cluster = tokio::task::spawn_blocking(|| devdb::TempCluster::start(&[]))
        .await
        .map_err(|e| Error::task("starting a throwaway PostgreSQL", e))??;
    outln!("{}", cluster.url("postgres"));
    wait_for_stdin_to_close().await;
    drop(cluster);
    Ok(true)
}

async fn wait_for_stdin_to_close() {
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
}
