//! How a topic filter becomes a `WHERE` clause, with `?` placeholders, on
//! a binary topic column whose byte order is its index order (MySQL's
//! `VARBINARY`, SQLite's `BLOB`).
//!
//! - A filter without wildcards is an equality: the `(topic, id)` index
//!   finds it directly.
//! - A wildcard filter becomes one or two byte ranges `[from, to)` (index
//!   range scans), bound as parameters: no `LIKE`, so `%`, `_` and `\` in
//!   topics are never patterns. Filters of the forms `#` and `prefix/#`
//!   are exactly such ranges (`#`: every topic before `$` or from `%` on;
//!   `p/#`: `p` itself, i.e. `[p, p\0)`, and `[p/, p0)`), so the database
//!   applies `LIMIT` itself. Other filters (with `+`) are narrowed by their
//!   literal prefix ([`crate::topic::literal_prefix`]) and checked
//!   row by row with [`crate::topic::matches`], which every row
//!   returned passes anyway.

use crate::backend::FetchRequest;
use crate::message::Timestamp;
use crate::topic::{has_wildcards, prefix_upper_bound, TopicSelect};

/// A byte range `[from, to)`; `to = None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Inclusive lower bound.
    pub from: Vec<u8>,
    /// Exclusive upper bound, if any.
    pub to: Option<Vec<u8>>,
}

/// The byte ranges a wildcard filter selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges {
    /// The ranges (one or two).
    pub ranges: Vec<Range>,
    /// Whether the ranges hold exactly the matching topics (so SQL may
    /// apply `LIMIT`); otherwise rows must be checked with `matches`.
    pub exact: bool,
}

/// What a filter selects: nothing, one topic, or [`Ranges`].
pub type TopicMatch = TopicSelect<Ranges>;

/// How `filter` (possibly `$share/<group>/...`) selects topics.
pub fn topic_match(filter: &str) -> TopicMatch {
    TopicSelect::new(filter, ranges_of)
}

/// The ranges of a valid wildcard filter `inner` with literal `prefix`.
fn ranges_of(inner: &str, prefix: &str) -> Ranges {
    // `#` and `+...`: every topic whose first level does not start with `$`.
    let not_dollar = || {
        vec![
            Range {
                from: Vec::new(),
                to: Some(b"$".to_vec()),
            },
            Range {
                from: b"%".to_vec(),
                to: None,
            },
        ]
    };
    if inner == "#" {
        return Ranges {
            ranges: not_dollar(),
            exact: true,
        };
    }
    if let Some(parent) = inner.strip_suffix("/#") {
        if !has_wildcards(parent) {
            // `p/#`: `p` itself, and everything under `p/`.
            let mut itself_end = parent.as_bytes().to_vec();
            itself_end.push(0);
            let mut under = parent.as_bytes().to_vec();
            under.push(b'/');
            return Ranges {
                ranges: vec![
                    Range {
                        from: parent.as_bytes().to_vec(),
                        to: Some(itself_end),
                    },
                    Range {
                        to: successor(&under),
                        from: under,
                    },
                ],
                exact: true,
            };
        }
    }
    if prefix.is_empty() {
        return Ranges {
            ranges: not_dollar(),
            exact: false,
        };
    }
    Ranges {
        ranges: vec![Range {
            from: prefix.as_bytes().to_vec(),
            to: successor(prefix.as_bytes()),
        }],
        exact: false,
    }
}

/// A selection as SQL.
pub trait TopicCondition {
    /// The SQL condition on `column` and its parameters, in order.
    fn condition(&self, column: &str) -> (String, Vec<Vec<u8>>);
    /// Whether the condition selects exactly the matching topics.
    fn is_exact(&self) -> bool;
}

impl TopicCondition for TopicMatch {
    fn condition(&self, column: &str) -> (String, Vec<Vec<u8>>) {
        match self {
            TopicMatch::Nothing => ("FALSE".into(), Vec::new()),
            TopicMatch::Exact(t) => (format!("{column} = ?"), vec![t.as_bytes().to_vec()]),
            TopicMatch::Wildcard(Ranges { ranges, .. }) => {
                let mut params = Vec::new();
                let parts: Vec<String> = ranges
                    .iter()
                    .map(|r| {
                        params.push(r.from.clone());
                        match &r.to {
                            Some(to) => {
                                params.push(to.clone());
                                format!("({column} >= ? AND {column} < ?)")
                            }
                            None => format!("{column} >= ?"),
                        }
                    })
                    .collect();
                (format!("({})", parts.join(" OR ")), params)
            }
        }
    }

