//! Serde types for what `GET /api/v1/runs/{runId}/events` really sends.
//!
//! Parsing is deliberately lenient: every field the mapping reads is kept as the value that
//! arrived (a compact [`Field`]: scalars typed, strings borrowed from the body where they need no
//! unescaping, arrays and objects as JSON) and judged later by the converter
//! (../shared/mapping.md decides the fate of a bad element). What the mapping never reads (the
//! non-scalar values of unknown fields, `style`'s other keys) is skipped unparsed.
//! A wrongly typed field, or an array element that is not even an object, must never fail the
//! whole response, so nothing here uses serde's strict typed fields. A hand-written visitor
//! (instead of `#[serde(flatten)]`) keeps unknown fields without buffering every element twice.

mod field;

use super::out_of_range;
use field::ScalarOnly;
pub use field::{Field, Style};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
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
pub struct RawEvent<'a> {
    pub span_id: Option<Field<'a>>,
    pub parent_id: Option<Field<'a>>,
    pub run_id: Option<Field<'a>>,
    pub message: Option<Field<'a>>,
    pub start_time: Option<Field<'a>>,
    pub duration: Option<Field<'a>>,
    pub is_error: Option<Field<'a>>,
    pub is_cancelled: Option<Field<'a>>,
    pub is_partial: Option<Field<'a>>,
    pub level: Option<Field<'a>>,
    pub kind: Option<Field<'a>>,
    pub attempt_number: Option<Field<'a>>,
    pub task_slug: Option<Field<'a>>,
    pub events: Option<Field<'a>>,
    pub style: Style,
    /// Top-level fields this bridge does not know whose value is a scalar (a string, number,
    /// boolean or null: what may become an attribute), in arrival order. Unknown fields holding
    /// an array or object are skipped unparsed: the mapping never reads them.
    pub other: Vec<(Cow<'a, str>, Field<'a>)>,
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

impl RawEvent<'_> {
    /// The same element owning its strings, free of the body it was parsed from.
    pub fn into_owned(self) -> RawEvent<'static> {
        let owned = |field: Option<Field>| field.map(Field::into_owned);
        RawEvent {
            span_id: owned(self.span_id),
            parent_id: owned(self.parent_id),
            run_id: owned(self.run_id),
            message: owned(self.message),
            start_time: owned(self.start_time),
            duration: owned(self.duration),
            is_error: owned(self.is_error),
            is_cancelled: owned(self.is_cancelled),
            is_partial: owned(self.is_partial),
            level: owned(self.level),
            kind: owned(self.kind),
            attempt_number: owned(self.attempt_number),
            task_slug: owned(self.task_slug),
            events: owned(self.events),
            style: self.style,
            other: self
                .other
                .into_iter()
                .map(|(name, value)| (Cow::Owned(name.into_owned()), value.into_owned()))
                .collect(),
            not_an_object: self.not_an_object,
            out_of_range: self.out_of_range,
        }
    }

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
pub struct EventsBody<'a> {
    pub events: Vec<RawEvent<'a>>,
}

impl<'a> EventsBody<'a> {
    /// Parse a body. Errors only for malformed JSON or a top-level shape that is neither
    /// an object with `events` nor an array; serde_json's error carries line and column.
    ///
    /// A number literal beyond the range of a 64-bit float (`1e400`), or a value nested deeper
    /// than serde_json reads, is not an error: serde_json refuses the whole body for it, so such
    /// a body is parsed again with each of those values read as `null` and noted on its element
    /// ([`RawEvent::out_of_range`]). Bodies without one take the normal parse only.
    pub fn from_slice(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        match Self::from_slice_exact(body) {
            Err(error) if out_of_range::is_out_of_range(&error) => Self::without_out_of_range(body).ok_or(error),
            parsed => parsed,
        }
    }

    fn from_slice_exact(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The body read from `reader`, owning its strings.
    pub fn from_reader<R: std::io::Read>(mut reader: R) -> Result<EventsBody<'static>, serde_json::Error> {
        let mut body = Vec::new();
        reader.read_to_end(&mut body).map_err(serde_json::Error::io)?;
        EventsBody::from_slice(&body).map(EventsBody::into_owned)
    }

    /// The same body owning its strings.
    pub fn into_owned(self) -> EventsBody<'static> {
        EventsBody {
            events: self.events.into_iter().map(RawEvent::into_owned).collect(),
        }
    }

    /// The body with its out-of-range literals read as `null`; `None` when it still does not
    /// parse (it is malformed in another way too: the caller reports the first error). The
    /// rewritten body is a copy, so this rare parse owns its strings.
    fn without_out_of_range(body: &[u8]) -> Option<EventsBody<'static>> {
        let rewritten = out_of_range::rewrite(body);
        if rewritten.replaced == 0 {
            return None;
        }
        let mut parsed = EventsBody::from_slice_exact(&rewritten.body).ok()?.into_owned();
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

self_cell::self_cell!(
    /// A response body and its parse, which borrows its strings from it: what a poll holds
    /// between reading a body and converting it.
    pub struct EventsResponse {
        owner: Vec<u8>,
        #[covariant]
        dependent: EventsBody,
    }
);

impl EventsResponse {
    /// Parse `body`; on failure `on_error` gets the body and serde_json's error.
    pub fn parse<E>(body: Vec<u8>, on_error: impl FnOnce(&[u8], serde_json::Error) -> E) -> Result<Self, E> {
        EventsResponse::try_new(body, |body| {
            EventsBody::from_slice(body).map_err(|err| on_error(body, err))
        })
    }

    /// The elements, as parsed.
    pub fn events(&self) -> &[RawEvent<'_>] {
        &self.borrow_dependent().events
    }

