//! Inserting one user: into the shard the core picks, on the primary, in
//! the primary's batch when it can be; answered with what the bridge knows
//! of the outcome — written, stored already exactly so (a repeat: nothing
//! written, so a client can repeat an insert whose outcome it does not
//! know), not taken, or sent and maybe committed.

use ecoshard_core::wire::{InsertResult, NewUser, User};
use tokio_postgres::types::PgLsn;

use super::failover::{self, WRITE_TIMEOUT};
use super::{Error, Service};
use super::{coordination, input};
use crate::cluster::{Cluster, Node, checkout, discard};
use crate::db::{self, ShardSql, WriteFailure};
use crate::routing::RoutingTable;
use crate::routing::batch::InsertAnswer;

/// An insert answered: the user as stored, and whether this insert wrote
/// it (`false`: it was stored exactly so already).
#[derive(Debug)]
pub(crate) struct Inserted {
    /// The user, its shard, the node and the WAL position to read after.
    pub(crate) result: InsertResult,
    /// Written by this insert.
    pub(crate) created: bool,
}

/// A new user's id, name and email, checked, with the defaults filled in.
fn fields(new_user: NewUser) -> Result<(String, String, String), Error> {
    input::user_id(&new_user.user_id)?;
    if let Some(name) = &new_user.name {
        input::name(name)?;
    }
    if let Some(email) = &new_user.email {
        input::email(email)?;
    }
    let user_id = new_user.user_id;
    let name = new_user.name.unwrap_or_else(|| user_id.clone());
    let email = new_user
        .email
        .unwrap_or_else(|| format!("{user_id}@ecomarket.example"));
    Ok((user_id, name, email))
}

/// Inserts `new_user` (its name and e-mail derived from its id when not
/// given).
pub(crate) async fn insert(service: &Service, new_user: NewUser) -> Result<Inserted, Error> {
    let (user_id, name, email) = fields(new_user)?;
    // Everything the insert does, the fence of a shard move and read-back too.
    let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
    coordination::renew(service, deadline).await;
    // Held until the commit: a rebalance swaps tables between writes only.
    let Some((_gate, table)) = service.routing().write_table_for(&user_id, deadline).await else {
        return Err(Error::ShardFenced(format!("the shard of {user_id:?}")));
    };
    let position = table.current.position(&user_id);
    let cluster = service.cluster_named(table.current.cluster_of(position))?;
    if let Some(refusal) = failover::write_refusal_on(service, cluster) {
        return Err(refusal);
    }
    let shard = &table.current.shards[position];
    let primary = cluster.primary();
    let user = (user_id.as_str(), name.as_str(), email.as_str());
    // A key moving from another cluster: taken if its old owner holds it
    // (no insert under the new layout can put it back there after this).
    if let Some((old_cluster, old_shard)) = table.moving_across(&user_id) {
        let old = service.cluster_named(old_cluster)?;
        if let Some(stored) = stored_on(service, old, &[old_shard], user, deadline).await? {
            return Ok(stored);
        }
    }
    let written = match (
        table.moving_from(&user_id),
        table.current.batch_for(&user_id),
    ) {
        // The usual case: the insert joins the primary's batch.
        (None, Some((sql, position))) => {
            primary
                .insert_batches
                .insert(sql, position, &user_id, &name, &email, deadline)
                .await
        }
        (moving_from, _) => insert_alone(primary, shard, moving_from, user, deadline).await,
    };
    let inserted = match written {
        Ok(Some(inserted)) => inserted,
        Ok(None) | Err(WriteFailure::Duplicate) => {
            return stored_as_sent(service, cluster, &table, user, deadline).await;
        }
        Err(failure) => {
            return Err(write_failed(
                service,
                cluster,
                failure,
                &user_id,
                "send the same insert again",
            ));
        }
    };
    service.record_write(1, cluster, u64::from(inserted.lsn));
    Ok(Inserted {
        result: InsertResult {
            user: User {
                user_id,
                name,
                email,
                created_at: inserted.created_at,
            },
            shard: shard.name.clone(),
            served_by: primary.name().to_string(),
            lsn: token(service, cluster, inserted.lsn),
            cluster: service.answer_cluster(cluster),
        },
        created: true,
    })
}

/// The read-your-writes token of a write committed at `lsn` on `cluster`:
/// the bare LSN with one cluster (as it always was), `c2/0/3000148` with
/// several.
pub(crate) fn token(service: &Service, cluster: &Cluster, lsn: PgLsn) -> String {
    if service.clusters().several() {
        format!("{}/{lsn}", cluster.name())
    } else {
        lsn.to_string()
    }
}

/// A user to write: id, name, e-mail.
type UserFields<'u> = (&'u str, &'u str, &'u str);

