//! The EMQX `.conf` reader.

use std::collections::HashMap;

use super::rule::build_rule;
use super::*;
use crate::suggest::nearest;

impl Config {
    /// Reads the EMQX `.conf` format: `key = value` lines, `#`/`##`
    /// comments, pool settings, globals and rules. Reports every problem
    /// found, each with its line and key.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut first_kind: Option<(BackendKind, usize)> = None;
        let mut early: Vec<Problem> = Vec::new();
        let mut entries: Vec<(usize, String, String)> = Vec::new();
        let mut duplicates: Vec<(usize, String, String)> = Vec::new();
        for (i, raw_line) in text.lines().enumerate() {
            let line = i + 1;
            let trimmed = raw_line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let Some((key, value)) = trimmed.split_once('=') else {
                early.push(Problem {
                    line: Some(line),
                    key: trimmed.chars().take(60).collect(),
                    kind: ProblemKind::Syntax,
                });
                continue;
            };
            let (key, value) = (key.trim().to_owned(), value.trim().to_owned());
            if let Some(first_line) = seen.get(&key) {
                early.push(Problem {
                    line: Some(line),
                    key: key.clone(),
                    kind: ProblemKind::Duplicate {
                        first_line: *first_line,
                    },
                });
                duplicates.push((line, key, value));
                continue;
            }
            seen.insert(key.clone(), line);
            match (key_kind(&key), first_kind) {
                (None, _) => {
                    let kind = match key.strip_prefix("backend.").and_then(|r| r.split_once('.')) {
                        Some((name, _)) if !name.is_empty() => ProblemKind::UnknownBackend {
                            name: name.to_owned(),
                            known: BackendKind::registered_names(),
                        },
                        _ => ProblemKind::UnknownKey {
                            suggestion: Some(format!(
                                "backend.<{}>.…",
                                BackendKind::registered_names()
                            )),
                        },
                    };
                    early.push(Problem {
                        line: Some(line),
                        key,
                        kind,
                    })
                }
                (Some((k, _)), None) => {
                    first_kind = Some((k, line));
                    entries.push((line, key, value));
                }
                (Some((k, _)), Some((expected, first_line))) if k != expected => {
                    early.push(Problem {
                        line: Some(line),
                        key,
                        kind: ProblemKind::MixedKinds {
                            expected,
                            first_line,
                            found: k,
                        },
                    })
                }
                (Some(_), Some(_)) => entries.push((line, key, value)),
            }
        }
        let Some((kind, _)) = first_kind else {
            if early.is_empty() {
                early.push(Problem {
                    line: None,
                    key: String::new(),
                    kind: ProblemKind::Empty,
                });
            }
            return Err(ConfigError { problems: early });
        };
        let mut b = Builder::new(kind);
        b.problems = early;
        for (line, key, value) in entries {
            parse_entry(&mut b, line, &key, &value);
        }
        // A duplicate is reported as such, and its value is still checked so
        // that one run shows everything wrong on the line. A duplicate of a
        // key that is not of this config's kind was reported already.
        for (line, key, value) in duplicates {
            if key_kind(&key).map(|(k, _)| k) != Some(kind) {
                continue;
            }
            let mut scratch = Builder::new(kind);
            parse_entry(&mut scratch, line, &key, &value);
            b.problems.append(&mut scratch.problems);
            for (key, line, hook, index, json) in scratch.rules {
                if let Err(kind) = build_rule(kind, hook, index, json, line) {
                    b.problem(line, &key, kind);
                }
            }
        }
        b.finish()
    }
}

/// The backend kind a key names (`backend.<kind>.…`), if any.
fn key_kind(key: &str) -> Option<(BackendKind, bool)> {
    key.strip_prefix("backend.")
        .and_then(|r| r.split('.').next())
        .and_then(BackendKind::from_prefix)
}

