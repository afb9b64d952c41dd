//! MQTT topic names and filters: validation, matching and a trie of filters.
//!
//! The rules are those of MQTT 3.1.1 (section 4.7) and 5.0 (section 4.7 and
//! 4.8.2): levels are separated by `/` and may be empty; `+` matches exactly
//! one level; `#` matches any number of levels, including none, so `a/#`
//! matches `a` too; filters starting with a wildcard never match topic names
//! starting with `$`. Shared subscriptions (`$share/<group>/<filter>`) and
//! EMQX's `$queue/<filter>` are matched by the filter inside them.

use std::collections::HashMap;

/// Longest topic name or filter MQTT can carry (a 16-bit length prefix).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// What is wrong with a topic name or filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic or filter is the empty string.
    #[error("topic is empty")]
    Empty,
    /// Longer than [`MAX_TOPIC_LEN`] bytes.
    #[error("topic is {0} bytes long; MQTT allows at most 65535")]
    TooLong(usize),
    /// Contains the NUL character, which MQTT strings may not.
    #[error("topic contains a NUL character at byte {0}")]
    Nul(usize),
    /// A topic name (as opposed to a filter) contains `+` or `#`.
    #[error("topic name contains the wildcard `{wildcard}` at byte {at}; wildcards are allowed only in filters")]
    WildcardInName {
        /// The wildcard found.
        wildcard: char,
        /// Its byte offset.
        at: usize,
    },
    /// `#` that is not alone in the last level.
    #[error(
        "`#` at byte {0} must be the whole last level of the filter (`a/#`, not `a#` or `#/a`)"
    )]
    MisplacedHash(usize),
    /// `+` that does not occupy a whole level.
    #[error("`+` at byte {0} must be a whole level of the filter (`a/+/b`, not `a+`)")]
    MisplacedPlus(usize),
    /// `$share/` without a group name or filter, or a group name with `/`, `+` or `#`.
    #[error("shared subscription `{0}` must be `$share/<group>/<filter>` with a group name free of `+` and `#`")]
    BadShare(String),
}

/// Checks a topic name (what a message is published to).
///
/// ```
/// use backend_core::topic::{validate_name, TopicError};
/// assert!(validate_name("room/1/temp").is_ok());
/// assert!(validate_name("/leading/and//empty/levels/").is_ok());
/// assert!(matches!(validate_name("room/+"), Err(TopicError::WildcardInName { .. })));
/// assert_eq!(validate_name(""), Err(TopicError::Empty));
/// ```
pub fn validate_name(name: &str) -> Result<(), TopicError> {
    check_common(name)?;
    match name.find(['+', '#']) {
        Some(at) => Err(TopicError::WildcardInName {
            wildcard: name[at..].chars().next().unwrap_or('+'),
            at,
        }),
        None => Ok(()),
    }
}

/// Checks a topic filter (what a client subscribes to), including
/// `$share/<group>/<filter>` and `$queue/<filter>`.
///
/// ```
/// use backend_core::topic::validate_filter;
/// assert!(validate_filter("room/+/temp").is_ok());
/// assert!(validate_filter("#").is_ok());
/// assert!(validate_filter("$share/g1/room/#").is_ok());
/// assert!(validate_filter("room/#/temp").is_err());
/// assert!(validate_filter("room+").is_err());
/// ```
pub fn validate_filter(filter: &str) -> Result<(), TopicError> {
    check_common(filter)?;
    let (_, inner) = split_shared(filter)?;
    let offset = filter.len() - inner.len();
    if inner.is_empty() {
        return Err(TopicError::BadShare(filter.to_owned()));
    }
    let mut start = 0;
    let mut levels = inner.split('/').peekable();
    while let Some(level) = levels.next() {
        if let Some(p) = level.find('#') {
            if level != "#" || levels.peek().is_some() {
                return Err(TopicError::MisplacedHash(offset + start + p));
            }
        }
        if let Some(p) = level.find('+') {
            if level != "+" {
                return Err(TopicError::MisplacedPlus(offset + start + p));
            }
        }
        start += level.len() + 1;
    }
    Ok(())
}

fn check_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong(s.len()));
    }
    if let Some(at) = s.find('\0') {
        return Err(TopicError::Nul(at));
    }
    Ok(())
}

