//! MQTT 5 PUBLISH properties that travel with a stored message, and their
//! stored form: the properties as MQTT 5 itself encodes them in a PUBLISH
//! packet (§3.3.2.3), so any MQTT library can read a stored value.
//!
//! A message from an MQTT 3.1.1 client has none, and is stored without
//! them (NULL, or no field). A row written by another tool without them
//! reads as a message without properties.

use bytes::Bytes;

use crate::message::Timestamp;

/// The MQTT 5 properties of a PUBLISH that storage keeps: those that
/// describe the application message (MQTT 5 §3.3.2.3). Topic aliases and
/// subscription identifiers belong to one connection and are not kept.
///
/// ```
/// use backend_core::Properties;
/// let p = Properties {
///     content_type: Some("application/json".into()),
///     message_expiry_interval: Some(300),
///     user_properties: vec![("k".into(), "v".into())],
///     ..Properties::default()
/// };
/// let stored = p.encode();
/// assert_eq!(Properties::decode(&stored).unwrap(), p);
/// assert!(Properties::default().encode().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    /// Payload Format Indicator: 0 unspecified bytes, 1 UTF-8 text.
    pub payload_format_indicator: Option<u8>,
    /// Message Expiry Interval in seconds, as the publisher sent it.
    pub message_expiry_interval: Option<u32>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User Properties, in order (a name may repeat).
    pub user_properties: Vec<(String, String)>,
}

/// A stored properties value that is not MQTT 5's encoding of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored MQTT 5 properties unreadable at byte {at}: {problem}")]
pub struct PropertiesError {
    /// Where in the value.
    pub at: usize,
    /// What is wrong.
    pub problem: &'static str,
}

const PAYLOAD_FORMAT: u8 = 0x01;
const MESSAGE_EXPIRY: u8 = 0x02;
const CONTENT_TYPE: u8 = 0x03;
const RESPONSE_TOPIC: u8 = 0x08;
const CORRELATION_DATA: u8 = 0x09;
const USER_PROPERTY: u8 = 0x26;

/// What a message's expiry says at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// It has no Message Expiry Interval.
    Never,
    /// It expires in this many seconds (rounded up, at least 1): the
    /// interval to send with it [MQTT-3.3.2-6].
    Left(u32),
    /// Its interval has passed: it must not be delivered [MQTT-3.3.2-5].
    Expired,
}

