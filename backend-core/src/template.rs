//! `${var}` templates: parsed once at config load, rendered per event into
//! a statement whose values are bound, never spliced.
//!
//! * SQL and CQL ([`QueryTemplate`]): every `${var}` becomes a placeholder
//!   (`?`, or `$1..$n` for PostgreSQL) and its value a bind parameter. Quotes
//!   written around a placeholder (`'${clientid}'`) are dropped, since the
//!   parameter is already a string.
//! * Redis commands ([`CommandTemplate`]): the text is split into arguments
//!   on spaces when parsed; a placeholder inside an argument is substituted
//!   into that argument alone and each argument travels as its own bulk
//!   string, so a value holding spaces, quotes, CR/LF or NUL can neither add
//!   nor split arguments. `${message}` as a whole argument expands into the
//!   message's hash field/value pairs.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::hook::{Event, Hook};
use crate::value::Value;

/// A template variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// `${clientid}`: the client (the publisher, for message.publish).
    ClientId,
    /// `${username}`
    Username,
    /// `${node}`: the broker node.
    Node,
    /// `${peerhost}`: the client's address.
    PeerHost,
    /// `${timestamp}`: when the event happened.
    Timestamp,
    /// `${reason}`: why a client disconnected.
    Reason,
    /// `${topic}`: the message topic, or the (un)subscribed filter without
    /// any `$share/<group>/` or `$queue/` prefix.
    Topic,
    /// `${qos}`
    Qos,
    /// `${msgid}`
    MsgId,
    /// `${retain}`: 1 or 0.
    Retain,
    /// `${payload}`: the payload bytes.
    Payload,
    /// `${message}`: Redis only, the whole message as hash field/value pairs.
    Message,
}

impl Var {
    const ALL: [Var; 12] = [
        Var::ClientId,
        Var::Username,
        Var::Node,
        Var::PeerHost,
        Var::Timestamp,
        Var::Reason,
        Var::Topic,
        Var::Qos,
        Var::MsgId,
        Var::Retain,
        Var::Payload,
        Var::Message,
    ];

    /// The name written between `${` and `}`.
    pub const fn name(self) -> &'static str {
        match self {
            Var::ClientId => "clientid",
            Var::Username => "username",
            Var::Node => "node",
            Var::PeerHost => "peerhost",
            Var::Timestamp => "timestamp",
            Var::Reason => "reason",
            Var::Topic => "topic",
            Var::Qos => "qos",
            Var::MsgId => "msgid",
            Var::Retain => "retain",
            Var::Payload => "payload",
            Var::Message => "message",
        }
    }

    /// The variable called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }

    /// The variables a hook's templates may use.
    ///
    /// ```
    /// use backend_core::{template::Var, Hook};
    /// assert!(Var::available_in(Hook::ClientDisconnected).contains(&Var::Reason));
    /// assert!(!Var::available_in(Hook::SessionSubscribed).contains(&Var::Payload));
    /// ```
    pub fn available_in(hook: Hook) -> &'static [Var] {
        use Var::*;
        match hook {
            Hook::ClientConnected => &[ClientId, Username, Node, PeerHost, Timestamp],
            Hook::ClientDisconnected => &[ClientId, Username, Node, Reason, Timestamp],
            Hook::SessionSubscribed => &[ClientId, Username, Node, PeerHost, Topic, Qos],
            Hook::SessionUnsubscribed => &[ClientId, Username, Node, PeerHost, Topic],
            Hook::MessagePublish => &[
                MsgId, ClientId, Username, Topic, Qos, Retain, Payload, Timestamp, Message,
            ],
            Hook::MessageAcked | Hook::MessageDelivered => {
                &[MsgId, ClientId, Username, Node, PeerHost, Topic, Qos]
            }
        }
    }

    /// This variable's value in `event` (`Null` where the event lacks it).
    pub fn value(self, event: &Event<'_>) -> Value {
        use crate::topic::strip_shared;
        match (self, event) {
            (Var::ClientId, Event::Publish(m)) => m.sender.as_str().into(),
            (Var::Username, Event::Publish(m)) => m.username.as_deref().into(),
            (Var::ClientId | Var::Username | Var::Node | Var::PeerHost, e) => match e.client() {
                Some(c) => match self {
                    Var::ClientId => c.client_id.as_str().into(),
                    Var::Username => c.username.as_deref().into(),
                    // An adapter that does not know the node leaves it empty.
                    Var::Node if c.node.is_empty() => Value::Null,
                    Var::Node => c.node.as_str().into(),
                    _ => c.peer_host.as_deref().into(),
                },
                None => Value::Null,
            },
            (Var::Timestamp, Event::Connected(e)) => Value::Time(e.timestamp),
            (Var::Timestamp, Event::Disconnected(e)) => Value::Time(e.timestamp),
            (Var::Timestamp, Event::Publish(m)) => Value::Time(m.timestamp),
            (Var::Reason, Event::Disconnected(e)) => e.reason.as_str().into(),
            (Var::Topic, Event::Subscribed(e)) => strip_shared(&e.filter).into(),
            (Var::Topic, Event::Unsubscribed(e)) => strip_shared(&e.filter).into(),
            (Var::Topic, Event::Publish(m)) => m.topic.as_str().into(),
            (Var::Topic, Event::Acked(d) | Event::Delivered(d)) => d.topic.as_str().into(),
            (Var::Qos, Event::Subscribed(e)) => Value::Int(e.qos.as_u8().into()),
            (Var::Qos, Event::Publish(m)) => Value::Int(m.qos.as_u8().into()),
            (Var::Qos, Event::Acked(d) | Event::Delivered(d)) => Value::Int(d.qos.as_u8().into()),
            (Var::MsgId, Event::Publish(m)) => m.id.as_str().into(),
            (Var::MsgId, Event::Acked(d) | Event::Delivered(d)) => d.message_id.as_str().into(),
            (Var::Retain, Event::Publish(m)) => Value::Int(m.retain.into()),
            (Var::Payload, Event::Publish(m)) => Value::Bytes(m.payload.clone()),
            _ => Value::Null,
        }
    }
}

