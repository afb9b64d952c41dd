//! `max_returned_count` and `time_range`.

use std::time::Duration;

use super::pool::unquote;

/// How many offline messages one fetch may return, and how old they may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// `max_returned_count`: the newest N are returned; `None` is `infinity`.
    pub max_returned_count: Option<usize>,
    /// `time_range`: messages older than this are not returned; `None` is
    /// `infinity`.
    pub time_range: Option<Duration>,
}

/// Parses a duration as the seed writes them: `2h`, `30m`, `45s`, `1d`, or
/// `infinity` (`None`).
///
/// ```
/// use std::time::Duration;
/// use backend_core::config::parse_duration;
/// assert_eq!(parse_duration("2h"), Ok(Some(Duration::from_secs(7200))));
/// assert_eq!(parse_duration("infinity"), Ok(None));
/// assert!(parse_duration("2 hours").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Option<Duration>, String> {
    let s = unquote(s.trim());
    if s == "infinity" {
        return Ok(None);
    }
    let err =
        || format!("bad duration `{s}`: expected a number with d, h, m or s (`2h`), or `infinity`");
    let unit = s.chars().last().ok_or_else(err)?;
    let secs_per = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Err(err()),
    };
    let n: u64 = s[..s.len() - 1].parse().map_err(|_| err())?;
    n.checked_mul(secs_per)
        .map(|secs| Some(Duration::from_secs(secs)))
        .ok_or_else(err)
}

/// Parses `max_returned_count`: a whole number, or `infinity` (`None`).
pub fn parse_count(s: &str) -> Result<Option<usize>, String> {
    let s = unquote(s.trim());
    if s == "infinity" {
        return Ok(None);
    }
    match s.parse::<usize>() {
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(format!(
            "bad number `{s}`: expected a whole number or `infinity`"
        )),
    }
}
