//! Conversions between [`backend_core::Value`] / [`Timestamp`] and
//! mysql_async's values: binding raw statements' parameters, and reading
//! any column back as a `Value`.
//!
//! Times are UTC: a [`Timestamp`] is bound as a `DATETIME` value with its
//! milliseconds, and a `DATETIME`/`TIMESTAMP`/`DATE` column read back is
//! taken as UTC (the backend's sessions run with `time_zone = '+00:00'`).

use backend_core::{Bytes, Timestamp, Value};
use mysql_async::consts::ColumnType;
use mysql_async::Column;
use mysql_async::Value as MyValue;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A [`Timestamp`] in UTC as (year, month, day, hour, minute, second,
/// millisecond); `None` outside the years 0 to 9999, `DATETIME`'s range.
pub(crate) fn civil(t: Timestamp) -> Option<(u32, u32, u32, u32, u32, u32, u32)> {
    let ms = t.as_millis();
    let days = ms.div_euclid(MILLIS_PER_DAY);
    let in_day = ms.rem_euclid(MILLIS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return None;
    }
    let secs = in_day / 1000;
    let part = |v: i64| u32::try_from(v).ok();
    Some((
        part(y)?,
        part(m)?,
        part(d)?,
        part(secs / 3600)?,
        part(secs / 60 % 60)?,
        part(secs % 60)?,
        part(in_day % 1000)?,
    ))
}

/// A [`Timestamp`] as a `DATETIME` value in UTC, with its milliseconds;
/// `None` outside the years 0 to 9999.
pub(crate) fn datetime(t: Timestamp) -> Option<MyValue> {
    let (y, m, d, h, mi, s, ms) = civil(t)?;
    let small = |v: u32| u8::try_from(v).ok();
    Some(MyValue::Date(
        u16::try_from(y).ok()?,
        small(m)?,
        small(d)?,
        small(h)?,
        small(mi)?,
        small(s)?,
        ms * 1000,
    ))
}

/// A `DATETIME` value (UTC) as a [`Timestamp`], rounded down to the
/// millisecond; `None` for MySQL's zero date.
pub(crate) fn timestamp(v: &MyValue) -> Option<Timestamp> {
    match *v {
        MyValue::Date(y, m, d, h, mi, s, us) => {
            if m == 0 || d == 0 {
                return None;
            }
            let days = days_from_civil(i64::from(y), i64::from(m), i64::from(d));
            let secs = i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
            Some(Timestamp::from_millis(
                days * MILLIS_PER_DAY + secs * 1000 + i64::from(us) / 1000,
            ))
        }
        _ => None,
    }
}

/// A parameter for a bound value; the error says why it does not fit.
pub(crate) fn bind(v: &Value) -> Result<MyValue, String> {
    Ok(match v {
        Value::Null => MyValue::NULL,
        Value::Bool(b) => MyValue::Int(i64::from(*b)),
        Value::Int(i) => MyValue::Int(*i),
        Value::Float(f) => MyValue::Double(*f),
        Value::Text(s) => MyValue::Bytes(s.as_bytes().to_vec()),
        Value::Bytes(b) => MyValue::Bytes(b.to_vec()),
        Value::Time(t) => datetime(*t).ok_or_else(|| {
            format!(
                "the time {} ms since the epoch is outside DATETIME's range",
                t.as_millis()
            )
        })?,
    })
}

/// The `binary` character set: the column holds bytes, not text.
const BINARY_CHARSET: u16 = 63;

/// Reads a column of a raw statement's row as a [`Value`]:
///
/// - NULL → `Null`; integers → `Int` (an unsigned one above `i64::MAX` →
///   its decimal `Text`); `FLOAT`/`DOUBLE` → `Float`;
/// - `DATETIME`, `TIMESTAMP`, `DATE` → `Time` (UTC; the zero date →
///   `Text("0000-00-00 ...")`); `TIME` → `Text` (`-HH:MM:SS[.ffffff]`);
/// - `DECIMAL` → `Text`; columns of the `binary` character set (`BLOB`,
///   `VARBINARY`, `BINARY`, `BIT`) → `Bytes`; text columns → `Text` (or
///   `Bytes` if not valid UTF-8).
pub(crate) fn read(col: &Column, v: MyValue) -> Value {
    match v {
        MyValue::NULL => Value::Null,
        MyValue::Int(i) => Value::Int(i),
        MyValue::UInt(u) => {
            i64::try_from(u).map_or_else(|_| Value::Text(u.to_string()), Value::Int)
        }
        MyValue::Float(f) => Value::Float(f64::from(f)),
        MyValue::Double(f) => Value::Float(f),
        MyValue::Date(y, m, d, h, mi, s, us) => match timestamp(&v) {
            Some(t) => Value::Time(t),
            None => Value::Text(format!(
                "{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}{}",
                if us == 0 {
                    String::new()
                } else {
                    format!(".{us:06}")
                }
            )),
        },
        MyValue::Time(neg, days, h, m, s, us) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let mut t = format!("{}{hours:02}:{m:02}:{s:02}", if neg { "-" } else { "" });
            if us != 0 {
                t.push_str(&format!(".{us:06}"));
            }
            Value::Text(t)
        }
        MyValue::Bytes(b) => {
            let textual = matches!(
                col.column_type(),
                ColumnType::MYSQL_TYPE_DECIMAL
                    | ColumnType::MYSQL_TYPE_NEWDECIMAL
                    | ColumnType::MYSQL_TYPE_JSON
            ) || col.character_set() != BINARY_CHARSET;
            if textual {
                match String::from_utf8(b) {
                    Ok(s) => Value::Text(s),
                    Err(e) => Value::Bytes(Bytes::from(e.into_bytes())),
                }
            } else {
                Value::Bytes(Bytes::from(b))
            }
        }
    }
}

