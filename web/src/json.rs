//! Reading the bridge's JSON answers with the page's own small reader, so
//! the wasm holds one JSON parser and one reader per wire type, rather than
//! `serde_json`'s deserializer compiled once per type (BENCHMARKS.md, Web,
//! Size).
//!
//! The text is parsed once into a [`Value`] by code that is not generic;
//! each wire type is then read from it by [`Read`] (`answers.rs`), field by
//! field through the non-generic [`Object`]. The core's wire types stay the
//! one definition of the JSON: `answers.rs`'s tests write each one with
//! serde and read it back, and refuse what serde refuses. A layout is read
//! by its own serde `Deserialize` through [`Value`]'s deserializer, so its
//! checks are the core's. Every refusal is a sentence ([`Error`]); no input
//! panics (the tests fuzz it against `serde_json`).

use std::fmt;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{
    DeserializeSeed, Deserializer, Expected, MapAccess, SeqAccess, Unexpected, Visitor,
};

/// Deepest nesting of arrays and objects read (as `serde_json`'s limit).
const MAX_DEPTH: usize = 128;

/// Reads a whole JSON text as `T`.
pub(crate) fn from_str<T: Read>(text: &str) -> Result<T, Error> {
    T::read(&parse(text)?)
}

/// A type read from a parsed JSON value.
pub(crate) trait Read: Sized {
    /// Reads `value`, or says why not.
    fn read(value: &Value) -> Result<Self, Error>;

    /// What a struct's field of this type is when the field is absent:
    /// refused, but for an `Option` (`None`, as serde reads it).
    fn absent(name: &str) -> Result<Self, Error> {
        Err(Error(format!("missing field `{name}`")))
    }
}

impl Read for bool {
    fn read(value: &Value) -> Result<bool, Error> {
        match value {
            Value::Bool(value) => Ok(*value),
            other => Err(invalid_type(other, &"a boolean")),
        }
    }
}

impl Read for u64 {
    fn read(value: &Value) -> Result<u64, Error> {
        match value {
            Value::Unsigned(value) => Ok(*value),
            Value::Signed(value) => Err(serde::de::Error::invalid_value(
                Unexpected::Signed(*value),
                &"u64",
            )),
            other => Err(invalid_type(other, &"u64")),
        }
    }
}

impl Read for i64 {
    fn read(value: &Value) -> Result<i64, Error> {
        match value {
            Value::Signed(value) => Ok(*value),
            Value::Unsigned(value) => i64::try_from(*value)
                .map_err(|_| serde::de::Error::invalid_value(Unexpected::Unsigned(*value), &"i64")),
            other => Err(invalid_type(other, &"i64")),
        }
    }
}

impl Read for f64 {
    fn read(value: &Value) -> Result<f64, Error> {
        match value {
            Value::Float(value) => Ok(*value),
            Value::Unsigned(value) => Ok(*value as f64),
            Value::Signed(value) => Ok(*value as f64),
            other => Err(invalid_type(other, &"f64")),
        }
    }
}

impl Read for String {
    fn read(value: &Value) -> Result<String, Error> {
        match value {
            Value::String(text) => Ok(text.clone()),
            other => Err(invalid_type(other, &"a string")),
        }
    }
}

impl<T: Read> Read for Option<T> {
    fn read(value: &Value) -> Result<Option<T>, Error> {
        match value {
            Value::Null => Ok(None),
            other => T::read(other).map(Some),
        }
    }

    fn absent(_name: &str) -> Result<Option<T>, Error> {
        Ok(None)
    }
}

impl<T: Read> Read for Box<T> {
    fn read(value: &Value) -> Result<Box<T>, Error> {
        T::read(value).map(Box::new)
    }
}

impl<T: Read> Read for Vec<T> {
    fn read(value: &Value) -> Result<Vec<T>, Error> {
        match value {
            Value::Array(items) => items.iter().map(T::read).collect(),
            other => Err(invalid_type(other, &"a sequence")),
        }
    }
}

