//! How a topic filter becomes a `WHERE` clause on a `topic` column.
//!
//! - A filter without wildcards is an equality: the `(topic, id)` index
//!   finds it directly.
//! - A wildcard filter is narrowed by its literal prefix
//!   ([`backend_core::topic::literal_prefix`]) as a byte-order range,
//!   `topic COLLATE "C" >= prefix AND topic COLLATE "C" < prefix_upper_bound(prefix)`
//!   (an index range scan; a range, unlike `LIKE`, keeps `%`, `_` and `\`
//!   in topics literal and works in generic prepared plans), then matched
//!   exactly by a POSIX regular expression built from the filter and bound
//!   as a parameter, so `LIMIT` can be applied in the database. Rows are
//!   checked once more with [`backend_core::topic::matches`].

use backend_core::topic::{prefix_upper_bound, TopicSelect};

/// How a wildcard filter selects topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wildcard {
    /// Topics in `[from, to)` (byte order) matching `regex`.
    Range {
        /// The literal prefix (inclusive bound).
        from: String,
        /// Its [`prefix_upper_bound`] (exclusive bound).
        to: String,
        /// The filter as a regular expression ([`to_regex`]).
        regex: String,
    },
    /// Any topic matching `regex` (the filter starts with a wildcard, or its
    /// prefix has no successor).
    Scan {
        /// The filter as a regular expression ([`to_regex`]).
        regex: String,
    },
}

/// What a filter selects: nothing, one topic, or a [`Wildcard`] plan.
pub type TopicMatch = TopicSelect<Wildcard>;

/// How `filter` (possibly `$share/<group>/...`) selects topics.
pub fn topic_match(filter: &str) -> TopicMatch {
    TopicSelect::new(filter, |inner, prefix| {
        let regex = to_regex(inner);
        match prefix_upper_bound(prefix) {
            Some(to) if !prefix.is_empty() => Wildcard::Range {
                from: prefix.to_owned(),
                to,
                regex,
            },
            _ => Wildcard::Scan { regex },
        }
    })
}

/// A PostgreSQL ARE matching exactly the topic names `filter` (valid,
/// unshared) matches: `+` one level, `#` the parent and every level below,
/// and neither matching a first level that starts with `$`.
pub fn to_regex(filter: &str) -> String {
    let mut re = String::from("^");
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let first = i == 0;
        match *level {
            "#" => {
                if first {
                    // Every topic not starting with `$`.
                    re.push_str("(?:[^$].*)?");
                } else {
                    // `a/#` matches `a` itself: the separator is optional.
                    re.push_str("(?:/.*)?");
                }
                // `#` is always last (the filter is valid).
                break;
            }
            "+" => {
                if !first {
                    re.push('/');
                }
                re.push_str(if first { "(?:[^/$][^/]*)?" } else { "[^/]*" });
            }
            literal => {
                if !first {
                    re.push('/');
                }
                for c in literal.chars() {
                    if c.is_ascii_punctuation() {
                        re.push('\\');
                    }
                    re.push(c);
                }
            }
        }
    }
    re.push('$');
    re
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexes() {
        assert_eq!(to_regex("a/+/c"), r"^a/[^/]*/c$");
        assert_eq!(to_regex("a/#"), r"^a(?:/.*)?$");
        assert_eq!(to_regex("#"), r"^(?:[^$].*)?$");
        assert_eq!(to_regex("+/x"), r"^(?:[^/$][^/]*)?/x$");
        assert_eq!(to_regex("a.b/%_\\/+"), r"^a\.b/\%\_\\/[^/]*$");
        assert_eq!(to_regex("$SYS/+"), r"^\$SYS/[^/]*$");
        assert_eq!(to_regex("/+"), r"^/[^/]*$");
    }

    #[test]
    fn matches() {
        assert_eq!(topic_match("a/b"), TopicMatch::Exact("a/b".into()));
        assert_eq!(topic_match("a/#/b"), TopicMatch::Nothing);
        assert_eq!(topic_match("$share/g/t"), TopicMatch::Exact("t".into()));
        assert_eq!(
            topic_match("a/+"),
            TopicMatch::Wildcard(Wildcard::Range {
                from: "a/".into(),
                to: "a0".into(),
                regex: r"^a/[^/]*$".into()
            })
        );
        assert!(matches!(
            topic_match("+/a"),
            TopicMatch::Wildcard(Wildcard::Scan { .. })
        ));
    }
}
