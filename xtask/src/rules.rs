//! `cargo xtask test rules`: the rules ARCHITECTURE.md states as absences,
//! checked on the source text (fast, nothing is built):
//!
//! - the bridge library's layers import only downward: `http` → `service` →
//!   `cluster` → `routing` → `db`, each only the layers below it (`http`
//!   only `service`), `db` none;
//! - nothing below `http` names axum, hyper or tower;
//! - only `db` holds SQL text (string literals that start a statement);
//! - the library never uses the command line (`cli` is the binary's);
//! - only `cluster/local.rs` and `cluster/topology.rs` know the launcher
//!   crate (`ecoshard_postgres`);
//! - no function of the bridge or the page is longer than
//!   [`MAX_FUNCTION_LINES`] lines (tests aside).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

/// Longest function, in lines from its `fn` to its closing brace.
pub(crate) const MAX_FUNCTION_LINES: usize = 80;

/// Sources besides the bridge's whose functions are held to
/// [`MAX_FUNCTION_LINES`].
const OTHER_SOURCES: [&str; 1] = ["web/src"];

/// The layers of the bridge library, top first, and what each may import.
const LAYERS: [(&str, &[&str]); 5] = [
    ("http", &["service"]),
    ("service", &["cluster", "routing", "db"]),
    ("cluster", &["routing", "db"]),
    ("routing", &["db"]),
    ("db", &[]),
];

/// Words that start an SQL statement in a string literal.
const SQL_STARTS: [&str; 11] = [
    "SELECT ", "INSERT ", "UPDATE ", "DELETE ", "WITH ", "CREATE ", "DROP ", "ALTER ", "LOCK ",
    "ANALYZE ", "COPY ",
];

pub(crate) fn run(root: &Path) -> anyhow::Result<()> {
    let mut broken = Vec::new();
    let library = root.join("bridge/src");
    for file in rust_files(&library)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let relative = file.strip_prefix(&library).unwrap_or(&file);
        let code = without_tests(&text);
        broken.extend(check_library_file(relative, &code));
        broken.extend(long_functions(&file, &code));
    }
    for dir in OTHER_SOURCES {
        for file in rust_files(&root.join(dir))? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            broken.extend(long_functions(&file, &without_tests(&text)));
        }
    }
    if broken.is_empty() {
        eprintln!("layers, absences and function lengths: as ARCHITECTURE.md states");
        return Ok(());
    }
    for line in &broken {
        eprintln!("{line}");
    }
    bail!("{} rule(s) of ARCHITECTURE.md broken", broken.len())
}

/// What one file of `bridge/src` breaks (`relative` to it).
fn check_library_file(relative: &Path, code: &str) -> Vec<String> {
    let first = relative
        .components()
        .next()
        .and_then(|part| part.as_os_str().to_str())
        .unwrap_or_default();
    let name = relative.display();
    if first == "cli" || first == "main.rs" {
        return Vec::new();
    }
    let mut broken = Vec::new();
    if let Some((layer, allowed)) = LAYERS.iter().find(|(layer, _)| *layer == first) {
        for used in crate_paths(code) {
            if used != *layer && !allowed.contains(&used.as_str()) {
                broken.push(format!("{name}: the {layer} layer imports crate::{used}"));
            }
        }
        if *layer != "http" {
            for word in ["axum", "hyper", "tower"] {
                if mentions(code, word) {
                    broken.push(format!("{name}: names {word}, which only http may"));
                }
            }
        }
        if *layer != "db" {
            for literal in sql_literals(code) {
                broken.push(format!("{name}: SQL outside db: {literal:?}"));
            }
        }
    }
    if mentions(code, "cli") && (code.contains("crate::cli") || code.contains("mod cli")) {
        broken.push(format!("{name}: the library uses the command line"));
    }
    let knows_launcher = ["cluster/local.rs", "cluster/topology.rs", "lib.rs"];
    if mentions(code, "ecoshard_postgres") && !knows_launcher.contains(&name.to_string().as_str()) {
        broken.push(format!("{name}: names ecoshard_postgres"));
    }
    broken
}

