//! Entry points for the workspace's fuzz harness (feature `fuzzing`):
//! each takes raw bytes, feeds one parser of this crate and panics only on
//! a bug. Not a stable API.

use backend_core::Row;

use crate::backend::{decode_message, flatten};
use crate::channel::ChannelCommand;

/// Tokens of channel messages.
pub const CHANNEL_DICT: &[&[u8]] = &[
    b"{",
    b"}",
    b"\"type\"",
    b"\"subscribe\"",
    b"\"unsubscribe\"",
    b"\"topic\"",
    b"\"clientid\"",
    b"\"qos\"",
    b":",
    b",",
    b"\"0\"",
    b"2",
    b"3",
    b"-1",
    b"null",
    b"[]",
    b"\"a/+\"",
    b"\"#\"",
    b"\"\"",
    b"\\u0000",
    b"1e400",
];

/// Channel messages as the seed and other tools send them.
pub fn channel_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": "0"}"#,
        r#"{"type": "unsubscribe", "topic": "a/+/c", "clientid": "c1"}"#,
        r##"{"type":"SUBSCRIBE","topic":"#","clientid":"x","qos":2}"##,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

/// One channel message.
pub fn channel_message(data: &[u8]) {
    if let Ok(c) = ChannelCommand::parse(data) {
        assert!(!c.client_id().is_empty());
    }
}

/// Separator of the hash target's fields.
const SEP: u8 = 0xFE;

/// Tokens of message hashes.
pub const HASH_DICT: &[&[u8]] = &[
    &[SEP],
    b"1",
    b"0",
    b"2",
    b"true",
    b"false",
    b"undefined",
    b"1700000000",
    b"-1",
    b"9223372036854775807",
    b"a/b",
];

/// Message hashes: member, then id, from, qos, topic, retain, payload, ts.
pub fn hash_seeds() -> Vec<Vec<u8>> {
    let join = |fields: &[&[u8]]| fields.join(&SEP);
    vec![
        join(&[
            b"",
            b"ID1",
            b"c1",
            b"1",
            b"a/b",
            b"0",
            b"hello",
            b"1700000000",
        ]),
        join(&[b"ID2", b"", b"c2", b"2", b"a/b/c", b"1", b"\x00\xff", b"0"]),
        join(&[b"", b"ID3", b"c3", b"1", b"t"]),
    ]
}

/// A message hash read back: `member SEP field SEP field ...`.
pub fn message_hash(data: &[u8]) {
    let mut parts = data.split(|b| *b == SEP).map(<[u8]>::to_vec);
    let member = parts.next().filter(|m| !m.is_empty());
    let fields: Vec<Vec<u8>> = parts.collect();
    let _ = decode_message(member, fields);
}

/// Tokens of RESP replies.
pub const REPLY_DICT: &[&[u8]] = &[
    b"\r\n",
    b"*",
    b"$",
    b":",
    b"+",
    b"-",
    b"%",
    b"~",
    b">",
    b"|",
    b",",
    b"#",
    b"(",
    b"_",
    b"=",
    b"!",
    b"-1",
    b"*2\r\n",
    b"$3\r\nabc\r\n",
    b":1\r\n",
    b"-ERR x\r\n",
    b"_\r\n",
];

/// RESP2 and RESP3 replies.
pub fn reply_seeds() -> Vec<Vec<u8>> {
    [
        &b"*3\r\n$2\r\nid\r\n:1\r\n$-1\r\n"[..],
        b"+OK\r\n",
        b"%1\r\n+k\r\n*2\r\n,1.5\r\n#t\r\n",
        b"-WRONGTYPE Operation against a key\r\n",
        b"*2\r\n*1\r\n(123456789012345678901234567890\r\n=7\r\ntxt:abc\r\n",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect()
}

/// A reply to a raw command, flattened the way `execute` does it.
pub fn reply(data: &[u8]) {
    if let Ok(v) = redis::parse_redis_value(data) {
        let mut row = Row::new();
        let _ = flatten(v, &mut row);
    }
}
