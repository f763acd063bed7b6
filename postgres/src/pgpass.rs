//! Reading libpq passfiles (`hostname:port:database:username:password`), so
//! passwords live in one file with mode 0600 and never in a config file or URL.

use std::path::PathBuf;

/// The password of the first entry for `user` (any host, port and database).
pub fn lookup(text: &str, user: &str) -> Option<String> {
    lookup_for(text, "*", "*", "*", user)
}

/// The password of the first entry matching all four fields (`*` in the file
/// matches anything; `*` asked matches only a `*` or equal entry).
pub fn lookup_for(
    text: &str,
    host: &str,
    port: &str,
    database: &str,
    user: &str,
) -> Option<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && !line.trim().is_empty())
        .find_map(|line| {
            let fields = split_fields(line);
            if fields.len() != 5 {
                return None;
            }
            let matches = |field: &str, wanted: &str| field == "*" || field == wanted;
            (matches(&fields[0], host)
                && matches(&fields[1], port)
                && matches(&fields[2], database)
                && matches(&fields[3], user))
            .then(|| fields[4].clone())
        })
}

/// The passfile libpq would read: `PGPASSFILE`, else `~/.pgpass`.
pub fn default_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pgpass"))
}

/// Splits on unescaped `:`, undoing `\:` and `\\`.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let (Some(next), Some(field)) = (chars.next(), fields.last_mut()) {
                    field.push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => {
                if let Some(field) = fields.last_mut() {
                    field.push(c);
                }
            }
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, args: [&str; 4], expected: Option<&str>) {
        assert_eq!(
            lookup_for(text, args[0], args[1], args[2], args[3]).as_deref(),
            expected,
            "{text:?} {args:?}"
        );
    }

    #[test]
    fn lookup_table() {
        let text = "# comment\n*:*:*:replicator:r3pl\nhost1:5432:db:ecoshard:a\\:b\n*:*:*:ecoshard:fallback\n";
        check(text, ["*", "*", "*", "replicator"], Some("r3pl"));
        check(text, ["host1", "5432", "db", "ecoshard"], Some("a:b"));
        check(text, ["host2", "5432", "db", "ecoshard"], Some("fallback"));
        check(text, ["host1", "5432", "db", "nobody"], None);
        check("broken line\n", ["*", "*", "*", "x"], None);
    }
}