impl fmt::Display for Var {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}}}", self.name())
    }
}

/// What is wrong with a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template is empty or only spaces.
    #[error("template is empty")]
    Empty,
    /// `${` without its `}`.
    #[error("`${{` at byte {0} is not closed by `}}`")]
    Unclosed(usize),
    /// A name that is no variable at all.
    #[error("unknown variable `${{{name}}}`{}", suggestion.map(|s| format!("; did you mean `${{{s}}}`?")).unwrap_or_default())]
    UnknownVariable {
        /// The name as written.
        name: String,
        /// The nearest known name.
        suggestion: Option<&'static str>,
    },
    /// A variable that the hook does not carry.
    #[error("variable `${{{name}}}` is not available in {hook} (it has {available})")]
    NotInHook {
        /// The variable.
        name: &'static str,
        /// The hook.
        hook: Hook,
        /// The variables it has, for the message.
        available: String,
    },
    /// `${message}` outside a Redis command, or inside a larger argument.
    #[error("`${{message}}` expands to field/value pairs: use it as a whole argument of a Redis command")]
    MessageNotWholeArgument,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template: literal text and variables, checked against a hook.
///
/// ```
/// use backend_core::{template::Template, Hook};
/// let t = Template::parse("insert into conn(clientid) values(${clientid})", Hook::ClientConnected)?;
/// assert_eq!(t.variables().count(), 1);
/// let err = Template::parse("values(${payload})", Hook::ClientConnected).unwrap_err();
/// assert!(err.to_string().contains("not available in client.connected"));
/// # Ok::<(), backend_core::template::TemplateError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    hook: Hook,
    parts: Vec<Part>,
}