/// One insert on a connection of its own (not batched: the layout has too
/// many shards, or a rebalance moves the key and the old owner is checked),
/// by `deadline`.
async fn insert_alone(
    primary: &Node,
    shard: &ShardSql,
    moving_from: Option<&ShardSql>,
    (user_id, name, email): UserFields<'_>,
    deadline: tokio::time::Instant,
) -> InsertAnswer {
    let client = checkout(&primary.pool, deadline)
        .await
        .map_err(|error| error.not_taken())?;
    let insert = async {
        match moving_from {
            // A rebalance moves this key's owner: the row may still be at the old one.
            Some(old_shard) => {
                db::insert_user_unless_in(&client, shard, old_shard, user_id, name, email).await
            }
            None => db::insert_user(&client, shard, user_id, name, email).await,
        }
    };
    match tokio::time::timeout_at(deadline, insert).await {
        Ok(Ok(written)) => Ok(written),
        Ok(Err(error)) => match error.failure() {
            WriteFailure::Duplicate => Ok(None),
            failure => Err(failure),
        },
        Err(_) => {
            discard(client);
            Err(WriteFailure::Unknown {
                timed_out: true,
                message: "no commit before the deadline".to_owned(),
            })
        }
    }
}

/// For an insert whose id is taken: the stored user and the WAL position
/// now when it is stored as sent (a repeat), else a duplicate. Read back by
/// `deadline`; past it, the primary is unavailable (nothing was written
/// either way).
async fn stored_as_sent(
    service: &Service,
    cluster: &Cluster,
    table: &RoutingTable,
    user: UserFields<'_>,
    deadline: tokio::time::Instant,
) -> Result<Inserted, Error> {
    // The key's shards on its cluster (the new owner's, and the old one's
    // when it is on the same cluster).
    let shards: Vec<&ShardSql> = table
        .read_plan(user.0)
        .into_iter()
        .find(|on| !on.previous)
        .map(|on| on.shards)
        .unwrap_or_default();
    stored_on(service, cluster, &shards, user, deadline)
        .await?
        .ok_or_else(|| Error::DuplicateUser(user.0.to_owned()))
}

/// Whether `shards` on `cluster`'s primary hold the user: `None` when
/// not; the stored user, as a repeat, when stored as sent; else a
/// duplicate. Read by `deadline`; past it, the primary is unavailable.
async fn stored_on(
    service: &Service,
    cluster: &Cluster,
    shards: &[&ShardSql],
    (user_id, name, email): UserFields<'_>,
    deadline: tokio::time::Instant,
) -> Result<Option<Inserted>, Error> {
    let primary = cluster.primary();
    let unavailable = |why: String| {
        tracing::warn!("reading back {user_id:?}: {why}");
        failover::primary_unavailable_on(service, cluster)
    };
    let client = checkout(&primary.pool, deadline)
        .await
        .map_err(|error| unavailable(error.to_string()))?;
    let stored = tokio::time::timeout_at(deadline, db::stored_user(&client, shards, user_id)).await;
    let (found, lsn) = match stored {
        Ok(Ok(stored)) => stored,
        Ok(Err(error)) => return Err(unavailable(db::describe(&error))),
        Err(_) => {
            discard(client);
            return Err(unavailable("no answer in time".to_owned()));
        }
    };
    match found {
        None => Ok(None),
        Some((user, index)) if user.name == name && user.email == email => {
            service.record_write(0, cluster, u64::from(lsn));
            Ok(Some(Inserted {
                result: InsertResult {
                    user,
                    shard: shards[index].name.clone(),
                    served_by: primary.name().to_string(),
                    lsn: token(service, cluster, lsn),
                    cluster: service.answer_cluster(cluster),
                },
                created: false,
            }))
        }
        Some(_) => Err(Error::DuplicateUser(user_id.to_owned())),
    }
}

/// What a write that failed answers: `what` names it (an id, a bulk
/// prefix), `again` says how to repeat it when its outcome is unknown.
pub(super) fn write_failed(
    service: &Service,
    cluster: &Cluster,
    failure: WriteFailure,
    what: &str,
    again: &str,
) -> Error {
    match failure {
        WriteFailure::Duplicate => Error::DuplicateUser(what.to_owned()),
        WriteFailure::NotTaken {
            unavailable: true,
            message,
        } => {
            tracing::warn!("write of {what:?} not taken by the primary: {message}");
            failover::primary_unavailable_on(service, cluster)
        }
        WriteFailure::NotTaken { message, .. } => Error::internal("write", message),
        WriteFailure::Unknown { timed_out, message } => {
            tracing::warn!("write of {what:?}: outcome unknown: {message}");
            failover::write_outcome_unknown(service, timed_out, again)
        }
    }
}
