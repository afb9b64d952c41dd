//! Rules: `backend.<kind>.hook.<hook>.<n> = {json}`, their actions and functions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{BackendKind, ProblemKind, StatementLanguage};
use crate::hook::Hook;
use crate::suggest::nearest;
use crate::template::{StatementTemplate, Template};
use crate::topic::validate_filter;

/// A built-in function a rule can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    /// `on_client_connected`: record the client online.
    ClientConnected,
    /// `on_client_disconnected`: record the client offline.
    ClientDisconnected,
    /// `on_subscribe_lookup` (also `on_subscription_lookup`): load the
    /// client's stored subscriptions.
    SubscribeLookup,
    /// `on_message_publish`: store a QoS 1/2 message.
    MessagePublish,
    /// `on_message_retain`: store a retained message.
    MessageRetain,
    /// `on_retain_delete`: delete a topic's retained message.
    RetainDelete,
    /// `on_retain_lookup`: return the retained messages matching a filter.
    RetainLookup,
    /// `on_message_fetch[_for_queue|_for_pubsub]`: return offline messages.
    MessageFetch(OfflineMode),
    /// `on_message_acked[_for_queue|_for_pubsub]`: record an ack.
    MessageAcked(OfflineMode),
}

/// How offline messages are shared among subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OfflineMode {
    /// One-to-one: an ack deletes the message for everyone.
    Queue,
    /// One-to-many: each subscriber has its own read position.
    Pubsub,
}

impl Function {
    pub(super) const NAMES: [(&'static str, Function); 14] = [
        ("on_client_connected", Function::ClientConnected),
        ("on_client_disconnected", Function::ClientDisconnected),
        ("on_subscribe_lookup", Function::SubscribeLookup),
        ("on_subscription_lookup", Function::SubscribeLookup),
        ("on_message_publish", Function::MessagePublish),
        ("on_message_retain", Function::MessageRetain),
        ("on_retain_delete", Function::RetainDelete),
        ("on_retain_lookup", Function::RetainLookup),
        (
            "on_message_fetch",
            Function::MessageFetch(OfflineMode::Pubsub),
        ),
        (
            "on_message_fetch_for_pubsub",
            Function::MessageFetch(OfflineMode::Pubsub),
        ),
        (
            "on_message_fetch_for_queue",
            Function::MessageFetch(OfflineMode::Queue),
        ),
        (
            "on_message_acked",
            Function::MessageAcked(OfflineMode::Pubsub),
        ),
        (
            "on_message_acked_for_pubsub",
            Function::MessageAcked(OfflineMode::Pubsub),
        ),
        (
            "on_message_acked_for_queue",
            Function::MessageAcked(OfflineMode::Queue),
        ),
    ];

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Function::MessageFetch(OfflineMode::Queue) => "on_message_fetch_for_queue",
            Function::MessageFetch(OfflineMode::Pubsub) => "on_message_fetch_for_pubsub",
            Function::MessageAcked(OfflineMode::Queue) => "on_message_acked_for_queue",
            Function::MessageAcked(OfflineMode::Pubsub) => "on_message_acked_for_pubsub",
            other => Function::NAMES
                .iter()
                .find(|(_, f)| *f == other)
                .map_or("?", |(n, _)| n),
        }
    }

    /// The hook the function belongs to.
    pub fn hook(self) -> Hook {
        match self {
            Function::ClientConnected | Function::SubscribeLookup => Hook::ClientConnected,
            Function::ClientDisconnected => Hook::ClientDisconnected,
            Function::RetainLookup | Function::MessageFetch(_) => Hook::SessionSubscribed,
            Function::MessagePublish | Function::MessageRetain | Function::RetainDelete => {
                Hook::MessagePublish
            }
            Function::MessageAcked(_) => Hook::MessageAcked,
        }
    }
}

impl FromStr for Function {
    type Err = ProblemKind;
    fn from_str(s: &str) -> Result<Self, ProblemKind> {
        Function::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, f)| *f)
            .ok_or_else(|| ProblemKind::UnknownFunction {
                name: s.to_owned(),
                suggestion: nearest(s, Function::NAMES.iter().map(|(n, _)| *n)).map(str::to_owned),
            })
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// MongoDB's `payload_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PayloadFormat {
    /// A payload that is a JSON object is stored as a document; anything
    /// else as [`PayloadFormat::PlainText`] would.
    MongoJson,
    /// Valid UTF-8 as a string, other bytes as binary.
    PlainText,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A built-in function.
    Function(Function),
    /// The user's own statements, run in order.
    Statements(Vec<RawStatement>),
}

