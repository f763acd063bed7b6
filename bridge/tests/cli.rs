//! The `ecoshard` binary itself: `cluster up|status|down` on a real local
//! cluster (reused, repaired), `serve` starting a cluster and stopping it on
//! SIGTERM, and the one-line errors for missing binaries and taken ports.

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::blocking::{BIN, Scratch, Serve, check_refused, ecoshard};
use common::free_ports;

/// `ecoshard ARGS --data-dir DATA_DIR`.
fn in_dir(args: &[&str], data_dir: &Path) -> Output {
    let data_dir = data_dir.display().to_string();
    ecoshard(&[args, &["--data-dir", &data_dir]].concat())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn running_nodes(data_dir: &Path, port: u16) -> Vec<String> {
    let output = in_dir(
        &[
            "cluster",
            "status",
            "--format",
            "json",
            "--pg-port",
            &port.to_string(),
        ],
        data_dir,
    );
    let nodes: serde_json::Value = serde_json::from_slice(&output.stdout).expect("status JSON");
    nodes
        .as_array()
        .expect("a list")
        .iter()
        .filter(|node| node["running"] == true)
        .map(|node| node["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A blocking `GET`, answered within 5 s: status and body.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    common::blocking::request(addr, "GET", path, None, Duration::from_secs(5))
}

/// `GET /api/cluster` of the bridge at `addr`, as JSON.
fn cluster_json(addr: &str) -> serde_json::Value {
    let (status, body) = http_get(addr, "/api/cluster").expect("GET /api/cluster");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("cluster JSON")
}

#[test]
fn cluster_up_status_down_reuses_and_repairs_the_data_directory() {
    let scratch = Scratch::new("cli-updown");
    let port = free_ports(26600, 3);
    let port_arg = port.to_string();
    let up = in_dir(&["cluster", "up", "--pg-port", &port_arg], &scratch.dir);
    assert!(up.status.success(), "{}", stderr(&up));
    let printed = String::from_utf8_lossy(&up.stdout);
    assert!(
        printed.contains(&format!("127.0.0.1:{port}/ecomarket")),
        "{printed}"
    );
    assert_eq!(
        running_nodes(&scratch.dir, port),
        ["primary", "standby-1", "standby-2"]
    );

    // Private directories, owned by the server user; no password outside the passfile.
    let passfile = std::fs::read_to_string(scratch.dir.join("pgpass")).unwrap();
    let passwords: Vec<&str> = passfile
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit(':').next())
        .collect();
    assert_eq!(passwords.len(), 2);
    for node in ["primary", "standby-1", "standby-2"] {
        let meta = std::fs::metadata(scratch.dir.join(node)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o700, "{node}");
        if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
            assert_ne!(meta.uid(), 0, "{node} must not belong to root");
        }
        for file in ["postgresql.conf", "postgresql.auto.conf", "pg_hba.conf"] {
            let text =
                std::fs::read_to_string(scratch.dir.join(node).join(file)).unwrap_or_default();
            for password in &passwords {
                assert!(!text.contains(password), "a password is in {node}/{file}");
            }
        }
    }
    assert_eq!(
        std::fs::metadata(scratch.dir.join("pgpass"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );

    // The running cluster as an external one, given by a config file; the
    // password comes from the passfile, and the bridge leaves the servers running.
    let config = scratch.dir.join("external.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"primary": "postgres://ecoshard@127.0.0.1:{port}/ecomarket",
                "replicas": ["postgres://ecoshard@127.0.0.1:{}/ecomarket",
                             "host=127.0.0.1 port={} user=ecoshard dbname=ecomarket"]}}"#,
            port + 1,
            port + 2
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_ports(18600, 1));
    let config_arg = config.display().to_string();
    let passfile = scratch.dir.join("pgpass");
    let serve = Serve::start_with(&addr, &["--cluster-config", &config_arg], |command| {
        command.env("PGPASSFILE", &passfile);
    });
    let cluster = cluster_json(&addr);
    assert_eq!(cluster["mode"], "external");
    let names: Vec<&str> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| node["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["primary", "standby-1", "standby-2"]);
    let (exit, log) = serve.stop();
    assert!(exit.success(), "{log}");
    assert_eq!(
        running_nodes(&scratch.dir, port).len(),
        3,
        "an external cluster is left running"
    );

    let down = in_dir(&["cluster", "down"], &scratch.dir);
    assert!(down.status.success(), "{}", stderr(&down));
    let status = in_dir(&["cluster", "status"], &scratch.dir);
    assert_eq!(status.status.code(), Some(3), "status of a stopped cluster");
    assert!(running_nodes(&scratch.dir, port).is_empty());

    // Reuse keeps the data; a broken standby is cloned again.
    let replicator_password = passwords[0].to_string();
    std::fs::remove_dir_all(scratch.dir.join("standby-2/global")).unwrap();
    let again = in_dir(&["cluster", "up", "--pg-port", &port_arg], &scratch.dir);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        running_nodes(&scratch.dir, port),
        ["primary", "standby-1", "standby-2"]
    );
    let passfile = std::fs::read_to_string(scratch.dir.join("pgpass")).unwrap();
    assert!(
        passfile.contains(&replicator_password),
        "the primary was reused, not rebuilt"
    );
    assert!(scratch.dir.join("standby-2/global/pg_control").is_file());

    // Asking for other ports while it runs is refused with a clear line.
    let other = in_dir(
        &["cluster", "up", "--pg-port", &(port + 50).to_string()],
        &scratch.dir,
    );
    assert_eq!(other.status.code(), Some(1));
    assert!(
        stderr(&other).contains(&format!("--pg-port {port}")),
        "{}",
        stderr(&other)
    );

    // A broken primary: the whole cluster is built anew (new passwords).
    assert!(in_dir(&["cluster", "down"], &scratch.dir).status.success());
    std::fs::remove_file(scratch.dir.join("primary/global/pg_control")).unwrap();
    let rebuilt = in_dir(&["cluster", "up", "--pg-port", &port_arg], &scratch.dir);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert_eq!(
        running_nodes(&scratch.dir, port),
        ["primary", "standby-1", "standby-2"]
    );
    let passfile = std::fs::read_to_string(scratch.dir.join("pgpass")).unwrap();
    assert!(
        !passfile.contains(&replicator_password),
        "the broken primary was rebuilt"
    );
}

/// `cluster status --format json` with several clusters: each node's
/// cluster, name, port and whether it runs.
fn cluster_nodes(data_dir: &Path) -> Vec<(String, String, u16, bool)> {
    let output = in_dir(&["cluster", "status", "--format", "json"], data_dir);
    let nodes: serde_json::Value = serde_json::from_slice(&output.stdout).expect("status JSON");
    let text =
        |node: &serde_json::Value, key: &str| node[key].as_str().unwrap_or_default().to_string();
    nodes
        .as_array()
        .expect("a list")
        .iter()
        .map(|node| {
            let port = node["port"].as_u64().unwrap_or_default() as u16;
            (
                text(node, "cluster"),
                text(node, "name"),
                port,
                node["running"] == true,
            )
        })
        .collect()
}

/// What `sql` (simple queries) answers last on the node at `port`, as
/// `ecoshard` on `ecomarket` with the password of `passfile` ("" for no row).
fn sql(port: u16, passfile: &Path, sql: &str) -> String {
    let password = ecoshard_postgres::Passwords::read_passfile(passfile)
        .expect("the passfile")
        .ecoshard;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let client = common::direct::connect(port, &password).await;
        let messages = client.simple_query(sql).await.expect(sql);
        messages
            .iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                _ => None,
            })
            .next_back()
            .unwrap_or_default()
    })
}

