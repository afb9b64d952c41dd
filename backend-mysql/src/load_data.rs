//! Messages as the text stream of `LOAD DATA LOCAL INFILE`: the bulk path
//! of message stores. The rows go to the server as one escaped stream,
//! written straight from the messages, instead of eight bound values per
//! row; the statement's text is constant and carries no value.
//!
//! The format is `LOAD DATA`'s default one: fields end with a tab, rows
//! with a newline, the escape character is a backslash, and `\N` is NULL.
//! Every tab, newline and backslash of a value is escaped, so
//! any bytes (a binary payload, a topic with a tab in it) arrive as they
//! were. The stream is read with `CHARACTER SET binary`: no conversion.

use backend_core::{Bytes, Message, Timestamp};

use crate::convert::civil;

/// Most bytes of the stream in one packet: the driver copies each piece
/// into a packet buffer of its own, so none grows past it.
const PIECE_BYTES: usize = 1 << 20;

/// The messages as the rows of [`crate::statements::LOAD_MESSAGES`]:
/// msgid, sender, topic, qos, retain, payload, arrived, props. `Err` names
/// the first message whose arrival time is outside `DATETIME`'s range.
pub(crate) fn encode(messages: &[Message]) -> Result<Vec<u8>, Timestamp> {
    let mut out = Vec::with_capacity(row_estimate(messages));
    for m in messages {
        field(&mut out, m.id.as_bytes());
        out.push(b'\t');
        field(&mut out, m.sender.as_bytes());
        out.push(b'\t');
        field(&mut out, m.topic.as_bytes());
        out.push(b'\t');
        out.push(b'0' + m.qos.as_u8());
        out.push(b'\t');
        out.push(if m.retain { b'1' } else { b'0' });
        out.push(b'\t');
        field(&mut out, &m.payload);
        out.push(b'\t');
        if !datetime(&mut out, m.timestamp) {
            return Err(m.timestamp);
        }
        out.push(b'\t');
        match m.stored_properties() {
            Some(props) => field(&mut out, &props),
            None => out.extend_from_slice(b"\\N"),
        }
        out.push(b'\n');
    }
    Ok(out)
}

/// The stream in the pieces it is sent in, one packet each: at most 1 MiB,
/// and at most half the server's `max_allowed_packet`, which applies to
/// each packet of the stream. The server joins them, so a piece may end
/// anywhere, even inside a row. Slices of one buffer: nothing is copied.
pub(crate) fn pieces(stream: Vec<u8>, max_packet: usize) -> Vec<Bytes> {
    let size = (max_packet / 2).clamp(512, PIECE_BYTES);
    let stream = Bytes::from(stream);
    (0..stream.len())
        .step_by(size)
        .map(|start| stream.slice(start..(start + size).min(stream.len())))
        .collect()
}

/// The stream's size if nothing needed escaping.
fn row_estimate(messages: &[Message]) -> usize {
    messages
        .iter()
        .map(|m| m.id.len() + m.sender.len() + m.topic.len() + m.payload.len() + 40)
        .sum()
}

