//! Serde types for what `GET /api/v1/runs/{runId}/events` really sends.
//!
//! Parsing is deliberately lenient: every field is kept as the value that arrived (a compact
//! [`Field`]: scalars typed, arrays and objects as JSON) and judged later by the converter
//! (../shared/mapping.md decides the fate of a bad element).
//! A wrongly typed field, or an array element that is not even an object, must never fail the
//! whole response, so nothing here uses serde's strict typed fields. A hand-written visitor
//! (instead of `#[serde(flatten)]`) keeps unknown fields without buffering every element twice.

mod field;

use super::out_of_range;
pub use field::{Field, Style};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// A hash of a whole response body, to tell a byte-identical one from the last without parsing
/// it: foldhash with a fixed seed reads about 10 GB/s, a 9 MB body in about a millisecond, where
/// parsing it costs tens. Not for adversarial inputs (Trigger.dev is trusted to not craft
/// collisions); a collision would only delay new spans until the body changes again.
pub fn body_hash(body: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x7472_6967_6765_7221).hash_one(body)
}

/// One element of the `events` array, fields as they arrived.
///
/// Each known field is a [`Field`]: scalars are held typed and compact, an array or object as
/// JSON, so a wrongly typed field is still there, exactly, for the converter to judge and report.
/// `style` keeps only what the mapping reads from it ([`Style`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawEvent {
    pub span_id: Option<Field>,
    pub parent_id: Option<Field>,
    pub run_id: Option<Field>,
    pub message: Option<Field>,
    pub start_time: Option<Field>,
    pub duration: Option<Field>,
    pub is_error: Option<Field>,
    pub is_cancelled: Option<Field>,
    pub is_partial: Option<Field>,
    pub level: Option<Field>,
    pub kind: Option<Field>,
    pub attempt_number: Option<Field>,
    pub task_slug: Option<Field>,
    pub events: Option<Field>,
    pub style: Style,
    /// Top-level fields this bridge does not know, in arrival order.
    pub other: Vec<(String, Value)>,
    /// The array element was not a JSON object (a number, a string…): invalid as a whole.
    pub not_an_object: bool,
    /// Top-level fields that held a number literal beyond the range of a 64-bit float (read as
    /// `null`), with that literal: the reason the converter gives when it judges the field.
    pub out_of_range: Vec<OutOfRangeNumber>,
}

/// A value serde_json cannot read, found in one top-level field of an element and read as
/// `null`: a number literal no `f64` holds (`1e400`), or a value nested too deeply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfRangeNumber {
    /// The field as sent (`duration`, `startTime`, …); for a literal nested deeper, the
    /// top-level field holding it.
    pub field: String,
    /// The literal, shortened to 64 characters.
    pub literal: String,
    /// What is wrong with it, for messages.
    pub why: &'static str,
}

impl RawEvent {
    /// The element's `spanId` when it is a string (used for logging and dedup keys).
    pub fn span_id_str(&self) -> Option<&str> {
        self.span_id.as_ref().and_then(Field::as_str)
    }

    /// The unreadable value that `field` held, if it held one (it then reads `null`).
    pub fn out_of_range(&self, field: &str) -> Option<&OutOfRangeNumber> {
        self.out_of_range.iter().find(|number| number.field == field)
    }
}

/// The body of the events endpoint: `{"events": [...]}`. A bare array is accepted too
/// (what `convert` users paste from other tools).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventsBody {
    pub events: Vec<RawEvent>,
}

impl EventsBody {
    /// Parse a body. Errors only for malformed JSON or a top-level shape that is neither
    /// an object with `events` nor an array; serde_json's error carries line and column.
    ///
    /// A number literal beyond the range of a 64-bit float (`1e400`), or a value nested deeper
    /// than serde_json reads, is not an error: serde_json refuses the whole body for it, so such
    /// a body is parsed again with each of those values read as `null` and noted on its element
    /// ([`RawEvent::out_of_range`]). Bodies without one take the normal parse only.
    pub fn from_slice(body: &[u8]) -> Result<Self, serde_json::Error> {
        match serde_json::from_slice(body) {
            Err(error) if out_of_range::is_out_of_range(&error) => Self::without_out_of_range(body).ok_or(error),
            parsed => parsed,
        }
    }

    pub fn from_reader<R: std::io::Read>(mut reader: R) -> Result<Self, serde_json::Error> {
        let mut body = Vec::new();
        reader.read_to_end(&mut body).map_err(serde_json::Error::io)?;
        Self::from_slice(&body)
    }

