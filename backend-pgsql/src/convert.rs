//! Conversions between [`backend_core::Value`] / [`Timestamp`] and
//! PostgreSQL's binary wire format: binding raw statements' parameters by
//! their prepared type, and reading any column back as a `Value`.

use std::error::Error as StdError;

use backend_core::{Bytes, Timestamp, Value};
use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};

type BoxError = Box<dyn StdError + Sync + Send>;

/// Milliseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MILLIS: i64 = 946_684_800_000;
/// Days between the Unix epoch and PostgreSQL's.
const PG_EPOCH_DAYS: i64 = 10_957;

/// A [`Timestamp`] as a `timestamp`/`timestamptz` parameter (UTC), encoded
/// without going through `SystemTime`, so no value can overflow or panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgTime(pub Timestamp);

impl ToSql for PgTime {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let micros = self
            .0
            .as_millis()
            .saturating_sub(PG_EPOCH_MILLIS)
            .saturating_mul(1000);
        out.put_i64(micros);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for PgTime {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(PgTime(timestamp_from_raw(raw)?))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::TIMESTAMP | Type::TIMESTAMPTZ)
    }
}

fn be_i64(raw: &[u8]) -> Result<i64, BoxError> {
    let arr: [u8; 8] = raw.try_into().map_err(|_| "expected 8 bytes")?;
    Ok(i64::from_be_bytes(arr))
}

/// Microseconds since 2000-01-01 to a [`Timestamp`] (rounded down to the
/// millisecond; `infinity` saturates).
fn timestamp_from_raw(raw: &[u8]) -> Result<Timestamp, BoxError> {
    let micros = be_i64(raw)?;
    Ok(Timestamp::from_millis(
        micros.div_euclid(1000).saturating_add(PG_EPOCH_MILLIS),
    ))
}

/// A column value, undecoded: lets a row of any types be read.
pub(crate) struct RawColumn<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for RawColumn<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(RawColumn(Some(raw)))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(RawColumn(None))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A raw statement's parameter, converted for its prepared type.
#[derive(Debug)]
pub(crate) enum Bound<'a> {
    Null,
    Bool(bool),
    I16(i16),
    I32(i32),
    I64(i64),
    F32(f32),
    F64(f64),
    Text(std::borrow::Cow<'a, str>),
    Bytes(&'a [u8]),
    Time(PgTime),
    Date(i32),
    /// `json` is the text; `jsonb` the text after a version byte.
    Json(std::borrow::Cow<'a, str>),
}

impl ToSql for Bound<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Bound::Null => return Ok(IsNull::Yes),
            Bound::Bool(b) => out.put_u8(u8::from(*b)),
            Bound::I16(i) => out.put_i16(*i),
            Bound::I32(i) => out.put_i32(*i),
            Bound::I64(i) => out.put_i64(*i),
            Bound::F32(f) => out.put_f32(*f),
            Bound::F64(f) => out.put_f64(*f),
            Bound::Text(s) => out.put_slice(s.as_bytes()),
            Bound::Bytes(b) => out.put_slice(b),
            Bound::Time(t) => return t.to_sql(ty, out),
            Bound::Date(d) => out.put_i32(*d),
            Bound::Json(s) => {
                if *base_type(ty) == Type::JSONB {
                    out.put_u8(1);
                }
                out.put_slice(s.as_bytes());
            }
        }
        Ok(IsNull::No)
    }

    /// Every type: [`bind`] has already chosen the encoding for it.
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A domain's underlying type; any other type itself.
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(inner) => base_type(inner),
        _ => ty,
    }
}

