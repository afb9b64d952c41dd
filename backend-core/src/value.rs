//! [`Value`]: what a template variable binds to and what a raw statement's
//! rows hold.

use std::borrow::Cow;

use bytes::Bytes;

use crate::message::Timestamp;

/// A value bound to a statement parameter or read from a result row.
///
/// Backends convert it to the parameter type their server expects (a
/// `Time` into a `timestamp` column, an `Int` into `text` where asked).
///
/// ```
/// use backend_core::Value;
/// assert_eq!(Value::Int(42).to_bytes().as_ref(), b"42");
/// assert_eq!(Value::from("a b").to_bytes().as_ref(), b"a b");
/// assert_eq!(Value::Null.to_bytes().as_ref(), b"");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL; an absent username or peer address.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer (QoS, retain as 0/1, counters).
    Int(i64),
    /// A floating-point number (only ever read from rows).
    Float(f64),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes (payloads).
    Bytes(Bytes),
    /// A point in time.
    Time(Timestamp),
}

impl Value {
    /// The value as bytes, the way a Redis argument carries it: text as
    /// UTF-8, numbers in decimal, times as Unix seconds, NULL as nothing.
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Value::Null => Cow::Borrowed(b""),
            Value::Bool(b) => Cow::Borrowed(if *b { b"true" } else { b"false" }),
            Value::Int(i) => Cow::Owned(i.to_string().into_bytes()),
            Value::Float(f) => Cow::Owned(f.to_string().into_bytes()),
            Value::Text(s) => Cow::Borrowed(s.as_bytes()),
            Value::Bytes(b) => Cow::Borrowed(b),
            Value::Time(t) => Cow::Owned(t.as_secs().to_string().into_bytes()),
        }
    }

    /// The text, if this is `Text`, or `Bytes` holding valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The integer, if this is `Int` or text holding one.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Text(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Whether this is `Null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<Option<&str>> for Value {
    fn from(s: Option<&str>) -> Self {
        s.map_or(Value::Null, Value::from)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bytes(b)
    }
}

impl From<Timestamp> for Value {
    fn from(t: Timestamp) -> Self {
        Value::Time(t)
    }
}

/// Reading a value for a typed parameter: what every backend that binds
/// by the database's parameter types accepts, with the same words when it
/// does not fit.
impl Value {
    /// What kind of value this is, for errors (`an integer`, `text`).
    pub fn describe(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Text(_) => "text",
            Value::Bytes(_) => "bytes",
            Value::Time(_) => "a timestamp",
        }
    }

    /// As an integer: an integer, a boolean (0 or 1), or text holding one.
    ///
    /// ```
    /// use backend_core::Value;
    /// assert_eq!(Value::from(" 42 ").as_integer(), Ok(42));
    /// assert!(Value::from("x").as_integer().is_err());
    /// ```
    pub fn as_integer(&self) -> Result<i64, String> {
        match self {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(i64::from(*b)),
            Value::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("the text {s:?} is not an integer")),
            other => Err(format!("{} is not an integer", other.describe())),
        }
    }

    /// As a boolean: a boolean, 0 or 1, or the text `true`/`t`/`1` or
    /// `false`/`f`/`0`.
    pub fn as_boolean(&self) -> Result<bool, String> {
        match self {
            Value::Bool(b) => Ok(*b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            Value::Int(i) => Err(format!("{i} is not a boolean (0 or 1)")),
            Value::Text(s) => match s.as_str() {
                "true" | "t" | "1" => Ok(true),
                "false" | "f" | "0" => Ok(false),
                _ => Err(format!("the text {s:?} is not a boolean")),
            },
            other => Err(format!("{} is not a boolean", other.describe())),
        }
    }

    /// As a number: a float, an integer, or text holding one.
    pub fn as_number(&self) -> Result<f64, String> {
        match self {
            Value::Float(f) => Ok(*f),
            Value::Int(i) => Ok(*i as f64),
            Value::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("the text {s:?} is not a number")),
            other => Err(format!("{} is not a number", other.describe())),
        }
    }
}

/// One result row of a raw statement: its columns in order (for Redis, the
/// elements of the reply).
pub type Row = Vec<Value>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Value::Bool(true).to_bytes().as_ref(), b"true");
        assert_eq!(
            Value::Time(Timestamp::from_millis(1_500))
                .to_bytes()
                .as_ref(),
            b"1"
        );
        assert_eq!(Value::Bytes(Bytes::from_static(b"\xff")).as_str(), None);
        assert_eq!(Value::Text(" 7 ".into()).as_i64(), Some(7));
        assert_eq!(Value::from(None::<&str>), Value::Null);
        assert!(Value::Null.is_null());
        assert_eq!(Value::Float(1.5).to_bytes().as_ref(), b"1.5");
    }
}
