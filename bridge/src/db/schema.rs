//! What the database holds besides the rows: the `ecoshard` schema (schema
//! version, layouts with their version and state, rebalance jobs, the
//! two-phase decision and move logs) and one schema per shard
//! (`shard_<name>.users`). Start-up on an empty database creates all of it.

use deadpool_postgres::GenericClient;
use ecoshard_core::Layout;
use ecoshard_core::wire::LayoutView;

/// Key of the advisory lock that serialises schema changes between bridges.
pub(crate) const SCHEMA_LOCK: i64 = 0x6563_6f73_6861_7264; // "ecoshard"

/// Migrations, in order; `ecoshard.schema_version` records how many ran.
/// Append, never edit: issue 4's rebalance jobs come as migration 2.
const MIGRATIONS: &[&str] = &[
    // 1: layouts. Exactly one is `active` (the one routing uses); a rebalance
    // adds a `target` and, when done, retires the old one.
    "CREATE TABLE ecoshard.layout (
         version bigint PRIMARY KEY CHECK (version > 0),
         layout jsonb NOT NULL,
         state text NOT NULL CHECK (state IN ('active', 'target', 'retired')),
         created_at timestamptz NOT NULL DEFAULT now()
     );
     CREATE UNIQUE INDEX layout_one_active ON ecoshard.layout ((true)) WHERE state = 'active';",
    // 2: rebalance jobs (see `rebalance/`). At most one target layout and
    // one running job; `moved` changes in the transaction that moves the rows.
    "CREATE UNIQUE INDEX layout_one_target ON ecoshard.layout ((true)) WHERE state = 'target';
     CREATE TABLE ecoshard.rebalance (
         id bigserial PRIMARY KEY,
         from_version bigint NOT NULL REFERENCES ecoshard.layout (version),
         to_version bigint NOT NULL REFERENCES ecoshard.layout (version),
         state text NOT NULL CHECK (state IN ('running', 'done', 'failed')),
         moved bigint NOT NULL DEFAULT 0,
         total bigint,
         moving_ms bigint NOT NULL DEFAULT 0,
         plan json,
         error text,
         started_at timestamptz NOT NULL DEFAULT now(),
         finished_at timestamptz
     );
     CREATE UNIQUE INDEX rebalance_one_running ON ecoshard.rebalance ((true)) WHERE state = 'running';",
    // 3: two-phase commit across clusters (see `db/twophase.rs`). A row in
    // `decisions` is the decision to commit `txid` on `participants` (in
    // their commit order); no row means abort. `moves` logs each batch of
    // rows a rebalance moved between clusters, written with its decision.
    "CREATE TABLE ecoshard.decisions (
         txid bigserial PRIMARY KEY,
         participants text[] NOT NULL,
         purpose text NOT NULL,
         decided_at timestamptz NOT NULL DEFAULT now(),
         done_at timestamptz
     );
     CREATE INDEX decisions_not_done ON ecoshard.decisions (txid) WHERE done_at IS NULL;
     CREATE TABLE ecoshard.moves (
         txid bigint PRIMARY KEY REFERENCES ecoshard.decisions (txid),
         job bigint NOT NULL REFERENCES ecoshard.rebalance (id),
         from_shard text NOT NULL,
         from_cluster text NOT NULL,
         to_shard text NOT NULL,
         to_cluster text NOT NULL,
         rows bigint NOT NULL
     );",
    // 4: whole shards moving between clusters (see `db/logical.rs`): one row
    // per shard a placement change moves, with the phase it has reached.
    "CREATE TABLE ecoshard.shard_move (
         job bigint NOT NULL REFERENCES ecoshard.rebalance (id),
         shard text NOT NULL,
         position integer NOT NULL,
         source text NOT NULL,
         target text NOT NULL,
         phase text NOT NULL DEFAULT 'setting_up' CHECK (phase IN
             ('setting_up', 'copying', 'catching_up', 'cutover', 'verifying', 'cleanup', 'done')),
         rows_total bigint,
         bytes_total bigint,
         write_pause_ms bigint,
         error text,
         PRIMARY KEY (job, shard)
     );",
    // 5: several bridges over one catalog (see `db/bridges.rs`): each
    // bridge's row with its heartbeat (the catalog's clock) and the
    // routing it follows; which bridge runs a job; and a NOTIFY on
    // `ecoshard_catalog`, in the changing transaction, whenever a layout
    // or a job's state changes.
    "CREATE TABLE ecoshard.bridges (
         name text PRIMARY KEY,
         address text NOT NULL,
         pid integer NOT NULL,
         started_at timestamptz NOT NULL DEFAULT now(),
         heartbeat timestamptz NOT NULL DEFAULT now(),
         version bigint NOT NULL DEFAULT 0,
         previous bigint
     );
     ALTER TABLE ecoshard.rebalance ADD COLUMN runner text;
     CREATE FUNCTION ecoshard.notify_catalog() RETURNS trigger LANGUAGE plpgsql AS
         $$ BEGIN PERFORM pg_notify('ecoshard_catalog', TG_TABLE_NAME); RETURN NULL; END $$;
     CREATE TRIGGER layout_changed AFTER INSERT OR UPDATE OR DELETE ON ecoshard.layout
         FOR EACH STATEMENT EXECUTE FUNCTION ecoshard.notify_catalog();
     CREATE TRIGGER job_changed AFTER INSERT OR UPDATE OF state ON ecoshard.rebalance
         FOR EACH STATEMENT EXECUTE FUNCTION ecoshard.notify_catalog();
     CREATE TRIGGER shard_move_changed AFTER INSERT OR UPDATE OF phase ON ecoshard.shard_move
         FOR EACH STATEMENT EXECUTE FUNCTION ecoshard.notify_catalog();",
    // 6: a shard move's write fence held by every bridge (see
    // `service/coordination/fence.rs`): the fence raised for a cutover (a
    // number from `fences`, kept once decided) and the source's position
    // the cutover waited for; each bridge's row the fence it holds and the
    // latest decided cutover it routes by; a fence raised or lifted notifies.
    "ALTER TABLE ecoshard.shard_move ADD COLUMN fence bigint, ADD COLUMN source_lsn bigint;
     ALTER TABLE ecoshard.bridges ADD COLUMN fence bigint, ADD COLUMN cut_over bigint;
     CREATE SEQUENCE ecoshard.fences;
     DROP TRIGGER shard_move_changed ON ecoshard.shard_move;
     CREATE TRIGGER shard_move_changed AFTER INSERT OR UPDATE OF phase, fence
         ON ecoshard.shard_move FOR EACH STATEMENT EXECUTE FUNCTION ecoshard.notify_catalog();",
];