/// The bytes or text of a built-in table's column, as a `String` (lossy
/// for bytes that are not UTF-8, which the backend never writes).
pub(crate) fn text(v: MyValue) -> String {
    match v {
        MyValue::Bytes(b) => match String::from_utf8(b) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        },
        MyValue::NULL => String::new(),
        MyValue::Int(i) => i.to_string(),
        MyValue::UInt(u) => u.to_string(),
        other => describe(&other),
    }
}

/// A value as text for messages and lossy reads. Not mysql_common's
/// `Debug`, which overflows (a panic in debug builds) on a `TIME` with an
/// out-of-range day count.
pub(crate) fn describe(v: &MyValue) -> String {
    match v {
        MyValue::NULL => "NULL".into(),
        MyValue::Bytes(b) => format!("'{}'", String::from_utf8_lossy(b)),
        MyValue::Int(i) => i.to_string(),
        MyValue::UInt(u) => u.to_string(),
        MyValue::Float(f) => f.to_string(),
        MyValue::Double(f) => f.to_string(),
        MyValue::Date(y, m, d, h, mi, s, us) => {
            format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}")
        }
        MyValue::Time(neg, days, h, m, s, us) => format!(
            "{}{}:{m:02}:{s:02}.{us:06}",
            if *neg { "-" } else { "" },
            u64::from(*days) * 24 + u64::from(*h)
        ),
    }
}

/// An integer column (also text holding one, like the seed's
/// `state varchar(3)`).
pub(crate) fn int(v: &MyValue) -> Option<i64> {
    match v {
        MyValue::Int(i) => Some(*i),
        MyValue::UInt(u) => i64::try_from(*u).ok(),
        MyValue::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fuzz harness (target mysql-row): mysql_common's
    /// `Debug` of a `TIME` with a day count past what any server sends
    /// overflows; text and error messages no longer use it.
    #[test]
    fn out_of_range_values_describe_without_overflow() {
        let t = MyValue::Time(true, u32::MAX, 255, 59, 59, 999_999);
        assert_eq!(
            describe(&t),
            format!("-{}:59:59.999999", u64::from(u32::MAX) * 24 + 255)
        );
        assert_eq!(text(t.clone()), describe(&t));
        let d = MyValue::Date(65535, 255, 255, 255, 255, 255, u32::MAX);
        assert!(describe(&d).starts_with("65535-255-255"));
        let _ = read(&Column::new(ColumnType::MYSQL_TYPE_TIME), t);
        let _ = read(&Column::new(ColumnType::MYSQL_TYPE_DATETIME), d);
    }

    #[test]
    fn datetimes_round_trip() {
        for ms in [
            0,
            1,
            -1,
            999,
            1_479_202_840_000,
            1_481_685_802_123,
            951_782_400_000,     // 2000-02-29
            253_402_300_799_999, // 9999-12-31 23:59:59.999
            -62_135_596_800_000, // 0001-01-01
        ] {
            let t = Timestamp::from_millis(ms);
            let v = datetime(t).expect("in range");
            assert_eq!(timestamp(&v), Some(t), "{ms} -> {v:?}");
        }
        assert_eq!(
            datetime(Timestamp::from_secs(1_479_202_840)),
            Some(MyValue::Date(2016, 11, 15, 9, 40, 40, 0))
        );
        assert_eq!(
            datetime(Timestamp::from_millis(-1)),
            Some(MyValue::Date(1969, 12, 31, 23, 59, 59, 999_000))
        );
        assert_eq!(datetime(Timestamp::from_millis(i64::MAX)), None);
        assert_eq!(datetime(Timestamp::from_millis(i64::MIN)), None);
        assert_eq!(timestamp(&MyValue::Date(0, 0, 0, 0, 0, 0, 0)), None);
    }

    #[test]
    fn binding() {
        assert_eq!(bind(&Value::Null), Ok(MyValue::NULL));
        assert_eq!(bind(&Value::Bool(true)), Ok(MyValue::Int(1)));
        assert_eq!(
            bind(&Value::Bytes(Bytes::from_static(b"\x00\xff"))),
            Ok(MyValue::Bytes(vec![0, 255]))
        );
        assert_eq!(
            bind(&Value::Text("雨".into())),
            Ok(MyValue::Bytes("雨".as_bytes().to_vec()))
        );
        assert!(bind(&Value::Time(Timestamp::from_millis(i64::MAX))).is_err());
    }

    #[test]
    fn ints() {
        assert_eq!(int(&MyValue::Bytes(b"1".to_vec())), Some(1));
        assert_eq!(int(&MyValue::UInt(7)), Some(7));
        assert_eq!(int(&MyValue::NULL), None);
    }
}