impl Template {
    /// Parses `source` for `hook`'s events.
    pub fn parse(source: &str, hook: Hook) -> Result<Template, TemplateError> {
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        let mut offset = 0;
        while let Some(start) = rest.find("${") {
            text.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or(TemplateError::Unclosed(offset + start))?;
            let name = after[..end].trim();
            let var = Var::from_name(name).ok_or_else(|| TemplateError::UnknownVariable {
                name: name.to_owned(),
                suggestion: crate::suggest::nearest(name, Var::ALL.iter().map(|v| v.name())),
            })?;
            let available = Var::available_in(hook);
            if !available.contains(&var) {
                return Err(TemplateError::NotInHook {
                    name: var.name(),
                    hook,
                    available: available
                        .iter()
                        .map(|v| v.name())
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Var(var));
            let consumed = start + 2 + end + 1;
            offset += consumed;
            rest = &rest[consumed..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_owned(),
            hook,
            parts,
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The hook it was checked against.
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// The variables it uses, in order of appearance.
    pub fn variables(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(*v),
            Part::Text(_) => None,
        })
    }

    /// Compiles to a SQL or CQL statement with placeholders.
    ///
    /// ```
    /// use backend_core::{template::{Placeholders, Template}, Hook};
    /// let t = Template::parse("delete from mqtt_acked where clientid = '${clientid}' and topic = ${topic}", Hook::SessionUnsubscribed)?;
    /// assert_eq!(t.to_query(Placeholders::Numbered)?.text(), "delete from mqtt_acked where clientid = $1 and topic = $2");
    /// assert_eq!(t.to_query(Placeholders::Question)?.text(), "delete from mqtt_acked where clientid = ? and topic = ?");
    /// # Ok::<(), backend_core::template::TemplateError>(())
    /// ```
    pub fn to_query(&self, style: Placeholders) -> Result<QueryTemplate, TemplateError> {
        let mut text = String::with_capacity(self.source.len());
        let mut params = Vec::new();
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Text(t) => {
                    let mut t = t.as_str();
                    // Drop a quote that opens or closes a quoted placeholder.
                    if let Some(Part::Var(_)) = self.parts.get(i + 1) {
                        if let Some(q) = t.chars().last().filter(|c| *c == '\'' || *c == '"') {
                            if self.closing_quote_follows(i + 2, q) {
                                t = &t[..t.len() - 1];
                            }
                        }
                    }
                    if i > 0 {
                        if let (Some(Part::Var(_)), Some(first)) =
                            (self.parts.get(i - 1), t.chars().next())
                        {
                            if (first == '\'' || first == '"')
                                && self.opening_quote_precedes(i - 1, first)
                            {
                                t = &t[1..];
                            }
                        }
                    }
                    text.push_str(t);
                }
                Part::Var(Var::Message) => return Err(TemplateError::MessageNotWholeArgument),
                Part::Var(v) => {
                    params.push(*v);
                    match style {
                        Placeholders::Question => text.push('?'),
                        Placeholders::Numbered => {
                            text.push('$');
                            text.push_str(&params.len().to_string());
                        }
                    }
                }
            }
        }
        Ok(QueryTemplate {
            text: text.into(),
            params,
        })
    }

    fn closing_quote_follows(&self, idx: usize, q: char) -> bool {
        matches!(self.parts.get(idx), Some(Part::Text(t)) if t.starts_with(q))
    }

    fn opening_quote_precedes(&self, var_idx: usize, q: char) -> bool {
        var_idx > 0 && matches!(self.parts.get(var_idx - 1), Some(Part::Text(t)) if t.ends_with(q))
    }

    /// Compiles to a Redis command: arguments split on spaces now, values
    /// substituted per argument at render time.
    ///
    /// ```
    /// use backend_core::{template::Template, Hook};
    /// let t = Template::parse("HSET sub:${clientid} ${topic} ${qos}", Hook::SessionSubscribed)?;
    /// assert_eq!(t.to_command()?.arity(), 4);
    /// # Ok::<(), backend_core::template::TemplateError>(())
    /// ```
    pub fn to_command(&self) -> Result<CommandTemplate, TemplateError> {
        let mut args: Vec<Vec<Part>> = Vec::new();
        let mut current: Vec<Part> = Vec::new();
        for part in &self.parts {
            match part {
                Part::Var(v) => current.push(Part::Var(*v)),
                Part::Text(t) => {
                    let mut pieces = t.split(' ').peekable();
                    while let Some(piece) = pieces.next() {
                        if !piece.is_empty() {
                            current.push(Part::Text(piece.to_owned()));
                        }
                        if pieces.peek().is_some() && !current.is_empty() {
                            args.push(std::mem::take(&mut current));
                        }
                    }
                }
            }
        }
        if !current.is_empty() {
            args.push(current);
        }
        for arg in &args {
            if arg.len() > 1 && arg.contains(&Part::Var(Var::Message)) {
                return Err(TemplateError::MessageNotWholeArgument);
            }
        }
        if args.is_empty() {
            return Err(TemplateError::Empty);
        }
        Ok(CommandTemplate { args })
    }
}

/// How a query marks its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// `?` (MySQL, CQL).
    Question,
    /// `$1`, `$2`, ... (PostgreSQL).
    Numbered,
}