/// Splits `$share/<group>/<filter>` into the group and the filter, and
/// `$queue/<filter>` into no group and the filter; any other filter is
/// returned whole.
fn split_shared(filter: &str) -> Result<(Option<&str>, &str), TopicError> {
    if let Some(rest) = filter.strip_prefix("$share/") {
        match rest.split_once('/') {
            Some((group, inner))
                if !group.is_empty() && !group.contains(['+', '#']) && !inner.is_empty() =>
            {
                Ok((Some(group), inner))
            }
            _ => Err(TopicError::BadShare(filter.to_owned())),
        }
    } else if let Some(inner) = filter.strip_prefix("$queue/") {
        Ok((None, inner))
    } else {
        Ok((None, filter))
    }
}

/// The filter a subscription really matches: `$share/<group>/f` and
/// `$queue/f` give `f`; any other filter is returned unchanged.
///
/// ```
/// use backend_core::topic::strip_shared;
/// assert_eq!(strip_shared("$share/g/a/+"), "a/+");
/// assert_eq!(strip_shared("$queue/a"), "a");
/// assert_eq!(strip_shared("a/b"), "a/b");
/// ```
pub fn strip_shared(filter: &str) -> &str {
    split_shared(filter).map(|(_, f)| f).unwrap_or(filter)
}

/// Whether `filter` matches the topic name `topic`, with the full semantics
/// of the specification. An invalid filter matches nothing.
///
/// ```
/// use backend_core::topic::matches;
/// assert!(matches("sport/#", "sport"));
/// assert!(matches("sport/+/player1", "sport/tennis/player1"));
/// assert!(matches("+/+", "/finance"));
/// assert!(!matches("#", "$SYS/uptime"));
/// assert!(matches("$SYS/#", "$SYS/uptime"));
/// assert!(matches("$share/group/a/+", "a/b"));
/// ```
pub fn matches(filter: &str, topic: &str) -> bool {
    if validate_filter(filter).is_err() {
        return false;
    }
    matches_valid(strip_shared(filter), topic)
}

/// Decodes `rows` into messages and keeps those whose topic `filter`
/// matches: the re-check after a query that may select more than the
/// filter does (a collation, a range, a prefix, a `LIKE`). The first row
/// that does not decode is the error.
pub fn decode_matching<R, E>(
    filter: &str,
    rows: impl IntoIterator<Item = R>,
    mut decode: impl FnMut(R) -> Result<crate::Message, E>,
) -> Result<Vec<crate::Message>, E> {
    let mut out = Vec::new();
    for row in rows {
        let m = decode(row)?;
        if matches(filter, &m.topic) {
            out.push(m);
        }
    }
    Ok(out)
}

