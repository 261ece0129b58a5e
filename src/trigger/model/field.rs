//! The lenient value of one field of an events element: [`Field`] keeps whatever arrived (scalars
//! typed and compact, strings borrowed from the body when they need no unescaping, arrays and
//! objects as JSON), and [`Style`] keeps the two strings the mapping reads from `style`. Neither
//! ever fails on a wrongly typed value.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use std::fmt;
use std::hash::{Hash, Hasher};

/// One top-level field of an element, as it arrived: what `serde_json::Value` would hold, with
/// scalars stored compactly (with `preserve_order` a `Value` is 80 bytes) and a string borrowed
/// from the body ([`Field::Str`]) unless it had escapes to undo (ids and times have none, so
/// parsing a body allocates for few of them).
///
/// A string is two variants rather than one `Cow<str>`: a `Cow` leaves the enum no niche for
/// its tag, and every field of every element would grow from 24 bytes to 32.
#[derive(Debug, Clone)]
pub enum Field<'a> {
    Null,
    Bool(bool),
    Number(Number),
    /// A string borrowed from the body.
    Str(&'a str),
    /// A string owning its text (it had escapes, or was copied out of the body).
    String(Box<str>),
    Array(Vec<Value>),
    Object(Box<Map<String, Value>>),
}

/// Borrowed or owned, the same text is the same value.
impl PartialEq for Field<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Field::Null, Field::Null) => true,
            (Field::Bool(a), Field::Bool(b)) => a == b,
            (Field::Number(a), Field::Number(b)) => a == b,
            (Field::Array(a), Field::Array(b)) => a == b,
            (Field::Object(a), Field::Object(b)) => a == b,
            (a, b) => a.as_str().is_some() && a.as_str() == b.as_str(),
        }
    }
}

impl Field<'_> {
    /// The same value owning its string, free of the body it was parsed from.
    pub fn into_owned(self) -> Field<'static> {
        match self {
            Field::Null => Field::Null,
            Field::Bool(flag) => Field::Bool(flag),
            Field::Number(number) => Field::Number(number),
            Field::Str(text) => Field::String(text.into()),
            Field::String(text) => Field::String(text),
            Field::Array(items) => Field::Array(items),
            Field::Object(map) => Field::Object(map),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Field::Str(text) => Some(text),
            Field::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Field::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&Number> {
        match self {
            Field::Number(number) => Some(number),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.as_number().and_then(Number::as_i64)
    }

    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Field::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Field::Null)
    }

    /// The same value as a `serde_json::Value`.
    pub fn to_value(&self) -> Value {
        match self {
            Field::Null => Value::Null,
            Field::Bool(flag) => Value::Bool(*flag),
            Field::Number(number) => Value::Number(number.clone()),
            Field::Str(text) => Value::String((*text).to_owned()),
            Field::String(text) => Value::String(text.to_string()),
            Field::Array(items) => Value::Array(items.clone()),
            Field::Object(map) => Value::Object((**map).clone()),
        }
    }

    /// Feed the value to a hasher (for response fingerprints).
    pub fn hash_into<H: Hasher>(&self, hasher: &mut H) {
        // A string hashes alike borrowed or owned.
        match self {
            Field::Str(_) => std::mem::discriminant(&Field::String(Box::default())).hash(hasher),
            _ => std::mem::discriminant(self).hash(hasher),
        }
        match self {
            Field::Null => {}
            Field::Bool(flag) => flag.hash(hasher),
            Field::Number(number) => number.hash(hasher),
            Field::Str(text) => text.hash(hasher),
            Field::String(text) => (**text).hash(hasher),
            Field::Array(_) | Field::Object(_) => self.to_string().hash(hasher),
        }
    }
}

/// The JSON text, exactly as `serde_json::Value`'s `Display` writes it.
impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Field::Null => f.write_str("null"),
            Field::Bool(flag) => write!(f, "{flag}"),
            Field::Number(number) => write!(f, "{number}"),
            Field::Str(text) => f.write_str(&serde_json::to_string(text).map_err(|_| fmt::Error)?),
            Field::String(text) => f.write_str(&serde_json::to_string(&**text).map_err(|_| fmt::Error)?),
            Field::Array(_) | Field::Object(_) => write!(f, "{}", self.to_value()),
        }
    }
}

impl PartialEq<str> for Field<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Field<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl From<Value> for Field<'_> {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => Field::Null,
            Value::Bool(flag) => Field::Bool(flag),
            Value::Number(number) => Field::Number(number),
            Value::String(text) => Field::String(text.into_boxed_str()),
            Value::Array(items) => Field::Array(items),
            Value::Object(map) => Field::Object(Box::new(map)),
        }
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

