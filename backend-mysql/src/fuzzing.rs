//! Entry points for the workspace's fuzz harness (feature `fuzzing`):
//! raw bytes into this crate's row decoder, column reader and binder.
//! Not a stable API.

use backend_core::{Bytes, Timestamp, Value};
use mysql_async::consts::ColumnType;
use mysql_async::{Column, Value as MyValue};

use crate::backend::message;
use crate::convert::{bind, read};

/// Column types a row may come back with.
const TYPES: &[ColumnType] = &[
    ColumnType::MYSQL_TYPE_VAR_STRING,
    ColumnType::MYSQL_TYPE_BLOB,
    ColumnType::MYSQL_TYPE_LONG,
    ColumnType::MYSQL_TYPE_LONGLONG,
    ColumnType::MYSQL_TYPE_DATETIME,
    ColumnType::MYSQL_TYPE_TIMESTAMP,
    ColumnType::MYSQL_TYPE_DATE,
    ColumnType::MYSQL_TYPE_TIME,
    ColumnType::MYSQL_TYPE_NEWDECIMAL,
    ColumnType::MYSQL_TYPE_JSON,
    ColumnType::MYSQL_TYPE_DOUBLE,
    ColumnType::MYSQL_TYPE_BIT,
];

/// Rows of seven values, as `[kind, len, bytes...]` groups.
pub fn seeds() -> Vec<Vec<u8>> {
    let group = |kind: u8, bytes: &[u8]| {
        let mut v = vec![kind, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    };
    vec![[
        group(0, b"a/b"),
        group(0, b"ID1"),
        group(0, b"c1"),
        group(1, &[1]),
        group(1, &[0]),
        group(0, b"\x00\xffpayload"),
        group(3, &[0x07, 0xea, 1, 28, 12, 0, 0, 0, 0, 0, 0]),
    ]
    .concat()]
}

/// Cuts the next value off `data`: a kind byte, a length byte, then bytes.
fn next_value(data: &mut &[u8]) -> MyValue {
    let [kind, len, rest @ ..] = *data else {
        *data = &[];
        return MyValue::NULL;
    };
    let n = usize::from(*len).min(rest.len());
    let (bytes, tail) = rest.split_at(n);
    *data = tail;
    let int = bytes
        .iter()
        .take(8)
        .fold(0u64, |a, b| (a << 8) | u64::from(*b));
    let b = |i: usize| bytes.get(i).copied().unwrap_or(0);
    match kind % 8 {
        0 => MyValue::Bytes(bytes.to_vec()),
        1 => MyValue::Int(int as i64),
        2 => MyValue::UInt(int),
        3 => MyValue::Date(
            u16::from_be_bytes([b(0), b(1)]),
            b(2),
            b(3),
            b(4),
            b(5),
            b(6),
            u32::from_be_bytes([b(7), b(8), b(9), b(10)]),
        ),
        4 => MyValue::Time(
            b(0) & 1 == 1,
            u32::from_be_bytes([b(1), b(2), b(3), b(4)]),
            b(5),
            b(6),
            b(7),
            u32::from_be_bytes([b(8), b(9), b(10), b(11)]),
        ),
        5 => MyValue::Double(f64::from_bits(int)),
        6 => MyValue::Float(f32::from_bits(int as u32)),
        _ => MyValue::NULL,
    }
}

/// Seven values as a message row (with and without the retain column),
/// each also read as a column of some type and bound back as a parameter.
pub fn row(data: &[u8]) {
    let mut rest = data;
    let values: Vec<MyValue> = (0..7).map(|_| next_value(&mut rest)).collect();
    let _ = message(values.clone(), "mqtt_msg", true);
    let _ = message(values[..6].to_vec(), "mqtt_retain", false);
    for (i, v) in values.into_iter().enumerate() {
        let ty = TYPES[(i + usize::from(data.first().copied().unwrap_or(0))) % TYPES.len()];
        let charset = if i % 2 == 0 { 63 } else { 45 };
        let value = read(&Column::new(ty).with_character_set(charset), v);
        let _ = bind(&value);
    }
    let _ = bind(&Value::Time(Timestamp::from_millis(i64::from_le_bytes(
        data.get(..8)
            .and_then(|s| s.try_into().ok())
            .unwrap_or_default(),
    ))));
    let _ = bind(&Value::Bytes(Bytes::copy_from_slice(data)));
}
