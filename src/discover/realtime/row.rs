//! A stream row (`TaskRun` columns as Postgres prints them) → [`RealtimeRun`]: the database status
//! mapped to the REST API's, zone-less timestamps read as UTC, `runTags` parsed from a Postgres
//! array literal (notes §3.7, §5).

use serde_json::Value;
use thiserror::Error;
use time::{Date, Month, PrimitiveDateTime, Time, UtcOffset};

use super::shape::RawRow;
use super::RealtimeRun;
use crate::trigger::api_types::{run_status, TERMINAL_STATUSES};

/// A row the bridge cannot turn into a run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RowError {
    /// Electric's updates carry only the changed columns: a run first seen in an update (its
    /// insert was before this client's snapshot, or the row was forgotten) has no public id.
    #[error("row {id} has no friendlyId (an update of a run whose insert this stream did not see)")]
    NoFriendlyId { id: String },
    #[error("run {run_id} has no status")]
    NoStatus { run_id: String },
    #[error("run {run_id}: runTags {text:?} is not a Postgres array literal")]
    Tags { run_id: String, text: String },
}

/// `TaskRunStatus`, the database's 17 values (`schema.prisma` L1267-1325), each with the REST
/// API's status (API version 2025-07-16, `apiStatusFromRunStatusV2`, which the SDK's realtime
/// mapping equals) and whether it is final (`FINAL_RUN_STATUSES`). The 9 non-final first.
pub const DB_STATUSES: [(&str, &str, bool); 17] = [
    ("DELAYED", "DELAYED", false),
    ("PENDING", "QUEUED", false),
    ("PENDING_VERSION", "PENDING_VERSION", false),
    // Deprecated in the schema, still a value rows may hold.
    ("WAITING_FOR_DEPLOY", "PENDING_VERSION", false),
    ("DEQUEUED", "DEQUEUED", false),
    ("EXECUTING", "EXECUTING", false),
    ("WAITING_TO_RESUME", "WAITING", false),
    ("RETRYING_AFTER_FAILURE", "EXECUTING", false),
    ("PAUSED", "WAITING", false),
    ("CANCELED", "CANCELED", true),
    ("INTERRUPTED", "FAILED", true),
    ("COMPLETED_SUCCESSFULLY", "COMPLETED", true),
    ("COMPLETED_WITH_ERRORS", "FAILED", true),
    ("SYSTEM_FAILURE", "SYSTEM_FAILURE", true),
    ("CRASHED", "CRASHED", true),
    ("EXPIRED", "EXPIRED", true),
    ("TIMED_OUT", "TIMED_OUT", true),
];

/// How a wire status was understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMapping {
    /// The REST API's status.
    pub api: &'static str,
    pub terminal: bool,
    /// False for a value that is neither a database status nor an API status: kept as it is and
    /// taken as not final (the SDK would call it `QUEUED`); worth a log line.
    pub known: bool,
}

/// The REST API's status for a database status. A value that already is an API status (a proxy
/// that rewrote it) is kept. Anything else is unknown: itself, not terminal.
pub fn map_status(db_status: &str) -> StatusMapping {
    if let Some((_, api, terminal)) = DB_STATUSES.iter().find(|(db, _, _)| *db == db_status) {
        return StatusMapping {
            api,
            terminal: *terminal,
            known: true,
        };
    }
    match run_status(db_status).filter(|api| *api == db_status) {
        Some(api) => StatusMapping {
            api,
            terminal: TERMINAL_STATUSES.contains(&api),
            known: true,
        },
        None => StatusMapping {
            api: "",
            terminal: false,
            known: false,
        },
    }
}

/// The run a merged row describes. `id` is the public `friendlyId`; the internal id is only the
/// row's key. Missing optional columns (skipped, or absent from a partial row) are `None`/empty.
pub fn parse(row: &RawRow) -> Result<RealtimeRun, RowError> {
    let text = |key: &str| row.get(key).and_then(Value::as_str);
    let internal = text("id").unwrap_or("?");
    let id = text("friendlyId")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| RowError::NoFriendlyId {
            id: internal.to_owned(),
        })?
        .to_owned();
    let db_status = text("status")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RowError::NoStatus { run_id: id.clone() })?
        .to_owned();
    let mapping = map_status(&db_status);
    let status = if mapping.known {
        mapping.api.to_owned()
    } else {
        db_status.clone()
    };
    let tags = match row.get("runTags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(literal)) => parse_tags(literal).ok_or_else(|| RowError::Tags {
            run_id: id.clone(),
            text: literal.clone(),
        })?,
        // Already typed (a JSON array): its strings.
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(other) => {
            return Err(RowError::Tags {
                run_id: id,
                text: other.to_string(),
            })
        }
    };
    let time = |key: &str| text(key).and_then(parse_timestamp);
    let completed_at = time("completedAt");
    Ok(RealtimeRun {
        terminal: mapping.terminal || completed_at.is_some(),
        status,
        db_status,
        task_identifier: text("taskIdentifier").map(str::to_owned),
        tags,
        is_test: row.get("isTest").is_some_and(is_true),
        created_at: time("createdAt"),
        updated_at: time("updatedAt"),
        completed_at,
        id,
    })
}