/// Appends `value` with its tabs, newlines and backslashes escaped; runs
/// of other bytes are copied whole. A NUL byte needs no escape on input:
/// the server reads it as itself.
fn field(out: &mut Vec<u8>, value: &[u8]) {
    let mut rest = value;
    while let Some(i) = memchr::memchr3(b'\t', b'\n', b'\\', rest) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(match rest[i] {
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            _ => b"\\\\",
        });
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends `t` as `YYYY-MM-DD HH:MM:SS.mmm` (UTC); `false`, with nothing
/// appended, outside the years 0 to 9999.
fn datetime(out: &mut Vec<u8>, t: Timestamp) -> bool {
    let Some((y, mo, d, h, mi, s, ms)) = civil(t) else {
        return false;
    };
    let digits = |out: &mut Vec<u8>, mut v: u32, n: usize| {
        let mut text = [b'0'; 4];
        for d in text[..n].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        out.extend_from_slice(&text[..n]);
    };
    // YYYY-MM-DD HH:MM:SS.mmm: each part, then what follows it.
    for (v, n, then) in [
        (y, 4, b'-'),
        (mo, 2, b'-'),
        (d, 2, b' '),
        (h, 2, b':'),
        (mi, 2, b':'),
        (s, 2, b'.'),
    ] {
        digits(out, v, n);
        out.push(then);
    }
    digits(out, ms, 3);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_core::QoS;
    use proptest::prelude::*;

    /// Reads a stream back as `LOAD DATA` does with its default format:
    /// rows of fields, `None` for `\N`.
    fn decode(stream: &[u8]) -> Vec<Vec<Option<Vec<u8>>>> {
        let mut rows = Vec::new();
        let mut row = Vec::new();
        let mut field = Vec::new();
        let mut null = false;
        let mut bytes = stream.iter();
        while let Some(&b) = bytes.next() {
            match b {
                b'\\' => match bytes.next() {
                    Some(b'N') if field.is_empty() => null = true,
                    Some(b't') => field.push(b'\t'),
                    Some(b'n') => field.push(b'\n'),
                    Some(b'0') => field.push(0),
                    Some(&other) => field.push(other),
                    None => panic!("the stream ends in an escape"),
                },
                b'\t' | b'\n' => {
                    row.push((!null).then(|| std::mem::take(&mut field)));
                    null = false;
                    if b == b'\n' {
                        rows.push(std::mem::take(&mut row));
                    }
                }
                _ => field.push(b),
            }
        }
        assert!(field.is_empty() && row.is_empty(), "a row is left unended");
        rows
    }

    fn joined(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn a_row_carries_every_column_in_order() {
        let mut m = Message::new("c\\1", "a/\tb", QoS::ExactlyOnce, vec![0u8, b'\n', b'x']);
        m.retain = true;
        m.timestamp = Timestamp::from_millis(1_481_685_802_123);
        let stream = encode(&[m.clone()]).expect("in range");
        let row = &decode(&stream)[0];
        let text = |s: &str| Some(s.as_bytes().to_vec());
        assert_eq!(row.len(), 8);
        assert_eq!(row[0], text(&m.id));
        assert_eq!(row[1], text("c\\1"));
        assert_eq!(row[2], text("a/\tb"));
        assert_eq!(row[3], text("2"));
        assert_eq!(row[4], text("1"));
        assert_eq!(row[5], Some(vec![0u8, b'\n', b'x']));
        assert_eq!(row[6], text("2016-12-14 03:23:22.123"));
        assert_eq!(row[7], None, "no properties: NULL");
    }

    #[test]
    fn an_arrival_outside_datetime_is_refused() {
        let mut m = Message::new("c", "t", QoS::AtLeastOnce, "p");
        m.timestamp = Timestamp::from_millis(253_402_300_800_000); // year 10000
        assert_eq!(encode(&[m.clone()]), Err(m.timestamp));
    }

    #[test]
    fn the_stream_goes_in_pieces_below_the_packet_limit() {
        let messages: Vec<Message> = (0..40)
            .map(|i| {
                Message::new(
                    "c",
                    format!("t/{i}"),
                    QoS::AtLeastOnce,
                    vec![b'\\'; 64 << 10],
                )
            })
            .collect();
        let stream = encode(&messages).expect("in range");
        for (max_packet, most) in [(64 << 20, PIECE_BYTES), (100_000, 50_000), (1024, 512)] {
            let pieces = pieces(stream.clone(), max_packet);
            assert!(pieces.len() > 1, "{max_packet}: {} pieces", pieces.len());
            assert!(
                pieces.iter().all(|p| !p.is_empty() && p.len() <= most),
                "{max_packet}"
            );
            assert_eq!(
                joined(&pieces),
                stream,
                "{max_packet}: the same bytes, in order"
            );
        }
        assert_eq!(decode(&stream).len(), 40);
        assert!(pieces(Vec::new(), 1 << 20).is_empty());
    }

    proptest! {
        #[test]
        fn any_values_come_back_as_they_were(
            sender in "\\PC{0,12}",
            topic in "[a-z\t\n\\\\/]{1,12}",
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            ms in 0i64..253_402_300_800_000,
            expiry in proptest::option::of(any::<u32>()),
        ) {
            let mut m = Message::new(sender.clone(), topic.clone(), QoS::AtLeastOnce, payload.clone());
            m.timestamp = Timestamp::from_millis(ms);
            m.properties.message_expiry_interval = expiry;
            let stream = encode(&[m.clone(), m.clone()]).expect("in range");
            let rows = decode(&stream);
            prop_assert_eq!(rows.len(), 2);
            prop_assert_eq!(&rows[0], &rows[1]);
            prop_assert_eq!(rows[0][1].as_deref(), Some(sender.as_bytes()));
            prop_assert_eq!(rows[0][2].as_deref(), Some(topic.as_bytes()));
            prop_assert_eq!(rows[0][5].as_deref(), Some(&payload[..]));
            prop_assert_eq!(rows[0][7].clone(), m.stored_properties());
        }
    }
}