fn is_textual(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

/// Converts `value` for a parameter of type `ty`; the error says why it
/// does not fit (the caller adds the statement and parameter number).
pub(crate) fn bind<'a>(value: &'a Value, ty: &Type) -> Result<Bound<'a>, String> {
    use std::borrow::Cow;
    let ty = base_type(ty);
    let mismatch = || {
        format!(
            "cannot bind {} to it; cast the placeholder in the statement (e.g. `${{var}}::text`)",
            value.describe()
        )
    };
    if value.is_null() {
        return Ok(Bound::Null);
    }
    // Integers, booleans and numbers read as backend-core reads them; other
    // values get the cast hint.
    let convertible = matches!(value, Value::Int(_) | Value::Bool(_) | Value::Text(_));
    let int = || -> Result<i64, String> {
        if convertible {
            value.as_integer()
        } else {
            Err(mismatch())
        }
    };
    let out_of_range = |i: i64| format!("{i} is out of range for {}", ty.name());
    match *ty {
        Type::BOOL if convertible => value.as_boolean().map(Bound::Bool),
        Type::BOOL => Err(mismatch()),
        Type::INT2 => {
            let i = int()?;
            i16::try_from(i)
                .map(Bound::I16)
                .map_err(|_| out_of_range(i))
        }
        Type::INT4 => {
            let i = int()?;
            i32::try_from(i)
                .map(Bound::I32)
                .map_err(|_| out_of_range(i))
        }
        Type::INT8 => int().map(Bound::I64),
        Type::FLOAT4 | Type::FLOAT8 => {
            let f = match value {
                Value::Float(_) | Value::Int(_) | Value::Text(_) => value.as_number()?,
                _ => return Err(mismatch()),
            };
            Ok(if *ty == Type::FLOAT4 {
                Bound::F32(f as f32)
            } else {
                Bound::F64(f)
            })
        }
        Type::BYTEA => match value {
            Value::Bytes(b) => Ok(Bound::Bytes(b)),
            Value::Text(s) => Ok(Bound::Bytes(s.as_bytes())),
            _ => Err(mismatch()),
        },
        Type::TIMESTAMP | Type::TIMESTAMPTZ => match value {
            Value::Time(t) => Ok(Bound::Time(PgTime(*t))),
            _ => Err(mismatch()),
        },
        Type::DATE => match value {
            Value::Time(t) => {
                let days = t.as_millis().div_euclid(86_400_000) - PG_EPOCH_DAYS;
                i32::try_from(days)
                    .map(Bound::Date)
                    .map_err(|_| out_of_range(days))
            }
            _ => Err(mismatch()),
        },
        Type::JSON | Type::JSONB => match value {
            Value::Text(s) => Ok(Bound::Json(Cow::Borrowed(s))),
            Value::Bytes(b) => std::str::from_utf8(b)
                .map(|s| Bound::Json(Cow::Borrowed(s)))
                .map_err(|_| "the bytes are not UTF-8, so not JSON".to_owned()),
            Value::Int(i) => Ok(Bound::Json(Cow::Owned(i.to_string()))),
            Value::Bool(b) => Ok(Bound::Json(Cow::Owned(b.to_string()))),
            _ => Err(mismatch()),
        },
        _ if is_textual(ty) => match value {
            Value::Text(s) => Ok(Bound::Text(Cow::Borrowed(s))),
            Value::Bytes(b) => std::str::from_utf8(b)
                .map(|s| Bound::Text(Cow::Borrowed(s)))
                .map_err(|_| {
                    "the bytes are not UTF-8, which a text parameter needs; \
                     store them in a bytea column"
                        .to_owned()
                }),
            // Numbers in decimal, booleans as true/false, times as Unix
            // seconds: Value::to_bytes, the form every backend shares.
            other => Ok(Bound::Text(Cow::Owned(
                String::from_utf8_lossy(&other.to_bytes()).into_owned(),
            ))),
        },
        _ => Err(format!(
            "the pgsql backend does not bind this type; cast the placeholder in the \
             statement (e.g. `${{var}}::text::{}`)",
            ty.name()
        )),
    }
}