/// The layers a file names as `crate::<layer>`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found: Vec<String> = code
        .match_indices("crate::")
        .map(|(at, _)| {
            code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Whether `word` stands in `code` as a whole word.
fn mentions(code: &str, word: &str) -> bool {
    code.match_indices(word).any(|(at, _)| {
        let before = code[..at].chars().next_back();
        let after = code[at + word.len()..].chars().next();
        let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        !part(before) && !part(after)
    })
}

/// String literals that start with an SQL statement.
fn sql_literals(code: &str) -> Vec<String> {
    code.match_indices('"')
        .filter_map(|(at, _)| {
            let rest = &code[at + 1..];
            let start = rest.trim_start_matches(['(', ' ', '\n']);
            SQL_STARTS
                .iter()
                .any(|word| start.starts_with(word))
                .then(|| rest.chars().take(40).collect())
        })
        .collect()
}

/// The functions of `code` longer than [`MAX_FUNCTION_LINES`] (rustfmt's
/// layout: a function ends at the first line that closes its indentation).
fn long_functions(file: &Path, code: &str) -> Vec<String> {
    let lines: Vec<&str> = code.lines().collect();
    let mut long = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = function_name(line) else {
            continue;
        };
        let indent = line.len() - line.trim_start().len();
        let close = format!("{}}}", " ".repeat(indent));
        let Some(end) = lines[start..].iter().position(|line| {
            line.starts_with(&close) && line.len() - line.trim_start().len() == indent
        }) else {
            continue;
        };
        // A declaration without a body (in a trait) ends with `;` before any `{`.
        let signature: String = lines[start..=start + end].concat();
        if signature
            .find(';')
            .is_some_and(|semi| signature.find('{').is_none_or(|open| semi < open))
        {
            continue;
        }
        if end + 1 > MAX_FUNCTION_LINES {
            long.push(format!(
                "{}:{}: fn {name} is {} lines; at most {MAX_FUNCTION_LINES}",
                file.display(),
                start + 1,
                end + 1
            ));
        }
    }
    long
}

/// The name of the function a line starts, if it starts one.
fn function_name(line: &str) -> Option<String> {
    let mut words = line.split_whitespace().peekable();
    while let Some(word) = words.next() {
        match word {
            "pub" | "pub(crate)" | "pub(super)" | "async" | "const" | "unsafe" | "extern" => {}
            _ if word.starts_with("pub(") => {}
            "fn" => {
                let name = words.next()?;
                return Some(
                    name.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect(),
                );
            }
            _ => return None,
        }
    }
    None
}

/// `code` without its `#[cfg(test)]` items (the rules are about the
/// shipped code; tests may name anything).
fn without_tests(code: &str) -> String {
    let mut kept = String::with_capacity(code.len());
    let mut lines = code.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            kept.push_str(line);
            kept.push('\n');
            continue;
        }
        // Skip the item under the attribute: up to its closing brace at its indentation.
        let Some(item) = lines.next() else { break };
        let indent = item.len() - item.trim_start().len();
        if item.trim_end().ends_with(';') {
            continue;
        }
        let close = format!("{}}}", " ".repeat(indent));
        for line in lines.by_ref() {
            if line.starts_with(&close) && line.len() - line.trim_start().len() == indent {
                break;
            }
        }
    }
    kept
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, code: &str, expected: &[&str]) {
        let broken = check_library_file(Path::new(path), code);
        assert_eq!(broken.len(), expected.len(), "{broken:#?}");
        for (line, wanted) in broken.iter().zip(expected) {
            assert!(line.contains(wanted), "{line} should say {wanted}");
        }
    }

    #[test]
    fn each_rule_is_caught_and_allowed_code_passes() {
        check("http/users.rs", "use crate::service::Service;", &[]);
        check(
            "http/users.rs",
            "use crate::db::ShardSql;",
            &["imports crate::db"],
        );
        check(
            "service/reads.rs",
            "use crate::db; use crate::routing::X;",
            &[],
        );
        check(
            "service/reads.rs",
            "use crate::http::AppState;",
            &["imports crate::http"],
        );
        check(
            "routing/batch.rs",
            "use crate::cluster::Node;",
            &["imports crate::cluster"],
        );
        check(
            "db/mod.rs",
            "use crate::routing::X;",
            &["imports crate::routing"],
        );
        check("service/x.rs", "use axum::Json;", &["names axum"]);
        check("service/x.rs", "let axum_like = 1;", &[]);
        check(
            "service/x.rs",
            r#"let q = "SELECT 1";"#,
            &["SQL outside db"],
        );
        check("db/users.rs", r#"let q = "SELECT 1";"#, &[]);
        check("service/x.rs", r#"let word = "SELECTED";"#, &[]);
        check(
            "http/page.rs",
            "crate::cli::workspace_dir()",
            &["imports crate::cli", "command line"],
        );
        check(
            "service/x.rs",
            "use ecoshard_postgres::LocalCluster;",
            &["ecoshard_postgres"],
        );
        check(
            "cluster/local.rs",
            "use ecoshard_postgres::LocalCluster;",
            &[],
        );
        check(
            "cli/serve.rs",
            "use axum::Json; use ecoshard_postgres::X;",
            &[],
        );
    }

    #[test]
    fn long_functions_and_test_modules() {
        let body = |lines: usize| "    let x = 1;\n".repeat(lines);
        let code = format!(
            "fn short() {{\n{}}}\n\npub(crate) async fn long(\n    a: u8,\n) -> u8 {{\n{}}}\n",
            body(10),
            body(MAX_FUNCTION_LINES)
        );
        let long = long_functions(Path::new("f.rs"), &code);
        assert_eq!(long.len(), 1, "{long:?}");
        assert!(long[0].contains("fn long is 84 lines"), "{long:?}");
        let trait_item = "trait T {\n    fn declared(&self) -> u8;\n}\n";
        assert!(long_functions(Path::new("t.rs"), trait_item).is_empty());
        let tested = format!(
            "fn kept() {{}}\n#[cfg(test)]\nmod tests {{\n    fn huge() {{\n{}    }}\n}}\n",
            body(200)
        );
        let kept = without_tests(&tested);
        assert_eq!(kept, "fn kept() {}\n");
        assert_eq!(
            function_name("    pub(super) fn new(a: u8) -> Self {"),
            Some("new".into())
        );
        assert_eq!(function_name("    let f = |x| x;"), None);
    }
}
