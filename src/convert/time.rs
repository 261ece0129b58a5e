//! Times (mapping rules 6, 7, 11): nanosecond start times parsed exactly, durations rounded,
//! event timestamps from RFC 3339 / ISO-8601 text to Unix nanoseconds.
//!
//! Start times are above 2^53 for every real run, so nothing here goes through `f64` except a
//! duration that arrived as a JSON float (already a float on the wire).

use crate::trigger::model::Field;
use serde_json::{Number, Value};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{OffsetDateTime, PrimitiveDateTime};

/// A JSON value as the time rules read it: a `serde_json::Value`, or an element's [`Field`].
pub trait JsonScalar {
    fn text(&self) -> Option<&str>;
    fn number(&self) -> Option<&Number>;
}

impl JsonScalar for Value {
    fn text(&self) -> Option<&str> {
        self.as_str()
    }
    fn number(&self) -> Option<&Number> {
        match self {
            Value::Number(number) => Some(number),
            _ => None,
        }
    }
}

impl JsonScalar for Field<'_> {
    fn text(&self) -> Option<&str> {
        self.as_str()
    }
    fn number(&self) -> Option<&Number> {
        self.as_number()
    }
}

/// Rule 6: a decimal string of digits, or a non-negative JSON integer. Anything else is `None`.
pub fn parse_start_time<T: JsonScalar + ?Sized>(value: Option<&T>) -> Option<u64> {
    let value = value?;
    if let Some(text) = value.text() {
        return parse_decimal_u64(text);
    }
    value.number().and_then(Number::as_u64)
}

fn parse_decimal_u64(text: &str) -> Option<u64> {
    // `str::parse::<u64>` would also accept a leading '+'; the API never sends one.
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Rule 7: a duration in nanoseconds. Integers are exact, floats round to the nearest
/// nanosecond (saturating), and a string holding a plain decimal number is read the same
/// way (some self-hosted versions serialise bigints as strings). Negative, non-finite,
/// non-numeric or missing: `None`.
pub fn parse_duration<T: JsonScalar + ?Sized>(value: Option<&T>) -> Option<u64> {
    let value = value?;
    if let Some(number) = value.number() {
        return match number.as_u64() {
            Some(exact) => Some(exact),
            None => number.as_f64().and_then(round_nanos),
        };
    }
    let text = value.text()?;
    parse_decimal_u64(text).or_else(|| {
        let plain = text.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if plain {
            text.parse::<f64>().ok().and_then(round_nanos)
        } else {
            None
        }
    })
}

fn round_nanos(float: f64) -> Option<u64> {
    if !float.is_finite() || float < 0.0 {
        return None;
    }
    // `as` saturates at u64::MAX, which is the documented behaviour for overflow.
    Some(float.round() as u64)
}

/// Rule 11: an event time as Unix nanoseconds. RFC 3339 with any fractional precision and any
/// offset; an ISO-8601 date-time without an offset is taken as UTC. `None` when unparseable
/// or before the epoch.
pub fn parse_event_time(value: Option<&Value>) -> Option<u64> {
    let text = value?.as_str()?.trim();
    let instant = OffsetDateTime::parse(text, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(text, &Iso8601::DEFAULT))
        .or_else(|_| PrimitiveDateTime::parse(text, &Iso8601::DEFAULT).map(|t| t.assume_utc()))
        .ok()?;
    u64::try_from(instant.unix_timestamp_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn start_time_above_2_pow_53_is_exact() {
        // 2^53 + 1 cannot be represented in f64; full-ns self-hosted times look like this.
        assert_eq!(
            parse_start_time(Some(&json!("9007199254740993"))),
            Some(9_007_199_254_740_993)
        );
        assert_eq!(
            parse_start_time(Some(&json!("1758630769250123457"))),
            Some(1_758_630_769_250_123_457)
        );
        // Cloud store: millisecond precision.
        assert_eq!(
            parse_start_time(Some(&json!("1758630769250000000"))),
            Some(1_758_630_769_250_000_000)
        );
        assert_eq!(
            parse_start_time(Some(&json!(1758630769250123457u64))),
            Some(1_758_630_769_250_123_457)
        );
        assert_eq!(parse_start_time(Some(&json!("18446744073709551615"))), Some(u64::MAX));
    }

    #[test]
    fn bad_start_times_are_rejected() {
        for bad in [
            json!("est eu velit"),
            json!("-5"),
            json!("+5"),
            json!(""),
            json!("18446744073709551616"),
            json!("1.5e18"),
            json!(-5),
            json!(1.5),
            json!(null),
            json!(true),
            json!({"n": 1}),
        ] {
            assert_eq!(parse_start_time(Some(&bad)), None, "{bad}");
        }
        assert_eq!(parse_start_time(None::<&Value>), None);
    }

    #[test]
    fn durations_integer_float_and_string() {
        assert_eq!(parse_duration(Some(&json!(1500))), Some(1500));
        assert_eq!(parse_duration(Some(&json!(1500000.6))), Some(1_500_001));
        assert_eq!(parse_duration(Some(&json!(1500000.4))), Some(1_500_000));
        assert_eq!(parse_duration(Some(&json!(0))), Some(0));
        assert_eq!(parse_duration(Some(&json!(1e30))), Some(u64::MAX));
        assert_eq!(parse_duration(Some(&json!("2500"))), Some(2500));
        assert_eq!(parse_duration(Some(&json!("2500.5"))), Some(2501));
    }

    #[test]
    fn bad_durations_are_rejected() {
        for bad in [
            json!(-1),
            json!(-0.5),
            json!("abc"),
            json!("NaN"),
            json!("inf"),
            json!("-3"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(parse_duration(Some(&bad)), None, "{bad}");
        }
        assert_eq!(parse_duration(None::<&Value>), None);
        assert_eq!(round_nanos(f64::NAN), None);
    }

    #[test]
    fn event_times_with_and_without_fraction_and_offsets() {
        let base = 1_758_630_769_000_000_000u64; // 2025-09-23T12:32:49Z
        let cases = [
            ("2025-09-23T12:32:49Z", base),
            ("2025-09-23T12:32:49.250Z", base + 250_000_000),
            ("2025-09-23T12:32:49.123456789Z", base + 123_456_789),
            ("2025-09-23T14:32:49.250+02:00", base + 250_000_000),
            ("2025-09-23T07:32:49-05:00", base),
            ("2025-09-23T12:32:49.25", base + 250_000_000),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_event_time(Some(&json!(text))), Some(expected), "{text}");
        }
    }

    #[test]
    fn bad_event_times_are_rejected() {
        for bad in [
            json!("yesterday"),
            json!(""),
            json!(1758630769),
            json!("1969-12-31T23:59:59Z"),
            json!(null),
        ] {
            assert_eq!(parse_event_time(Some(&bad)), None, "{bad}");
        }
    }
}