/// One `backend.…` line, kind already checked.
fn parse_entry(b: &mut Builder, line: usize, key: &str, value: &str) {
    let kind = b.kind;
    let l = Some(line);
    let parts: Vec<&str> = key.split('.').collect();
    // A kind whose pools have a prefix of their own (Cassandra's `ecql`)
    // takes only pool keys under it.
    let pools_only = kind.pool_prefix() != kind.name() && parts.get(1) == Some(&kind.pool_prefix());
    // Never index past the end: the key comes from the user's file.
    let rest = parts.get(2..).unwrap_or_default();
    match rest {
        ["hook", hook_and_n @ ..] if !pools_only && hook_and_n.len() >= 2 => {
            let (n, hook_parts) = hook_and_n.split_last().unwrap_or((&"", &[]));
            let hook_name = hook_parts.join(".");
            let hook = match hook_name.parse::<Hook>() {
                Ok(h) => h,
                Err(_) => {
                    let suggestion = nearest(&hook_name, Hook::ALL.iter().map(|h| h.as_str()));
                    b.problem(
                        l,
                        key,
                        ProblemKind::UnknownHook {
                            name: hook_name,
                            suggestion,
                        },
                    );
                    return;
                }
            };
            let Ok(index) = n.parse::<u32>() else {
                b.problem(l, key, ProblemKind::BadRuleIndex((*n).to_owned()));
                return;
            };
            match serde_json::from_str::<RuleJson>(value) {
                Ok(json) => b.rules.push((key.to_owned(), l, hook, index, json)),
                Err(e) => b.problem(l, key, ProblemKind::InvalidJson(json_error(&e))),
            }
        }
        ["max_returned_count"] if !pools_only => match parse_count(value) {
            Ok(n) => b.limits.max_returned_count = n,
            Err(e) => b.problem(l, key, ProblemKind::BadLimit(e)),
        },
        ["time_range"] if !pools_only => match parse_duration(value) {
            Ok(d) => b.limits.time_range = d,
            Err(e) => b.problem(l, key, ProblemKind::BadLimit(e)),
        },
        [first, ..] if !pools_only && is_global_start(kind, first) => {
            b.global_setting(l, key, &rest.join("."), value);
        }
        [pool, name] if !matches!(*pool, "hook" | "max_returned_count" | "time_range") => {
            if !is_identifier(pool) {
                b.problem(l, key, unknown_key(kind, key));
            } else {
                b.pool_setting(l, key, pool, name, value);
            }
        }
        _ => b.problem(l, key, unknown_key(kind, key)),
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `first` is the first part of one of the kind's global keys
/// (`msg` of `msg.expired_after`): such a key is never a pool's.
fn is_global_start(kind: BackendKind, first: &str) -> bool {
    kind.spec()
        .global_keys
        .iter()
        .any(|k| k.name.split('.').next() == Some(first))
}

/// An unknown key, with the nearest key of the same shape suggested.
fn unknown_key(kind: BackendKind, key: &str) -> ProblemKind {
    let parts: Vec<&str> = key.split('.').collect();
    let mut candidates = vec![
        format!("backend.{}.max_returned_count", kind.name()),
        format!("backend.{}.time_range", kind.name()),
    ];
    candidates.extend(
        kind.spec()
            .global_keys
            .iter()
            .map(|k| format!("backend.{}.{}", kind.name(), k.name)),
    );
    if parts.len() > 3 {
        // A misspelt `hook` or a misspelt hook name.
        let tail = parts[3..].join(".");
        candidates.push(format!("backend.{}.hook.{tail}", kind.name()));
        if let Some(n) = parts.last() {
            for h in Hook::ALL {
                candidates.push(format!("backend.{}.hook.{h}.{n}", kind.name()));
            }
        }
    }
    ProblemKind::UnknownKey {
        suggestion: nearest(key, candidates.iter().map(String::as_str)).map(str::to_owned),
    }
}

fn json_error(e: &serde_json::Error) -> String {
    // serde_json says "at line 1 column N"; the line is the .conf line, so
    // only the column is worth repeating.
    let msg = e.to_string();
    match msg.rfind(" at line ") {
        Some(i) => format!("{} at column {}", &msg[..i], e.column()),
        None => msg,
    }
}