/// [`matches`] for a filter already known to be valid and unshared.
fn matches_valid(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The longest literal prefix of a filter: what every matching topic name
/// starts with. It runs up to and including the `/` before a `+` level, and
/// up to but excluding the `/` before a `#` level (`a/#` matches `a`).
/// Backends narrow a wildcard query with it (`LIKE 'prefix%'`, a range scan)
/// and check the rest with [`matches`](fn@matches). A filter without wildcards returns
/// itself whole.
///
/// ```
/// use backend_core::topic::literal_prefix;
/// assert_eq!(literal_prefix("a/b/+/c"), "a/b/");
/// assert_eq!(literal_prefix("a/#"), "a");
/// assert_eq!(literal_prefix("#"), "");
/// assert_eq!(literal_prefix("a/b"), "a/b");
/// assert_eq!(literal_prefix("$share/g/x/+"), "x/");
/// ```
pub fn literal_prefix(filter: &str) -> &str {
    let inner = strip_shared(filter);
    let mut end = 0;
    for level in inner.split('/') {
        if level == "+" {
            return &inner[..end];
        }
        if level == "#" {
            return &inner[..end.saturating_sub(1)];
        }
        end += level.len() + 1;
    }
    inner
}

/// The smallest string greater, in byte (and so code point) order, than
/// every string starting with `prefix`: with [`literal_prefix`], the
/// exclusive upper bound of an index range scan (`topic >= prefix AND
/// topic < upper`). The last character is incremented, after dropping
/// trailing U+10FFFF; `None` when there is no bound (an empty prefix, or
/// only U+10FFFF).
///
/// ```
/// use backend_core::topic::prefix_upper_bound;
/// assert_eq!(prefix_upper_bound("a/b/").as_deref(), Some("a/b0"));
/// assert_eq!(prefix_upper_bound(""), None);
/// ```
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // Skip the surrogate gap, which no `char` can hold.
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(n) = next {
            chars.push(n);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Whether a filter contains `+` or `#` levels.
///
/// ```
/// assert!(backend_core::topic::has_wildcards("a/+"));
/// assert!(!backend_core::topic::has_wildcards("a/b"));
/// ```
pub fn has_wildcards(filter: &str) -> bool {
    strip_shared(filter)
        .split('/')
        .any(|l| l == "+" || l == "#")
}

/// What a stored-topic lookup for a filter has to find, before a backend
/// turns it into a query: [`FilterScope::of`] validates the filter and
/// strips a `$share/<group>/` prefix once, for every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterScope<'a> {
    /// An invalid filter: it matches no topic.
    Nothing,
    /// A filter without wildcards: the one topic of that name.
    Exact(&'a str),
    /// A wildcard filter (shared prefix removed), and its literal prefix
    /// ([`literal_prefix`]), which every matching topic starts with.
    Wildcard {
        /// The filter.
        filter: &'a str,
        /// Its literal prefix (may be empty).
        prefix: &'a str,
    },
}

impl<'a> FilterScope<'a> {
    /// The scope of `filter` (possibly `$share/<group>/...`).
    ///
    /// ```
    /// use backend_core::topic::FilterScope;
    /// assert_eq!(FilterScope::of("a/+"), FilterScope::Wildcard { filter: "a/+", prefix: "a/" });
    /// assert_eq!(FilterScope::of("$share/g/a/b"), FilterScope::Exact("a/b"));
    /// assert_eq!(FilterScope::of("a/#/b"), FilterScope::Nothing);
    /// ```
    pub fn of(filter: &'a str) -> Self {
        if validate_filter(filter).is_err() {
            return FilterScope::Nothing;
        }
        let inner = strip_shared(filter);
        if has_wildcards(inner) {
            FilterScope::Wildcard {
                filter: inner,
                prefix: literal_prefix(inner),
            }
        } else {
            FilterScope::Exact(inner)
        }
    }
}

/// How a backend selects the topics of a filter: none (an invalid filter),
/// one topic, or the backend's own plan `W` for a wildcard filter (ranges,
/// a regular expression, a prefix). The split is [`FilterScope`]'s, made
/// once here for every backend.
///
/// ```
/// use backend_core::topic::TopicSelect;
/// let plan = |filter: &str, prefix: &str| format!("{filter} from {prefix:?}");
/// assert_eq!(TopicSelect::new("a/+", plan), TopicSelect::Wildcard("a/+ from \"a/\"".into()));
/// assert_eq!(TopicSelect::new("$share/g/a", plan), TopicSelect::Exact("a".into()));
/// assert_eq!(TopicSelect::new("a/#/b", plan), TopicSelect::Nothing);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicSelect<W> {
    /// An invalid filter: it selects no topic.
    Nothing,
    /// A filter without wildcards: the one topic of that name.
    Exact(String),
    /// A wildcard filter, as the backend plans it.
    Wildcard(W),
}

impl<W> TopicSelect<W> {
    /// The selection of `filter` (possibly `$share/<group>/...`);
    /// `plan(filter, prefix)` plans a wildcard filter (its shared prefix
    /// removed) from it and its literal prefix ([`literal_prefix`]).
    pub fn new(filter: &str, plan: impl FnOnce(&str, &str) -> W) -> Self {
        match FilterScope::of(filter) {
            FilterScope::Nothing => TopicSelect::Nothing,
            FilterScope::Exact(topic) => TopicSelect::Exact(topic.to_owned()),
            FilterScope::Wildcard { filter, prefix } => TopicSelect::Wildcard(plan(filter, prefix)),
        }
    }
}

/// A set of topic filters, each with a value, that finds every filter
/// matching a topic name in time proportional to the name's levels (times
/// the few wildcard branches), not to the number of filters.
///
/// ```
/// use backend_core::topic::FilterTrie;
/// let mut trie = FilterTrie::new();
/// trie.insert("a/+/c", 1).unwrap();
/// trie.insert("a/#", 2).unwrap();
/// trie.insert("b", 3).unwrap();
/// let mut found = trie.matching("a/b/c");
/// found.sort();
/// assert_eq!(found, vec![&1, &2]);
/// assert!(trie.matching("c").is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct FilterTrie<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    children: HashMap<Box<str>, Node<T>>,
    plus: Option<Box<Node<T>>>,
    /// Values of filters ending in `#` at this node.
    hash: Vec<T>,
    /// Values of filters ending exactly at this node.
    here: Vec<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: HashMap::new(),
            plus: None,
            hash: Vec::new(),
            here: Vec::new(),
        }
    }
}

