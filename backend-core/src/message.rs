//! MQTT messages and the small value types around them: [`QoS`],
//! [`Timestamp`], message ids and subscriptions.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::properties::{Expiry, Properties};

/// MQTT quality of service.
///
/// ```
/// use backend_core::QoS;
/// assert_eq!(QoS::try_from(1u8), Ok(QoS::AtLeastOnce));
/// assert!(QoS::try_from(3u8).is_err());
/// assert_eq!(QoS::ExactlyOnce.as_u8(), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum QoS {
    /// QoS 0: fire and forget; never stored as an offline message.
    AtMostOnce = 0,
    /// QoS 1.
    AtLeastOnce = 1,
    /// QoS 2.
    ExactlyOnce = 2,
}

impl QoS {
    /// The numeric level, 0 to 2.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// A QoS level outside 0..=2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid QoS {0}: must be 0, 1 or 2")]
pub struct InvalidQoS(pub i64);

impl TryFrom<u8> for QoS {
    type Error = InvalidQoS;
    fn try_from(v: u8) -> Result<Self, InvalidQoS> {
        QoS::try_from(i64::from(v))
    }
}

impl TryFrom<i64> for QoS {
    type Error = InvalidQoS;
    fn try_from(v: i64) -> Result<Self, InvalidQoS> {
        match v {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            other => Err(InvalidQoS(other)),
        }
    }
}

impl From<QoS> for u8 {
    fn from(q: QoS) -> u8 {
        q.as_u8()
    }
}

impl fmt::Display for QoS {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u8())
    }
}

/// A point in time, milliseconds since the Unix epoch (UTC).
///
/// ```
/// use backend_core::Timestamp;
/// let t = Timestamp::from_secs(1_481_685_802);
/// assert_eq!(t.as_secs(), 1_481_685_802);
/// assert_eq!(t.as_millis(), 1_481_685_802_000);
/// assert!(Timestamp::now() > t);
/// ```
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        Timestamp(i64::try_from(millis).unwrap_or(i64::MAX))
    }

    /// From milliseconds since the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// From whole seconds since the epoch.
    pub const fn from_secs(secs: i64) -> Self {
        Timestamp(secs.saturating_mul(1000))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn as_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// This time minus `d`, saturating.
    pub fn saturating_sub(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

/// Makes a new message id: 32 upper-case hex digits, unique across processes
/// and ordered by creation time within one process (a 48-bit millisecond
/// clock, a 32-bit counter and a 48-bit per-process random number), in the
/// spirit of EMQX's GUIDs. Brokers that have their own ids may use them
/// instead: a backend treats the id as an opaque string.
///
/// ```
/// let a = backend_core::new_message_id();
/// let b = backend_core::new_message_id();
/// assert_eq!(a.len(), 32);
/// assert_ne!(a, b);
/// ```
pub fn new_message_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    static NODE: OnceLock<u64> = OnceLock::new();
    let node = *NODE.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish() & 0xFFFF_FFFF_FFFF
    });
    let millis = Timestamp::now().as_millis() as u64 & 0xFFFF_FFFF_FFFF;
    let seq = COUNTER.fetch_add(1, Ordering::Relaxed);
    id_text(millis, seq, node)
}

/// `millis` (12 hex digits), `seq` (8) and `node` (12), upper case. Written
/// digit by digit: this runs for every message published.
fn id_text(millis: u64, seq: u32, node: u64) -> String {
    let mut id = [0u8; 32];
    let mut at = 0;
    for (value, digits) in [(millis, 12), (u64::from(seq), 8), (node, 12)] {
        for i in (0..digits).rev() {
            let nibble = ((value >> (i * 4)) & 0xF) as usize;
            id[at] = b"0123456789ABCDEF"[nibble];
            at += 1;
        }
    }
    // Hex digits only: valid UTF-8, so this is one copy.
    String::from_utf8_lossy(&id).into_owned()
}

