//! `stockload dev-postgres` (hidden): a throwaway PostgreSQL for scripts and benchmarks; prints its
//! URL and removes it when stdin closes.

use crate::devdb;
use crate::error::{Error, Result};

/// Starts the cluster and holds it until whoever started us closes our stdin.
pub(crate) async fn run() -> Result<bool> {
    let cluster = tokio::task::spawn_blocking(|| devdb::TempCluster::start(&[]))
        .await
        .map_err(|e| Error::task("starting a throwaway PostgreSQL", e))??;
    println!("{}", cluster.url("postgres"));
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
    drop(cluster);
    Ok(true)
}
