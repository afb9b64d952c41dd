//! Entry points for the workspace's fuzz harness (feature `fuzzing`):
//! raw bytes into this crate's document decoder and payload codec.
//! Not a stable API.

use backend_core::PayloadFormat;
use mongodb::bson::{doc, Binary, Document};

use crate::backend::decode_message;
use crate::payload::{decode, encode, RAW_FIELD};

/// Message documents as BSON bytes.
pub fn document_seeds() -> Vec<Vec<u8>> {
    let docs = [
        doc! { "_id": 1_i64, "topic": "a/b", "msgid": "ID1", "sender": "c1", "qos": 1, "retain": false, "payload": "hi", "arrived": 1_700_000_000_i64 },
        doc! { "_id": 2_i32, "topic": "a", "msgid": "ID2", "qos": 2.0, "retain": 1, "payload": { "t": 21.5, "a": [1, "x", null] }, RAW_FIELD: "{\"t\": 21.5}" },
        doc! { "topic": "x", "msgid": "ID3", "qos": 0_i64, "payload": Binary { subtype: mongodb::bson::spec::BinarySubtype::Generic, bytes: vec![0, 0xff] } },
    ];
    docs.iter()
        .filter_map(|d| {
            let mut v = Vec::new();
            d.to_writer(&mut v).ok().map(|_| v)
        })
        .collect()
}

/// A BSON document, decoded as a stored message and as a retained one.
pub fn document(data: &[u8]) {
    if let Ok(d) = Document::from_reader(data) {
        let _ = decode_message(&d, None);
        let _ = decode_message(&d, Some(true));
    }
}

/// Tokens of JSON payloads.
pub const PAYLOAD_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"\"a\"",
    b"\"$a\"",
    b"\"a.b\"",
    b"\"\\u0000\"",
    b"1e400",
    b"-0",
    b"12345678901234567890",
    b"null",
    b"true",
    b"1.5",
    b"\xff",
];

/// Payloads, JSON and not.
pub fn payload_seeds() -> Vec<Vec<u8>> {
    [
        &b"{\"temp\": 21.5, \"unit\": \"C\", \"tags\": [1, 2, {\"x\": null}]}"[..],
        b"plain text",
        b"\x00\xff\xfe binary",
        b"{\"a\":{\"b\":{\"c\":{}}}}",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

/// Every payload comes back byte for byte in every format, also after a
/// trip through BSON bytes (what the server stores).
pub fn payload(data: &[u8]) {
    for format in [
        Some(PayloadFormat::MongoJson),
        Some(PayloadFormat::PlainText),
        None,
    ] {
        let (p, raw) = encode(data, format);
        let mut d = Document::new();
        d.insert("payload", p);
        if let Some(r) = raw {
            d.insert(RAW_FIELD, r);
        }
        assert_eq!(decode(&d).as_deref(), Some(data), "in memory, {format:?}");
        let mut bytes = Vec::new();
        if d.to_writer(&mut bytes).is_ok() {
            let back = Document::from_reader(&bytes[..]).expect("BSON this crate wrote reads back");
            assert_eq!(
                decode(&back).as_deref(),
                Some(data),
                "through BSON, {format:?}"
            );
        }
    }
}