/// An MQTT application message as the backends store and return it.
///
/// ```
/// use backend_core::{Message, QoS};
/// let m = Message::new("sensor-1", "room/1/temp", QoS::AtLeastOnce, "21.5");
/// assert_eq!(m.sender, "sensor-1");
/// assert_eq!(&m.payload[..], b"21.5");
/// assert!(!m.retain);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Unique message id (see [`new_message_id`]).
    pub id: String,
    /// Client id of the publisher.
    pub sender: String,
    /// Username of the publisher, if it logged in with one.
    pub username: Option<String>,
    /// Topic name the message was published to.
    pub topic: String,
    /// QoS it was published with.
    pub qos: QoS,
    /// The retain flag.
    pub retain: bool,
    /// Payload bytes (MQTT payloads are binary).
    pub payload: Bytes,
    /// When the broker received it.
    pub timestamp: Timestamp,
    /// Its MQTT 5 properties (none for an MQTT 3.1.1 message).
    pub properties: Properties,
}

impl Message {
    /// A message with a fresh id, no username, retain unset, received now.
    pub fn new(
        sender: impl Into<String>,
        topic: impl Into<String>,
        qos: QoS,
        payload: impl Into<Bytes>,
    ) -> Self {
        Message {
            id: new_message_id(),
            sender: sender.into(),
            username: None,
            topic: topic.into(),
            qos,
            retain: false,
            payload: payload.into(),
            timestamp: Timestamp::now(),
            properties: Properties::default(),
        }
    }

    /// Sets the retain flag.
    pub fn retained(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }
}

/// The columns of a row a SQL backend reads back (a message, a retained
/// message, a subscription), each converted by the backend's driver: what
/// [`Message::from_row`] needs. Column numbers count from 0.
pub trait Columns {
    /// The backend's error; a value of the wrong kind becomes a
    /// [`CommonError::Data`](crate::CommonError::Data).
    type Error: From<crate::CommonError>;
    /// The table, for errors (`mqtt_msg`).
    fn table(&self) -> &str;
    /// A text column; NULL is empty.
    fn text(&mut self, i: usize) -> Result<String, Self::Error>;
    /// An integer column; NULL is `None`.
    fn int(&mut self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// A payload column; NULL is empty.
    fn bytes(&mut self, i: usize) -> Result<Bytes, Self::Error>;
    /// A time column; NULL (or a value that is no time) is `None`.
    fn time(&mut self, i: usize) -> Result<Option<Timestamp>, Self::Error>;

    /// A QoS column: 0, 1 or 2, or an error naming the table.
    fn qos(&mut self, i: usize) -> Result<QoS, Self::Error> {
        let n = self.int(i)?;
        let qos = n
            .ok_or_else(|| "NULL".to_owned())
            .and_then(|n| QoS::try_from(n).map_err(|e| e.to_string()));
        Ok(qos.map_err(|problem| {
            crate::CommonError::data(format!("{}.qos", self.table()), problem)
        })?)
    }
}

impl Message {
    /// A message read back from a row of `topic, msgid, sender, qos,
    /// [retain,] payload, arrived, props`: the SQL backends' message and
    /// retained tables. Without `retain_col` (the retained table has none)
    /// the message is retained. A QoS other than 0, 1 or 2 is an error that
    /// names the table; a missing time reads as the epoch; NULL properties
    /// are none (see [`Message::properties_from`]).
    pub fn from_row<R: Columns>(row: &mut R, retain_col: bool) -> Result<Message, R::Error> {
        let topic = row.text(0)?;
        let id = row.text(1)?;
        let at = if retain_col { 7 } else { 6 };
        let properties = Message::properties_from(&row.bytes(at)?, &topic);
        let sender = row.text(2)?;
        let qos = row.qos(3)?;
        let (retain, rest) = match retain_col {
            true => (row.int(4)?.unwrap_or(0) != 0, 5),
            false => (true, 4),
        };
        Ok(Message {
            id,
            sender,
            username: None,
            topic,
            qos,
            retain,
            payload: row.bytes(rest)?,
            timestamp: row.time(rest + 1)?.unwrap_or_default(),
            properties,
        })
    }

