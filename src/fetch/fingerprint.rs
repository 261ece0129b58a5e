//! What a poll's body says at a glance: whether it changed since the last poll (a fingerprint),
//! and whether any span in it is still running.

use crate::trigger::model::{Field, RawEvent};
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

/// Whether any element is still running.
pub fn has_partials(events: &[RawEvent]) -> bool {
    events.iter().any(|e| e.is_partial == Some(Field::Bool(true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_notice_a_span_finishing() {
        use crate::trigger::model::EventsBody;
        let before = EventsBody::from_slice(br#"[{"spanId":"a","isPartial":true,"duration":0}]"#).unwrap();
        let after = EventsBody::from_slice(br#"[{"spanId":"a","isPartial":false,"duration":10}]"#).unwrap();
        assert_ne!(fingerprint(&before.events), fingerprint(&after.events));
        assert_eq!(fingerprint(&before.events), fingerprint(&before.events.clone()));
        assert!(has_partials(&before.events) && !has_partials(&after.events));
    }
}
