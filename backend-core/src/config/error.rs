//! Configuration errors: every problem with its line and key.

use std::fmt;

use super::BackendKind;
use crate::hook::Hook;
use crate::template::TemplateError;
use crate::topic::TopicError;

/// One thing wrong with a configuration, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The line (1-based) in the `.conf` text, if it came from one.
    pub line: Option<usize>,
    /// The key (or, for serde-built configs, the path) concerned.
    pub key: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.kind)
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProblemKind {
    /// A line that is not `key = value`.
    #[error("expected `key = value`")]
    Syntax,
    /// A rule value that is not valid JSON of the expected shape.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// A key this configuration does not know.
    #[error("unknown key{}", .suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownKey {
        /// The nearest known key.
        suggestion: Option<String>,
    },
    /// `backend.<name>.…` where no linked backend crate declares `<name>`.
    #[error("no backend `{name}` is linked into this program (known: {known}); add the crate that declares it")]
    UnknownBackend {
        /// The name after `backend.`.
        name: String,
        /// The names of the kinds that are linked.
        known: String,
    },
    /// A key given twice.
    #[error("duplicate key: also set on line {first_line}")]
    Duplicate {
        /// Where it was set first.
        first_line: usize,
    },
    /// Keys of two backend kinds in one configuration.
    #[error("this configuration is for {expected} (from line {first_line}), not {found}")]
    MixedKinds {
        /// The kind seen first.
        expected: BackendKind,
        /// Its line.
        first_line: usize,
        /// The other kind.
        found: BackendKind,
    },
    /// An unknown hook name.
    #[error("unknown hook `{name}`{}", .suggestion.map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownHook {
        /// As written.
        name: String,
        /// The nearest hook.
        suggestion: Option<&'static str>,
    },
    /// `<n>` that is not a whole number.
    #[error("rule number `{0}` must be a whole number")]
    BadRuleIndex(String),
    /// An unknown function name.
    #[error("unknown function `{name}`{}", .suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownFunction {
        /// As written.
        name: String,
        /// The nearest function.
        suggestion: Option<String>,
    },
    /// A function on a hook it does not belong to.
    #[error("function `{function}` runs on {expected}, not {hook}")]
    FunctionOnWrongHook {
        /// The function.
        function: String,
        /// The hook of the rule.
        hook: Hook,
        /// The hook it belongs to.
        expected: Hook,
    },
    /// A function or action kind this backend does not offer.
    #[error("{what} is not offered by the {kind} backend{}", .hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    NotOffered {
        /// What was asked for.
        what: String,
        /// The backend kind.
        kind: BackendKind,
        /// What to use instead.
        hint: Option<String>,
    },
    /// An action with none or several of function/sql/commands/cql.
    #[error("`action` must have exactly one of `function` or `{0}`")]
    BadAction(&'static str),
    /// A statement template that does not parse.
    #[error("statement {index}: {error}")]
    Template {
        /// Which statement of the list (1-based).
        index: usize,
        /// What is wrong with it.
        error: TemplateError,
    },
    /// A rule naming a pool that is not configured.
    #[error("pool `{pool}` is not configured{}", if .configured.is_empty() { " (no pools are)".to_owned() } else { format!(" (configured: {})", .configured) })]
    UnknownPool {
        /// The pool named.
        pool: String,
        /// The pools that are.
        configured: String,
    },
    /// An invalid rule `topic`.
    #[error("invalid topic filter `{filter}`: {error}")]
    BadTopic {
        /// The filter.
        filter: String,
        /// What is wrong.
        error: TopicError,
    },
    /// A value of the wrong type.
    #[error("bad value `{value}`: expected {expected}")]
    BadValue {
        /// As written (`***` for secrets).
        value: String,
        /// What was expected.
        expected: String,
    },
    /// A bad duration or count.
    #[error("{0}")]
    BadLimit(String),
    /// No `backend.*` keys at all.
    #[error("no `backend.<kind>.` settings found")]
    Empty,
}

/// Everything wrong with a configuration, each with its line and key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub(super) problems: Vec<Problem>,
}

impl ConfigError {
    pub(super) fn one(line: Option<usize>, key: impl Into<String>, kind: ProblemKind) -> Self {
        ConfigError {
            problems: vec![Problem {
                line,
                key: key.into(),
                kind,
            }],
        }
    }

    /// Every problem found, in line order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }
}
