//! Layout changes over several clusters, refused for now: whether one
//! would move keys or shards from one cluster to another (the core's plan
//! over the real keys says), and the refusal that says so.

use ecoshard_core::Layout;

use super::mover::{Keys, plan_summary, router};
use super::{LayoutRefusal, off_workers};
use crate::service::failover::{self, WRITE_TIMEOUT};
use crate::service::{Error, Service};

/// Why the change from `from` to `to` (both naming every shard's cluster)
/// is refused: it crosses clusters (`cross_cluster_move`, with the core's
/// counts of keys and shards crossing), or it stays within them, which the
/// mover does not do over several clusters yet.
pub(super) async fn refusal(service: &Service, from: &Layout, to: &Layout) -> Error {
    let keys = match scan_every_cluster(service, from).await {
        Ok(keys) => keys,
        Err(error) => return error,
    };
    let (from, to) = (from.clone(), to.clone());
    let planned = off_workers(move || {
        let (old, new) = (router(&from)?, router(&to)?);
        Ok::<_, ecoshard_core::Error>(plan_summary(&old, &new, &keys))
    })
    .await;
    let plan = match planned {
        Ok(Ok(plan)) => plan,
        Ok(Err(error)) => return LayoutRefusal::Invalid(error.to_string()).into(),
        Err(error) => return Error::internal("planning a layout change", error),
    };
    if plan.moved_across_clusters > 0 || !plan.shard_moves.is_empty() {
        LayoutRefusal::CrossClusterMove {
            keys: plan.moved_across_clusters,
            shards: plan.shard_moves.len(),
        }
        .into()
    } else {
        LayoutRefusal::SeveralClusters {
            keys: plan.moved_within_cluster,
        }
        .into()
    }
}

/// The keys of every shard of `layout`, each read on its cluster's primary
/// within the write deadline.
async fn scan_every_cluster(service: &Service, layout: &Layout) -> Result<Keys, Error> {
    let mut keys = Keys::new();
    for cluster in service.clusters().all() {
        let on = crate::routing::layout_on(layout, cluster.name());
        let names: Vec<String> = on.shards.into_iter().map(|shard| shard.name).collect();
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        let unavailable = |why: String| {
            tracing::warn!("reading the keys of {}: {why}", cluster.name());
            failover::primary_unavailable_on(service, cluster)
        };
        let client = cluster
            .primary_client(deadline)
            .await
            .map_err(|error| unavailable(error.to_string()))?;
        let scanned = tokio::time::timeout_at(
            deadline,
            crate::db::jobs::shard_keys(&client, names.iter().map(String::as_str)),
        );
        match scanned.await {
            Ok(Ok(found)) => keys.extend(found),
            Ok(Err(error)) => return Err(unavailable(crate::db::describe(&error))),
            Err(_) => {
                crate::cluster::discard(client);
                return Err(unavailable("no answer in time".to_owned()));
            }
        }
    }
    Ok(keys)
}