    fn is_exact(&self) -> bool {
        match self {
            TopicMatch::Nothing | TopicMatch::Exact(_) => true,
            TopicMatch::Wildcard(Ranges { exact, .. }) => *exact,
        }
    }
}

/// The smallest byte string greater than every string starting with
/// `prefix` ([`crate::topic::prefix_upper_bound`]; UTF-8 byte order
/// is code point order). `None` if there is none.
pub fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let prefix = std::str::from_utf8(prefix).ok()?;
    prefix_upper_bound(prefix).map(String::into_bytes)
}

/// One parameter of a [`FetchQuery`], in the statement's order; each
/// backend binds it as its driver wants (a time as its time type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchParam {
    /// The subscribing client (pubsub: its read positions).
    ClientId(String),
    /// A bound of the topic condition: a topic, or a range end.
    Topic(Vec<u8>),
    /// The id after which the pubsub subscription starts.
    StartId(i64),
    /// The oldest arrival returned (`time_range`).
    Since(Timestamp),
    /// The row limit.
    Limit(u64),
}

/// A fetch of offline messages from the seed's `mqtt_msg` (and, in pubsub
/// mode, the read positions in `mqtt_acked`) as one statement with `?`
/// placeholders, selecting `topic, msgid, sender, qos, retain, payload,
/// arrived, props` ([`crate::Message::from_row`]'s order).
///
/// The database applies the count or page limit when its rows are exactly
/// the filter's topics; otherwise the caller checks each row with
/// [`crate::topic::matches`] and applies the limits after
/// ([`crate::backend::apply_limits`]). A page without a count limit is
/// read oldest first; otherwise newest first, and reversed.
///
/// ```
/// use backend_core::sql_filter::{topic_match, FetchParam, FetchQuery};
/// use backend_core::{FetchRequest, OfflineMode};
/// let mut req = FetchRequest::new("c1", "a/#", OfflineMode::Pubsub);
/// req.page = Some(100);
/// let q = FetchQuery::new(&req, &topic_match(&req.filter), Some(41));
/// assert!(q.oldest_first);
/// assert_eq!(q.text.matches('?').count(), q.params.len());
/// assert_eq!(q.params[0], FetchParam::ClientId("c1".into()));
/// assert_eq!(q.params.last(), Some(&FetchParam::Limit(100)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchQuery {
    /// The statement.
    pub text: String,
    /// Its parameters, in order.
    pub params: Vec<FetchParam>,
    /// Whether rows come oldest first; otherwise newest first.
    pub oldest_first: bool,
}

impl FetchQuery {
    /// The fetch of `request` over `target` (its filter's
    /// [`topic_match`]); `start` is the pubsub subscription's start id
    /// (`None` reads in queue mode).
    pub fn new(request: &FetchRequest, target: &TopicMatch, start: Option<i64>) -> FetchQuery {
        let exact = target.is_exact();
        let oldest = request.oldest_first_limit().filter(|_| exact);
        let limit = oldest
            .or(request.max_count.filter(|_| exact))
            .map(|n| u64::try_from(n).unwrap_or(u64::MAX));
        let mut params = Vec::new();
        if start.is_some() {
            params.push(FetchParam::ClientId(request.client_id.clone()));
        }
        let (_, topics) = target.condition("m.topic");
        params.extend(topics.into_iter().map(FetchParam::Topic));
        params.extend(start.map(FetchParam::StartId));
        params.extend(request.since.map(FetchParam::Since));
        params.extend(limit.map(FetchParam::Limit));
        FetchQuery {
            text: fetch_statement(
                start.is_some(),
                target,
                request.since.is_some(),
                limit.is_some(),
                oldest.is_some(),
            ),
            params,
            oldest_first: oldest.is_some(),
        }
    }
}

