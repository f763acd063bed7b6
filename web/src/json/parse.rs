//! JSON text into a [`Value`]: the page's one parser, not generic, with
//! JSON's grammar, a nesting limit and every refusal in words.

use super::Error;

/// Deepest nesting of arrays and objects read (as `serde_json`'s limit).
const MAX_DEPTH: usize = 128;

/// A parsed JSON value. Objects keep their keys in order, repeats included
/// (a struct's reader refuses a field named twice).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A whole number that fits in 64 bits, unsigned.
    Unsigned(u64),
    /// A negative whole number that fits in 64 bits.
    Signed(i64),
    /// Any other number.
    Float(f64),
    /// A string, unescaped.
    String(String),
    /// `[…]`.
    Array(Vec<Value>),
    /// `{…}`, in order.
    Object(Vec<(String, Value)>),
}

/// Parses a whole JSON text (whitespace around it allowed).
pub(crate) fn parse(text: &str) -> Result<Value, Error> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at < parser.bytes.len() {
        return Err(parser.error("trailing characters"));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> Error {
        Error(format!("{what} at byte {}", self.at))
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    /// Consumes `byte` (after whitespace) or says it was expected.
    fn expect(&mut self, byte: u8, what: &str) -> Result<(), Error> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(what))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        match self.peek() {
            None => Err(self.error("EOF while parsing a value")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.literal(),
        }
    }

    fn literal(&mut self) -> Result<Value, Error> {
        for (word, value) in [
            ("null", Value::Null),
            ("true", Value::Bool(true)),
            ("false", Value::Bool(false)),
        ] {
            if self.bytes[self.at..].starts_with(word.as_bytes()) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(self.error("expected value"))
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.at += 1;
        let mut items = Vec::new();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        self.at += 1;
        let mut entries = Vec::new();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(entries));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a key (a string)"));
            }
            let key = self.string()?;
            self.expect(b':', "expected `:`")?;
            entries.push((key, self.value(depth)?));
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(entries));
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// A string from its opening quote: escapes read, control characters
    /// and lone surrogates refused.
    fn string(&mut self) -> Result<String, Error> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let Some(&byte) = self.bytes.get(self.at) else {
                return Err(self.error("EOF while parsing a string"));
            };
            self.at += 1;
            match byte {
                b'"' => break,
                b'\\' => self.escape(&mut out)?,
                0..=0x1f => return Err(self.error("control character in a string")),
                _ => out.push(byte),
            }
        }
        // The input is a `&str` and escapes push whole characters, so this
        // never fails; a failure is still refused, not unwrapped.
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8 in a string"))
    }

    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), Error> {
        let Some(&byte) = self.bytes.get(self.at) else {
            return Err(self.error("EOF while parsing a string"));
        };
        self.at += 1;
        let plain = match byte {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let character = self.unicode_escape()?;
                let mut buffer = [0; 4];
                out.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
                return Ok(());
            }
            _ => return Err(self.error("invalid escape")),
        };
        out.push(plain);
        Ok(())
    }

    /// After `\u`: one code point, a surrogate pair taking two escapes.
    fn unicode_escape(&mut self) -> Result<char, Error> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if !self.bytes[self.at..].starts_with(b"\\u") {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("lone trailing surrogate in hex escape")),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self
                .bytes
                .get(self.at)
                .and_then(|&byte| char::from(byte).to_digit(16))
                .ok_or_else(|| self.error("invalid escape"))?;
            code = code * 16 + digit;
            self.at += 1;
        }
        Ok(code)
    }

    /// A number by JSON's grammar: a whole one as an integer when it fits
    /// in 64 bits, any other as the nearest `f64`.
    fn number(&mut self) -> Result<Value, Error> {
        let start = self.at;
        let negative = self.bytes[self.at] == b'-';
        if negative {
            self.at += 1;
        }
        let whole_start = self.at;
        let whole_digits = self.digits();
        let leading_zero = whole_digits > 1 && self.bytes[whole_start] == b'0';
        if whole_digits == 0 || leading_zero {
            return Err(self.error("invalid number"));
        }
        let mut whole = true;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            whole = false;
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            whole = false;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number"));
            }
        }
        // Only ASCII digits, signs, `.` and `e` were taken: a `str` slice.
        let text = std::str::from_utf8(&self.bytes[start..self.at])
            .map_err(|_| self.error("invalid number"))?;
        if whole {
            if let Ok(value) = text.parse::<u64>() {
                return Ok(Value::Unsigned(value));
            }
            // `-0` is a float, as serde_json reads it: a whole number
            // refuses it.
            if let Ok(value @ (i64::MIN..=-1)) = text.parse::<i64>() {
                return Ok(Value::Signed(value));
            }
        }
        let value = float_from_text(text);
        if value.is_finite() {
            Ok(Value::Float(value))
        } else {
            Err(self.error("number out of range"))
        }
    }

    /// Skips ASCII digits; how many.
    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.bytes.get(self.at) {
            self.at += 1;
        }
        self.at - start
    }
}

/// The `f64` nearest to a JSON number's text: the browser's `parseFloat` in
/// the page (rather than compiling Rust's general algorithm and its tables
/// in), the standard library's natively; both round correctly.
fn float_from_text(text: &str) -> f64 {
    #[cfg(target_arch = "wasm32")]
    return js_sys::parse_float(text);
    #[cfg(not(target_arch = "wasm32"))]
    return text.parse().unwrap_or(f64::NAN);
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::json::Read;
    use serde_json::Value as Json;

    fn read<T: Read>(text: &str) -> Result<T, crate::json::Error> {
        crate::json::from_str(text)
    }

    #[test]
    fn nesting_past_the_limit_is_refused_not_overflowing_the_stack() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
        let nested = format!("{}{}", "[".repeat(128), "]".repeat(128));
        assert!(parse(&nested).is_ok());
        let too_deep = format!("{}{}", "[".repeat(129), "]".repeat(129));
        assert!(parse(&too_deep).is_err());
        assert!(serde_json::from_str::<Json>(&too_deep).is_err());
    }

    #[test]
    fn numbers_are_refused_as_serde_json_refuses_them_and_read_rounded_correctly() {
        let check = |text: &str| {
            let ours = read::<f64>(text).ok();
            let theirs = serde_json::from_str::<f64>(text).ok();
            assert_eq!(ours.is_some(), theirs.is_some(), "{text}");
            let nearest = text.trim().parse::<f64>().ok();
            assert_eq!(
                ours.map(f64::to_bits),
                nearest.filter(|_| ours.is_some()).map(f64::to_bits),
                "{text}"
            );
        };
        for text in [
            "0",
            "-0",
            "-0.0",
            "1",
            "-1",
            "0.1",
            "0.25",
            "1e3",
            "1E+3",
            "1e-3",
            "2.5e-308",
            "1.7976931348623157e308",
            "1e309",
            "-1e309",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "123.456",
            "12003152.70935960591",
            "5e-324",
            "1e-400",
            "01",
            "1.",
            ".5",
            "+1",
            "1e",
            "1e+",
            "--1",
            "0x10",
            "NaN",
            "Infinity",
            "1 2",
            " 7 ",
        ] {
            check(text);
        }
        let whole = |text: &str| {
            let ours = read::<u64>(text).ok();
            assert_eq!(ours, serde_json::from_str::<u64>(text).ok(), "{text}");
        };
        for text in [
            "0",
            "-0",
            "1",
            "-1",
            "1.0",
            "1e2",
            "18446744073709551615",
            "18446744073709551616",
        ] {
            whole(text);
        }
    }
}
