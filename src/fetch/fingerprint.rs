//! What a poll's body says at a glance: whether it changed since the last poll (a fingerprint),
//! and whether it shows that the run ended.

use crate::convert::is_log_record;
use crate::trigger::model::{Field, RawEvent};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

/// A cheap summary of a response: whether anything changed since the last poll.
pub fn fingerprint(events: &[RawEvent]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    events.len().hash(&mut hasher);
    let mut field = |value: &Option<Field>| {
        value.is_some().hash(&mut hasher);
        if let Some(value) = value {
            value.hash_into(&mut hasher);
        }
    };
    for event in events {
        field(&event.span_id);
        field(&event.is_partial);
        field(&event.duration);
        field(&event.is_error);
    }
    hasher.finish()
}

fn text<'a>(field: &'a Option<Field<'_>>) -> Option<&'a str> {
    field.as_ref().and_then(Field::as_str).filter(|text| !text.is_empty())
}

/// Whether the body shows that the run ended (../shared/trigger-api.md): when a run ends, the
/// server writes the record that finishes the run's own span, and the ClickHouse store reports
/// the running children of a cancelled run as cancelled. So: the run's own span is finished, or
/// a span is cancelled.
///
/// The own span is the `SERVER` span where the store sends real kinds (the Postgres store, which
/// returns finished rows only: a finished child whose running parent is absent must not count);
/// elsewhere (every kind `UNSPECIFIED`) a span whose parent is null or not in the body: the root
/// of a root run, or the root of a child run, whose parent lives in the parent run. A wrong guess
/// costs one status request, never a missed end (the status is still asked periodically).
pub fn shows_end(events: &[RawEvent]) -> bool {
    let spans = || {
        events
            .iter()
            .filter(|e| !e.not_an_object && !is_log_record(e) && e.span_id_str().is_some())
    };
    let finished = |e: &RawEvent| e.is_partial != Some(Field::Bool(true));
    if spans().any(|e| finished(e) && e.is_cancelled == Some(Field::Bool(true))) {
        return true;
    }
    let real_kinds = spans().any(|e| text(&e.kind).is_some_and(|kind| kind != "UNSPECIFIED"));
    if real_kinds {
        return spans().any(|e| finished(e) && text(&e.kind) == Some("SERVER"));
    }
    let ids: HashSet<&str> = spans().filter_map(RawEvent::span_id_str).collect();
    spans().any(|e| finished(e) && text(&e.parent_id).is_none_or(|parent| !ids.contains(parent)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trigger::model::EventsBody;

    fn ends(body: &str) -> bool {
        shows_end(&EventsBody::from_slice(body.as_bytes()).unwrap().events)
    }

    #[test]
    fn the_own_span_finishing_or_a_cancelled_span_shows_the_end() {
        // ClickHouse (kinds UNSPECIFIED): the root partial, a finished child, a running log.
        let running = r#"[{"spanId":"root","parentId":null,"isPartial":true,"level":"TRACE","kind":"UNSPECIFIED"},
            {"spanId":"c1","parentId":"root","isPartial":false,"level":"TRACE","kind":"UNSPECIFIED"},
            {"spanId":"l1","parentId":"root","level":"INFO","kind":"UNSPECIFIED"}]"#;
        assert!(!ends(running));
        // The root finished (a finished copy beside the partial one).
        let finished = running.replace(
            "]",
            r#",{"spanId":"root","parentId":null,"isPartial":false,"level":"TRACE"}]"#,
        );
        assert!(ends(&finished));
        // A child run: its root's parent lives in the parent run.
        assert!(!ends(
            r#"[{"spanId":"r","parentId":"elsewhere","isPartial":true,"level":"TRACE"}]"#
        ));
        assert!(ends(
            r#"[{"spanId":"r","parentId":"elsewhere","isPartial":false,"level":"TRACE"}]"#
        ));
        // A cancelled run: its running children come back cancelled, no longer partial.
        assert!(ends(
            r#"[{"spanId":"root","parentId":null,"isPartial":true,"level":"TRACE"},
                {"spanId":"c","parentId":"root","isPartial":false,"isCancelled":true,"level":"TRACE"}]"#
        ));
        // A finished log without a parent is not the run's span.
        assert!(!ends(
            r#"[{"spanId":"root","parentId":null,"isPartial":true,"level":"TRACE"},{"spanId":"l","parentId":null,"level":"WARN"}]"#
        ));
    }

    #[test]
    fn with_real_kinds_only_the_server_span_is_the_run_s_own() {
        // Postgres: running spans are absent, so a finished child's parent is missing.
        let running = r#"[{"spanId":"c","parentId":"attempt","isPartial":false,"level":"TRACE","kind":"INTERNAL"}]"#;
        assert!(!ends(running));
        let ended = r#"[{"spanId":"c","parentId":"attempt","isPartial":false,"level":"TRACE","kind":"INTERNAL"},
            {"spanId":"root","parentId":null,"isPartial":false,"level":"TRACE","kind":"SERVER"}]"#;
        assert!(ends(ended));
    }

    #[test]
    fn fingerprints_notice_a_span_finishing() {
        use crate::trigger::model::EventsBody;
        let before = EventsBody::from_slice(br#"[{"spanId":"a","isPartial":true,"duration":0}]"#).unwrap();
        let after = EventsBody::from_slice(br#"[{"spanId":"a","isPartial":false,"duration":10}]"#).unwrap();
        assert_ne!(fingerprint(&before.events), fingerprint(&after.events));
        assert_eq!(fingerprint(&before.events), fingerprint(&before.events.clone()));
    }
}
