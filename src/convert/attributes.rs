//! Attribute values (mapping rule 12 and the attribute table): JSON → OTLP attribute values.
//!
//! Flattening follows the OTel convention of dotted keys (`exception.message`), so Jaeger and
//! Tempo show Trigger.dev's exception events like any instrumented exception.

use super::proto::{array, kv, string};
use crate::trigger::model::Field;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AttrValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// Flatten a span event's `properties` into attributes. Nested objects join keys with `.`;
/// scalars keep their type; arrays of one scalar type become array attributes; anything else
/// becomes its JSON text. The first occurrence of a key wins, so the result never holds a key
/// twice (`{"a.b":1,"a":{"b":2}}` gives `a.b = 1`).
pub fn flatten_properties(properties: &Value, out: &mut Vec<KeyValue>) {
    let mut seen: HashSet<String> = out.iter().map(|kv| kv.key.clone()).collect();
    match properties {
        Value::Object(map) => flatten_object("", map, out, &mut seen),
        Value::Null => {}
        // Not an object: keep it under one key rather than lose it.
        other => push_unique("properties".to_owned(), json_to_attribute(other), out, &mut seen),
    }
}

fn flatten_object(prefix: &str, map: &Map<String, Value>, out: &mut Vec<KeyValue>, seen: &mut HashSet<String>) {
    for (key, value) in map {
        let full_key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten_object(&full_key, inner, out, seen),
            other => push_unique(full_key, json_to_attribute(other), out, seen),
        }
    }
}

fn push_unique(key: String, value: AttrValue, out: &mut Vec<KeyValue>, seen: &mut HashSet<String>) {
    if seen.insert(key.clone()) {
        out.push(kv(key, value));
    }
}

/// One JSON value as one attribute value (no flattening).
pub fn json_to_attribute(value: &Value) -> AttrValue {
    match value {
        Value::String(text) => string(text.as_str()),
        Value::Bool(flag) => AttrValue::BoolValue(*flag),
        Value::Number(number) => number_to_attribute(number),
        Value::Array(items) => array_to_attribute(items).unwrap_or_else(|| json_text(value)),
        Value::Null | Value::Object(_) => json_text(value),
    }
}

/// A top-level scalar as an attribute; `None` for null, objects and arrays.
pub fn scalar_to_attribute(value: &Field) -> Option<AttrValue> {
    match value {
        Field::Str(text) => Some(string(*text)),
        Field::String(text) => Some(string(&**text)),
        Field::Bool(flag) => Some(AttrValue::BoolValue(*flag)),
        Field::Number(number) => Some(number_to_attribute(number)),
        Field::Null | Field::Array(_) | Field::Object(_) => None,
    }
}

fn number_to_attribute(number: &serde_json::Number) -> AttrValue {
    if let Some(int) = number.as_i64() {
        AttrValue::IntValue(int)
    } else if number.is_u64() {
        // Above i64::MAX: OTLP has no unsigned integer; the decimal text keeps it exact.
        string(number.to_string())
    } else {
        AttrValue::DoubleValue(number.as_f64().unwrap_or(f64::NAN))
    }
}

/// Arrays of one scalar type; integers mixed with floats become a float array. Empty arrays,
/// nulls, objects, nested arrays and mixed kinds give `None` (the caller uses JSON text).
fn array_to_attribute(items: &[Value]) -> Option<AttrValue> {
    let values: Vec<AttrValue> = match items.first()? {
        Value::String(_) => items.iter().map(|v| v.as_str().map(string)).collect::<Option<_>>()?,
        Value::Bool(_) => items
            .iter()
            .map(|v| v.as_bool().map(AttrValue::BoolValue))
            .collect::<Option<_>>()?,
        Value::Number(_) => match items.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
            Some(ints) => ints.into_iter().map(AttrValue::IntValue).collect(),
            None => items
                .iter()
                .map(|v| v.as_f64().map(AttrValue::DoubleValue))
                .collect::<Option<_>>()?,
        },
        _ => return None,
    };
    Some(array(values))
}

