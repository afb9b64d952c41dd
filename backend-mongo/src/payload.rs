//! How payloads are stored (`payload_format`) and read back.
//!
//! - `plain_text` (and no `payload_format`): a payload that is valid UTF-8
//!   is stored as a BSON string, anything else as BSON binary (subtype 0).
//! - `mongo_json`: a payload that is a JSON object whose keys MongoDB
//!   accepts (no `.`, no leading `$`, no NUL, not empty) and that nests at
//!   most [`MAX_DEPTH`] levels is stored as a sub-document; the exact bytes
//!   are kept beside it in `payload_raw` (a string), because re-serialising
//!   a document does not reproduce the original text (whitespace, key
//!   order, number spelling, duplicate keys). Anything else is stored as
//!   `plain_text` would.
//!
//! Reading: `payload_raw` when present, else a string's bytes, a binary's
//! bytes, or (a document written by another tool) its relaxed extended
//! JSON text.

use backend_core::PayloadFormat;
use mongodb::bson::{spec::BinarySubtype, Binary, Bson, Document};

/// The deepest JSON object nesting stored as a document (MongoDB allows
/// 100 levels; the message document adds one).
pub const MAX_DEPTH: usize = 64;

/// The field with the exact payload bytes beside a sub-document payload.
pub const RAW_FIELD: &str = "payload_raw";

/// The `payload` value (and, for a sub-document, the `payload_raw` one)
/// for a payload in a format.
pub fn encode(payload: &[u8], format: Option<PayloadFormat>) -> (Bson, Option<Bson>) {
    if format == Some(PayloadFormat::MongoJson) {
        if let Some(doc) = json_document(payload) {
            // json_document only succeeds on valid UTF-8.
            let raw = String::from_utf8_lossy(payload).into_owned();
            return (Bson::Document(doc), Some(Bson::String(raw)));
        }
    }
    (plain(payload), None)
}

fn plain(payload: &[u8]) -> Bson {
    match std::str::from_utf8(payload) {
        Ok(s) => Bson::String(s.to_owned()),
        Err(_) => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: payload.to_vec(),
        }),
    }
}

/// The payload as a document, if it is a JSON object MongoDB can store.
pub fn json_document(payload: &[u8]) -> Option<Document> {
    let text = std::str::from_utf8(payload).ok()?;
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    match convert(&value, 1)? {
        Bson::Document(d) => Some(d),
        _ => None,
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty() && !k.starts_with('$') && !k.contains('.') && !k.contains('\0')
}

fn convert(v: &serde_json::Value, depth: usize) -> Option<Bson> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return None;
    }
    Some(match v {
        J::Null => Bson::Null,
        J::Bool(b) => Bson::Boolean(*b),
        J::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Bson::Int64(i),
            (None, Some(f)) => Bson::Double(f),
            (None, None) => return None,
        },
        J::String(s) => Bson::String(s.clone()),
        J::Array(a) => Bson::Array(
            a.iter()
                .map(|x| convert(x, depth + 1))
                .collect::<Option<Vec<_>>>()?,
        ),
        J::Object(o) => {
            let mut d = Document::new();
            for (k, x) in o {
                if !valid_key(k) {
                    return None;
                }
                d.insert(k.clone(), convert(x, depth + 1)?);
            }
            Bson::Document(d)
        }
    })
}

/// The payload bytes of a stored document (`payload` and `payload_raw`);
/// `None` if the field holds something this backend cannot read as bytes.
pub fn decode(doc: &Document) -> Option<Vec<u8>> {
    if let Some(Bson::String(raw)) = doc.get(RAW_FIELD) {
        return Some(raw.as_bytes().to_vec());
    }
    match doc.get("payload") {
        None | Some(Bson::Null) => Some(Vec::new()),
        Some(Bson::String(s)) => Some(s.as_bytes().to_vec()),
        Some(Bson::Binary(b)) => Some(b.bytes.clone()),
        Some(Bson::Document(d)) => Some(
            Bson::Document(d.clone())
                .into_relaxed_extjson()
                .to_string()
                .into_bytes(),
        ),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(p: &[u8], f: Option<PayloadFormat>) -> Vec<u8> {
        let (payload, raw) = encode(p, f);
        let mut d = Document::new();
        d.insert("payload", payload);
        if let Some(r) = raw {
            d.insert(RAW_FIELD, r);
        }
        decode(&d).unwrap_or_default()
    }

    #[test]
    fn formats() {
        let j = Some(PayloadFormat::MongoJson);
        let t = Some(PayloadFormat::PlainText);
        assert!(matches!(encode(b"{\"a\": 1}", j).0, Bson::Document(_)));
        assert!(matches!(encode(b"{\"a\": 1}", t).0, Bson::String(_)));
        assert!(matches!(encode(b"[1]", j).0, Bson::String(_)));
        assert!(matches!(encode(b"{\"a.b\": 1}", j).0, Bson::String(_)));
        assert!(matches!(encode(b"{\"$a\": 1}", j).0, Bson::String(_)));
        assert!(matches!(encode(&[0xff, 0], j).0, Bson::Binary(_)));
        assert!(matches!(encode(&[0xff, 0], None).0, Bson::Binary(_)));
        for p in [
            &b"{ \"b\":1, \"a\" : 2.50 }"[..],
            b"{\"a\":1,\"a\":2}",
            b"{\"n\":123456789012345678901234567890}",
            b"",
            b"\0",
            &[0xc3, 0x28],
        ] {
            for f in [j, t, None] {
                assert_eq!(roundtrip(p, f), p);
            }
        }
        let deep = format!("{}1{}", "{\"a\":".repeat(100), "}".repeat(100));
        assert!(matches!(encode(deep.as_bytes(), j).0, Bson::String(_)));
    }
}
