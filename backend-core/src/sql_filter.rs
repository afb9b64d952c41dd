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
