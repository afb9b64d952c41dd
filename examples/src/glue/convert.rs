//! rmqtt's types to and from backend-core's: QoS, MQTT 5 properties, a
//! stored message as an rmqtt publish, and the user properties that carry
//! a stored message's id through rmqtt.

use backend_core::{Message, Properties, QoS, Timestamp};
use bytestring::ByteString;
use rmqtt::codec::types::Publish as CodecPublish;
use rmqtt::codec::v5::PublishProperties;
use rmqtt::types::{Publish, QoS as RQoS};

use super::{FETCHED_PROPERTY, MESSAGE_ID_PROPERTY};

pub(crate) fn from_rmqtt_qos(q: RQoS) -> QoS {
    match q {
        RQoS::AtMostOnce => QoS::AtMostOnce,
        RQoS::AtLeastOnce => QoS::AtLeastOnce,
        RQoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

pub(crate) fn to_rmqtt_qos(q: QoS) -> RQoS {
    match q {
        QoS::AtMostOnce => RQoS::AtMostOnce,
        QoS::AtLeastOnce => RQoS::AtLeastOnce,
        QoS::ExactlyOnce => RQoS::ExactlyOnce,
    }
}

/// A stored message as rmqtt delivers it, tagged with its id.
///
/// Its MQTT 5 properties go with it, the message expiry already counted
/// down by the adapter (so rmqtt counts from now).
pub(crate) fn to_publish(m: &Message, retain: bool, granted: RQoS) -> Publish {
    let qos = to_rmqtt_qos(m.qos).less_value(granted);
    let inner = CodecPublish {
        dup: false,
        retain,
        qos,
        topic: ByteString::from(m.topic.as_str()),
        packet_id: None,
        payload: m.payload.clone(),
        properties: to_rmqtt_properties(&m.properties),
    };
    let p = Publish {
        inner: Box::new(inner),
        target_clientid: None,
        delay_interval: None,
        create_time: Some(Timestamp::now().as_millis()),
    };
    if qos == RQoS::AtMostOnce {
        p
    } else {
        with_message_id(p, &m.id)
    }
}

/// The MQTT 5 properties storage keeps, from rmqtt's (without the ones
/// this glue adds, and without the connection's topic alias and
/// subscription ids).
pub(crate) fn from_rmqtt_properties(p: Option<&PublishProperties>) -> Properties {
    let Some(p) = p else {
        return Properties::default();
    };
    Properties {
        payload_format_indicator: p.is_utf8_payload.then_some(1),
        message_expiry_interval: p.message_expiry_interval.map(|n| n.get()),
        content_type: p.content_type.as_ref().map(|s| s.to_string()),
        response_topic: p.response_topic.as_ref().map(|s| s.to_string()),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .filter(|(k, _)| k != MESSAGE_ID_PROPERTY && k != FETCHED_PROPERTY)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn to_rmqtt_properties(p: &Properties) -> Option<PublishProperties> {
    if p.is_empty() {
        return None;
    }
    Some(PublishProperties {
        is_utf8_payload: p.payload_format_indicator == Some(1),
        message_expiry_interval: p
            .message_expiry_interval
            .and_then(std::num::NonZeroU32::new),
        content_type: p.content_type.as_deref().map(ByteString::from),
        response_topic: p.response_topic.as_deref().map(ByteString::from),
        correlation_data: p.correlation_data.clone(),
        user_properties: p
            .user_properties
            .iter()
            .map(|(k, v)| (ByteString::from(k.as_str()), ByteString::from(v.as_str())))
            .collect(),
        ..PublishProperties::default()
    })
}

pub(crate) fn with_message_id(p: Publish, id: &str) -> Publish {
    with_property(p, MESSAGE_ID_PROPERTY, id)
}

fn with_property(mut p: Publish, key: &'static str, value: &str) -> Publish {
    let props = p.properties.get_or_insert_with(PublishProperties::default);
    props
        .user_properties
        .push((ByteString::from_static(key), ByteString::from(value)));
    p
}

/// Marks a message delivered from the backend's fetch.
pub(crate) fn fetched(p: Publish) -> Publish {
    if p.qos == RQoS::AtMostOnce {
        return p;
    }
    with_property(p, FETCHED_PROPERTY, "1")
}

pub(crate) fn has_property(p: &Publish, key: &str) -> bool {
    p.properties
        .as_ref()
        .is_some_and(|props| props.user_properties.iter().any(|(k, _)| k == key))
}

pub(crate) fn message_id(p: &Publish) -> Option<String> {
    p.properties
        .as_ref()?
        .user_properties
        .iter()
        .find(|(k, _)| k == MESSAGE_ID_PROPERTY)
        .map(|(_, v)| v.to_string())
}

/// The message without its id property (and without properties at all if
/// that was the only one), and the id.
pub(crate) fn without_message_id(p: &Publish) -> Option<(Publish, String)> {
    let id = message_id(p)?;
    let mut p = p.clone();
    if let Some(props) = p.properties.as_mut() {
        props
            .user_properties
            .retain(|(k, _)| k != MESSAGE_ID_PROPERTY && k != FETCHED_PROPERTY);
        if *props == PublishProperties::default() {
            p.properties = None;
        }
    }
    Some((p, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_property_round_trips_and_is_removed() {
        let m = Message::new("c", "t/1", QoS::AtLeastOnce, "x");
        let p = to_publish(&m, false, RQoS::ExactlyOnce);
        assert_eq!(message_id(&p).as_deref(), Some(m.id.as_str()));
        let (clean, id) = without_message_id(&p).expect("tagged");
        assert_eq!(id, m.id);
        assert!(
            clean.properties.is_none(),
            "a v3-style message gets no properties back"
        );
        let mut v5 = to_publish(&m, false, RQoS::AtLeastOnce);
        v5.properties
            .get_or_insert_with(Default::default)
            .content_type = Some("text/plain".into());
        let (clean, _) = without_message_id(&v5).expect("tagged");
        assert_eq!(
            clean.properties.as_ref().map(|p| p.content_type.clone()),
            Some(Some("text/plain".into()))
        );
        let q0 = to_publish(&m, false, RQoS::AtMostOnce);
        assert_eq!(q0.qos, RQoS::AtMostOnce, "granted QoS caps delivery");
        assert!(
            message_id(&q0).is_none(),
            "QoS 0 is never acked, so carries no id"
        );
    }
}
