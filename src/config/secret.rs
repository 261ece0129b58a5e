//! `SecretString`: a credential that cannot end up in logs, `{:?}` dumps or printed configs.
//!
//! The value is readable only through [`SecretString::expose`], so every place that uses the
//! secret is easy to find. `Debug` and `Display` print `**REDACTED**`, and `Serialize` writes
//! [`SecretString::redacted_hint`], so serializing a whole config (`check-config`) cannot leak it.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// What `Debug` and `Display` print instead of the value.
const REDACTED: &str = "**REDACTED**";
/// The two marks of a redacted hint (`tr_dev_…****`); either one alone marks a placeholder.
const HINT_ELLIPSIS: char = '…';
pub(crate) const HINT_STARS: &str = "****";

/// Trigger.dev secret key prefixes and the environment each one names. The prefix is not secret
/// (it is printed in the dashboard next to the key) and tells an operator which environment a
/// redacted key points at.
const ENVIRONMENT_PREFIXES: [(&str, &str); 4] = [
    ("tr_dev_", "dev"),
    ("tr_prod_", "prod"),
    ("tr_stg_", "stg"),
    ("tr_preview_", "preview"),
];

/// A string that must never be printed: an API key, a bearer token, a header value.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call it only where the value is sent (an HTTP header, a TLS setting).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A safe stand-in for the value: the Trigger.dev environment prefix followed by `…****`
    /// (`tr_dev_…****`), `****` for any other non-empty value, and `""` when empty, so a reader can
    /// tell "unset" from "set". Never reveals a character after the prefix.
    pub fn redacted_hint(&self) -> String {
        if self.0.is_empty() {
            return String::new();
        }
        match self.known_prefix() {
            Some((prefix, _)) => format!("{prefix}{HINT_ELLIPSIS}{HINT_STARS}"),
            None => HINT_STARS.to_owned(),
        }
    }

    /// Whether the value is what redaction prints rather than a credential: a hint
    /// (`tr_dev_…****`), the header stand-in (`****`) or the `Debug` form (`**REDACTED**`). A
    /// config saved from an older `check-config` holds such values; sent as a key it would be
    /// refused by Trigger.dev with a 401 that says nothing about where it came from.
    pub fn is_redacted_placeholder(&self) -> bool {
        is_redacted_placeholder(&self.0)
    }

    /// The Trigger.dev environment the key belongs to (`"dev"`, `"prod"`, `"stg"`, `"preview"`),
    /// read from its prefix; `None` for values without a known prefix.
    pub fn environment_prefix(&self) -> Option<&'static str> {
        self.known_prefix().map(|(_, environment)| environment)
    }

    fn known_prefix(&self) -> Option<(&'static str, &'static str)> {
        ENVIRONMENT_PREFIXES
            .into_iter()
            .find(|(prefix, _)| self.0.starts_with(prefix))
    }
}

/// See [`SecretString::is_redacted_placeholder`]; for values not (yet) wrapped.
pub fn is_redacted_placeholder(value: &str) -> bool {
    // `…` and `****` never occur in a Trigger.dev key (ASCII letters, digits and `_`).
    value.contains(HINT_ELLIPSIS) || value.contains(HINT_STARS) || value.contains(REDACTED)
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for SecretString {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Writes the redacted hint, never the value: anything that serializes a config (TOML for
/// `check-config`, JSON for a debug endpoint) is safe by construction.
impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted_hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLANTED: &str = "tr_dev_PLANTEDsecret123";

    #[test]
    fn debug_and_display_are_redacted() {
        let secret = SecretString::new(PLANTED);
        assert_eq!(format!("{secret:?}"), "**REDACTED**");
        assert_eq!(format!("{secret}"), "**REDACTED**");
        assert_eq!(format!("{:#?}", Some(&secret)), "Some(\n    **REDACTED**,\n)");
    }

    #[test]
    fn expose_returns_the_value() {
        assert_eq!(SecretString::new(PLANTED).expose(), PLANTED);
    }

    #[test]
    fn is_empty() {
        assert!(SecretString::default().is_empty());
        assert!(!SecretString::new("x").is_empty());
    }

    #[test]
    fn redacted_hint_keeps_only_the_environment_prefix() {
        let cases = [
            ("tr_dev_abc123", "tr_dev_…****"),
            ("tr_prod_abc123", "tr_prod_…****"),
            ("tr_stg_abc123", "tr_stg_…****"),
            ("tr_preview_abc123", "tr_preview_…****"),
            ("tr_dev_", "tr_dev_…****"),
            ("Bearer abc", "****"),
            ("tr_devabc", "****"),
            ("t", "****"),
            ("", ""),
        ];
        for (value, hint) in cases {
            assert_eq!(SecretString::new(value).redacted_hint(), hint, "for {value:?}");
        }
    }

    #[test]
    fn redacted_hint_never_reveals_characters_after_the_prefix() {
        let hint = SecretString::new(PLANTED).redacted_hint();
        assert!(!hint.contains("PLANTED"), "{hint}");
        assert!(!hint.contains('1'), "{hint}");
    }

    #[test]
    fn what_redaction_prints_is_a_placeholder_and_keys_are_not() {
        for value in [
            "tr_dev_…****",
            "tr_prod_…****",
            "****",
            "**REDACTED**",
            "tr_dev_…",
            "tr_dev_abc****",
        ] {
            assert!(SecretString::new(value).is_redacted_placeholder(), "{value}");
        }
        for value in ["", PLANTED, "tr_prod_abc123", "Bearer x*y", "***"] {
            assert!(!SecretString::new(value).is_redacted_placeholder(), "{value}");
        }
        // Whatever a hint is, it is a placeholder.
        for value in [PLANTED, "tr_preview_x", "hunter2"] {
            let hint = SecretString::new(value).redacted_hint();
            assert!(SecretString::new(hint).is_redacted_placeholder(), "{value}");
        }
    }

    #[test]
    fn environment_prefix() {
        let cases = [
            ("tr_dev_x", Some("dev")),
            ("tr_prod_x", Some("prod")),
            ("tr_stg_x", Some("stg")),
            ("tr_preview_x", Some("preview")),
            ("pk_dev_x", None),
            ("", None),
        ];
        for (value, environment) in cases {
            assert_eq!(
                SecretString::new(value).environment_prefix(),
                environment,
                "for {value:?}"
            );
        }
    }

    #[test]
    fn deserializes_from_a_plain_string() {
        let secret: SecretString = serde_json::from_str("\"tr_prod_xyz\"").expect("a string");
        assert_eq!(secret.expose(), "tr_prod_xyz");
        assert!(serde_json::from_str::<SecretString>("{}").is_err());
    }

    #[test]
    fn serializes_as_the_redacted_hint() {
        let json = serde_json::to_string(&SecretString::new(PLANTED)).expect("serializable");
        assert_eq!(json, "\"tr_dev_…****\"");
        let json = serde_json::to_string(&SecretString::new("hunter2")).expect("serializable");
        assert_eq!(json, "\"****\"");
    }
}
