//! Direct connections to a local cluster's node as the `ecoshard` role,
//! as the bridge connects: the benches' baselines, and tests that look
//! at a node through its port alone.

use tokio_postgres::{Client, Config, NoTls};

/// The `ecoshard` role on the node listening on `port`, database
/// `ecomarket`.
pub fn config(port: u16, password: &str) -> Config {
    let mut config = Config::new();
    config
        .host("127.0.0.1")
        .port(port)
        .user("ecoshard")
        .password(password)
        .dbname("ecomarket");
    config
}

/// A connection made with [`config`], its driver spawned.
pub async fn connect(port: u16, password: &str) -> Client {
    let (client, connection) = config(port, password)
        .connect(NoTls)
        .await
        .expect("direct connection");
    tokio::spawn(connection);
    client
}
