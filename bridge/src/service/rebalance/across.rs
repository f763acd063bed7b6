//! Layout changes over several clusters: what the mover needs of every
//! cluster — its shards' schemas, its keys, its WAL position — each from
//! that cluster's primary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ecoshard_core::Layout;

use super::mover::Keys;
use crate::cluster::Cluster;
use crate::routing::{UNKNOWN_POSITION, clusters_of, layout_on};
use crate::service::Service;
use tokio::time::Instant;

/// Each shard's cluster under `from` or `to` (a shard keeps its cluster in
/// a job that moves keys: a change moving a kept shard to another cluster
/// is a placement change, `shard_move.rs`, or refused).
pub(super) fn shard_clusters(from: &Layout, to: &Layout) -> BTreeMap<String, String> {
    let mut clusters = BTreeMap::new();
    for layout in [from, to] {
        for (shard, cluster) in layout.shards.iter().zip(clusters_of(layout)) {
            clusters.insert(shard.name.clone(), cluster);
        }
    }
    clusters
}

/// Why something the mover asked a cluster's primary did not happen.
pub(super) type Unanswered = String;

/// A connection to `cluster`'s primary, for the mover (no request waits on it).
async fn primary(cluster: &Cluster) -> Result<deadpool_postgres::Object, Unanswered> {
    cluster
        .primary()
        .pool
        .get()
        .await
        .map_err(|error| format!("{}: {}", cluster.name(), crate::db::describe_pool(&error)))
}

/// Creates the schemas of `layout`'s shards on each cluster holding some;
/// the WAL position after, per cluster. With `until`, each cluster's
/// creation ends there, its connection discarded (it may still wait for
/// the schema lock).
pub(super) async fn create_shards(
    service: &Service,
    layout: &Layout,
    until: Option<Instant>,
) -> Result<BTreeMap<String, u64>, crate::db::schema::SchemaError> {
    use crate::db::schema::SchemaError;
    let mut lsns = BTreeMap::new();
    for cluster in service.clusters().all() {
        let on = layout_on(layout, cluster.name());
        if on.shards.is_empty() {
            continue;
        }
        let mut client = primary(cluster).await.map_err(SchemaError::Unanswered)?;
        let creating = crate::db::jobs::create_shards(&mut client, &on);
        let lsn = match until {
            None => creating.await?,
            Some(until) => match tokio::time::timeout_at(until, creating).await {
                Ok(created) => created?,
                Err(_) => {
                    crate::cluster::discard(client);
                    return Err(SchemaError::Unanswered(format!(
                        "{}'s primary did not create the shards in time (a job's first step \
                         may hold the schema lock)",
                        cluster.name()
                    )));
                }
            },
        };
        lsns.insert(cluster.name().to_owned(), lsn);
    }
    Ok(lsns)
}

/// Every user_id of every shard of `from` and `to`, by shard, each
/// cluster's shards read on its primary.
pub(super) async fn scan(
    service: &Service,
    from: &Layout,
    to: &Layout,
) -> Result<Keys, Result<tokio_postgres::Error, Unanswered>> {
    let clusters = shard_clusters(from, to);
    let mut keys = Keys::new();
    for cluster in service.clusters().all() {
        let mut names: Vec<String> = Vec::new();
        for (shard, on) in &clusters {
            if on == cluster.name() {
                names.push(shard.clone());
            }
        }
        let client = primary(cluster).await.map_err(Err)?;
        let found = crate::db::jobs::shard_keys(&client, names.iter().map(String::as_str))
            .await
            .map_err(Ok)?;
        keys.extend(found);
    }
    Ok(keys)
}

/// The WAL position now of every cluster's primary (`c1`'s is `c1_lsn`,
/// taken after the job completed), for the routing table of layout
/// `version` alone. A primary that does not answer within
/// [`POSITION_WAIT`] gets [`UNKNOWN_POSITION`], so that its standbys serve
/// no read by the new layout before they have the job's last moves; its
/// position is then read again every [`POSITION_RETRY`] until it answers
/// and the bound is set to it (or the table is replaced), so its standbys
/// serve reads again once they have replayed that far. Any position read
/// after the job completed is past its commits on that cluster.
pub(super) async fn positions(
    service: &Service,
    version: u64,
    c1_lsn: u64,
) -> BTreeMap<String, u64> {
    let mut lsns = BTreeMap::new();
    for cluster in service.clusters().all() {
        let lsn = if cluster.name() == crate::cluster::DEFAULT_CLUSTER {
            Some(c1_lsn)
        } else {
            position_within(cluster, Instant::now() + POSITION_WAIT).await
        };
        let lsn = lsn.unwrap_or_else(|| {
            tracing::warn!(
                "{}'s WAL position after a job is not known yet: its standbys serve no read \
                 until it is",
                cluster.name()
            );
            read_later(service, version, Arc::clone(cluster));
            UNKNOWN_POSITION
        });
        lsns.insert(cluster.name().to_owned(), lsn);
    }
    lsns
}

/// Longest the WAL position of a cluster after a job is tried for before
/// the routing goes on without it.
const POSITION_WAIT: Duration = Duration::from_secs(5);
/// Time between two tries.
const POSITION_RETRY: Duration = Duration::from_millis(500);

/// `cluster`'s primary's WAL position, tried again until `deadline`.
async fn position_within(cluster: &Cluster, deadline: Instant) -> Option<u64> {
    loop {
        let tried = tokio::time::timeout_at(deadline, async {
            let client = primary(cluster).await.ok()?;
            crate::db::lsn_after_commit(&client).await.ok()
        })
        .await;
        match tried {
            Ok(Some(lsn)) => return Some(u64::from(lsn)),
            Ok(None) if Instant::now() + POSITION_RETRY < deadline => {
                tokio::time::sleep(POSITION_RETRY).await;
            }
            _ => return None,
        }
    }
}

/// Reads `cluster`'s position until it answers, then settles its bound in
/// the table of layout `version`; stops when that table is replaced.
fn read_later(service: &Service, version: u64, cluster: Arc<Cluster>) {
    let service = service.clone();
    tokio::spawn(async move {
        loop {
            let table = service.routing().table();
            if table.current.version != version
                || table.replay_bound(cluster.name()) != UNKNOWN_POSITION
            {
                return;
            }
            drop(table);
            let deadline = Instant::now() + POSITION_WAIT;
            if let Some(lsn) = position_within(&cluster, deadline).await {
                let routing = service.routing();
                if routing
                    .settle_replay_bound(version, cluster.name(), lsn)
                    .await
                {
                    tracing::info!("{}'s replay bound after a job: {lsn}", cluster.name());
                }
                return;
            }
        }
    });
}