#[test]
fn cluster_up_runs_two_clusters_each_streaming_to_its_own_standby() {
    let scratch = Scratch::new("cli-clusters");
    let port = free_ports(25400, 12);
    let port_arg = port.to_string();
    let up = in_dir(
        &[
            "cluster",
            "up",
            "--clusters",
            "2",
            "--standbys",
            "1",
            "--pg-port",
            &port_arg,
        ],
        &scratch.dir,
    );
    assert!(up.status.success(), "{}", stderr(&up));
    let printed = String::from_utf8_lossy(&up.stdout);
    assert!(printed.starts_with("2 clusters up in "), "{printed}");
    assert!(
        printed.contains(&format!(
            "c2/standby-1  standby  postgres://ecoshard@127.0.0.1:{}/ecomarket",
            port + 11
        )),
        "{printed}"
    );
    let all = |running: bool| -> Vec<(String, String, u16, bool)> {
        [
            ("c1", "primary", port),
            ("c1", "standby-1", port + 1),
            ("c2", "primary", port + 10),
            ("c2", "standby-1", port + 11),
        ]
        .map(|(cluster, name, port)| (cluster.into(), name.into(), port, running))
        .to_vec()
    };
    assert_eq!(cluster_nodes(&scratch.dir), all(true));
    let table = in_dir(&["cluster", "status"], &scratch.dir);
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.starts_with("cluster  node "), "{table}");
    assert!(
        table.contains(&format!(
            "c2       standby-1  standby   {}  running",
            port + 11
        )),
        "{table}"
    );

    let c1_passfile = scratch.dir.join("pgpass");
    let c2_passfile = scratch.dir.join("c2/pgpass");
    for (primary, passfile) in [(port, &c1_passfile), (port + 10, &c2_passfile)] {
        let replication =
            "SELECT string_agg(application_name || ' ' || state, ',') FROM pg_stat_replication";
        assert_eq!(
            sql(primary, passfile, replication),
            "standby-1 streaming",
            "{primary}"
        );
        let upstream = sql(
            primary + 1,
            passfile,
            "SELECT sender_port::text FROM pg_stat_wal_receiver",
        );
        assert_eq!(
            upstream,
            primary.to_string(),
            "the standby of {primary} streams from"
        );
        assert_eq!(sql(primary, passfile, "SHOW wal_level"), "logical");
        assert_ne!(
            sql(primary, passfile, "SHOW max_prepared_transactions"),
            "0"
        );
    }
    let c2 = port + 10;
    let prepared = "SELECT count(*) FROM pg_prepared_xacts WHERE gid = 'cli-test'";
    sql(c2, &c2_passfile, "CREATE TABLE moved (id int)");
    sql(
        c2,
        &c2_passfile,
        "BEGIN; INSERT INTO moved VALUES (7); PREPARE TRANSACTION 'cli-test'",
    );
    assert_eq!(sql(c2, &c2_passfile, prepared), "1");
    sql(c2, &c2_passfile, "COMMIT PREPARED 'cli-test'");
    assert_eq!(sql(c2, &c2_passfile, prepared), "0");
    assert_eq!(sql(c2, &c2_passfile, "SELECT count(*) FROM moved"), "1");

    let down = in_dir(&["cluster", "down"], &scratch.dir);
    assert!(down.status.success(), "{}", stderr(&down));
    let stopped = String::from_utf8_lossy(&down.stdout).into_owned();
    assert!(stopped.contains("c2/standby-1  stopped"), "{stopped}");
    assert_eq!(cluster_nodes(&scratch.dir), all(false));
    let status = in_dir(&["cluster", "status"], &scratch.dir);
    assert_eq!(status.status.code(), Some(3), "status of stopped clusters");

    // Started again, without --clusters: both, on their data.
    let c2_passwords = std::fs::read_to_string(&c2_passfile).unwrap();
    let again = in_dir(
        &["cluster", "up", "--standbys", "1", "--pg-port", &port_arg],
        &scratch.dir,
    );
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(cluster_nodes(&scratch.dir), all(true));
    assert_eq!(std::fs::read_to_string(&c2_passfile).unwrap(), c2_passwords);
    assert_eq!(sql(c2, &c2_passfile, "SELECT count(*) FROM moved"), "1");

    // Fewer clusters than the directory holds would leave one out.
    let fewer = in_dir(
        &["cluster", "up", "--clusters", "1", "--pg-port", &port_arg],
        &scratch.dir,
    );
    assert_eq!(fewer.status.code(), Some(1));
    assert!(
        stderr(&fewer).contains("holds 2 clusters"),
        "{}",
        stderr(&fewer)
    );
    assert!(in_dir(&["cluster", "down"], &scratch.dir).status.success());
    assert_eq!(cluster_nodes(&scratch.dir), all(false));
}

