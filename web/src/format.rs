//! Numbers as the page prints them: thousands separated, percentages with
//! one decimal, durations and byte counts in friendly units.

pub use ecoshard_core::thousands;

/// A number with `places` decimals and thousands separated: `33333.33` → `33,333.3`.
pub fn decimal(value: f64, places: usize) -> String {
    if !value.is_finite() {
        return "—".to_string();
    }
    let text = format!("{:.*}", places, value.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
    let sign = if value < 0.0 && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        "-"
    } else {
        ""
    };
    let whole = thousands(whole.parse().unwrap_or(0));
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// A fraction as a percentage with one decimal: `0.2567` → `25.7 %`.
pub fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

/// Milliseconds for people: `0.4 ms`, `12 ms`, `1.5 s`; `—` when unknown.
pub fn millis(value: Option<f64>) -> String {
    match value {
        None => "—".to_string(),
        Some(ms) if !ms.is_finite() => "—".to_string(),
        Some(ms) if ms < 10.0 => format!("{ms:.1} ms"),
        Some(ms) if ms < 1_000.0 => format!("{ms:.0} ms"),
        Some(ms) => format!("{:.1} s", ms / 1_000.0),
    }
}

/// Bytes for people: `0 B`, `512 B`, `1.5 KiB`, `3.2 MiB`; `—` when unknown.
pub fn bytes(value: Option<i64>) -> String {
    let Some(value) = value else {
        return "—".to_string();
    };
    let magnitude = value.unsigned_abs() as f64;
    let sign = if value < 0 { "-" } else { "" };
    if magnitude < 1024.0 {
        format!("{value} B")
    } else if magnitude < 1024.0 * 1024.0 {
        format!("{sign}{:.1} KiB", magnitude / 1024.0)
    } else {
        format!("{sign}{:.1} MiB", magnitude / (1024.0 * 1024.0))
    }
}

/// A count with its noun: `1 row`, `2,330 rows`.
pub fn count(value: u64, singular: &str, plural: &str) -> String {
    format!(
        "{} {}",
        thousands(value),
        if value == 1 { singular } else { plural }
    )
}

/// The bridge's messages (lower case, no full stop) as a sentence.
pub fn sentence(text: &str) -> String {
    let text = text.trim();
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    // ASCII only: the bridge's messages start in ASCII, and Unicode case
    // tables would cost the page kilobytes.
    let mut out = String::with_capacity(text.len() + 1);
    out.push(first.to_ascii_uppercase());
    out.push_str(chars.as_str());
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bridge_messages_read_as_sentences() {
        assert_eq!(
            sentence("bounded-load is not applied to the database"),
            "Bounded-load is not applied to the database."
        );
        assert_eq!(sentence("Done already."), "Done already.");
        assert_eq!(sentence("  "), "");
    }
}