impl<T> Default for FilterTrie<T> {
    fn default() -> Self {
        FilterTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> FilterTrie<T> {
    /// An empty trie.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing was inserted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `filter` (validated; shared prefixes are stripped).
    pub fn insert(&mut self, filter: &str, value: T) -> Result<(), TopicError> {
        validate_filter(filter)?;
        let mut node = &mut self.root;
        for level in strip_shared(filter).split('/') {
            match level {
                "#" => {
                    node.hash.push(value);
                    self.len += 1;
                    return Ok(());
                }
                "+" => node = node.plus.get_or_insert_with(Box::default),
                lit => node = node.children.entry(lit.into()).or_default(),
            }
        }
        node.here.push(value);
        self.len += 1;
        Ok(())
    }

    /// Calls `f` with the value of every filter matching the topic name.
    /// A name containing `+` or `#` levels is matched literally, which is how
    /// a subscribed filter is matched against rule filters: the name
    /// `queue/+` matches the filter `queue/#` and `queue/+`, not `queue/a`.
    pub fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a T)) {
        let dollar = topic.starts_with('$');
        let mut levels = topic.split('/');
        let first = levels.next().unwrap_or("");
        // The root level is special only for `$` topics; walk it by hand so
        // the recursion below needs no flag.
        if !dollar {
            self.root.hash.iter().for_each(&mut f);
        }
        if let Some(child) = self.root.children.get(first) {
            walk(child, levels.clone(), &mut f);
        }
        if !dollar {
            if let Some(plus) = &self.root.plus {
                walk(plus, levels, &mut f);
            }
        }
    }

    /// The values of every filter matching the topic name, in no set order.
    pub fn matching(&self, topic: &str) -> Vec<&T> {
        let mut out = Vec::new();
        self.for_each_match(topic, |v| out.push(v));
        out
    }
}