fn json_text(value: &Value) -> AttrValue {
    string(value.to_string())
}

/// `environmentType` → `environment_type`, `HTTPStatus` → `http_status`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let after_lower = prev.is_some_and(|p| p.is_lowercase() || p.is_ascii_digit());
            let acronym_end = prev.is_some_and(char::is_uppercase) && next.is_some_and(|n| n.is_lowercase());
            if after_lower || acronym_end {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flat(value: Value) -> Vec<(String, AttrValue)> {
        let mut out = Vec::new();
        flatten_properties(&value, &mut out);
        out.into_iter()
            .map(|kv| (kv.key, kv.value.and_then(|v| v.value).expect("a value")))
            .collect()
    }

    #[test]
    fn exception_event_flattens_to_otel_exception_convention() {
        let got = flat(json!({"exception": {"type": "Error", "message": "boom", "stacktrace": "at x"}}));
        assert_eq!(
            got,
            vec![
                ("exception.type".into(), string("Error")),
                ("exception.message".into(), string("boom")),
                ("exception.stacktrace".into(), string("at x")),
            ]
        );
    }

    #[test]
    fn attempt_failed_keeps_its_scalars_typed() {
        let got = flat(
            json!({"exception": {"message": "x"}, "attemptNumber": 1, "runId": "run_1", "ratio": 0.5, "ok": false}),
        );
        assert!(got.contains(&("exception.message".into(), string("x"))));
        assert!(got.contains(&("attemptNumber".into(), AttrValue::IntValue(1))));
        assert!(got.contains(&("runId".into(), string("run_1"))));
        assert!(got.contains(&("ratio".into(), AttrValue::DoubleValue(0.5))));
        assert!(got.contains(&("ok".into(), AttrValue::BoolValue(false))));
    }

    #[test]
    fn arrays_of_one_type_become_arrays_and_the_rest_json_text() {
        let got = flat(json!({
            "s": ["a", "b"], "b": [true], "i": [1, 2], "f": [1, 2.5],
            "mixed": [1, "a"], "objs": [{"a": 1}], "empty": [], "nothing": null, "nested": [[1]]
        }));
        let get = |k: &str| got.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("s"), array([string("a"), string("b")]));
        assert_eq!(get("b"), array([AttrValue::BoolValue(true)]));
        assert_eq!(get("i"), array([AttrValue::IntValue(1), AttrValue::IntValue(2)]));
        assert_eq!(
            get("f"),
            array([AttrValue::DoubleValue(1.0), AttrValue::DoubleValue(2.5)])
        );
        assert_eq!(get("mixed"), string(r#"[1,"a"]"#));
        assert_eq!(get("objs"), string(r#"[{"a":1}]"#));
        assert_eq!(get("empty"), string("[]"));
        assert_eq!(get("nothing"), string("null"));
        assert_eq!(get("nested"), string("[[1]]"));
    }

    #[test]
    fn keys_keep_their_spelling_and_never_repeat() {
        let got = flat(json!({"a.b": 1, "a": {"b": 2, "C d": "x"}, "emptyObj": {}}));
        let keys: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["a.b", "a.C d", "emptyObj"]);
        assert_eq!(got[0].1, AttrValue::IntValue(1));
        assert_eq!(got[2].1, string("{}"));
    }

    #[test]
    fn huge_integers_stay_exact_as_text() {
        let got = flat(json!({"big": 18446744073709551615u64}));
        assert_eq!(got[0].1, string("18446744073709551615"));
    }

    #[test]
    fn non_object_properties_are_kept_under_one_key() {
        assert_eq!(flat(json!("text")), vec![("properties".into(), string("text"))]);
        assert!(flat(Value::Null).is_empty());
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(snake_case("environmentType"), "environment_type");
        assert_eq!(snake_case("idempotencyKey"), "idempotency_key");
        assert_eq!(snake_case("HTTPStatus"), "http_status");
        assert_eq!(snake_case("already_snake"), "already_snake");
        assert_eq!(snake_case("v2Name"), "v2_name");
    }
}