/// Error of a schema operation.
#[derive(Debug)]
pub enum SchemaError {
    /// The database refused.
    Db(tokio_postgres::Error),
    /// The stored layout is not a valid one.
    BadStoredLayout(String),
    /// A primary did not answer (no connection, or not within a deadline).
    Unanswered(String),
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaError::Db(error) => write!(f, "{}", crate::db::describe(error)),
            SchemaError::BadStoredLayout(why) => write!(f, "the stored layout is invalid: {why}"),
            SchemaError::Unanswered(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for SchemaError {}

impl From<tokio_postgres::Error> for SchemaError {
    fn from(error: tokio_postgres::Error) -> Self {
        SchemaError::Db(error)
    }
}

/// Brings the catalog up to date, stores `initial` as version 1 when there
/// is no layout yet, and answers the active layout (its shards' schemas are
/// made on each cluster by `jobs::create_shards`). Runs in one transaction
/// under an advisory lock.
pub(crate) async fn prepare(
    client: &mut deadpool_postgres::Client,
    initial: &Layout,
) -> Result<LayoutView, SchemaError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS ecoshard;
         CREATE TABLE IF NOT EXISTS ecoshard.schema_version (version integer NOT NULL);",
    )
    .await?;
    let done: i32 = match tx
        .query_opt("SELECT version FROM ecoshard.schema_version", &[])
        .await?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO ecoshard.schema_version VALUES (0)", &[])
                .await?;
            0
        }
    };
    for migration in MIGRATIONS.iter().skip(done.max(0) as usize) {
        tx.batch_execute(migration).await?;
    }
    tx.execute(
        "UPDATE ecoshard.schema_version SET version = $1",
        &[&(MIGRATIONS.len() as i32)],
    )
    .await?;
    let view = match active_layout(&tx).await? {
        Some(view) => view,
        None => {
            let json = serde_json::to_string(initial)
                .map_err(|error| SchemaError::BadStoredLayout(error.to_string()))?;
            tx.execute(
                "INSERT INTO ecoshard.layout (version, layout, state) VALUES (1, $1::text::jsonb, 'active')",
                &[&json],
            )
            .await?;
            LayoutView {
                version: 1,
                layout: initial.clone(),
                placement: Vec::new(),
            }
        }
    };
    tx.commit().await?;
    Ok(view)
}

/// The active layout, if any.
pub(crate) async fn active_layout(
    client: &impl GenericClient,
) -> Result<Option<LayoutView>, SchemaError> {
    layout_in_state(client, "active").await
}

/// The layout a rebalance is moving to, if any.
pub(crate) async fn target_layout(
    client: &impl GenericClient,
) -> Result<Option<LayoutView>, SchemaError> {
    layout_in_state(client, "target").await
}