    /// The body with its out-of-range literals read as `null`; `None` when it still does not
    /// parse (it is malformed in another way too: the caller reports the first error).
    fn without_out_of_range(body: &[u8]) -> Option<Self> {
        let rewritten = out_of_range::rewrite(body);
        if rewritten.replaced == 0 {
            return None;
        }
        let mut parsed: EventsBody = serde_json::from_slice(&rewritten.body).ok()?;
        for found in rewritten.found {
            if let Some(event) = parsed.events.get_mut(found.element) {
                event.out_of_range.push(OutOfRangeNumber {
                    field: found.field,
                    literal: found.literal,
                    why: found.why,
                });
            }
        }
        Some(parsed)
    }
}

impl<'de> Deserialize<'de> for EventsBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = EventsBody;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an object {"events": [...]} or an array of events"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EventsBody, A::Error> {
                Ok(EventsBody {
                    events: collect_events(seq)?,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventsBody, A::Error> {
                let mut events = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "events" {
                        events = Some(map.next_value::<EventList>()?.0);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                events
                    .map(|events| EventsBody { events })
                    .ok_or_else(|| de::Error::missing_field("events"))
            }
        }
        deserializer.deserialize_any(BodyVisitor)
    }
}

/// `events` may be `null` on an empty run in some server versions: treat it as empty.
struct EventList(Vec<RawEvent>);

impl<'de> Deserialize<'de> for EventList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = EventList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of events")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EventList, A::Error> {
                Ok(EventList(collect_events(seq)?))
            }
            fn visit_unit<E: de::Error>(self) -> Result<EventList, E> {
                Ok(EventList(Vec::new()))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

fn collect_events<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<RawEvent>, A::Error> {
    let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0));
    while let Some(event) = seq.next_element::<RawEvent>()? {
        events.push(event);
    }
    Ok(events)
}

impl<'de> Deserialize<'de> for RawEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawEventVisitor)
    }
}

struct RawEventVisitor;

impl RawEventVisitor {
    fn not_an_object<E>(self) -> Result<RawEvent, E> {
        Ok(RawEvent {
            not_an_object: true,
            ..RawEvent::default()
        })
    }
}

