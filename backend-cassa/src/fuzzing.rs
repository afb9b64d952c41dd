//! Entry points for the workspace's fuzz harness (feature `fuzzing`): raw
//! bytes as the server would send them, into this crate's column reader,
//! its message-row decoder and its parameter binder. Not a stable API.

use backend_core::{Bytes, Timestamp, Value};
use cdrs_tokio::frame::message_result::{
    BodyResResultRows, ColSpec, ColType, ColTypeOption, RowsMetadata, RowsMetadataFlags,
};
use cdrs_tokio::frame::Version;
use cdrs_tokio::types::rows::Row;
use cdrs_tokio::types::CBytes;

use crate::convert::{bind, read};

/// The types the reader and binder know, and some they do not.
const TYPES: &[ColType] = &[
    ColType::Varchar,
    ColType::Ascii,
    ColType::Blob,
    ColType::Bigint,
    ColType::Counter,
    ColType::Int,
    ColType::Smallint,
    ColType::Tinyint,
    ColType::Boolean,
    ColType::Double,
    ColType::Float,
    ColType::Timestamp,
    ColType::Uuid,
    ColType::Timeuuid,
    ColType::Inet,
    ColType::Date,
    ColType::Decimal,
    ColType::Varint,
    ColType::List,
    ColType::Map,
];

/// The `msg` table's columns, as the backend reads them.
const MSG: [ColType; 8] = [
    ColType::Bigint,
    ColType::Varchar,
    ColType::Varchar,
    ColType::Varchar,
    ColType::Int,
    ColType::Int,
    ColType::Blob,
    ColType::Timestamp,
];

fn rows(types: &[ColType], values: Vec<Option<Vec<u8>>>) -> Vec<Row> {
    let col_specs = types
        .iter()
        .enumerate()
        .map(|(i, ty)| ColSpec {
            table_spec: None,
            name: format!("c{i}"),
            col_type: ColTypeOption {
                id: *ty,
                value: None,
            },
        })
        .collect();
    let metadata = RowsMetadata {
        flags: RowsMetadataFlags::empty(),
        columns_count: i32::try_from(types.len()).unwrap_or(i32::MAX),
        paging_state: None,
        new_metadata_id: None,
        global_table_spec: None,
        col_specs,
    };
    Row::from_body(BodyResResultRows {
        metadata,
        rows_count: 1,
        rows_content: vec![values
            .into_iter()
            .map(|v| v.map_or_else(CBytes::new_null, CBytes::new))
            .collect()],
        protocol_version: Version::V4,
    })
}

/// Columns as the server sends them: type byte, mode byte, raw value.
pub fn seeds() -> Vec<Vec<u8>> {
    vec![
        vec![3, 0, 0, 0, 0, 0, 0, 0, 0, 7],
        vec![0, 0, b'h', b'i'],
        vec![2, 0, 0xff, 0x00],
        vec![8, 0, 1],
        vec![11, 0, 0, 0, 1, 0x8c, 0, 0, 0, 0],
        vec![0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, b'a', 1, b'b'],
        vec![5, 1, b'4', b'2'],
    ]
}

/// `type, mode, data`: mode 0 reads `data` as a column of that type
/// (mode bit 0: NULL); bit 1 decodes `data`, cut into eight parts, as a
/// row of the `msg` table; bit 2 binds `data` as a value (text, bytes,
/// integer, time) to a marker of that type.
pub fn column(data: &[u8]) {
    let [t, mode, raw @ ..] = data else {
        return;
    };
    let ty = TYPES[usize::from(*t) % TYPES.len()];
    if mode & 2 != 0 {
        // Eight parts: each length byte, then that many bytes (0xff: null).
        let mut values = Vec::with_capacity(MSG.len());
        let mut rest = raw;
        for _ in 0..MSG.len() {
            let Some((&len, tail)) = rest.split_first() else {
                values.push(None);
                continue;
            };
            if len == 0xff {
                values.push(None);
                rest = tail;
                continue;
            }
            let n = usize::from(len).min(tail.len());
            values.push(Some(tail[..n].to_vec()));
            rest = &tail[n..];
        }
        for row in rows(&MSG, values) {
            let _ = crate::backend::message_row("fuzz/topic", &row);
        }
        return;
    }
    if mode & 4 != 0 {
        let text = String::from_utf8_lossy(raw).into_owned();
        let n = raw
            .iter()
            .take(8)
            .fold(0i64, |a, b| a.wrapping_shl(8) | i64::from(*b));
        for value in [
            Value::Text(text),
            Value::Bytes(Bytes::copy_from_slice(raw)),
            Value::Int(n),
            Value::Time(Timestamp::from_millis(n)),
            Value::Bool(n & 1 == 1),
            Value::Float(n as f64),
            Value::Null,
        ] {
            let _ = bind(&value, ty);
        }
        return;
    }
    let value = if mode & 1 != 0 {
        None
    } else {
        Some(raw.to_vec())
    };
    for row in rows(&[ty], vec![value]) {
        let _ = read(&row, 0, ty);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_and_odd_inputs_never_panic() {
        for s in seeds() {
            column(&s);
        }
        for t in 0..TYPES.len() as u8 {
            for mode in 0..8u8 {
                for raw in [&[][..], &[0xff][..], &[0; 3][..], &[0x80; 17][..]] {
                    let mut d = vec![t, mode];
                    d.extend_from_slice(raw);
                    column(&d);
                }
            }
        }
    }
}