    /// Stored properties read back: empty bytes are none, and a value
    /// that is not MQTT 5's encoding (written by another tool) is logged
    /// and read as none, so the message itself is still delivered.
    pub fn properties_from(stored: &[u8], topic: &str) -> Properties {
        Properties::decode(stored).unwrap_or_else(|e| {
            tracing::warn!(%topic, error = %e, "a stored message's properties are unreadable; delivered without them");
            Properties::default()
        })
    }

    /// Its properties as a backend stores them ([`Properties::encode`]):
    /// `None` (NULL, no field) when it has none.
    pub fn stored_properties(&self) -> Option<Vec<u8>> {
        (!self.properties.is_empty()).then(|| self.properties.encode())
    }

    /// What is left of its MQTT 5 message expiry at `now`.
    pub fn expiry(&self, now: Timestamp) -> Expiry {
        self.properties.expiry(self.timestamp, now)
    }
}

/// A subscription: a topic filter and the maximum QoS granted.
///
/// ```
/// use backend_core::{QoS, Subscription};
/// let s = Subscription::new("room/+/temp", QoS::AtLeastOnce);
/// assert_eq!(s.filter, "room/+/temp");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subscription {
    /// The topic filter.
    #[serde(alias = "topic")]
    pub filter: String,
    /// The QoS.
    pub qos: QoS,
}

impl Subscription {
    /// A subscription to `filter` at `qos`.
    pub fn new(filter: impl Into<String>, qos: QoS) -> Self {
        Subscription {
            filter: filter.into(),
            qos,
        }
    }
}

/// The last occurrence of each key, in slice order: a batch applied in
/// order, with each key written once (a row twice in one statement is an
/// error for SQL upserts; a message id twice is one message).
///
/// ```
/// use backend_core::message::last_of_each;
/// let got: Vec<&&str> = last_of_each(&["a", "b", "a", "c", "b"], |s| s);
/// assert_eq!(got, [&"a", &"c", &"b"]);
/// ```
pub fn last_of_each<T>(items: &[T], key: impl Fn(&T) -> &str) -> Vec<&T> {
    let mut last: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        last.insert(key(it), i);
    }
    items
        .iter()
        .enumerate()
        .filter(|(i, it)| last.get(key(it)) == Some(i))
        .map(|(_, it)| it)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_conversions() {
        for (n, q) in [
            (0u8, QoS::AtMostOnce),
            (1, QoS::AtLeastOnce),
            (2, QoS::ExactlyOnce),
        ] {
            assert_eq!(QoS::try_from(n), Ok(q));
            assert_eq!(u8::from(q), n);
            assert_eq!(q.to_string(), n.to_string());
        }
        assert_eq!(QoS::try_from(-1i64), Err(InvalidQoS(-1)));
        assert!(serde_json::from_str::<QoS>("7").is_err());
        assert_eq!(
            serde_json::from_str::<QoS>("2").ok(),
            Some(QoS::ExactlyOnce)
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(Timestamp::from_millis(-1).as_secs(), -1);
        assert_eq!(Timestamp::from_millis(1999).as_secs(), 1);
        let t = Timestamp::from_secs(100);
        assert_eq!(
            t.saturating_sub(Duration::from_secs(40)),
            Timestamp::from_secs(60)
        );
        assert_eq!(
            Timestamp::from_millis(i64::MIN).saturating_sub(Duration::from_secs(1)),
            Timestamp::from_millis(i64::MIN)
        );
    }

    #[test]
    fn id_text_is_fixed_width_upper_hex() {
        for (millis, seq, node) in [
            (0, 0, 0),
            (0x0123_4567_89AB, 0xCDEF_0123, 0xFFFF_FFFF_FFFF),
            (1_700_000_000_000, 7, 42),
        ] {
            assert_eq!(
                id_text(millis, seq, node),
                format!("{millis:012X}{seq:08X}{node:012X}")
            );
        }
    }

    #[test]
    fn message_ids_are_unique_and_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_message_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "ids are unique and in creation order");
        assert!(ids.iter().all(|id| id.len() == 32));
    }
}
