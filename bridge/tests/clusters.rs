//! Several local clusters started together (`ecoshard_postgres::LocalClusters`),
//! as the moves between clusters will need them: each its own primary and
//! standbys, streaming within it, with logical WAL and two-phase commit.

mod common;

use std::time::Duration;

use common::{SharedClusters, connect, eventually, start_clusters};

/// This binary's two clusters of one standby each, on ports from 25000.
static CLUSTERS: SharedClusters = SharedClusters::new("clusters", 25000, 2, 1);

/// One text value of the first row `sql` answers on `node` of `cluster`.
async fn value(cluster: &ecoshard_bridge::LocalCluster, node: &str, sql: &str) -> String {
    let client = connect(cluster, node, "ecomarket").await;
    let row = client.query_one(sql, &[]).await.expect(sql);
    row.get(0)
}

/// The count `sql` answers.
async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test]
async fn each_cluster_has_its_name_directory_ports_and_own_standby() {
    let clusters = CLUSTERS.get();
    let (c1, c2) = (&clusters[0], &clusters[1]);
    assert_eq!([c1.name(), c2.name()], ["c1", "c2"]);
    assert_eq!(c2.data_dir(), c1.data_dir().join("c2"));
    let ports = |cluster: &ecoshard_bridge::LocalCluster| -> Vec<(String, u16)> {
        cluster
            .nodes()
            .into_iter()
            .map(|node| (node.name, node.port))
            .collect()
    };
    let first = c1.nodes()[0].port;
    assert_eq!(
        ports(c1),
        [("primary".into(), first), ("standby-1".into(), first + 1)]
    );
    assert_eq!(
        ports(c2),
        [
            ("primary".into(), first + 10),
            ("standby-1".into(), first + 11)
        ]
    );
    for cluster in [c1, c2] {
        let primary_port = cluster.nodes()[0].port.to_string();
        let streaming = value(
            cluster,
            "primary",
            "SELECT string_agg(application_name || ' ' || state, ',') FROM pg_stat_replication",
        )
        .await;
        assert_eq!(streaming, "standby-1 streaming", "{}", cluster.name());
        let upstream = value(
            cluster,
            "standby-1",
            "SELECT sender_port::text FROM pg_stat_wal_receiver",
        )
        .await;
        assert_eq!(
            upstream,
            primary_port,
            "{}'s standby streams from",
            cluster.name()
        );
        for node in ["primary", "standby-1"] {
            for (setting, expected) in [
                ("wal_level", "logical"),
                ("max_prepared_transactions", "64"),
                ("shared_buffers", "32MB"),
            ] {
                let shown = value(cluster, node, &format!("SHOW {setting}")).await;
                assert_eq!(shown, expected, "{} {node} {setting}", cluster.name());
            }
        }
    }
}

#[tokio::test]
async fn a_prepared_transaction_commits_on_the_second_cluster_only() {
    let clusters = CLUSTERS.get();
    let (c1, c2) = (&clusters[0], &clusters[1]);
    let client = connect(c2, "primary", "ecomarket").await;
    client
        .batch_execute("CREATE TABLE prepared_test (id int PRIMARY KEY)")
        .await
        .expect("create table");
    client
        .batch_execute(
            "BEGIN; INSERT INTO prepared_test VALUES (1); PREPARE TRANSACTION 'ecoshard-test';",
        )
        .await
        .expect("prepare");
    let rows = "SELECT count(*) FROM prepared_test";
    let prepared = "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'ecoshard-test'";
    assert_eq!(
        count(&client, rows).await,
        0,
        "visible before COMMIT PREPARED"
    );
    assert_eq!(count(&client, prepared).await, 1);
    client
        .batch_execute("COMMIT PREPARED 'ecoshard-test'")
        .await
        .expect("commit prepared");
    assert_eq!(count(&client, rows).await, 1);
    assert_eq!(
        count(&client, prepared).await,
        0,
        "a prepared transaction is left"
    );
    let standby = connect(c2, "standby-1", "ecomarket").await;
    let replayed = eventually(Duration::from_secs(10), || async {
        standby
            .query_one(rows, &[])
            .await
            .is_ok_and(|row| row.get::<_, i64>(0) == 1)
    })
    .await;
    assert!(replayed, "c2's standby never saw the committed row");
    let other = connect(c1, "primary", "ecomarket").await;
    let elsewhere = other
        .query_one("SELECT to_regclass('prepared_test') IS NULL", &[])
        .await
        .unwrap()
        .get::<_, bool>(0);
    assert!(elsewhere, "c1 has c2's table");
}

#[test]
fn dropped_clusters_stop_their_servers_and_their_directory_goes() {
    let clusters = start_clusters("clusters-dropped", 25100, 2, 0);
    let dir = clusters[0].data_dir().to_path_buf();
    let ports: Vec<u16> = clusters
        .iter()
        .flat_map(|cluster| cluster.nodes())
        .map(|node| node.port)
        .collect();
    assert_eq!(ports.len(), 2);
    assert!(dir.join("c2/primary/PG_VERSION").is_file());
    drop(clusters);
    let free = |port: &u16| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok();
    assert!(ports.iter().all(free), "a server still listens");
    let removed = common::blocking::eventually(common::LIMIT, || !dir.exists());
    assert!(removed, "{} is left behind", dir.display());
}