impl Properties {
    /// Whether there are none (an MQTT 3.1.1 message).
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// The properties in MQTT 5's encoding, without the leading length;
    /// empty when there are none. A string or binary value longer than
    /// MQTT allows (65,535 bytes), which no MQTT packet can carry, is cut
    /// at that length (at a character boundary).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(v) = self.payload_format_indicator {
            out.extend([PAYLOAD_FORMAT, v]);
        }
        if let Some(v) = self.message_expiry_interval {
            out.push(MESSAGE_EXPIRY);
            out.extend(v.to_be_bytes());
        }
        if let Some(v) = &self.content_type {
            out.push(CONTENT_TYPE);
            put_str(&mut out, v);
        }
        if let Some(v) = &self.response_topic {
            out.push(RESPONSE_TOPIC);
            put_str(&mut out, v);
        }
        if let Some(v) = &self.correlation_data {
            out.push(CORRELATION_DATA);
            put_bytes(&mut out, &v[..v.len().min(u16::MAX as usize)]);
        }
        for (k, v) in &self.user_properties {
            out.push(USER_PROPERTY);
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        out
    }

    /// Reads [`Properties::encode`]'s form (any MQTT 5 encoder's, for
    /// these properties); empty bytes are no properties.
    pub fn decode(bytes: &[u8]) -> Result<Properties, PropertiesError> {
        let mut r = Reader { bytes, at: 0 };
        let mut p = Properties::default();
        while r.at < bytes.len() {
            let start = r.at;
            let id = r.byte()?;
            let twice = PropertiesError {
                at: start,
                problem: "a property that may appear once appears twice",
            };
            match id {
                PAYLOAD_FORMAT => {
                    let v = r.byte()?;
                    if v > 1 {
                        return Err(PropertiesError {
                            at: start + 1,
                            problem: "payload format indicator is neither 0 nor 1",
                        });
                    }
                    if p.payload_format_indicator.replace(v).is_some() {
                        return Err(twice);
                    }
                }
                MESSAGE_EXPIRY => {
                    if p.message_expiry_interval.replace(r.u32()?).is_some() {
                        return Err(twice);
                    }
                }
                CONTENT_TYPE => {
                    if p.content_type.replace(r.string()?).is_some() {
                        return Err(twice);
                    }
                }
                RESPONSE_TOPIC => {
                    if p.response_topic.replace(r.string()?).is_some() {
                        return Err(twice);
                    }
                }
                CORRELATION_DATA => {
                    let v = Bytes::copy_from_slice(r.binary()?);
                    if p.correlation_data.replace(v).is_some() {
                        return Err(twice);
                    }
                }
                USER_PROPERTY => {
                    let k = r.string()?;
                    let v = r.string()?;
                    p.user_properties.push((k, v));
                }
                _ => {
                    return Err(PropertiesError {
                        at: start,
                        problem: "not a property a stored message keeps",
                    })
                }
            }
        }
        Ok(p)
    }

    /// The expiry of a message that arrived at `arrived`, at `now`.
    ///
    /// ```
    /// use backend_core::{properties::Expiry, Properties, Timestamp};
    /// let p = Properties { message_expiry_interval: Some(10), ..Properties::default() };
    /// let t = Timestamp::from_secs(100);
    /// assert_eq!(p.expiry(t, Timestamp::from_millis(103_500)), Expiry::Left(7));
    /// assert_eq!(p.expiry(t, Timestamp::from_secs(110)), Expiry::Expired);
    /// assert_eq!(Properties::default().expiry(t, Timestamp::from_secs(9999)), Expiry::Never);
    /// ```
    pub fn expiry(&self, arrived: Timestamp, now: Timestamp) -> Expiry {
        let Some(interval) = self.message_expiry_interval else {
            return Expiry::Never;
        };
        let waited = now.as_millis().saturating_sub(arrived.as_millis()).max(0);
        let left_ms = i64::from(interval) * 1000 - waited;
        if left_ms <= 0 {
            return Expiry::Expired;
        }
        // Rounded up: a message with half a second left still has one.
        let secs = (left_ms + 999) / 1000;
        Expiry::Left(u32::try_from(secs).unwrap_or(interval))
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let mut end = s.len().min(u16::MAX as usize);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    put_bytes(out, &s.as_bytes()[..end]);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Callers keep `b` within u16.
    let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
    out.extend(len.to_be_bytes());
    out.extend(&b[..usize::from(len)]);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PropertiesError> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.bytes.len());
        let Some(end) = end else {
            return Err(PropertiesError {
                at: self.at,
                problem: "the value ends inside a property",
            });
        };
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, PropertiesError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PropertiesError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn binary(&mut self) -> Result<&'a [u8], PropertiesError> {
        let b = self.take(2)?;
        let n = usize::from(u16::from_be_bytes([b[0], b[1]]));
        self.take(n)
    }

    fn string(&mut self) -> Result<String, PropertiesError> {
        let at = self.at;
        let b = self.binary()?;
        String::from_utf8(b.to_vec()).map_err(|_| PropertiesError {
            at,
            problem: "a string that is not UTF-8",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn properties() -> impl Strategy<Value = Properties> {
        (
            proptest::option::of(0u8..2),
            proptest::option::of(any::<u32>()),
            proptest::option::of(".{0,20}"),
            proptest::option::of("[a-z/]{0,20}"),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            proptest::collection::vec((".{0,10}", ".{0,10}"), 0..5),
        )
            .prop_map(|(f, e, c, r, d, u)| Properties {
                payload_format_indicator: f,
                message_expiry_interval: e,
                content_type: c,
                response_topic: r,
                correlation_data: d.map(Bytes::from),
                user_properties: u,
            })
    }

    proptest! {
        /// What is encoded decodes to itself.
        #[test]
        fn round_trip(p in properties()) {
            prop_assert_eq!(Properties::decode(&p.encode()), Ok(p));
        }

        /// Any bytes decode to properties or an error, never a panic; what
        /// decodes encodes back to bytes that decode the same.
        #[test]
        fn any_bytes_are_safe(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = Properties::decode(&bytes) {
                prop_assert_eq!(Properties::decode(&p.encode()), Ok(p));
            }
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = Properties::decode(&[0x03, 0x00, 0x05, b'a']).expect_err("cut short");
        assert_eq!(e.problem, "the value ends inside a property");
        let e = Properties::decode(&[0x01, 0x07]).expect_err("bad indicator");
        assert_eq!(e.at, 1);
        let e = Properties::decode(&[0x0B, 0x01]).expect_err("a subscription id");
        assert_eq!(e.problem, "not a property a stored message keeps");
        let e = Properties::decode(&[0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2]).expect_err("twice");
        assert_eq!(e.at, 5);
        let e = Properties::decode(&[0x03, 0x00, 0x01, 0xFF]).expect_err("not UTF-8");
        assert_eq!(e.problem, "a string that is not UTF-8");
    }

    #[test]
    fn an_overlong_string_is_cut_at_a_character() {
        let long = "é".repeat(40_000);
        let p = Properties {
            content_type: Some(long),
            ..Properties::default()
        };
        let back = Properties::decode(&p.encode()).expect("decodes");
        let cut = back.content_type.expect("kept");
        assert!(cut.len() <= 65_535 && cut.chars().all(|c| c == 'é'));
    }
}