async fn layout_in_state(
    client: &impl GenericClient,
    state: &str,
) -> Result<Option<LayoutView>, SchemaError> {
    let Some(row) = client
        .query_opt(
            "SELECT version, layout::text FROM ecoshard.layout WHERE state = $1",
            &[&state],
        )
        .await?
    else {
        return Ok(None);
    };
    let version: i64 = row.get(0);
    let json: String = row.get(1);
    let layout: Layout = serde_json::from_str(&json)
        .map_err(|error| SchemaError::BadStoredLayout(error.to_string()))?;
    Ok(Some(LayoutView {
        version: version as u64,
        layout,
        placement: Vec::new(),
    }))
}

/// Names of shards that only retired layouts have (candidates for dropping).
pub(crate) async fn retired_shards(
    client: &impl GenericClient,
) -> Result<Vec<String>, SchemaError> {
    let mut live = std::collections::BTreeSet::new();
    let mut retired = std::collections::BTreeSet::new();
    for row in client
        .query("SELECT state, layout::text FROM ecoshard.layout", &[])
        .await?
    {
        let state: String = row.get(0);
        let json: String = row.get(1);
        let layout: Layout = serde_json::from_str(&json)
            .map_err(|error| SchemaError::BadStoredLayout(error.to_string()))?;
        let names = layout.shards.into_iter().map(|shard| shard.name);
        if state == "retired" {
            retired.extend(names);
        } else {
            live.extend(names);
        }
    }
    Ok(retired.difference(&live).cloned().collect())
}

/// Drops the schema of shard `name` if it exists and its table is empty
/// (checked under an exclusive lock, in one transaction); whether it did.
pub(crate) async fn drop_shard_if_empty(
    client: &mut deadpool_postgres::Client,
    name: &str,
) -> Result<bool, SchemaError> {
    let schema = shard_schema(name);
    let tx = client.transaction().await?;
    let exists: bool = tx
        .query_one(
            "SELECT to_regclass($1) IS NOT NULL",
            &[&format!("{schema}.users")],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(false);
    }
    tx.batch_execute(&format!(
        "LOCK TABLE {schema}.users IN ACCESS EXCLUSIVE MODE"
    ))
    .await?;
    let empty: bool = tx
        .query_one(
            &format!("SELECT NOT EXISTS (SELECT 1 FROM {schema}.users)"),
            &[],
        )
        .await?
        .get(0);
    if !empty {
        return Ok(false);
    }
    tx.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Creates the schema and `users` table of every shard of `layout` that lacks them.
pub(crate) async fn ensure_shards(
    client: &impl GenericClient,
    layout: &Layout,
) -> Result<(), SchemaError> {
    for shard in &layout.shards {
        let schema = shard_schema(&shard.name);
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema};
                 CREATE TABLE IF NOT EXISTS {schema}.users (
                     user_id text PRIMARY KEY,
                     name text NOT NULL,
                     email text NOT NULL,
                     created_at timestamptz NOT NULL DEFAULT now()
                 );"
            ))
            .await?;
    }
    Ok(())
}

/// The quoted schema of a shard: `"shard_<name>"`. Shard names are validated
/// by the core (`A-Z a-z 0-9 _ -`, at most 32), so quoting is all it needs.
pub(crate) fn shard_schema(shard: &str) -> String {
    debug_assert!(
        shard
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    format!("\"shard_{shard}\"")
}

/// Creates the database `config` names on the server it points at, when
/// it does not exist (only plain names: see [`is_plain_identifier`]);
/// whether it created it. Another bridge creating it first is fine.
pub(crate) async fn ensure_database(config: &tokio_postgres::Config) -> Result<bool, String> {
    use tokio_postgres::error::SqlState;
    let database = config.get_dbname().unwrap_or("ecomarket").to_string();
    match config.connect(tokio_postgres::NoTls).await {
        Ok(_) => return Ok(false),
        Err(error) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(error) => return Err(super::describe(&error)),
    }
    if !is_plain_identifier(&database) {
        return Err(format!(
            "database {database:?} does not exist, and only names of a-z 0-9 _ are created"
        ));
    }
    let mut config = config.clone();
    config.dbname("postgres");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|error| super::describe(&error))?;
    let connection = tokio::spawn(connection);
    let created = client
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await;
    drop(client);
    let _ = connection.await;
    match created {
        Ok(()) => Ok(true),
        Err(error) if error.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(false),
        Err(error) => Err(super::describe(&error)),
    }
}

/// Whether `name` is a database name the bridge will create: `[a-z_][a-z0-9_]*`, ≤ 63.
pub fn is_plain_identifier(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        assert_eq!(shard_schema("s0"), "\"shard_s0\"");
        assert_eq!(shard_schema("EU-west_1"), "\"shard_EU-west_1\"");
        assert!(is_plain_identifier("ecomarket"));
        assert!(is_plain_identifier("t_2"));
        assert!(!is_plain_identifier("2t"));
        assert!(!is_plain_identifier("Eco"));
        assert!(!is_plain_identifier("a\"b"));
        assert!(!is_plain_identifier(""));
    }
}
