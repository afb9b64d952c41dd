//! Entry points for the workspace's fuzz harness (feature `fuzzing`):
//! raw bytes into this crate's column decoder and parameter binder.
//! Not a stable API.

use backend_core::{Bytes, Timestamp, Value};
use bytes::BytesMut;
use tokio_postgres::types::{ToSql, Type};

use crate::convert::{bind, read};

/// The types the decoder and binder know, and some they do not.
const TYPES: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::OID,
    Type::INT8,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::BYTEA,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::DATE,
    Type::JSON,
    Type::JSONB,
    Type::NUMERIC,
    Type::UUID,
    Type::CHAR,
    Type::VOID,
    Type::TEXT,
    Type::VARCHAR,
    Type::BPCHAR,
    Type::NAME,
    Type::INET,
    Type::INTERVAL,
    Type::TIME,
    Type::INT4_ARRAY,
    Type::TEXT_ARRAY,
    Type::MONEY,
];

/// Columns as the server sends them: type byte, mode byte, raw value.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        vec![2, 0, 0, 0, 0, 1],
        vec![4, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
        vec![13, 0, 0, 2, 0, 1, 0, 0, 0, 2, 0, 1, 0x09, 0x29],
        vec![8, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        vec![12, 0, 1, b'{', b'}'],
        vec![17, 1, b'4', b'2'],
        vec![10, 1, b'2', b'0', b'2', b'6', b'-', b'0', b'1'],
    ]
}

/// `type, mode, data`: mode bit 0 clear reads `data` as a column of that
/// type (bit 1 set: NULL); set binds `data` as a Value (kind from bits
/// 1-3) to a parameter of that type and encodes it.
pub fn column(data: &[u8]) {
    let [t, mode, raw @ ..] = data else {
        return;
    };
    let ty = &TYPES[usize::from(*t) % TYPES.len()];
    if mode & 1 == 0 {
        let raw = if mode & 2 == 0 { Some(raw) } else { None };
        let _ = read(ty, raw);
        return;
    }
    let text = String::from_utf8_lossy(raw).into_owned();
    let int = raw
        .iter()
        .take(8)
        .fold(0i64, |acc, b| (acc << 8) | i64::from(*b));
    let value = match (mode >> 1) & 7 {
        0 => Value::Text(text),
        1 => Value::Bytes(Bytes::copy_from_slice(raw)),
        2 => Value::Int(int),
        3 => Value::Float(f64::from_bits(int as u64)),
        4 => Value::Time(Timestamp::from_millis(int)),
        5 => Value::Bool(int & 1 == 1),
        _ => Value::Null,
    };
    if let Ok(bound) = bind(&value, ty) {
        let mut out = BytesMut::new();
        let _ = bound.to_sql(ty, &mut out);
    }
}
