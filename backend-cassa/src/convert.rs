//! Values in and out of CQL for raw statements: each `${var}` is bound by
//! the type Cassandra gives its `?` marker, and result columns are read by
//! their type into [`backend_core::Value`]s.

use backend_core::{Timestamp, Value};
use cdrs_tokio::frame::message_result::ColType;
use cdrs_tokio::types::blob::Blob;
use cdrs_tokio::types::IntoRustByIndex;

use crate::driver::{CqlRow, CqlValue};

/// Binds `value` to a marker of type `ty`; the error says why it does not
/// fit (a text that is not a number, a number out of range).
pub(crate) fn bind(value: &Value, ty: ColType) -> Result<CqlValue, String> {
    if matches!(value, Value::Null) {
        return Ok(CqlValue::Null);
    }
    // A time binds to an integer or timestamp marker as milliseconds.
    let int = || match value {
        Value::Time(t) => Ok(t.as_millis()),
        other => other.as_integer(),
    };
    let out_of_range = |i: i64| format!("{i} is out of range for {ty:?}");
    Ok(match ty {
        ColType::Varchar | ColType::Ascii => match value {
            Value::Text(s) => CqlValue::from(s.clone()),
            Value::Bytes(b) => CqlValue::from(
                String::from_utf8(b.to_vec())
                    .map_err(|_| "the bytes are not UTF-8 text; use a blob column".to_owned())?,
            ),
            Value::Int(i) => CqlValue::from(i.to_string()),
            Value::Bool(b) => CqlValue::from(b.to_string()),
            Value::Float(f) => CqlValue::from(f.to_string()),
            Value::Time(t) => CqlValue::from(t.as_millis().to_string()),
            Value::Null => CqlValue::Null,
        },
        ColType::Blob => match value {
            Value::Bytes(b) => CqlValue::from(Blob::new(b.to_vec())),
            Value::Text(s) => CqlValue::from(Blob::new(s.as_bytes().to_vec())),
            other => CqlValue::from(Blob::new(other.to_bytes().into_owned())),
        },
        ColType::Bigint | ColType::Counter | ColType::Timestamp => CqlValue::from(int()?),
        ColType::Int => {
            let i = int()?;
            CqlValue::from(i32::try_from(i).map_err(|_| out_of_range(i))?)
        }
        ColType::Smallint => {
            let i = int()?;
            CqlValue::from(i16::try_from(i).map_err(|_| out_of_range(i))?)
        }
        ColType::Tinyint => {
            let i = int()?;
            CqlValue::from(i8::try_from(i).map_err(|_| out_of_range(i))?)
        }
        ColType::Boolean => CqlValue::from(value.as_boolean()?),
        ColType::Double | ColType::Float => {
            let f = value.as_number()?;
            if ty == ColType::Float {
                CqlValue::from(f as f32)
            } else {
                CqlValue::from(f)
            }
        }
        other => {
            return Err(format!(
                "markers of type {other:?} cannot take a ${{var}} value; use text, blob, int, \
                 bigint, timestamp, boolean or double"
            ))
        }
    })
}

/// Reads column `i` of a result row as a value, by its type.
pub(crate) fn read(row: &CqlRow, i: usize, ty: ColType) -> Result<Value, String> {
    fn get<T>(row: &CqlRow, i: usize) -> Result<Option<T>, String>
    where
        CqlRow: IntoRustByIndex<T>,
    {
        row.get_by_index(i).map_err(|e| e.to_string())
    }
    let v = match ty {
        ColType::Varchar | ColType::Ascii => get::<String>(row, i)?.map(Value::Text),
        ColType::Blob => get::<Blob>(row, i)?.map(|b| Value::Bytes(b.into_vec().into())),
        ColType::Bigint | ColType::Counter => get::<i64>(row, i)?.map(Value::Int),
        ColType::Int => get::<i32>(row, i)?.map(|n| Value::Int(n.into())),
        ColType::Smallint => get::<i16>(row, i)?.map(|n| Value::Int(n.into())),
        ColType::Tinyint => get::<i8>(row, i)?.map(|n| Value::Int(n.into())),
        ColType::Boolean => get::<bool>(row, i)?.map(Value::Bool),
        ColType::Double => get::<f64>(row, i)?.map(Value::Float),
        ColType::Float => get::<f32>(row, i)?.map(|f| Value::Float(f.into())),
        ColType::Timestamp => get::<i64>(row, i)?.map(|ms| Value::Time(Timestamp::from_millis(ms))),
        ColType::Uuid | ColType::Timeuuid => {
            get::<Blob>(row, i)?.map(|b| Value::Text(uuid_text(&b.into_vec())))
        }
        // Any other type comes back as its raw bytes.
        _ => get::<Blob>(row, i)?.map(|b| Value::Bytes(b.into_vec().into())),
    };
    Ok(v.unwrap_or(Value::Null))
}

/// A UUID's canonical text (`8-4-4-4-12` hex digits).
fn uuid_text(b: &[u8]) -> String {
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    if hex.len() != 32 {
        return hex;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_bind_by_the_markers_type() {
        assert!(matches!(
            bind(&Value::Null, ColType::Int),
            Ok(CqlValue::Null)
        ));
        assert!(bind(&Value::Text("12".into()), ColType::Int).is_ok());
        let e = bind(&Value::Text("x".into()), ColType::Int).unwrap_err();
        assert!(e.contains("not an integer"), "{e}");
        let e = bind(&Value::Int(1 << 40), ColType::Int).unwrap_err();
        assert!(e.contains("out of range"), "{e}");
        assert!(bind(&Value::Bytes(vec![0xff, 0].into()), ColType::Blob).is_ok());
        let e = bind(&Value::Bytes(vec![0xff].into()), ColType::Varchar).unwrap_err();
        assert!(e.contains("not UTF-8"), "{e}");
        assert!(bind(&Value::Int(1), ColType::Boolean).is_ok());
        assert!(bind(&Value::Int(2), ColType::Boolean).is_err());
        assert!(bind(&Value::Text("a".into()), ColType::List).is_err());
    }

    #[test]
    fn uuids_read_as_text() {
        let b: Vec<u8> = (0u8..16).collect();
        assert_eq!(uuid_text(&b), "00010203-0405-0607-0809-0a0b0c0d0e0f");
        assert_eq!(uuid_text(&[1, 2]), "0102");
    }
}
