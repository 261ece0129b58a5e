//! Errors that explain: the merged values walked against the schema's shape (unknown keys with
//! a "did you mean", file values of the wrong TOML type), and the `config` crate's errors
//! rewritten to name the dotted key and where its value came from.

use std::path::Path;

use config::{Map, Value, ValueKind};

use super::{PrefixedEnv, ENV_ORIGIN, ENV_SEPARATOR, FREE_FORM_TABLES, OTEL_VARS, SDK_VARS, SECRET_KEYS};
use crate::config::{ConfigError, Origin};

/// Answers "where did the value of this key come from?" from the merged values, each of which
/// remembers its source.
pub(super) struct Origins<'a> {
    pub(super) file: Option<&'a Path>,
    pub(super) prefixed: &'a PrefixedEnv,
    pub(super) root: &'a Value,
}

impl Origins<'_> {
    pub(super) fn origin_of(&self, key: &str) -> Origin {
        match lookup(self.root, key) {
            Some(value) => self.classify(key, first_origin(value)),
            None => Origin::Default,
        }
    }

    fn classify(&self, key: &str, origin: Option<&str>) -> Origin {
        let named = SDK_VARS.iter().chain(&OTEL_VARS).map(|(_, var)| *var);
        match origin {
            None => Origin::Default,
            Some(ENV_ORIGIN) => Origin::Env(self.prefixed.var_for(key)),
            Some(origin) => match named.into_iter().find(|var| *var == origin) {
                Some(var) => Origin::Env(var.to_owned()),
                // The only other source is the file; name it as the user did (the crate
                // records it relative to the working directory).
                None => Origin::File(self.file.map_or_else(|| origin.into(), Path::to_path_buf)),
            },
        }
    }

    /// Rewrites an error of `config`'s deserializer as ours, with the key's origin.
    pub(super) fn translate(&self, error: config::ConfigError) -> ConfigError {
        let (key, message) = split_key(error);
        let Some(key) = key else {
            return ConfigError::Load { message };
        };
        let message = if is_secret(&key) {
            "is not a valid string (the value is not shown: it may be a credential)".to_owned()
        } else {
            message
        };
        ConfigError::Invalid {
            origin: Some(self.origin_of(&key)),
            key,
            message,
        }
    }
}

/// The dotted key an error of the `config` crate is about, and its message without the
/// " for key `…` in …" tail that the crate appends (we print key and origin ourselves).
fn split_key(error: config::ConfigError) -> (Option<String>, String) {
    match error {
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (key, format!("invalid type: {unexpected}, expected {expected}")),
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, message) = split_key(*error);
            (key.or(inner_key), message)
        }
        config::ConfigError::NotFound(key) => (Some(key), "is missing".to_owned()),
        other => (None, other.to_string()),
    }
}

fn is_secret(key: &str) -> bool {
    SECRET_KEYS
        .iter()
        .any(|secret| key == *secret || key.starts_with(&format!("{secret}.")))
}

/// The value at a dotted key such as `runs.ids[1]`.
pub(super) fn lookup<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(root, |value, segment| {
        let (name, index) = match segment.split_once('[') {
            Some((name, index)) => (name, index.strip_suffix(']')?.parse::<usize>().ok()),
            None => (segment, None),
        };
        let ValueKind::Table(table) = &value.kind else {
            return None;
        };
        let child = table.get(name)?;
        match (index, &child.kind) {
            (None, _) => Some(child),
            (Some(index), ValueKind::Array(items)) => items.get(index),
            (Some(_), _) => None,
        }
    })
}

/// A table has no origin of its own (the crate creates it while merging); use a leaf's.
fn first_origin(value: &Value) -> Option<&str> {
    match &value.kind {
        ValueKind::Table(table) => table.values().find_map(first_origin),
        ValueKind::Array(items) => items.iter().find_map(first_origin).or(value.origin()),
        _ => value.origin(),
    }
}

