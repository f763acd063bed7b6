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

mod parse;
mod value_serde;

use std::fmt;

use serde::de::{Expected, Unexpected};

pub(crate) use parse::{Value, parse};

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
