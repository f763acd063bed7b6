//! The Docker set-up: `docker-compose-replicacion.yml` is valid (checked by
//! `docker-compose config`, which needs no Docker daemon), runs two bridges
//! behind NGINX, publishes ports on loopback only, and mounts files that
//! exist in `postgres/` and `nginx/`.

use std::path::PathBuf;
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose(args: &[&str]) -> std::process::Output {
    Command::new("docker-compose")
        .arg("-f")
        .arg(workspace().join("docker-compose-replicacion.yml"))
        .args(args)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run docker-compose ({error}): install it (Debian: apt-get install docker-compose; \
                 `cargo xtask test` does)"
            )
        })
}

#[test]
fn the_compose_file_is_valid() {
    let output = compose(&["config", "-q"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_compose_set_up_has_a_primary_two_standbys_two_bridges_behind_nginx_on_loopback() {
    let output = compose(&["config", "--services"]);
    assert!(output.status.success());
    let mut services: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    services.sort();
    assert_eq!(
        services,
        [
            "bridge-1",
            "bridge-2",
            "nginx",
            "primary",
            "standby-1",
            "standby-2",
            "token"
        ]
    );
    // NGINX sends requests to exactly the bridges there are.
    let nginx = std::fs::read_to_string(workspace().join("nginx/ecoshard.conf")).unwrap();
    let upstreams: Vec<&str> = nginx
        .lines()
        .filter(|line| line.trim_end().ends_with(';'))
        .filter_map(|line| line.trim().strip_prefix("server "))
        .filter_map(|server| server.split(':').next())
        .collect();
    assert_eq!(upstreams, ["bridge-1", "bridge-2"]);

    let text = std::fs::read_to_string(workspace().join("docker-compose-replicacion.yml")).unwrap();
    let published: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| {
            line.starts_with("- \"") && line.ends_with('"') && line.matches(':').count() == 2
        })
        .collect();
    assert_eq!(published.len(), 4, "{published:?}");
    for port in published {
        assert!(
            port.starts_with("- \"127.0.0.1:"),
            "{port} is not on loopback"
        );
    }
    // Every mounted file of the repository exists.
    for line in text.lines().map(str::trim) {
        if let Some(mount) = line.strip_prefix("- ./") {
            let path = mount.split(':').next().unwrap();
            assert!(
                workspace().join(path).is_file(),
                "{path} is mounted but missing"
            );
        }
    }
    // No password is written into the file; they come from the environment.
    for line in text.lines().filter(|line| line.contains("PASSWORD:")) {
        assert!(line.contains("${"), "{line}");
    }
}
