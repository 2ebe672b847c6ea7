//! The loader on a Citus cluster (a coordinator and two workers on this machine).

use std::sync::OnceLock;

use stockload::devcitus::CitusCluster;

/// The cluster, started once per test process; `None` (and a message saying the Citus tests
/// were skipped) when this machine has no Citus.
fn cluster() -> Option<&'static CitusCluster> {
    static CLUSTER: OnceLock<Option<CitusCluster>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            if !CitusCluster::available() {
                eprintln!(
                    "SKIPPED: Citus is not installed here (scripts/citus-build.sh builds it)"
                );
                return None;
            }
            Some(
                CitusCluster::start(2, &[("fsync", "off")])
                    .expect("cannot start the throwaway Citus cluster"),
            )
        })
        .as_ref()
}

#[tokio::test]
async fn a_citus_cluster_distributes_a_table_over_two_workers() {
    let Some(cluster) = cluster() else { return };
    cluster.create_database("smoke").await.unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&format!(
        "{}?sslmode=disable",
        cluster.url("smoke")
    ))
    .await
    .unwrap();
    let nodes: i64 = sqlx::query_scalar("SELECT count(*) FROM citus_get_active_worker_nodes()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(nodes, 2);
}