#[test]
fn bad_cluster_up_arguments_exit_with_code_2() {
    // One case a line: the arguments, then what the one line says.
    #[rustfmt::skip]
    let cases: [(&[&str], &str); 5] = [
        (&["--clusters", "0"], "0 is not in 1..=8"),
        (&["--clusters", "9"], "9 is not in 1..=8"),
        (&["--standbys", "6"], "6 is not in 0..=5"),
        (&["--clusters", "two"], "--clusters"),
        (&["--clusters", "2", "--pg-port", "65530"], "past 65535"),
    ];
    for (args, expected) in cases {
        let args = [
            &["cluster", "up", "--data-dir", "/nonexistent/ecoshard"],
            args,
        ]
        .concat();
        check_refused(&args, 2, expected);
    }
}

#[test]
fn serve_starts_the_cluster_and_stops_it_on_sigterm() {
    let scratch = Scratch::new("cli-serve");
    let port = free_ports(26700, 3);
    let http = free_ports(18700, 1);
    let addr = format!("127.0.0.1:{http}");
    let data_dir = scratch.dir.display().to_string();
    let serve = Serve::start(
        &addr,
        &["--pg-port", &port.to_string(), "--data-dir", &data_dir],
    );
    let cluster = cluster_json(&addr);
    assert_eq!(cluster["mode"], "local");
    assert_eq!(cluster["nodes"].as_array().map(Vec::len), Some(3));
    let (status, page) = http_get(&addr, "/").unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("ecoshard"), "{page}");
    assert_eq!(running_nodes(&scratch.dir, port).len(), 3);
    // A page listening to the event stream must not hold the shutdown up.
    let mut listener = std::net::TcpStream::connect(&addr).unwrap();
    write!(listener, "GET /api/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut first = [0u8; 64];
    let read = listener.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..read]).starts_with("HTTP/1.1 200"));
    let (exit, log) = serve.stop();
    assert!(exit.success(), "serve exited with {exit}: {log}");
    assert!(!log.contains("stopping anyway"), "{log}");
    assert!(log.contains("bridge listening on"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "colour codes in a piped log: {log:?}"
    );
    // The stream was ended properly: the last chunk of a chunked body.
    let mut rest = Vec::new();
    let _ = listener.read_to_end(&mut rest);
    assert!(
        rest.ends_with(b"0\r\n\r\n"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    assert!(
        running_nodes(&scratch.dir, port).is_empty(),
        "servers left running after SIGTERM"
    );
}

#[test]
fn serve_runs_two_clusters_shows_both_and_stops_them_on_sigterm() {
    let scratch = Scratch::new("cli-serve-two");
    let port = free_ports(26500, 12);
    let addr = format!("127.0.0.1:{}", free_ports(18500, 1));
    let data_dir = scratch.dir.display().to_string();
    let port_arg = port.to_string();
    let serve = Serve::start(
        &addr,
        &[
            "--clusters",
            "2",
            "--standbys",
            "1",
            "--pg-port",
            &port_arg,
            "--data-dir",
            &data_dir,
        ],
    );
    let healthy = |cluster: &serde_json::Value| {
        cluster["nodes"].as_array().is_some_and(|nodes| {
            nodes.len() == 2
                && nodes.iter().all(|node| {
                    node["up"] == true
                        && (node["role"] == "primary" || node["lag"]["state"] == "streaming")
                })
        })
    };
    let both = common::blocking::eventually(common::LIMIT, || {
        let view = cluster_json(&addr);
        let names: Vec<&str> = view["clusters"]
            .as_array()
            .map(|clusters| clusters.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        names == ["c1", "c2"] && view["clusters"].as_array().unwrap().iter().all(healthy)
    });
    assert!(both, "{}", cluster_json(&addr));
    assert_eq!(running_nodes(&scratch.dir, port).len(), 4);
    let status = ecoshard(&["status", "--url", &format!("http://{addr}")]);
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", stderr(&status));
    for expected in [
        "c1/primary",
        "c2/standby-1",
        "failover of c2",
        "local clusters (started by the bridge)",
    ] {
        assert!(table.contains(expected), "{expected} not in {table}");
    }
    let (exit, log) = serve.stop();
    assert!(exit.success(), "serve exited with {exit}: {log}");
    assert!(
        log.contains(&format!("c2: primary 127.0.0.1:{}", port + 10)),
        "{log}"
    );
    assert!(
        log.contains("shards are placed round-robin over them"),
        "{log}"
    );
    assert!(
        running_nodes(&scratch.dir, port).is_empty(),
        "servers left running after SIGTERM"
    );
}

#[test]
fn serve_takes_several_external_clusters_from_the_config_and_leaves_them_running() {
    let scratch = Scratch::new("cli-external-two");
    let port = free_ports(26300, 12);
    let port_arg = port.to_string();
    let up = in_dir(
        &[
            "cluster",
            "up",
            "--clusters",
            "2",
            "--standbys",
            "1",
            "--pg-port",
            &port_arg,
        ],
        &scratch.dir,
    );
    assert!(up.status.success(), "{}", stderr(&up));
    // One passfile for both clusters' passwords, each line for its ports
    // (each cluster's own file says `*:*` for host and port).
    let passfile = scratch.dir.join("both.pgpass");
    let mut passwords = String::new();
    for (file, first) in [("pgpass", port), ("c2/pgpass", port + 10)] {
        let text = std::fs::read_to_string(scratch.dir.join(file)).expect("a passfile");
        for line in text.lines().filter_map(|line| line.strip_prefix("*:*:")) {
            for node_port in [first, first + 1] {
                passwords.push_str(&format!("127.0.0.1:{node_port}:{line}\n"));
            }
        }
    }
    std::fs::write(&passfile, passwords).unwrap();
    std::fs::set_permissions(
        &passfile,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let url = |port: u16| format!("postgres://ecoshard@127.0.0.1:{port}/ecomarket");
    let config = scratch.dir.join("external.json");
    let json = serde_json::json!({"clusters": [
        {"name": "c1", "primary": url(port), "replicas": [url(port + 1)]},
        {"name": "c2", "primary": url(port + 10), "replicas": [url(port + 11)]},
    ]});
    std::fs::write(&config, json.to_string()).unwrap();
    let addr = format!("127.0.0.1:{}", free_ports(18300, 1));
    let config_arg = config.display().to_string();
    let serve = Serve::start_with(&addr, &["--cluster-config", &config_arg], |command| {
        command.env("PGPASSFILE", &passfile);
    });
    let up_in_both = common::blocking::eventually(common::LIMIT, || {
        let view = cluster_json(&addr);
        let clusters = view["clusters"].as_array().cloned().unwrap_or_default();
        clusters.len() == 2
            && clusters.iter().all(|cluster| {
                let nodes = cluster["nodes"].as_array().cloned().unwrap_or_default();
                nodes.len() == 2 && nodes.iter().all(|node| node["up"] == true)
            })
    });
    let view = cluster_json(&addr);
    assert!(up_in_both, "{view}");
    assert_eq!(view["mode"], "external");
    assert_eq!(view["clusters"][1]["name"], "c2");
    let refused =
        common::blocking::http(&addr, "POST", "/api/clusters/c2/nodes/primary/stop", None)
            .expect("an answer");
    assert_eq!(refused.0, 409, "{}", refused.1);
    assert!(refused.1.contains("not_local"), "{}", refused.1);
    let (exit, log) = serve.stop();
    assert!(exit.success(), "{log}");
    assert_eq!(
        running_nodes(&scratch.dir, port).len(),
        4,
        "an external cluster is left running"
    );
    let down = in_dir(&["cluster", "down"], &scratch.dir);
    assert!(down.status.success(), "{}", stderr(&down));
}

#[test]
fn a_killed_bridge_leaves_no_server_running_and_a_restart_waits_for_the_cleanup() {
    let scratch = Scratch::new("cli-killed");
    let port = free_ports(26900, 3);
    let addr = format!("127.0.0.1:{}", free_ports(18900, 1));
    let data_dir = scratch.dir.display().to_string();
    let port_arg = port.to_string();
    let mut serve = Serve::start(&addr, &["--pg-port", &port_arg, "--data-dir", &data_dir]);
    assert_eq!(running_nodes(&scratch.dir, port).len(), 3);
    // SIGKILL: no destructor runs; the watchdog stops the servers.
    serve.kill();
    // Started at once, the next run waits for that to finish instead of
    // adopting servers that are about to stop.
    let up = in_dir(&["cluster", "up", "--pg-port", &port_arg], &scratch.dir);
    assert!(up.status.success(), "{}", stderr(&up));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        running_nodes(&scratch.dir, port),
        ["primary", "standby-1", "standby-2"]
    );
    assert!(in_dir(&["cluster", "down"], &scratch.dir).status.success());
    assert!(running_nodes(&scratch.dir, port).is_empty());
}

#[test]
fn missing_binaries_give_one_clear_line() {
    let scratch = Scratch::new("cli-nobin");
    let output = in_dir(
        &["cluster", "up", "--pg-bin", "/nonexistent/postgresql/bin"],
        &scratch.dir,
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert_eq!(text.trim_end().lines().count(), 1, "{text}");
    assert!(text.contains("apt-get install postgresql"), "{text}");
    assert!(text.contains("--primary URL"), "{text}");
}

#[test]
fn a_taken_port_is_named_in_the_error() {
    let scratch = Scratch::new("cli-port");
    // Below the ephemeral range (32768+), so no outgoing connection takes it.
    let port = free_ports(26800, 1);
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("a free port");
    let output = in_dir(
        &["cluster", "up", "--pg-port", &port.to_string()],
        &scratch.dir,
    );
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert!(
        text.contains(&format!("port {port}")) && text.contains("in use"),
        "{text}"
    );
}

#[test]
fn bad_serve_arguments_exit_with_code_2() {
    // One case a line: the arguments, then what the one line says.
    #[rustfmt::skip]
    let cases: [(&[&str], &str); 13] = [
        (&["serve", "--shards", "0"], "at least one shard"),
        (&["serve", "--clusters", "0"], "0 is not in 1..=8"),
        (&["serve", "--clusters", "9"], "9 is not in 1..=8"),
        (&["serve", "--standbys", "6"], "6 is not in 0..=5"),
        (&["serve", "--clusters", "2", "--primary", "postgres://db1/x"], "cannot be used with"),
        (&["serve", "--strategy", "sharding"], "--strategy"),
        (&["serve", "--listen", "not-an-address"], "--listen"),
        (&["serve", "--database", "Bad-Name"], "--database"),
        (&["serve", "--primary", "postgres://[bad"], "bad connection URL"),
        (&["serve", "--cluster-config", "/nonexistent/cluster.json"], "/nonexistent/cluster.json"),
        (&["serve", "--token", "too-short"], "--token"),
        (&["serve", "--allowed-host", "bridge.example:8080"], "--allowed-host"),
        (&["serve", "--max-connections", "0"], "--max-connections"),
    ];
    for (args, expected) in cases {
        check_refused(args, 2, expected);
    }
}

#[test]
fn a_missing_argument_is_named_on_the_one_line() {
    check_refused(
        &["locate", "--strategy", "jump", "--shards", "4"],
        2,
        "the following required arguments were not provided: <KEYS>",
    );
}

#[test]
fn bad_arguments_give_one_line_with_clap_s_hint_and_the_subcommand_s_help() {
    // Exit code 2 and exactly this one line on stderr.
    fn check(args: &[&str], expected_line: &str) {
        let output = ecoshard(args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {text}");
        assert_eq!(text, format!("{expected_line}\n"), "{args:?}");
    }
    check(
        &["plan", "--stratgy", "ring", "--from", "3", "--to", "4"],
        "error: unexpected argument '--stratgy' found; did you mean '--strategy'? (see ecoshard plan --help)",
    );
    check(
        &["plna"],
        "error: unrecognized subcommand 'plna'; did you mean 'plan'? (see ecoshard --help)",
    );
    check(
        &["cluster", "sttus"],
        "error: unrecognized subcommand 'sttus'; did you mean 'status'? (see ecoshard cluster --help)",
    );
    check(
        &["cluster", "status", "--formt", "json"],
        "error: unexpected argument '--formt' found; did you mean '--format'? (see ecoshard cluster status --help)",
    );
    check(
        &["--listn", "127.0.0.1:1"],
        "error: unexpected argument '--listn' found; did you mean '--listen'? (see ecoshard --help)",
    );
    check(
        &[
            "plan", "-s", "ring", "--from", "3", "--to", "4", "--format", "jsn",
        ],
        "error: invalid value 'jsn' for '--format <FORMAT>'; did you mean 'json'? (see ecoshard plan --help)",
    );
    check(
        &["locate", "-s", "ring", "-n", "3", "--format", "xml", "k"],
        "error: invalid value 'xml' for '--format <FORMAT>'; possible values: table, json (see ecoshard locate --help)",
    );
    check(
        &["plan", "--strategy", "Ringg", "--from", "3", "--to", "4"],
        "error: invalid value 'Ringg' for '--strategy <STRATEGY>': unknown strategy \"Ringg\": \
         use one of modulo, jump, ring, rendezvous, maglev, bounded-load (any case) (see ecoshard plan --help)",
    );
    check(
        &["apply", "--strategy", "ring"],
        "error: the following required arguments were not provided: --shards <SHARDS> (see ecoshard apply --help)",
    );
    check(
        &["job", "seven"],
        "error: invalid value 'seven' for '[ID]': invalid digit found in string (see ecoshard job --help)",
    );
}

#[test]
fn strategy_names_are_accepted_in_any_case_on_the_command_line() {
    fn check(name: &str, expected_first_line: &str) {
        let output = ecoshard(&["plan", "--strategy", name, "--from", "3", "--to", "4"]);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(text.lines().next(), Some(expected_first_line), "{name}");
    }
    check(
        "Ring",
        "ring: 3 → 4 shards over 300 keys (user_0 … user_299), seed 0",
    );
    check(
        "RING",
        "ring: 3 → 4 shards over 300 keys (user_0 … user_299), seed 0",
    );
    check(
        "Bounded-Load",
        "bounded-load: 3 → 4 shards over 300 keys (user_0 … user_299), seed 0",
    );
    check(
        "MagLev",
        "maglev: 3 → 4 shards over 300 keys (user_0 … user_299), seed 0",
    );
}

#[test]
fn plan_prints_counts_with_thousands_separators() {
    let output = ecoshard(&[
        "plan",
        "--strategy",
        "modulo",
        "--from",
        "3",
        "--to",
        "4",
        "--keys",
        "100000",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "modulo: 3 → 4 shards over 100,000 keys (user_0 … user_99999), seed 0",
            "moved 75,163 of 100,000 keys: 75.2 % (ideal minimum 25.0 %)",
        ]
    );
    assert!(
        lines.contains(&"s0             33,417     25,127"),
        "{text}"
    );
    assert!(lines.contains(&"  s0 → s1: 8,461"), "{text}");
}

#[test]
fn plan_refuses_no_keys_and_too_many_with_a_sentence() {
    fn check(keys: &str, expected_line: &str) {
        let output = ecoshard(&[
            "plan",
            "--strategy",
            "ring",
            "--from",
            "3",
            "--to",
            "4",
            "--keys",
            keys,
        ]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "--keys {keys}: {text}");
        assert_eq!(text, format!("{expected_line}\n"), "--keys {keys}");
        assert!(output.stdout.is_empty(), "--keys {keys}");
    }
    check(
        "0",
        "error: --keys 0: a plan over no keys says nothing; give 1 to 10,000,000 keys",
    );
    check(
        "10000001",
        "error: --keys 10000001: too many; give 1 to 10,000,000 keys",
    );
}

#[test]
fn a_plan_over_one_key_names_that_key_once() {
    let output = ecoshard(&[
        "plan",
        "--strategy",
        "ring",
        "--from",
        "3",
        "--to",
        "4",
        "--keys",
        "1",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        text.lines().next(),
        Some("ring: 3 → 4 shards over 1 key (user_0), seed 0")
    );
}

#[test]
fn logs_written_to_a_file_have_no_colour_codes() {
    // A serve that logs its first line, then fails (no PostgreSQL binaries there).
    let scratch = Scratch::new("cli-nocolour");
    let log_path = scratch.dir.with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let status = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:1",
            "--pg-bin",
            "/nonexistent/postgresql/bin",
        ])
        .arg("--data-dir")
        .arg(&scratch.dir)
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .status()
        .unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains("starting the local cluster"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "colour codes in a log file: {text:?}"
    );
}