/// The fetch statement of [`FetchQuery`], newest first (for a count
/// limit) or, with `oldest`, oldest first (for a page). Parameters:
/// pubsub: the client id; then the topic condition's; pubsub: the start
/// id; with `since`: the oldest arrival; with `limit`: the row limit.
/// (Without a limit there is no `LIMIT` clause: a huge one would tempt an
/// optimizer to walk the primary key backwards instead of the topic
/// range.)
pub fn fetch_statement(
    pubsub: bool,
    target: &TopicMatch,
    since: bool,
    limit: bool,
    oldest: bool,
) -> String {
    let (cond, _) = target.condition("m.topic");
    let order = if oldest { "ASC" } else { "DESC" };
    let columns = "m.topic, m.msgid, m.sender, m.qos, m.retain, m.payload, m.arrived, m.props";
    let since = if since { " AND m.arrived >= ?" } else { "" };
    let limit = if limit { " LIMIT ?" } else { "" };
    if pubsub {
        // After the subscription's start, and after the client's ack on
        // each topic.
        format!(
            "SELECT {columns} FROM mqtt_msg m \
LEFT JOIN mqtt_acked a ON a.clientid = ? AND a.topic = m.topic \
WHERE {cond} AND m.id > ? AND (a.mid IS NULL OR m.id > a.mid){since} \
ORDER BY m.id {order}{limit}"
        )
    } else {
        format!("SELECT {columns} FROM mqtt_msg m WHERE {cond}{since} ORDER BY m.id {order}{limit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::matches;
    use crate::topic::validate_filter;

    fn within(m: &TopicMatch, topic: &str) -> bool {
        let t = topic.as_bytes();
        match m {
            TopicMatch::Nothing => false,
            TopicMatch::Exact(e) => e == topic,
            TopicMatch::Wildcard(Ranges { ranges, .. }) => ranges.iter().any(|r| {
                t >= r.from.as_slice() && r.to.as_ref().is_none_or(|to| t < to.as_slice())
            }),
        }
    }

    #[test]
    fn successors() {
        assert_eq!(successor(b"a/b/"), Some(b"a/b0".to_vec()));
        assert_eq!(successor("a\u{10FFFF}".as_bytes()), Some(b"b".to_vec()));
        assert_eq!(successor(b""), None);
    }

    #[test]
    fn shapes() {
        assert_eq!(topic_match("a/b"), TopicMatch::Exact("a/b".into()));
        assert_eq!(topic_match("a/#/b"), TopicMatch::Nothing);
        assert_eq!(topic_match("$share/g/t"), TopicMatch::Exact("t".into()));
        let m = topic_match("a/#");
        assert!(m.is_exact());
        assert_eq!(
            m.condition("topic").0,
            "((topic >= ? AND topic < ?) OR (topic >= ? AND topic < ?))"
        );
        let m = topic_match("a/+");
        assert!(!m.is_exact());
        assert_eq!(
            m.condition("t"),
            (
                "((t >= ? AND t < ?))".into(),
                vec![b"a/".to_vec(), b"a0".to_vec()]
            )
        );
        assert_eq!(
            topic_match("#").condition("t").0,
            "((t >= ? AND t < ?) OR t >= ?)"
        );
    }

    /// The ranges contain every matching topic, and for the exact shapes
    /// nothing else.
    #[test]
    fn ranges_agree_with_core() {
        let levels = ["a", "b", "", "$x", "%_", "a.b", "\\", "雨", "a ", "A"];
        let mut topics = Vec::new();
        for x in levels {
            topics.push(x.to_owned());
            for y in levels {
                topics.push(format!("{x}/{y}"));
                topics.push(format!("{x}/{y}/a"));
                topics.push(format!("{x}{y}"));
            }
        }
        let flevels = ["a", "", "$x", "%_", "+", "#", "雨", "a "];
        let mut filters = Vec::new();
        for x in flevels {
            filters.push(x.to_owned());
            for y in flevels {
                filters.push(format!("{x}/{y}"));
                for z in ["#", "+", "a"] {
                    filters.push(format!("{x}/{y}/{z}"));
                }
            }
        }
        let mut checked = 0;
        for f in filters.iter().filter(|f| validate_filter(f).is_ok()) {
            let m = topic_match(f);
            for t in &topics {
                let want = matches(f, t);
                let got = within(&m, t);
                if want {
                    assert!(got, "{f:?} must select {t:?}");
                }
                if m.is_exact() {
                    assert_eq!(got, want, "{f:?} / {t:?}");
                }
                checked += 1;
            }
        }
        assert!(checked > 10_000);
    }
}