    /// Hand the elements to `convert` (they are taken: the body itself stays until `self` goes).
    pub fn take_events<R>(&mut self, convert: impl for<'a> FnOnce(Vec<RawEvent<'a>>) -> R) -> R {
        self.with_dependent_mut(|_, body| convert(std::mem::take(&mut body.events)))
    }

    /// The size of the body in bytes.
    pub fn body_len(&self) -> usize {
        self.borrow_owner().len()
    }
}

impl Default for EventsResponse {
    fn default() -> Self {
        EventsResponse::new(Vec::new(), |_| EventsBody::default())
    }
}

/// The body's size and element count, not its ten megabytes.
impl fmt::Debug for EventsResponse {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.debug_struct("EventsResponse")
            .field("body_len", &self.body_len())
            .field("events", &self.events().len())
            .finish()
    }
}

impl<'de> Deserialize<'de> for EventsBody<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = EventsBody<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"an object {"events": [...]} or an array of events"#)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EventsBody<'de>, A::Error> {
                Ok(EventsBody {
                    events: collect_events(seq)?,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventsBody<'de>, A::Error> {
                let mut events = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "events" {
                        events = Some(map.next_value::<EventList<'de>>()?.0);
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
struct EventList<'a>(Vec<RawEvent<'a>>);

impl<'de> Deserialize<'de> for EventList<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;
        impl<'de> Visitor<'de> for ListVisitor {
            type Value = EventList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of events")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<EventList<'de>, A::Error> {
                Ok(EventList(collect_events(seq)?))
            }
            fn visit_unit<E: de::Error>(self) -> Result<EventList<'de>, E> {
                Ok(EventList(Vec::new()))
            }
        }
        deserializer.deserialize_any(ListVisitor)
    }
}

fn collect_events<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<RawEvent<'de>>, A::Error> {
    let mut events = Vec::with_capacity(seq.size_hint().unwrap_or(0));
    while let Some(event) = seq.next_element::<RawEvent<'de>>()? {
        events.push(event);
    }
    Ok(events)
}

impl<'de> Deserialize<'de> for RawEvent<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawEventVisitor)
    }
}

struct RawEventVisitor;

impl RawEventVisitor {
    fn not_an_object<'a, E>(self) -> Result<RawEvent<'a>, E> {
        Ok(RawEvent {
            not_an_object: true,
            ..RawEvent::default()
        })
    }
}

impl<'de> Visitor<'de> for RawEventVisitor {
    type Value = RawEvent<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEvent<'de>, A::Error> {
        let mut event = RawEvent::default();
        while let Some(key) = map.next_key::<EventKey<'de>>()? {
            // The strings a span carries out (its name, run id and level; `Style` owns the
            // style's icon and variant) are copied now, while the parser has them in cache; copied when the span
            // is built, from a body of megabytes long out of cache, they cost more than the
            // parse saved. The ones only read (ids, times, kind) stay borrowed.
            let slot = match key {
                EventKey::RunId => {
                    event.run_id = Some(map.next_value::<Field>()?.into_owned());
                    continue;
                }
                EventKey::Message => {
                    event.message = Some(map.next_value::<Field>()?.into_owned());
                    continue;
                }
                EventKey::Level => {
                    event.level = Some(map.next_value::<Field>()?.into_owned());
                    continue;
                }
                EventKey::SpanId => &mut event.span_id,
                EventKey::ParentId => &mut event.parent_id,
                EventKey::StartTime => &mut event.start_time,
                EventKey::Duration => &mut event.duration,
                EventKey::IsError => &mut event.is_error,
                EventKey::IsCancelled => &mut event.is_cancelled,
                EventKey::IsPartial => &mut event.is_partial,
                EventKey::Kind => &mut event.kind,
                EventKey::AttemptNumber => &mut event.attempt_number,
                EventKey::TaskSlug => &mut event.task_slug,
                EventKey::Events => &mut event.events,
                EventKey::Style => {
                    event.style = map.next_value()?;
                    continue;
                }
                EventKey::Other(key) => {
                    if let Some(value) = map.next_value::<ScalarOnly<'de>>()?.0 {
                        event.other.push((key, value));
                    }
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(event)
    }

    // Anything that is not an object is one invalid element, not a failed response.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEvent<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.not_an_object()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawEvent<'de>, E> {
        self.not_an_object()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawEvent<'de>, E> {
        self.not_an_object()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawEvent<'de>, E> {
        self.not_an_object()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawEvent<'de>, E> {
        self.not_an_object()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawEvent<'de>, E> {
        self.not_an_object()
    }
    fn visit_unit<E: de::Error>(self) -> Result<RawEvent<'de>, E> {
        self.not_an_object()
    }
}

/// A key of an element: the known ones without allocating, an unknown one borrowed when the
/// body allows.
enum EventKey<'a> {
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
    Other(Cow<'a, str>),
}

impl<'de> Deserialize<'de> for EventKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = EventKey<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<EventKey<'de>, E> {
                match self.visit_str(key)? {
                    EventKey::Other(_) => Ok(EventKey::Other(Cow::Borrowed(key))),
                    known => Ok(known),
                }
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<EventKey<'de>, E> {
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
                    _ => EventKey::Other(Cow::Owned(key.to_owned())),
                })
            }
            fn visit_string<E: de::Error>(self, key: String) -> Result<EventKey<'de>, E> {
                match self.visit_str(&key)? {
                    EventKey::Other(_) => Ok(EventKey::Other(Cow::Owned(key))),
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
                ("environmentType".into(), Field::String("DEVELOPMENT".into())),
                ("idempotencyKey".into(), Field::Null)
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
        // An unknown field holding an array is not kept (the mapping reads only scalars).
        assert!(good.other.is_empty());
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