/// Reads a column of type `ty` as a [`Value`]; the error says why not.
pub(crate) fn read(ty: &Type, raw: Option<&[u8]>) -> Result<Value, String> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    let ty = base_type(ty);
    let text = |raw: &[u8]| {
        std::str::from_utf8(raw)
            .map(|s| Value::Text(s.to_owned()))
            .map_err(|_| "not valid UTF-8".to_owned())
    };
    let fixed = |n: usize| -> Result<&[u8], String> {
        if raw.len() == n {
            Ok(raw)
        } else {
            Err(format!("expected {n} bytes, got {}", raw.len()))
        }
    };
    Ok(match *ty {
        Type::BOOL => Value::Bool(fixed(1)?[0] != 0),
        Type::INT2 => {
            let b = fixed(2)?;
            Value::Int(i64::from(i16::from_be_bytes([b[0], b[1]])))
        }
        Type::INT4 => {
            let b = fixed(4)?;
            Value::Int(i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        }
        Type::OID => {
            let b = fixed(4)?;
            Value::Int(i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        }
        Type::INT8 => Value::Int(be_i64(raw).map_err(|e| e.to_string())?),
        Type::FLOAT4 => {
            let b = fixed(4)?;
            Value::Float(f64::from(f32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        }
        Type::FLOAT8 => {
            let b = fixed(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Value::Float(f64::from_be_bytes(a))
        }
        Type::BYTEA => Value::Bytes(Bytes::copy_from_slice(raw)),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            Value::Time(timestamp_from_raw(raw).map_err(|e| e.to_string())?)
        }
        Type::DATE => {
            let b = fixed(4)?;
            let days = i64::from(i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            Value::Time(Timestamp::from_millis(
                (days + PG_EPOCH_DAYS).saturating_mul(86_400_000),
            ))
        }
        Type::JSON => text(raw)?,
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => text(rest)?,
            _ => return Err("unknown jsonb format version".into()),
        },
        Type::NUMERIC => Value::Text(numeric_to_string(raw)?),
        Type::UUID => {
            let b = fixed(16)?;
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            Value::Text(format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            ))
        }
        Type::CHAR => Value::Text(String::from_utf8_lossy(raw).into_owned()),
        Type::VOID => Value::Null,
        _ if is_textual(ty) => text(raw)?,
        _ => {
            return Err(format!(
                "the pgsql backend does not read type {}; cast the column in the query \
                 (e.g. `col::text`)",
                ty.name()
            ))
        }
    })
}

/// The decimal text of a binary `numeric`.
fn numeric_to_string(raw: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<u16, String> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".to_owned())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = usize::from(word(6)?);
    let digits = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Result<Vec<u16>, _>>()?;
    match sign {
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        0x0000 | 0x4000 => {}
        other => return Err(format!("invalid numeric sign {other:#x}")),
    }
    // Digit group k is worth 10000^(weight - k); groups beyond the stored
    // ones are zero.
    let group = |k: i32| -> u16 {
        usize::try_from(k)
            .ok()
            .and_then(|k| digits.get(k).copied())
            .unwrap_or(0)
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        s.push_str(&group(0).to_string());
        for k in 1..=weight {
            s.push_str(&format!("{:04}", group(k)));
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut k = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", group(k)));
            k += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(t: Timestamp) -> Vec<u8> {
        let mut b = BytesMut::new();
        PgTime(t).to_sql(&Type::TIMESTAMP, &mut b).expect("encodes");
        b.to_vec()
    }

    #[test]
    fn timestamps_round_trip_and_saturate() {
        for ms in [0, 1, -1, 1_481_685_802_123, -62_135_596_800_000] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(timestamp_from_raw(&encode(t)).ok(), Some(t), "{ms}");
        }
        // Extremes neither panic nor wrap.
        let _ = encode(Timestamp::from_millis(i64::MAX));
        let _ = encode(Timestamp::from_millis(i64::MIN));
        assert!(timestamp_from_raw(&i64::MAX.to_be_bytes()).is_ok());
        assert_eq!(
            timestamp_from_raw(&0i64.to_be_bytes()).ok(),
            Some(Timestamp::from_millis(PG_EPOCH_MILLIS))
        );
    }

    #[test]
    fn binding_checks_types_and_ranges() {
        assert!(matches!(
            bind(&Value::Int(7), &Type::INT2),
            Ok(Bound::I16(7))
        ));
        let e = bind(&Value::Int(70_000), &Type::INT2).expect_err("too big");
        assert_eq!(e, "70000 is out of range for int2");
        let e = bind(&Value::Bytes(Bytes::from_static(b"x")), &Type::INT4).expect_err("bytes");
        assert!(e.contains("cannot bind bytes"), "{e}");
        assert!(matches!(
            bind(&Value::Text("12".into()), &Type::INT8),
            Ok(Bound::I64(12))
        ));
        assert!(bind(&Value::Text("x".into()), &Type::INT8).is_err());
        assert!(matches!(bind(&Value::Int(5), &Type::TEXT), Ok(Bound::Text(s)) if s == "5"));
        assert!(bind(&Value::Bytes(Bytes::from_static(b"\xff")), &Type::TEXT).is_err());
        assert!(matches!(
            bind(&Value::Text("a".into()), &Type::BYTEA),
            Ok(Bound::Bytes(b"a"))
        ));
        assert!(matches!(bind(&Value::Null, &Type::INT4), Ok(Bound::Null)));
        assert!(bind(&Value::Int(1), &Type::TIMESTAMP).is_err());
        assert!(bind(&Value::Int(1), &Type::POINT).is_err());
        assert!(matches!(
            bind(&Value::Int(1), &Type::BOOL),
            Ok(Bound::Bool(true))
        ));
        assert!(bind(&Value::Int(2), &Type::BOOL).is_err());
    }

    #[test]
    fn numerics() {
        // 123.4500: ndigits 2, weight 0, dscale 4: [123, 4500]
        let enc = |nd: u16, w: i16, sign: u16, ds: u16, d: &[u16]| {
            let mut v = Vec::new();
            for x in [nd, w as u16, sign, ds].iter().chain(d) {
                v.extend_from_slice(&x.to_be_bytes());
            }
            v
        };
        assert_eq!(
            numeric_to_string(&enc(2, 0, 0, 4, &[123, 4500])).as_deref(),
            Ok("123.4500")
        );
        assert_eq!(
            numeric_to_string(&enc(1, -1, 0x4000, 3, &[10])).as_deref(),
            Ok("-0.001")
        );
        assert_eq!(
            numeric_to_string(&enc(1, 1, 0, 0, &[1])).as_deref(),
            Ok("10000")
        );
        assert_eq!(numeric_to_string(&enc(0, 0, 0, 0, &[])).as_deref(), Ok("0"));
        assert_eq!(
            numeric_to_string(&enc(1, -2, 0, 8, &[5])).as_deref(),
            Ok("0.00000005")
        );
        assert_eq!(
            numeric_to_string(&enc(0, 0, 0xC000, 0, &[])).as_deref(),
            Ok("NaN")
        );
        assert!(numeric_to_string(&[0, 1]).is_err());
    }
}