impl<T: Read> Read for std::collections::BTreeMap<String, T> {
    fn read(value: &Value) -> Result<Self, Error> {
        match value {
            Value::Object(entries) => entries
                .iter()
                .map(|(key, value)| Ok((key.clone(), T::read(value)?)))
                .collect(),
            other => Err(invalid_type(other, &"a map")),
        }
    }
}

/// A JSON object being read as a struct: its fields by name.
pub(crate) struct Object<'a>(&'a [(String, Value)]);

impl<'a> Object<'a> {
    /// `value` as the object of the struct `what` (`"struct Tick"`).
    pub(crate) fn new(value: &'a Value, what: &str) -> Result<Object<'a>, Error> {
        match value {
            Value::Object(entries) => Ok(Object(entries)),
            other => Err(invalid_type(other, &what)),
        }
    }

    /// The field `name`'s value, if present; a field named twice is refused
    /// (as serde refuses it).
    fn get(&self, name: &str) -> Result<Option<&'a Value>, Error> {
        let mut found = self.0.iter().filter(|(key, _)| key == name);
        let first = found.next().map(|(_, value)| value);
        match found.next() {
            Some(_) => Err(Error(format!("duplicate field `{name}`"))),
            None => Ok(first),
        }
    }

    /// The field `name` (an absent one as [`Read::absent`] says).
    pub(crate) fn field<T: Read>(&self, name: &str) -> Result<T, Error> {
        match self.get(name)? {
            Some(value) => T::read(value),
            None => T::absent(name),
        }
    }

    /// The field `name`, or `T`'s default when absent (`#[serde(default)]`).
    pub(crate) fn field_or_default<T: Read + Default>(&self, name: &str) -> Result<T, Error> {
        match self.get(name)? {
            Some(value) => T::read(value),
            None => Ok(T::default()),
        }
    }
}

/// A unit enum's variant, by its name in `variants` (name, variant).
pub(crate) fn variant<T: Copy>(value: &Value, variants: &[(&str, T)]) -> Result<T, Error> {
    let Value::String(name) = value else {
        return Err(invalid_type(value, &"a variant name"));
    };
    variants
        .iter()
        .find(|(known, _)| known == name)
        .map(|(_, variant)| *variant)
        .ok_or_else(|| {
            let names: Vec<String> = variants
                .iter()
                .map(|(known, _)| format!("`{known}`"))
                .collect();
            Error(format!(
                "unknown variant `{name}`, expected one of {}",
                names.join(", ")
            ))
        })
}

/// A value read by its own serde `Deserialize` (a layout, whose checks are
/// the core's).
pub(crate) fn by_serde<T: serde::de::DeserializeOwned>(value: &Value) -> Result<T, Error> {
    T::deserialize(value)
}