/// Reads a value the way `serde_json::Value` does (arrays and objects through `Value`'s own
/// visitor), keeping scalars compact and strings borrowed where the body allows.
struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E: de::Error>(self, flag: bool) -> Result<Field<'de>, E> {
        Ok(Field::Bool(flag))
    }
    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Field<'de>, E> {
        Ok(Field::Number(number.into()))
    }
    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Field<'de>, E> {
        Ok(Field::Number(number.into()))
    }
    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Field<'de>, E> {
        Ok(Number::from_f64(number).map_or(Field::Null, Field::Number))
    }
    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Field<'de>, E> {
        Ok(Field::Str(text))
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Field<'de>, E> {
        Ok(Field::String(text.into()))
    }
    fn visit_string<E: de::Error>(self, text: String) -> Result<Field<'de>, E> {
        Ok(Field::String(text.into_boxed_str()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Field<'de>, D::Error> {
        Field::deserialize(deserializer)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Field<'de>, E> {
        Ok(Field::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Field::from)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
        Value::deserialize(MapAccessDeserializer::new(map)).map(Field::from)
    }
}

/// The value of an unknown field: kept when it is a scalar (it may become an attribute), read by
/// [`FieldVisitor`]'s rules; an array or object skipped without building it.
pub(super) struct ScalarOnly<'a>(pub Option<Field<'a>>);

impl<'de> Deserialize<'de> for ScalarOnly<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl<'de> Visitor<'de> for ScalarVisitor {
            type Value = ScalarOnly<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any valid JSON value")
            }
            fn visit_bool<E: de::Error>(self, flag: bool) -> Result<ScalarOnly<'de>, E> {
                FieldVisitor.visit_bool(flag).map(kept)
            }
            fn visit_i64<E: de::Error>(self, number: i64) -> Result<ScalarOnly<'de>, E> {
                FieldVisitor.visit_i64(number).map(kept)
            }
            fn visit_u64<E: de::Error>(self, number: u64) -> Result<ScalarOnly<'de>, E> {
                FieldVisitor.visit_u64(number).map(kept)
            }
            fn visit_f64<E: de::Error>(self, number: f64) -> Result<ScalarOnly<'de>, E> {
                FieldVisitor.visit_f64(number).map(kept)
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<ScalarOnly<'de>, E> {
                FieldVisitor.visit_borrowed_str(text).map(kept)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ScalarOnly<'de>, E> {
                FieldVisitor.visit_str(text).map(kept)
            }
            fn visit_unit<E: de::Error>(self) -> Result<ScalarOnly<'de>, E> {
                FieldVisitor.visit_unit().map(kept)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ScalarOnly<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ScalarOnly(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ScalarOnly<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ScalarOnly(None))
            }
        }
        fn kept(field: Field<'_>) -> ScalarOnly<'_> {
            ScalarOnly(Some(field))
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// What the mapping reads from an element's `style`: its `icon` and `variant` when they are
/// strings (the last occurrence of a repeated key, as a JSON object keeps it). Other keys, and a
/// `style` that is not an object, are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Style {
    pub icon: Option<Box<str>>,
    pub variant: Option<Box<str>>,
}

impl<'de> Deserialize<'de> for Style {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StyleVisitor;
        impl<'de> Visitor<'de> for StyleVisitor {
            type Value = Style;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any valid JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Style, A::Error> {
                let mut style = Style::default();
                while let Some(key) = map.next_key::<StyleKey>()? {
                    let slot = match key {
                        StyleKey::Icon => &mut style.icon,
                        StyleKey::Variant => &mut style.variant,
                        StyleKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = match map.next_value::<Field>()? {
                        Field::Str(text) => Some(text.into()),
                        Field::String(text) => Some(text),
                        _ => None,
                    };
                }
                Ok(style)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Style, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Style::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Style, E> {
                Ok(Style::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Style, E> {
                Ok(Style::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Style, E> {
                Ok(Style::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Style, E> {
                Ok(Style::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Style, E> {
                Ok(Style::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Style, E> {
                Ok(Style::default())
            }
        }
        deserializer.deserialize_any(StyleVisitor)
    }
}

enum StyleKey {
    Icon,
    Variant,
    Other,
}

impl<'de> Deserialize<'de> for StyleKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = StyleKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<StyleKey, E> {
                Ok(match key {
                    "icon" => StyleKey::Icon,
                    "variant" => StyleKey::Variant,
                    _ => StyleKey::Other,
                })
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}