/// Checks `actual` against `shape` (the default config as TOML, `root` at the top): every key
/// must exist in the schema, and every value from the file must have the TOML type of the
/// default. Every problem goes to `errors`, so that one run reports them all.
pub(super) fn check_shape(
    root: &toml::Table,
    shape: &toml::Table,
    actual: &Map<String, Value>,
    parent: &str,
    origins: &Origins,
    errors: &mut Vec<ConfigError>,
) {
    let mut names: Vec<&String> = actual.keys().collect();
    names.sort(); // HashMap order would make the order of the errors random.
    for name in names {
        let value = &actual[name];
        let key = join(parent, name);
        let Some(expected) = shape.get(name.as_str()) else {
            let mut valid: Vec<String> = shape.keys().cloned().collect();
            valid.sort();
            errors.push(ConfigError::UnknownKey {
                origin: origins.classify(&key, first_origin(value)),
                suggestions: suggestions(root, parent, name, &valid),
                valid,
                key,
            });
            continue;
        };
        if let Err(error) = check_type(&key, expected, value, origins) {
            errors.push(error);
            continue;
        }
        if let (toml::Value::Table(shape), ValueKind::Table(table)) = (expected, &value.kind) {
            if !FREE_FORM_TABLES.contains(&key.as_str()) {
                check_shape(root, shape, table, &key, origins, errors);
            }
        }
    }
}

fn join(parent: &str, name: &str) -> String {
    match parent {
        "" => name.to_owned(),
        _ => format!("{parent}.{name}"),
    }
}

/// What an unknown key `name` under `parent` probably meant. A name that is valid in another
/// section was put in the wrong one (a top-level `secret_key` is `trigger.secret_key`): that
/// section's key, as the likeliest fix. Else a misspelling of a key valid here, else (for names
/// long enough that a near miss means something) of one valid elsewhere.
fn suggestions(root: &toml::Table, parent: &str, name: &str, valid_here: &[String]) -> Vec<String> {
    let mut everywhere = Vec::new();
    collect_keys(root, "", &mut everywhere);
    let here = join(parent, name);
    let misplaced: Vec<String> = everywhere
        .iter()
        .filter(|(key, leaf)| leaf == name && *key != here)
        .map(|(key, _)| key.clone())
        .collect();
    if !misplaced.is_empty() {
        return misplaced;
    }
    if let Some(close) = closest(name, valid_here) {
        return vec![join(parent, close)];
    }
    let best = everywhere
        .iter()
        .map(|(key, leaf)| (strsim::levenshtein(name, leaf), key))
        .filter(|(distance, _)| *distance <= 2 && *distance * 3 <= name.chars().count())
        .min_by_key(|(distance, _)| *distance);
    best.map(|(_, key)| vec![key.clone()]).unwrap_or_default()
}

/// Every key of the schema (sections too) with its last segment, in the schema's order; the
/// keys of free-form tables are the user's, not the schema's.
fn collect_keys(shape: &toml::Table, parent: &str, out: &mut Vec<(String, String)>) {
    for (name, value) in shape {
        let key = join(parent, name);
        out.push((key.clone(), name.clone()));
        if let toml::Value::Table(table) = value {
            if !FREE_FORM_TABLES.contains(&key.as_str()) {
                collect_keys(table, &key, out);
            }
        }
    }
}

fn check_type(key: &str, expected: &toml::Value, value: &Value, origins: &Origins) -> Result<(), ConfigError> {
    let origin = origins.classify(key, first_origin(value));
    let invalid = |message: String| ConfigError::Invalid {
        key: key.to_owned(),
        origin: Some(origin.clone()),
        message,
    };
    if let Origin::Env(var) = &origin {
        // Environment values are strings by nature, parsed into the key's type later; only a
        // whole table cannot be given as one string.
        return match (expected, &value.kind) {
            (toml::Value::Table(_), ValueKind::String(_)) => Err(invalid(format!(
                "is a table; set its keys one by one, like {var}{ENV_SEPARATOR}<KEY>"
            ))),
            _ => Ok(()),
        };
    }
    let matches = match (expected, &value.kind) {
        (toml::Value::String(_), ValueKind::String(_)) | (toml::Value::Boolean(_), ValueKind::Boolean(_)) => true,
        (toml::Value::Integer(_), kind) => is_integer(kind),
        // `0` and `1` are fractions too; the deserializer widens an integer to f64.
        (toml::Value::Float(_), kind) => matches!(kind, ValueKind::Float(_)) || is_integer(kind),
        (toml::Value::Table(_), ValueKind::Table(_)) => true,
        (toml::Value::Array(_), ValueKind::Array(items)) => {
            // Every list of the schema is a list of strings.
            if let Some((index, item)) = items
                .iter()
                .enumerate()
                .find(|(_, item)| !matches!(item.kind, ValueKind::String(_)))
            {
                return Err(ConfigError::Invalid {
                    key: format!("{key}[{index}]"),
                    origin: Some(origin.clone()),
                    message: format!("expected a string, found {}", describe(&item.kind)),
                });
            }
            true
        }
        _ => false,
    };
    if matches {
        return Ok(());
    }
    // Name the found type but never quote the value: it may be a secret.
    Err(invalid(format!(
        "expected {}, found {}",
        describe_expected(expected),
        describe(&value.kind)
    )))
}