/// Why an answer could not be read, in a sentence.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Error(pub(crate) String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl serde::de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Error {
        Error(message.to_string())
    }

    // Worded here rather than through `Unexpected`'s `Display`, which
    // would print a float through `core::fmt`'s float formatting.
    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Error {
        Error(format!(
            "invalid type: {}, expected {expected}",
            unexpected_words(&unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn Expected) -> Error {
        Error(format!(
            "invalid value: {}, expected {expected}",
            unexpected_words(&unexpected)
        ))
    }
}

/// What was found instead, without printing a float.
fn unexpected_words(unexpected: &Unexpected<'_>) -> String {
    match *unexpected {
        Unexpected::Bool(value) => format!("boolean `{value}`"),
        Unexpected::Unsigned(value) => format!("integer `{value}`"),
        Unexpected::Signed(value) => format!("integer `{value}`"),
        Unexpected::Float(_) => "floating point number".to_string(),
        Unexpected::Str(text) => format!("string \"{text}\""),
        Unexpected::Unit => "null".to_string(),
        Unexpected::Seq => "sequence".to_string(),
        Unexpected::Map => "map".to_string(),
        _ => "another kind of value".to_string(),
    }
}

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

impl<'de> Deserializer<'de> for &'de Value {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Null => visitor.visit_unit(),
            Value::Bool(value) => visitor.visit_bool(*value),
            Value::Unsigned(value) => visitor.visit_u64(*value),
            Value::Signed(value) => visitor.visit_i64(*value),
            Value::Float(value) => visitor.visit_f64(*value),
            Value::String(text) => visitor.visit_borrowed_str(text),
            Value::Array(items) => visit_array(items, visitor),
            Value::Object(entries) => visit_object(entries, visitor),
        }
    }

    // Each kind asks its visitor for that kind alone (a visitor's other
    // methods, which only refuse, are then never compiled for it) and
    // words anything else once, here.

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Bool(value) => visitor.visit_bool(*value),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Unsigned(value) => visitor.visit_u64(*value),
            Value::Signed(value) => visitor.visit_i64(*value),
            Value::Float(value) => visitor.visit_f64(*value),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::String(text) => visitor.visit_borrowed_str(text),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Array(items) => visit_array(items, visitor),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Object(entries) => visit_object(entries, visitor),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Null => visitor.visit_unit(),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    /// Whatever it is, read already: nothing to skip.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    serde::forward_to_deserialize_any! {
        i128 u128 char bytes byte_buf unit_struct tuple tuple_struct
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// A struct from an object only.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Value::Object(entries) => visit_object(entries, visitor),
            other => Err(invalid_type(other, &visitor)),
        }
    }

    /// An enum of unit variants, from its variant's name.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self {
            Value::String(text) => visitor.visit_enum(BorrowedStrDeserializer::new(text)),
            other => Err(invalid_type(other, &visitor)),
        }
    }
}

/// `value` is not what `expected` reads.
fn invalid_type(value: &Value, expected: &dyn Expected) -> Error {
    serde::de::Error::invalid_type(unexpected(value), expected)
}

/// What a value is, for an error.
fn unexpected(value: &Value) -> Unexpected<'_> {
    match value {
        Value::Null => Unexpected::Unit,
        Value::Bool(value) => Unexpected::Bool(*value),
        Value::Unsigned(value) => Unexpected::Unsigned(*value),
        Value::Signed(value) => Unexpected::Signed(*value),
        Value::Float(value) => Unexpected::Float(*value),
        Value::String(text) => Unexpected::Str(text),
        Value::Array(_) => Unexpected::Seq,
        Value::Object(_) => Unexpected::Map,
    }
}

fn visit_array<'de, V: Visitor<'de>>(items: &'de [Value], visitor: V) -> Result<V::Value, Error> {
    let mut access = Items(items.iter());
    let value = visitor.visit_seq(&mut access)?;
    match access.0.len() {
        0 => Ok(value),
        _ => Err(Error("trailing items in an array".to_string())),
    }
}

fn visit_object<'de, V: Visitor<'de>>(
    entries: &'de [(String, Value)],
    visitor: V,
) -> Result<V::Value, Error> {
    visitor.visit_map(Entries {
        entries: entries.iter(),
        value: None,
    })
}

struct Items<'de>(std::slice::Iter<'de, Value>);

impl<'de> SeqAccess<'de> for &mut Items<'de> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.next().map(|item| seed.deserialize(item)).transpose()
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Entries<'de> {
    entries: std::slice::Iter<'de, (String, Value)>,
    value: Option<&'de Value>,
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(value);
        seed.deserialize(BorrowedStrDeserializer::new(key))
            .map(Some)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, Error> {
        match self.value.take() {
            Some(value) => seed.deserialize(value),
            None => Err(Error("a value asked for before its key".to_string())),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::{Read, parse};
    use serde_json::Value as Json;

    fn read<T: Read>(text: &str) -> Result<T, super::Error> {
        super::from_str(text)
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