/// A SQL/CQL statement with placeholders and the variables bound to them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTemplate {
    text: Arc<str>,
    params: Vec<Var>,
}

impl QueryTemplate {
    /// The statement text with placeholders; fixed at config load, so a
    /// backend can prepare it once per connection.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The variables bound to the placeholders, in order.
    pub fn params(&self) -> &[Var] {
        &self.params
    }

    /// The statement for one event.
    pub fn render(&self, event: &Event<'_>) -> Statement {
        Statement::Query {
            text: Arc::clone(&self.text),
            params: self.params.iter().map(|v| v.value(event)).collect(),
        }
    }
}

/// A Redis command: arguments, each literal text and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    args: Vec<Vec<Part>>,
}

impl CommandTemplate {
    /// Number of arguments written (the command name included); `${message}`
    /// counts as one here and expands at render time.
    pub fn arity(&self) -> usize {
        self.args.len()
    }

    /// The command for one event: one byte string per argument.
    ///
    /// ```
    /// use backend_core::{template::Template, ClientInfo, Hook, Statement, SessionSubscribed, QoS, Event};
    /// let t = Template::parse("HSET sub:${clientid} ${topic} ${qos}", Hook::SessionSubscribed)?.to_command()?;
    /// let ev = SessionSubscribed { client: ClientInfo::new("a b\r\nDEL x", "node1"), filter: "t".into(), qos: QoS::AtLeastOnce };
    /// let Statement::Command { args } = t.render(&Event::Subscribed(&ev)) else { unreachable!() };
    /// assert_eq!(args.len(), 4);
    /// assert_eq!(&args[1][..], b"sub:a b\r\nDEL x");
    /// # Ok::<(), backend_core::template::TemplateError>(())
    /// ```
    pub fn render(&self, event: &Event<'_>) -> Statement {
        let mut out = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            if let [Part::Var(Var::Message)] = arg.as_slice() {
                if let Event::Publish(m) = event {
                    for (field, value) in message_fields(m) {
                        out.push(Bytes::from_static(field.as_bytes()));
                        out.push(value);
                    }
                }
                continue;
            }
            let mut buf = Vec::new();
            for part in arg {
                match part {
                    Part::Text(t) => buf.extend_from_slice(t.as_bytes()),
                    Part::Var(v) => buf.extend_from_slice(&v.value(event).to_bytes()),
                }
            }
            out.push(Bytes::from(buf));
        }
        Statement::Command { args: out }
    }
}

/// A message as the field/value pairs of the seed's `mqtt:msg:<id>` and
/// `mqtt:retain:<topic>` hashes: id, from, qos, topic, retain, payload, ts,
/// and `props` (its MQTT 5 properties, [`crate::Properties::encode`]) when
/// it has any. Shared by `${message}` and the Redis backend so both write
/// the same shape.
pub fn message_fields(m: &crate::Message) -> Vec<(&'static str, Bytes)> {
    let mut fields = Vec::with_capacity(8);
    visit_message_fields(m, |name, value| {
        let value = match name {
            // The payload is shared, not copied.
            "payload" => m.payload.clone(),
            _ => Bytes::copy_from_slice(value),
        };
        fields.push((name, value));
    });
    fields
}