fn is_integer(kind: &ValueKind) -> bool {
    matches!(
        kind,
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_)
    )
}

fn describe(kind: &ValueKind) -> &'static str {
    match kind {
        ValueKind::Nil => "an empty value",
        ValueKind::Boolean(_) => "a boolean",
        ValueKind::I64(_) | ValueKind::I128(_) | ValueKind::U64(_) | ValueKind::U128(_) => "an integer",
        ValueKind::Float(_) => "a float",
        ValueKind::String(_) => "a string",
        ValueKind::Table(_) => "a table",
        ValueKind::Array(_) => "an array",
    }
}

/// The expected type, with the default as an example where it helps (`"5s"` shows that a
/// duration is a string with a unit).
fn describe_expected(default: &toml::Value) -> String {
    match default {
        toml::Value::String(text) if text.is_empty() => "a string".to_owned(),
        toml::Value::String(text) => format!("a string like {text:?}"),
        toml::Value::Integer(number) => format!("an integer like {number}"),
        toml::Value::Float(number) => format!("a number like {number}"),
        toml::Value::Boolean(_) => "true or false".to_owned(),
        toml::Value::Array(_) => "an array of strings".to_owned(),
        toml::Value::Table(_) => "a table".to_owned(),
        other => other.type_str().to_owned(),
    }
}

/// The valid key closest to a misspelt one, if it is close enough to be what was meant.
fn closest<'a>(name: &str, valid: &'a [String]) -> Option<&'a str> {
    valid
        .iter()
        .map(|candidate| (strsim::levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> toml::Table {
        toml::Table::try_from(crate::config::BridgeConfig::default()).expect("serializable")
    }

    fn valid_in(root: &toml::Table, section: &str) -> Vec<String> {
        let table = match section {
            "" => root,
            _ => root[section].as_table().expect("a section"),
        };
        table.keys().cloned().collect()
    }

    #[test]
    fn a_key_valid_in_another_section_is_suggested_there() {
        let root = shape();
        let top = valid_in(&root, "");
        assert_eq!(suggestions(&root, "", "secret_key", &top), ["trigger.secret_key"]);
        assert_eq!(suggestions(&root, "", "ids", &top), ["runs.ids"]);
        let runs = valid_in(&root, "runs");
        assert_eq!(
            suggestions(&root, "runs", "timeout", &runs),
            ["export.timeout", "trigger.timeout"]
        );
        assert_eq!(suggestions(&root, "", "resource", &top), ["export.resource"]);
        // A misspelling here is still a misspelling here…
        assert_eq!(suggestions(&root, "runs", "concurency", &runs), ["runs.concurrency"]);
        // … and one of a key of another section is found there.
        assert_eq!(suggestions(&root, "", "secret_kye", &top), ["trigger.secret_key"]);
        // The keys of free-form tables are not the schema's.
        assert_eq!(suggestions(&root, "", "frobnicate", &top), Vec::<String>::new());
    }

    #[test]
    fn suggestions_are_the_closest_valid_key() {
        assert_eq!(strsim::levenshtein("endpont", "endpoint"), 1);
        let valid = ["endpoint".to_owned(), "timeout".to_owned()];
        assert_eq!(closest("timeot", &valid), Some("timeout"));
        assert_eq!(closest("compression_level", &valid), None);
    }
}
