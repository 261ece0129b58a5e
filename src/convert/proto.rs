//! Building OTLP wire messages (`opentelemetry-proto`) directly: the converter's spans, span
//! events and log records are these messages, with no SDK `SpanData` in between. The values
//! are the ones `opentelemetry-proto`'s transform of SDK types gave (tests pin them), so the
//! OTLP/JSON output did not change when the SDK types were dropped.

use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, InstrumentationScope, KeyValue};

/// `SpanFlags`: the W3C sampled flag the bridge gives every span, and whether the parent is
/// remote (with the bit that says the flag is known), as the OTLP spec defines them.
pub const SAMPLED: u32 = 0x01;
pub const HAS_IS_REMOTE: u32 = 0x100;
pub const IS_REMOTE: u32 = 0x200;

/// An attribute.
pub fn kv(key: impl Into<String>, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        key_strindex: 0,
    }
}

pub fn string(text: impl Into<String>) -> Value {
    Value::StringValue(text.into())
}

/// An array attribute value of `items`.
pub fn array(items: impl IntoIterator<Item = Value>) -> Value {
    Value::ArrayValue(ArrayValue {
        values: items.into_iter().map(|value| AnyValue { value: Some(value) }).collect(),
    })
}

/// The value of an attribute, if it has one.
pub fn value(kv: &KeyValue) -> Option<&Value> {
    kv.value.as_ref().and_then(|v| v.value.as_ref())
}

/// Rule 15: the instrumentation scope of every span and log record.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: super::SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}