/// The pairs of [`message_fields`], in the same order, handed to `visit`
/// one at a time and borrowed from the message: the write path copies
/// each value once, into the command it builds.
pub fn visit_message_fields(m: &crate::Message, mut visit: impl FnMut(&'static str, &[u8])) {
    let mut number = itoa::Buffer::new();
    visit("id", m.id.as_bytes());
    visit("from", m.sender.as_bytes());
    visit("qos", number.format(m.qos.as_u8()).as_bytes());
    visit("topic", m.topic.as_bytes());
    visit("retain", if m.retain { b"1" } else { b"0" });
    visit("payload", &m.payload);
    visit("ts", number.format(m.timestamp.as_secs()).as_bytes());
    if !m.properties.is_empty() {
        visit("props", &m.properties.encode());
    }
}

/// A compiled raw action: a query or a Redis command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementTemplate {
    /// SQL or CQL.
    Query(QueryTemplate),
    /// A Redis command.
    Command(CommandTemplate),
}

impl StatementTemplate {
    /// The statement for one event.
    pub fn render(&self, event: &Event<'_>) -> Statement {
        match self {
            StatementTemplate::Query(q) => q.render(event),
            StatementTemplate::Command(c) => c.render(event),
        }
    }
}

/// A rendered raw statement, ready for [`crate::Backend::execute`].
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// SQL or CQL text with placeholders, and the values bound to them.
    Query {
        /// The text, shared by every rendering of one template.
        text: Arc<str>,
        /// The bind values, in placeholder order.
        params: Vec<Value>,
    },
    /// A Redis command, one byte string per argument.
    Command {
        /// The arguments, the command name first.
        args: Vec<Bytes>,
    },
}

