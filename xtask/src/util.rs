//! Small helpers: the workspace root, running commands with echo.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The workspace root (the parent of `xtask/`).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `cargo`, as invoked by the outer `cargo xtask`.
pub(crate) fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// Runs a command, echoing it first; fails on a non-zero exit.
pub(crate) fn exec(command: &mut Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(command));
    let status = command
        .status()
        .with_context(|| format!("cannot start {}", describe(command)))?;
    if !status.success() {
        bail!("{} failed ({status})", describe(command));
    }
    Ok(())
}

/// Runs a command and returns its stdout, or `None` if it cannot start or fails.
pub(crate) fn output(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// The version of package `name` in Cargo.lock (the first one listed).
pub(crate) fn locked_version(name: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).context("reading Cargo.lock")?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"")
            && let Some(version) = lines
                .next()
                .and_then(|next| next.trim().strip_prefix("version = \""))
                .and_then(|rest| rest.strip_suffix('"'))
        {
            return Ok(version.to_string());
        }
    }
    bail!("{name} is not in Cargo.lock")
}

/// Cargo's target directory for this workspace, as `cargo metadata` reports it
/// (`target/` unless `CARGO_TARGET_DIR` or a config says otherwise).
pub(crate) fn target_dir() -> anyhow::Result<PathBuf> {
    let metadata = output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))
        .context("cargo metadata failed")?;
    json_string_field(&metadata, "target_directory")
        .map(PathBuf::from)
        .context("cargo metadata gave no target_directory")
}

/// The wasm-bindgen version in Cargo.lock, and the version of the `wasm-bindgen`
/// CLI on PATH (`None` when there is none).
pub(crate) fn wasm_bindgen_versions() -> anyhow::Result<(String, Option<String>)> {
    let wanted = locked_version("wasm-bindgen")?;
    let have = output(Command::new("wasm-bindgen").arg("--version"))
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_string));
    Ok((wanted, have))
}

/// The value of the first `"field": "…"` in a JSON text (enough for cargo metadata).
fn json_string_field(json: &str, field: &str) -> Option<String> {
    let key = format!("\"{field}\":");
    let start = json.find(&key)? + key.len();
    let rest = json[start..].trim_start().strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_string_field_with_escapes() {
        let json =
            r#"{"packages":[],"target_directory":"/work/my \"odd\" dir\\target","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some(r#"/work/my "odd" dir\target"#)
        );
        assert_eq!(json_string_field(json, "workspace_root"), None);
    }
}
