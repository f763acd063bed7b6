//! What a number field's text means: the value it asks for, or the sentence
//! shown beside the field when it asks for nothing the page can apply. Nothing
//! is clamped: a count out of range is said, and the page keeps its last
//! valid state meanwhile.

use ecoshard_core::thousands;

use crate::state::{MAX_CLUSTERS, MAX_KEYS, MAX_SHARDS};

/// The shard-count field's text as a count, or why it is not one.
pub fn shard_count_entry(text: &str) -> Result<usize, String> {
    whole_number_entry(text, "a shard count", 1, MAX_SHARDS as u64).map(|count| count as usize)
}

/// The cluster-count field's text as a count, or why it is not one.
pub fn cluster_count_entry(text: &str) -> Result<usize, String> {
    whole_number_entry(text, "a cluster count", 1, MAX_CLUSTERS as u64).map(|count| count as usize)
}

/// The key-count field's text as a count, or why it is not one.
pub fn key_count_entry(text: &str) -> Result<u32, String> {
    whole_number_entry(text, "a key count", 1, u64::from(MAX_KEYS)).map(|count| count as u32)
}

/// The seed field's text as a seed, or why it is not one.
pub fn seed_entry(text: &str) -> Result<u64, String> {
    whole_number_entry(text, "a seed", 0, u64::MAX)
}

/// A parameter's text as a whole number of its type; whether the value suits
/// the strategy is the core's to say (its refusal is shown beside the fields).
pub fn parameter_entry(text: &str, what: &str) -> Result<u32, String> {
    whole_number_entry(text, what, 0, u64::from(u32::MAX)).map(|value| value as u32)
}

/// The load factor's text as a number (the core checks its range).
pub fn load_factor_entry(text: &str) -> Result<f64, String> {
    let text = text.trim();
    match plain_decimal(text) {
        Some(factor) => Ok(factor),
        None if text.is_empty() => Err("Type a load factor, such as 1.05.".to_string()),
        None => Err(format!("{text} is not a load factor")),
    }
}

/// Most significant digits [`plain_decimal`] reads: below 2^53, so the
/// digits are an exact `f64`.
const PLAIN_DECIMAL_DIGITS: usize = 15;

/// `digits[.digits]` (at most [`PLAIN_DECIMAL_DIGITS`] digits) as the nearest
/// `f64`, equal to what `str::parse::<f64>` gives: the digits and the power of
/// ten are both exact, and one IEEE division rounds correctly. Not
/// `str::parse`, whose general algorithm's tables cost the page 14 KB of
/// gzip'd wasm for a field that holds numbers like 1.05.
fn plain_decimal(text: &str) -> Option<f64> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = whole.len() + fraction.len();
    let all_digits = whole
        .bytes()
        .chain(fraction.bytes())
        .all(|byte| byte.is_ascii_digit());
    if digits == 0 || digits > PLAIN_DECIMAL_DIGITS || !all_digits {
        return None;
    }
    let mantissa = whole
        .bytes()
        .chain(fraction.bytes())
        .fold(0u64, |value, digit| value * 10 + u64::from(digit - b'0'));
    let scale = 10u64.pow(fraction.len() as u32);
    Some(mantissa as f64 / scale as f64)
}

/// A whole number in `min..=max`; anything else is named with the range it
/// must be in.
fn whole_number_entry(text: &str, what: &str, min: u64, max: u64) -> Result<u64, String> {
    let text = text.trim();
    let range = format!("{} to {}", thousands(min), thousands(max));
    if text.is_empty() {
        return Err(format!("Type {what}: {range}."));
    }
    match text.parse::<u64>() {
        Ok(value) if (min..=max).contains(&value) => Ok(value),
        _ => Err(format!("{text} is not {what}: {range}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_text_is_a_value_or_a_sentence_saying_why_not() {
        fn check<T: std::fmt::Debug + PartialEq>(
            got: Result<T, String>,
            expected: Result<T, &str>,
        ) {
            assert_eq!(got, expected.map_err(str::to_string));
        }
        check(shard_count_entry("4"), Ok(4));
        check(shard_count_entry(" 64 "), Ok(64));
        check(
            shard_count_entry("1e1"),
            Err("1e1 is not a shard count: 1 to 64"),
        );
        check(
            shard_count_entry("0"),
            Err("0 is not a shard count: 1 to 64"),
        );
        check(
            shard_count_entry("100"),
            Err("100 is not a shard count: 1 to 64"),
        );
        check(
            shard_count_entry("-3"),
            Err("-3 is not a shard count: 1 to 64"),
        );
        check(
            shard_count_entry("2.5"),
            Err("2.5 is not a shard count: 1 to 64"),
        );
        check(shard_count_entry(""), Err("Type a shard count: 1 to 64."));
        check(key_count_entry("1000000"), Ok(1_000_000));
        check(
            key_count_entry("0"),
            Err("0 is not a key count: 1 to 1,000,000"),
        );
        check(
            key_count_entry("1000001"),
            Err("1000001 is not a key count: 1 to 1,000,000"),
        );
        check(seed_entry("18446744073709551615"), Ok(u64::MAX));
        check(
            seed_entry("-1"),
            Err("-1 is not a seed: 0 to 18,446,744,073,709,551,615"),
        );
        check(parameter_entry("1000", "a table size"), Ok(1_000));
        check(parameter_entry("0", "a table size"), Ok(0));
        check(
            parameter_entry("4294967296", "a table size"),
            Err("4294967296 is not a table size: 0 to 4,294,967,295"),
        );
        check(load_factor_entry("1.05"), Ok(1.05));
        check(load_factor_entry("0.5"), Ok(0.5));
        check(
            load_factor_entry(""),
            Err("Type a load factor, such as 1.05."),
        );
        check(
            load_factor_entry("1e999"),
            Err("1e999 is not a load factor"),
        );
        check(load_factor_entry("-1"), Err("-1 is not a load factor"));
        check(load_factor_entry("."), Err(". is not a load factor"));
    }

    #[test]
    fn plain_decimals_read_as_str_parse_reads_them() {
        for text in [
            "1",
            "1.",
            ".5",
            "1.05",
            "1.1",
            "1.25",
            "0.1",
            "0.3",
            "2.675",
            "9.999999999999",
            "123456789012345",
            "1.00000000000001",
            "10",
            "0",
        ] {
            assert_eq!(plain_decimal(text), text.parse::<f64>().ok(), "{text}");
        }
        for text in [
            "",
            ".",
            "1.2.3",
            "1e3",
            "-1",
            "+1",
            "1 000",
            "1234567890123456",
        ] {
            assert_eq!(plain_decimal(text), None, "{text}");
        }
    }
}