impl Statement {
    /// The text and values of a query, for a backend that runs `language`
    /// statements (`sql`, `cql`); a Redis command is an
    /// [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) error
    /// naming `backend`.
    pub fn query(
        &self,
        backend: &str,
        language: &str,
    ) -> Result<(&str, &[Value]), crate::BackendError> {
        match self {
            Statement::Query { text, params } => Ok((text, params)),
            Statement::Command { .. } => Err(crate::BackendError::new(
                crate::ErrorKind::Unsupported,
                format!("the {backend} backend runs `{language}` statements, not Redis commands"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hook::*;
    use crate::message::{Message, QoS, Timestamp};
    use proptest::prelude::*;

    fn publish() -> Message {
        let mut m = Message::new("c1", "t/1", QoS::AtLeastOnce, &b"\x00\xffhi"[..]);
        m.id = "ID1".into();
        m.username = Some("u".into());
        m.timestamp = Timestamp::from_secs(1_481_690_659);
        m
    }

    #[test]
    fn parse_errors() {
        let h = Hook::MessagePublish;
        assert_eq!(Template::parse("  ", h), Err(TemplateError::Empty));
        assert_eq!(
            Template::parse("a ${topic", h),
            Err(TemplateError::Unclosed(2))
        );
        let e = Template::parse("${topik}", h).unwrap_err();
        assert_eq!(
            e,
            TemplateError::UnknownVariable {
                name: "topik".into(),
                suggestion: Some("topic")
            }
        );
        assert!(e.to_string().contains("did you mean `${topic}`"));
        let e = Template::parse("${reason}", h).unwrap_err();
        assert!(matches!(e, TemplateError::NotInHook { name: "reason", .. }));
        assert!(e.to_string().contains("message.publish"));
        // A lone `$` or `{` is literal text.
        let t = Template::parse("SELECT '$' || '{'", h).unwrap();
        assert_eq!(t.variables().count(), 0);
    }

    #[test]
    fn every_hook_variable_renders() {
        let m = publish();
        for v in Var::available_in(Hook::MessagePublish) {
            if *v != Var::Message {
                assert!(!v.value(&Event::Publish(&m)).is_null(), "{v}");
            }
        }
        let c = ClientConnected {
            client: ClientInfo {
                client_id: "c".into(),
                username: Some("u".into()),
                node: "n".into(),
                peer_host: Some("127.0.0.1".into()),
            },
            timestamp: Timestamp::now(),
        };
        for v in Var::available_in(Hook::ClientConnected) {
            assert!(!v.value(&Event::Connected(&c)).is_null(), "{v}");
        }
        // Every client hook carries the same ClientInfo.
        let s = SessionSubscribed {
            client: c.client.clone(),
            filter: "a/+".into(),
            qos: QoS::AtLeastOnce,
        };
        for v in Var::available_in(Hook::SessionSubscribed) {
            assert!(!v.value(&Event::Subscribed(&s)).is_null(), "{v}");
        }
        let d = MessageDelivery {
            client: c.client.clone(),
            ..MessageDelivery::of(&m, "x")
        };
        for v in Var::available_in(Hook::MessageAcked) {
            assert!(!v.value(&Event::Acked(&d)).is_null(), "{v}");
        }
        assert_eq!(Var::Node.value(&Event::Acked(&d)), Value::from("n"));
        // A node the adapter does not know is NULL, not an empty string.
        let unknown = MessageDelivery::of(&m, "x");
        assert!(Var::Node.value(&Event::Delivered(&unknown)).is_null());
    }

    #[test]
    fn sql_binds_values() {
        let t = Template::parse(
            "insert into msg(msgid, topic, payload) values(${msgid}, \"${topic}\", ${payload})",
            Hook::MessagePublish,
        )
        .unwrap();
        let q = t.to_query(Placeholders::Numbered).unwrap();
        assert_eq!(
            q.text(),
            "insert into msg(msgid, topic, payload) values($1, $2, $3)"
        );
        let m = publish();
        let Statement::Query { params, .. } = q.render(&Event::Publish(&m)) else {
            panic!("not a query")
        };
        assert_eq!(
            params,
            vec![
                Value::from("ID1"),
                Value::from("t/1"),
                Value::Bytes(Bytes::from_static(b"\x00\xffhi"))
            ]
        );
        // Quotes that do not enclose a placeholder stay.
        let t = Template::parse("select 'x' || ${topic} || 'y'", Hook::MessagePublish).unwrap();
        assert_eq!(
            t.to_query(Placeholders::Question).unwrap().text(),
            "select 'x' || ? || 'y'"
        );
        let t = Template::parse("${message}", Hook::MessagePublish).unwrap();
        assert_eq!(
            t.to_query(Placeholders::Question),
            Err(TemplateError::MessageNotWholeArgument)
        );
    }

    #[test]
    fn commands_split_at_parse_time() {
        let t = Template::parse(
            "  HMSET  mqtt:msg:${msgid} ${message} x${qos}y ",
            Hook::MessagePublish,
        )
        .unwrap()
        .to_command()
        .unwrap();
        assert_eq!(t.arity(), 4);
        let mut m = publish();
        m.id = "a b".into();
        let Statement::Command { args } = t.render(&Event::Publish(&m)) else {
            panic!("not a command")
        };
        assert_eq!(args.len(), 3 + 14);
        assert_eq!(&args[0][..], b"HMSET");
        assert_eq!(&args[1][..], b"mqtt:msg:a b");
        assert_eq!(&args[2][..], b"id");
        assert_eq!(&args[12][..], b"payload");
        assert_eq!(&args[13][..], b"\x00\xffhi");
        assert_eq!(&args[16][..], b"x1y");
        let bad = Template::parse("SET k:${message}", Hook::MessagePublish).unwrap();
        assert_eq!(
            bad.to_command(),
            Err(TemplateError::MessageNotWholeArgument)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            for h in Hook::ALL {
                if let Ok(t) = Template::parse(&s, h) {
                    let _ = t.to_query(Placeholders::Numbered);
                    let _ = t.to_command();
                }
            }
        }

        #[test]
        fn hostile_values_never_change_the_argument_count(v in prop::collection::vec(any::<u8>(), 0..64)) {
            let t = Template::parse("SET k:${clientid} ${payload}", Hook::MessagePublish).unwrap().to_command().unwrap();
            let mut m = publish();
            m.sender = String::from_utf8_lossy(&v).into_owned();
            m.payload = Bytes::from(v.clone());
            let Statement::Command { args } = t.render(&Event::Publish(&m)) else { unreachable!() };
            prop_assert_eq!(args.len(), 3);
            prop_assert_eq!(&args[2][..], &v[..]);
        }
    }
}