/// A user statement: its template and what it compiled to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawStatement {
    /// The parsed template.
    pub template: Template,
    /// The compiled statement.
    pub compiled: StatementTemplate,
}

/// A rule: `backend.<kind>.hook.<hook>.<n> = {...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The hook.
    pub hook: Hook,
    /// `<n>`: rules of one hook run in this order.
    pub index: u32,
    /// The topic filter the rule is limited to; `None` applies to every event.
    pub topic: Option<String>,
    /// What it does.
    pub action: Action,
    /// The pool it uses.
    pub pool: String,
    /// MongoDB's payload format for stored messages.
    pub payload_format: Option<PayloadFormat>,
    /// The `.conf` line it came from.
    pub line: Option<usize>,
}

impl Rule {
    /// The config key naming this rule (`backend.redis.hook.client.connected.1`).
    pub fn key(&self, kind: BackendKind) -> String {
        format!("backend.{}.hook.{}.{}", kind.name(), self.hook, self.index)
    }
}

/// The JSON of one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleJson {
    /// The topic filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The action.
    pub action: ActionJson,
    /// The pool.
    pub pool: String,
    /// MongoDB's payload format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_format: Option<PayloadFormat>,
}

/// The JSON of an action: exactly one field set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionJson {
    /// A built-in function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// SQL templates (MySQL, PostgreSQL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<OneOrMany>,
    /// Redis command templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<OneOrMany>,
    /// CQL templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cql: Option<OneOrMany>,
}

/// A statement list, also accepted as a single string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One statement.
    One(String),
    /// Several, run in order.
    Many(Vec<String>),
}

impl OneOrMany {
    fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A rule for a serde- or code-built configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// The hook.
    pub hook: Hook,
    /// `<n>`; rules without one run after numbered ones, in list order.
    #[serde(default)]
    pub index: Option<u32>,
    /// The rest, as in the `.conf` JSON.
    #[serde(flatten)]
    pub rule: RuleJson,
}

pub(super) fn build_rule(
    kind: BackendKind,
    hook: Hook,
    index: u32,
    json: RuleJson,
    line: Option<usize>,
) -> Result<Rule, ProblemKind> {
    if let Some(filter) = &json.topic {
        validate_filter(filter).map_err(|error| ProblemKind::BadTopic {
            filter: filter.clone(),
            error,
        })?;
    }
    if json.payload_format.is_some() && !kind.spec().capabilities.payload_format {
        return Err(ProblemKind::NotOffered {
            what: "`payload_format`".into(),
            kind,
            hint: Some("it stores payloads one way only".into()),
        });
    }
    let a = &json.action;
    let given: Vec<(&'static str, &OneOrMany)> = [
        ("sql", a.sql.as_ref()),
        ("commands", a.commands.as_ref()),
        ("cql", a.cql.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let lang_key = kind.statements().map_or("sql", StatementLanguage::key);
    let action = match (&a.function, given.as_slice()) {
        (Some(name), []) => {
            let function: Function = name.parse()?;
            if function.hook() != hook {
                return Err(ProblemKind::FunctionOnWrongHook {
                    function: name.clone(),
                    hook,
                    expected: function.hook(),
                });
            }
            Action::Function(function)
        }
        (None, [(key, list)]) => {
            let lang = kind.statements().ok_or_else(|| ProblemKind::NotOffered {
                what: format!("`{key}`"),
                kind,
                hint: Some("its rules take built-in functions only".into()),
            })?;
            if *key != lang.key() {
                return Err(ProblemKind::NotOffered {
                    what: format!("`{key}`"),
                    kind,
                    hint: Some(format!("its statements go in `{}`", lang.key())),
                });
            }
            if list.as_slice().is_empty() {
                return Err(ProblemKind::BadAction(lang_key));
            }
            let mut statements = Vec::new();
            for (i, text) in list.as_slice().iter().enumerate() {
                let template =
                    Template::parse(text, hook).map_err(|error| ProblemKind::Template {
                        index: i + 1,
                        error,
                    })?;
                let compiled = lang
                    .compile(&template)
                    .map_err(|error| ProblemKind::Template {
                        index: i + 1,
                        error,
                    })?;
                statements.push(RawStatement { template, compiled });
            }
            Action::Statements(statements)
        }
        _ => return Err(ProblemKind::BadAction(lang_key)),
    };
    Ok(Rule {
        hook,
        index,
        topic: json.topic,
        action,
        pool: json.pool,
        payload_format: json.payload_format,
        line,
    })
}