impl<'de> Visitor<'de> for RawEventVisitor {
    type Value = RawEvent;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent, A::Error> {
        let mut event = RawEvent::default();
        while let Some(key) = map.next_key::<EventKey>()? {
            let slot = match key {
                EventKey::SpanId => &mut event.span_id,
                EventKey::ParentId => &mut event.parent_id,
                EventKey::RunId => &mut event.run_id,
                EventKey::Message => &mut event.message,
                EventKey::StartTime => &mut event.start_time,
                EventKey::Duration => &mut event.duration,
                EventKey::IsError => &mut event.is_error,
                EventKey::IsCancelled => &mut event.is_cancelled,
                EventKey::IsPartial => &mut event.is_partial,
                EventKey::Level => &mut event.level,
                EventKey::Kind => &mut event.kind,
                EventKey::AttemptNumber => &mut event.attempt_number,
                EventKey::TaskSlug => &mut event.task_slug,
                EventKey::Events => &mut event.events,
                EventKey::Style => {
                    event.style = map.next_value()?;
                    continue;
                }
                EventKey::Other(key) => {
                    event.other.push((key, map.next_value()?));
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(event)
    }

    // Anything that is not an object is one invalid element, not a failed response.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEvent, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.not_an_object()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawEvent, E> {
        self.not_an_object()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawEvent, E> {
        self.not_an_object()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawEvent, E> {
        self.not_an_object()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawEvent, E> {
        self.not_an_object()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawEvent, E> {
        self.not_an_object()
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawEvent, E> {
        self.not_an_object()
    }
}

/// A key of an element: the known ones without allocating.
enum EventKey {
    SpanId,
    ParentId,
    RunId,
    Message,
    StartTime,
    Duration,
    IsError,
    IsCancelled,
    IsPartial,
    Level,
    Kind,
    AttemptNumber,
    TaskSlug,
    Events,
    Style,
    Other(String),
}

impl<'de> Deserialize<'de> for EventKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = EventKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<EventKey, E> {
                Ok(match key {
                    "spanId" => EventKey::SpanId,
                    "parentId" => EventKey::ParentId,
                    "runId" => EventKey::RunId,
                    "message" => EventKey::Message,
                    "startTime" => EventKey::StartTime,
                    "duration" => EventKey::Duration,
                    "isError" => EventKey::IsError,
                    "isCancelled" => EventKey::IsCancelled,
                    "isPartial" => EventKey::IsPartial,
                    "level" => EventKey::Level,
                    "kind" => EventKey::Kind,
                    "attemptNumber" => EventKey::AttemptNumber,
                    "taskSlug" => EventKey::TaskSlug,
                    "events" => EventKey::Events,
                    "style" => EventKey::Style,
                    _ => EventKey::Other(key.to_owned()),
                })
            }
            fn visit_string<E: de::Error>(self, key: String) -> Result<EventKey, E> {
                match self.visit_str(&key)? {
                    EventKey::Other(_) => Ok(EventKey::Other(key)),
                    known => Ok(known),
                }
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_object_body_and_keeps_unknown_fields_in_order() {
        let body = br#"{"events":[{"spanId":"0123456789abcdef","startTime":"1","environmentType":"DEVELOPMENT","idempotencyKey":null}],"extra":1}"#;
        let parsed = EventsBody::from_slice(body).unwrap();
        assert_eq!(parsed.events.len(), 1);
        let e = &parsed.events[0];
        assert_eq!(e.span_id_str(), Some("0123456789abcdef"));
        assert_eq!(e.start_time, Some(Field::from(json!("1"))));
        assert_eq!(
            e.other,
            vec![
                ("environmentType".to_string(), json!("DEVELOPMENT")),
                ("idempotencyKey".to_string(), Value::Null)
            ]
        );
    }

    #[test]
    fn parses_bare_array_and_null_events() {
        assert_eq!(EventsBody::from_slice(b"[]").unwrap().events.len(), 0);
        assert_eq!(EventsBody::from_slice(br#"{"events":null}"#).unwrap().events.len(), 0);
        assert_eq!(
            EventsBody::from_slice(br#"[{"spanId":1}]"#).unwrap().events[0].span_id,
            Some(Field::from(json!(1)))
        );
    }

    #[test]
    fn non_object_elements_are_kept_as_invalid_not_fatal() {
        let parsed = EventsBody::from_slice(br#"[42, "x", null, true, [1,2], {"spanId":"a"}]"#).unwrap();
        let flags: Vec<bool> = parsed.events.iter().map(|e| e.not_an_object).collect();
        assert_eq!(flags, vec![true, true, true, true, true, false]);
    }

    #[test]
    fn malformed_json_reports_line_and_column() {
        let err = EventsBody::from_slice(b"{\n  \"events\": [\n   {\"spanId\": }\n]}").unwrap_err();
        assert_eq!(err.line(), 3);
        assert!(err.column() > 0);
    }

    #[test]
    fn numbers_beyond_f64_never_fail_the_body() {
        let body = br#"{"events":[{"spanId":"0123456789abcdef","startTime":"1","duration":1e400},1e400,{"spanId":"0123456789abcdef","startTime":"1","duration":5,"events":[{"name":"e","properties":{"n":-1e400}}],"extra":[2e400]}],"other":9e999}"#;
        let parsed = EventsBody::from_slice(body).unwrap();
        assert_eq!(parsed.events.len(), 3);
        let [bad, literal, good] = &parsed.events[..] else {
            unreachable!()
        };
        assert_eq!(bad.duration, Some(Field::Null));
        assert_eq!(bad.out_of_range("duration").map(|n| n.literal.as_str()), Some("1e400"));
        assert_eq!(bad.span_id_str(), Some("0123456789abcdef"));
        assert!(literal.not_an_object);
        assert_eq!(good.duration, Some(Field::from(json!(5))));
        assert_eq!(
            good.events,
            Some(Field::from(json!([{"name": "e", "properties": {"n": null}}])))
        );
        assert_eq!(good.other, vec![("extra".to_string(), json!([null]))]);
        assert_eq!(good.out_of_range("events").map(|n| n.literal.as_str()), Some("-1e400"));
        assert_eq!(good.out_of_range("extra").map(|n| n.literal.as_str()), Some("2e400"));
        assert_eq!(good.out_of_range("duration"), None);
        // A bare array, and a 400-digit integer.
        let body = format!(r#"[{{"spanId":"a","startTime":{}}}]"#, "9".repeat(400));
        let parsed = EventsBody::from_slice(body.as_bytes()).unwrap();
        assert_eq!(parsed.events[0].start_time, Some(Field::Null));
        assert!(parsed.events[0]
            .out_of_range("startTime")
            .unwrap()
            .literal
            .ends_with('…'));
        // Through a reader too.
        assert_eq!(
            EventsBody::from_reader(&br#"[{"duration":1e400}]"#[..])
                .unwrap()
                .events
                .len(),
            1
        );
    }

    #[test]
    fn a_body_malformed_besides_its_out_of_range_number_is_still_an_error() {
        let err = EventsBody::from_slice(br#"{"events":[{"duration":1e400},,]}"#).unwrap_err();
        assert!(err.to_string().starts_with("number out of range"), "{err}");
        // The shape is judged as sent: `events` must still be an array, the body an object or array.
        for body in [&br#"{"events":1e400}"#[..], b"1e400", br#"{"nothing":1e400}"#] {
            assert!(
                EventsBody::from_slice(body).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn missing_events_key_or_scalar_body_is_an_error() {
        assert!(EventsBody::from_slice(br#"{"error":"Run not found"}"#).is_err());
        assert!(EventsBody::from_slice(b"42").is_err());
    }
}