fn walk<'a, T>(
    node: &'a Node<T>,
    mut levels: std::str::Split<'_, char>,
    f: &mut impl FnMut(&'a T),
) {
    // `#` matches the parent level too, so it counts before and after the end.
    node.hash.iter().for_each(&mut *f);
    match levels.next() {
        None => node.here.iter().for_each(f),
        Some(level) => {
            if let Some(child) = node.children.get(level) {
                walk(child, levels.clone(), f);
            }
            if let Some(plus) = &node.plus {
                walk(plus, levels, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_matching_keeps_matches_and_stops_at_the_first_error() {
        let decode = |t: &str| -> Result<crate::Message, String> {
            match t {
                "bad" => Err("bad row".into()),
                t => Ok(crate::Message::new(
                    "c",
                    t,
                    crate::QoS::AtLeastOnce,
                    &b""[..],
                )),
            }
        };
        let kept = decode_matching("a/+", ["a/1", "b/1", "a/2/x", "a/2"], decode).expect("decodes");
        let topics: Vec<&str> = kept.iter().map(|m| m.topic.as_str()).collect();
        assert_eq!(topics, ["a/1", "a/2"]);
        let e = decode_matching("#", ["a", "bad", "c"], decode).expect_err("bad row");
        assert_eq!(e, "bad row");
    }
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(validate_name("a").is_ok());
        assert!(validate_name("/").is_ok());
        assert!(validate_name("$SYS/x").is_ok());
        assert!(validate_name("雨/🌧").is_ok());
        assert_eq!(validate_name("a\0b"), Err(TopicError::Nul(1)));
        assert_eq!(
            validate_name("a/#"),
            Err(TopicError::WildcardInName {
                wildcard: '#',
                at: 2
            })
        );
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(validate_name(&long), Err(TopicError::TooLong(65_536)));
        assert!(validate_name(&long[1..]).is_ok());
    }

    #[test]
    fn filters() {
        for ok in [
            "#",
            "+",
            "+/+",
            "/#",
            "a/+/b/#",
            "a//b",
            "$share/g/#",
            "$queue/a/+",
            "$SYS/#",
        ] {
            assert_eq!(validate_filter(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_filter("a/#/b"), Err(TopicError::MisplacedHash(2)));
        assert_eq!(validate_filter("a#"), Err(TopicError::MisplacedHash(1)));
        assert_eq!(validate_filter("a/b+"), Err(TopicError::MisplacedPlus(3)));
        assert_eq!(
            validate_filter("$share/g/a+"),
            Err(TopicError::MisplacedPlus(10))
        );
        for bad in [
            "$share/",
            "$share/g",
            "$share//a",
            "$share/g/",
            "$share/+/a",
            "$queue/",
        ] {
            assert!(validate_filter(bad).is_err(), "{bad}");
        }
        assert_eq!(validate_filter(""), Err(TopicError::Empty));
    }

    #[test]
    fn matching_rules_of_the_specification() {
        let cases = [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("#", "$SYS/x", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("a//b", "a//b", true),
            ("a/+/b", "a//b", true),
            ("a/b", "a/b/", false),
            ("#", "a", true),
            ("#", "/", true),
            ("$share/g/a/#", "a/b", true),
            ("$queue/a", "a", true),
            ("a/#/b", "a/x/b", false),
        ];
        for (f, t, want) in cases {
            assert_eq!(matches(f, t), want, "{f} vs {t}");
        }
    }

    #[test]
    fn trie_matches_subscribed_filters_as_names() {
        let mut trie = FilterTrie::new();
        trie.insert("queue/#", "q").unwrap();
        trie.insert("queue/a", "qa").unwrap();
        trie.insert("queue/+", "q+").unwrap();
        let mut m = trie.matching("queue/+");
        m.sort();
        assert_eq!(m, vec![&"q", &"q+"]);
        assert_eq!(trie.len(), 3);
    }

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound("a").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }

    fn level() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "", "$s", "+", "#"])
    }

    fn filter() -> impl Strategy<Value = String> {
        prop::collection::vec(level(), 1..5).prop_map(|v| v.join("/"))
    }

    fn name() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "", "$s"]), 1..6)
            .prop_map(|v| v.join("/"))
    }

    proptest! {
        #[test]
        fn trie_agrees_with_matches(filters in prop::collection::vec(filter(), 0..24), topic in name()) {
            let mut trie = FilterTrie::new();
            let mut valid = Vec::new();
            for (i, f) in filters.iter().enumerate() {
                if trie.insert(f, i).is_ok() {
                    valid.push(i);
                }
            }
            let mut got: Vec<usize> = trie.matching(&topic).into_iter().copied().collect();
            got.sort();
            let want: Vec<usize> = valid.into_iter().filter(|&i| matches(&filters[i], &topic)).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn parsers_never_panic(s in ".{0,40}") {
            let _ = validate_name(&s);
            let _ = validate_filter(&s);
            let _ = matches(&s, &s);
            let _ = literal_prefix(&s);
        }

        #[test]
        fn the_upper_bound_is_above_every_string_with_the_prefix(p in "\\PC{0,6}", rest in "\\PC{0,6}") {
            if let Some(upper) = prefix_upper_bound(&p) {
                let s = format!("{p}{rest}");
                prop_assert!(s.as_bytes() < upper.as_bytes());
                prop_assert!(p.as_bytes() < upper.as_bytes());
            }
        }

        #[test]
        fn literal_prefix_is_a_prefix_of_every_match(f in filter(), t in name()) {
            if validate_filter(&f).is_ok() && matches(&f, &t) {
                prop_assert!(t.starts_with(literal_prefix(&f)));
            }
        }
    }
}