/// A Postgres boolean as text (`t`/`f`, `true`/`false`), or a JSON boolean.
fn is_true(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::String(text) => matches!(text.as_str(), "t" | "true" | "TRUE" | "True"),
        _ => false,
    }
}

/// `YYYY-MM-DD HH:MM:SS[.f]` or `YYYY-MM-DDTHH:MM:SS[.f]` (1–9 fraction digits) → unix ns. With
/// no zone it is UTC (Electric's session runs with `TimeZone = 'UTC'`; the native backend prints
/// `toISOString()` without its `Z`); a trailing `Z`, `±HH`, `±HHMM` or `±HH:MM` is honoured.
/// `None` for anything else, or an instant before 1970 or after 2262 (as the REST timestamps).
pub fn parse_timestamp(text: &str) -> Option<u64> {
    let text = text.trim().as_bytes();
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = text.get(range)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
    };
    if text.len() < 19 || text[4] != b'-' || text[7] != b'-' || !matches!(text[10], b' ' | b'T' | b't') {
        return None;
    }
    if text[13] != b':' || text[16] != b':' {
        return None;
    }
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let mut at = 19;
    let mut nanos = 0u32;
    if text.get(at) == Some(&b'.') {
        let digits = text[at + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = number(at + 1..at + 1 + digits)? * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let offset = match &text[at..] {
        [] | [b'Z' | b'z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (hours, minutes) = match rest {
                [h1, h2] => (&[*h1, *h2][..], &b"00"[..]),
                [h1, h2, m1, m2] | [h1, h2, b':', m1, m2] => (&[*h1, *h2][..], &[*m1, *m2][..]),
                _ => return None,
            };
            let two = |d: &[u8]| -> Option<i8> {
                d.iter()
                    .all(u8::is_ascii_digit)
                    .then(|| ((d[0] - b'0') * 10 + (d[1] - b'0')) as i8)
            };
            let sign = if *sign == b'-' { -1 } else { 1 };
            UtcOffset::from_hms(sign * two(hours)?, sign * two(minutes)?, 0).ok()?
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(year as i32, Month::try_from(month as u8).ok()?, day as u8).ok()?;
    let time = Time::from_hms_nano(hour as u8, minute as u8, second as u8, nanos).ok()?;
    let at = PrimitiveDateTime::new(date, time).assume_offset(offset);
    let nanos = i64::try_from(at.unix_timestamp_nanos()).ok()?;
    u64::try_from(nanos).ok()
}

/// A one-dimensional Postgres array literal of text → its elements: `{a,b}`, `{"a b","x,y"}`,
/// `{"say \"hi\"","back\\slash"}`. Unquoted elements are trimmed (Postgres ignores the blanks
/// around them) and an unquoted `NULL` is no element; `{}` and an empty text are no tags. `None`
/// when it is not such a literal.
pub fn parse_tags(literal: &str) -> Option<Vec<String>> {
    let literal = literal.trim();
    if literal.is_empty() {
        return Some(Vec::new());
    }
    let inner = literal.strip_prefix('{')?.strip_suffix('}')?;
    let mut tags = Vec::new();
    if inner.trim().is_empty() {
        return Some(tags);
    }
    let mut chars = inner.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut element = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => element.push(chars.next()?),
                    c => element.push(c),
                }
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            tags.push(element);
        } else {
            while let Some(c) = chars.next_if(|c| *c != ',') {
                match c {
                    // Nested arrays and stray quotes are not a tag list.
                    '{' | '}' | '"' => return None,
                    '\\' => element.push(chars.next()?),
                    c => element.push(c),
                }
            }
            let element = element.trim_end();
            if element.is_empty() {
                return None;
            }
            if !element.eq_ignore_ascii_case("NULL") {
                tags.push(element.to_owned());
            }
        }
        match chars.next() {
            None => return Some(tags),
            Some(',') => continue,
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::api_types::{ACTIVE_STATUSES, TERMINAL_STATUSES};
    use serde_json::json;

    const NS: u64 = 1_000_000_000;
    /// 2026-08-21T10:15:30Z.
    const AT: u64 = 1_787_307_330 * NS;

    fn row(value: Value) -> RawRow {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn every_database_status_maps_to_an_api_status_and_finality() {
        let expected = [
            ("DELAYED", "DELAYED", false),
            ("PENDING", "QUEUED", false),
            ("PENDING_VERSION", "PENDING_VERSION", false),
            ("WAITING_FOR_DEPLOY", "PENDING_VERSION", false),
            ("DEQUEUED", "DEQUEUED", false),
            ("EXECUTING", "EXECUTING", false),
            ("WAITING_TO_RESUME", "WAITING", false),
            ("RETRYING_AFTER_FAILURE", "EXECUTING", false),
            ("PAUSED", "WAITING", false),
            ("CANCELED", "CANCELED", true),
            ("INTERRUPTED", "FAILED", true),
            ("COMPLETED_SUCCESSFULLY", "COMPLETED", true),
            ("COMPLETED_WITH_ERRORS", "FAILED", true),
            ("SYSTEM_FAILURE", "SYSTEM_FAILURE", true),
            ("CRASHED", "CRASHED", true),
            ("EXPIRED", "EXPIRED", true),
            ("TIMED_OUT", "TIMED_OUT", true),
        ];
        assert_eq!(DB_STATUSES.len(), 17);
        for (db, api, terminal) in expected {
            let mapping = map_status(db);
            assert_eq!(
                (mapping.api, mapping.terminal, mapping.known),
                (api, terminal, true),
                "{db}"
            );
            // Every mapped status is one the REST API has, and agrees with its terminal list.
            assert!(run_status(api).is_some(), "{api}");
            assert_eq!(TERMINAL_STATUSES.contains(&api), terminal, "{db} → {api}");
            let run = parse(&row(json!({"id": "cm1", "friendlyId": "run_1", "status": db}))).unwrap();
            assert_eq!(
                (run.status.as_str(), run.db_status.as_str(), run.terminal),
                (api, db, terminal)
            );
        }
        assert_eq!(DB_STATUSES.iter().filter(|(_, _, t)| *t).count(), 8);
    }

    #[test]
    fn api_statuses_are_kept_and_unknown_ones_are_not_final() {
        for api in ACTIVE_STATUSES.iter().chain(TERMINAL_STATUSES.iter()) {
            let mapping = map_status(api);
            assert!(mapping.known, "{api}");
            assert_eq!(mapping.terminal, TERMINAL_STATUSES.contains(api), "{api}");
        }
        let unknown = map_status("SOMETHING_NEW");
        assert!(!unknown.known && !unknown.terminal);
        // Not the lower-case spelling: the wire carries the enum's exact names.
        assert!(!map_status("executing").known);
        let run = parse(&row(json!({"friendlyId": "run_1", "status": "SOMETHING_NEW"}))).unwrap();
        assert_eq!((run.status.as_str(), run.terminal), ("SOMETHING_NEW", false));
    }

    #[test]
    fn completed_at_makes_a_run_terminal_whatever_its_status() {
        let run = parse(&row(json!({"friendlyId": "run_1", "status": "EXECUTING",
                                    "completedAt": "2026-08-21 10:15:30"})))
        .unwrap();
        assert!(run.terminal);
        assert_eq!(run.completed_at, Some(AT));
    }

    #[test]
    fn timestamps_in_both_spellings_are_utc() {
        let cases = [
            ("2026-08-21 10:15:30", AT),
            ("2026-08-21 10:15:30.1", AT + 100_000_000),
            ("2026-08-21 10:15:30.12", AT + 120_000_000),
            ("2026-08-21 10:15:30.123", AT + 123_000_000),
            ("2026-08-21 10:15:30.123456", AT + 123_456_000),
            ("2026-08-21T10:15:30.123", AT + 123_000_000),
            ("2026-08-21T10:15:30.000", AT),
            ("2026-08-21T10:15:30.123Z", AT + 123_000_000),
            ("2026-08-21 12:15:30+02", AT),
            ("2026-08-21 12:15:30+02:00", AT),
            ("2026-08-21 08:45:30-0130", AT),
            (" 2026-08-21 10:15:30 ", AT),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_timestamp(text), Some(expected), "{text}");
        }
        for bad in [
            "",
            "2026-08-21",
            "2026-08-21 10:15",
            "2026-08-21 10:15:30.",
            "2026-08-21 10:15:30.1234567890",
            "2026-13-21 10:15:30",
            "2026-02-30 10:15:30",
            "2026-08-21 25:15:30",
            "2026-08-21X10:15:30",
            "2026-08-21 10:15:30 UTC",
            "2026-08-21 10:15:30+2",
            "1969-12-31 23:59:59",
            "2300-01-01 00:00:00",
            "21 Aug 2026",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad}");
        }
        let run = parse(&row(json!({"friendlyId": "run_1", "status": "PENDING",
                                    "createdAt": "2026-08-21 10:15:30.12", "updatedAt": "2026-08-21T10:15:30.123",
                                    "completedAt": null})))
        .unwrap();
        assert_eq!(run.created_at, Some(AT + 120_000_000));
        assert_eq!(run.updated_at, Some(AT + 123_000_000));
        assert_eq!(run.completed_at, None);
    }

    #[test]
    fn tags_from_postgres_array_literals() {
        let ok = |literal: &str, expected: &[&str]| {
            assert_eq!(
                parse_tags(literal),
                Some(expected.iter().map(|s| s.to_string()).collect()),
                "{literal}"
            );
        };
        ok("{}", &[]);
        ok("", &[]);
        ok("{ }", &[]);
        ok("{a}", &["a"]);
        ok("{a,b}", &["a", "b"]);
        ok("{user:1,order_7}", &["user:1", "order_7"]);
        // Electric's minimal quoting, and the native backend's quoting of every element.
        ok(r#"{"a b","x,y"}"#, &["a b", "x,y"]);
        ok(r#"{"a","b"}"#, &["a", "b"]);
        ok(
            r#"{plain,"with \"quote\"","back\\slash","{braces}"}"#,
            &["plain", "with \"quote\"", "back\\slash", "{braces}"],
        );
        ok(r#"{""}"#, &[""]);
        ok(r#"{"NULL",NULL}"#, &["NULL"]);
        ok("{ a , b }", &["a", "b"]);
        ok("{é,日本}", &["é", "日本"]);
        for bad in [
            "a,b",
            "{a",
            "a}",
            "{a,,b}",
            "{,}",
            r#"{"a}"#,
            r#"{"a"b}"#,
            "{{a}}",
            r#"{a"b}"#,
        ] {
            assert_eq!(parse_tags(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_in_a_row() {
        let tags = |value: Value| {
            parse(&row(
                json!({"friendlyId": "run_1", "status": "PENDING", "runTags": value}),
            ))
            .map(|r| r.tags)
        };
        assert_eq!(tags(Value::Null), Ok(vec![]));
        assert_eq!(tags(json!("{}")), Ok(vec![]));
        assert_eq!(tags(json!("{a,\"b c\"}")), Ok(vec!["a".to_owned(), "b c".to_owned()]));
        assert_eq!(tags(json!(["x", "y"])), Ok(vec!["x".to_owned(), "y".to_owned()]));
        assert!(matches!(tags(json!("{a")), Err(RowError::Tags { .. })));
        assert!(matches!(tags(json!(7)), Err(RowError::Tags { .. })));
        let absent = parse(&row(json!({"friendlyId": "run_1", "status": "PENDING"}))).unwrap();
        assert!(absent.tags.is_empty());
    }

    #[test]
    fn a_full_row() {
        let run = parse(&row(json!({
            "id": "cm4abcdef0123456789", "friendlyId": "run_abc", "taskIdentifier": "send-email",
            "status": "WAITING_TO_RESUME", "createdAt": "2026-08-21 10:15:30.12",
            "updatedAt": "2026-08-21 10:15:31.5", "startedAt": "2026-08-21 10:15:30.5",
            "completedAt": null, "runTags": "{user:1,\"a b\"}", "isTest": "t"
        })))
        .unwrap();
        assert_eq!(
            run,
            RealtimeRun {
                id: "run_abc".into(),
                status: "WAITING".into(),
                db_status: "WAITING_TO_RESUME".into(),
                terminal: false,
                task_identifier: Some("send-email".into()),
                tags: vec!["user:1".into(), "a b".into()],
                is_test: true,
                created_at: Some(AT + 120_000_000),
                updated_at: Some(AT + NS + 500_000_000),
                completed_at: None,
            }
        );
        for (text, expected) in [
            (json!("f"), false),
            (json!("true"), true),
            (json!(true), true),
            (json!(null), false),
        ] {
            let run = parse(&row(
                json!({"friendlyId": "run_1", "status": "PENDING", "isTest": text}),
            ))
            .unwrap();
            assert_eq!(run.is_test, expected);
        }
    }

    #[test]
    fn the_public_id_and_the_status_are_required() {
        assert_eq!(
            parse(&row(json!({"id": "cm1", "status": "PENDING"}))),
            Err(RowError::NoFriendlyId { id: "cm1".into() })
        );
        assert_eq!(
            parse(&row(json!({"id": "cm1", "friendlyId": "run_1"}))),
            Err(RowError::NoStatus { run_id: "run_1".into() })
        );
        assert!(parse(&row(json!({"id": "cm1", "friendlyId": "", "status": "PENDING"}))).is_err());
    }
}
