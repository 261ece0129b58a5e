//! The configuration schema of DESIGN.md as serde types, with its defaults.
//!
//! Every struct is `#[serde(default, deny_unknown_fields)]`: any key may be left out, and a
//! misspelt key is an error rather than a silently ignored setting. Everything here is pure;
//! reading files and the environment is `load.rs`'s job.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::values::{Compression, DiscoverySource, LogFormat, LogsMode, MetricsProtocol, Protocol, Shard};
use super::ConfigError;
use crate::config::secret::SecretString;

/// What `to_redacted_toml` prints for every header value: they may be credentials whatever their
/// shape, so unlike the secret key they get no prefix hint.
const REDACTED_VALUE: &str = "****";

/// The whole configuration: one field per TOML section. `PartialEq` only: `trigger` holds an
/// `f64` (the reserve), and configs are only ever compared with `==`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    pub trigger: TriggerConfig,
    pub runs: RunsConfig,
    pub discovery: DiscoveryConfig,
    pub export: ExportConfig,
    pub conversion: ConversionConfig,
    pub state: StateConfig,
    pub server: ServerConfig,
    pub telemetry: TelemetryConfig,
    pub log: LogConfig,
}

/// `[trigger]`: the Trigger.dev API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TriggerConfig {
    pub api_url: String,
    /// Required to poll; not checked at load time because `convert` and `demo` work without it
    /// (see [`TriggerConfig::require_secret_key`]).
    pub secret_key: SecretString,
    /// Client-side budget, kept below Trigger.dev's limit of about 1,500 requests a minute.
    pub requests_per_minute: u32,
    /// The share of the bucket Trigger.dev reports (`x-ratelimit-limit`) the bridge leaves to the
    /// application's own API calls, which draw on the same per-environment bucket: `0.33` of
    /// 750 keeps 248 tokens. From 0 to below 1. Applied live on reload.
    pub rate_limit_reserve: f64,
    #[serde(with = "duration")]
    pub timeout: Duration,
    pub max_body_bytes: u64,
    /// The preview branch a `tr_preview_` key works on, sent as `x-trigger-branch` (Trigger.dev
    /// refuses a preview environment's requests without it); `""` for none.
    #[serde(with = "empty_as_none")]
    pub preview_branch: Option<String>,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.trigger.dev".to_owned(),
            secret_key: SecretString::default(),
            requests_per_minute: 1200,
            rate_limit_reserve: 0.33,
            timeout: Duration::from_secs(10),
            max_body_bytes: 256 * 1024 * 1024,
            preview_branch: None,
        }
    }
}

impl TriggerConfig {
    /// The secret key, or an error telling how to set it; for the commands that call the API.
    pub fn require_secret_key(&self) -> Result<&SecretString, ConfigError> {
        if self.secret_key.is_empty() {
            return Err(ConfigError::Missing {
                key: "trigger.secret_key",
                hint: "set TRIGGER_SECRET_KEY (or secret_key in [trigger]) to a tr_dev_/tr_prod_ key",
            });
        }
        if self.secret_key.environment_prefix() == Some("preview") && self.preview_branch.is_none() {
            return Err(ConfigError::Missing {
                key: "trigger.preview_branch",
                hint: "a tr_preview_ key works on one preview branch: set TRIGGER_PREVIEW_BRANCH (or \
                       preview_branch in [trigger]) to its name",
            });
        }
        Ok(&self.secret_key)
    }
}

/// `[runs]`: which runs to bridge and how often to poll them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunsConfig {
    #[serde(deserialize_with = "string_list::deserialize")]
    pub ids: Vec<String>,
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    /// Back-off ceiling for quiet runs.
    #[serde(with = "duration")]
    pub max_poll_interval: Duration,
    /// A run whose events body has not changed for this long is quiet (waiting on `wait.for` or
    /// a waitpoint) and is polled every `max_poll_interval`; until then it is active and polled
    /// every `poll_interval`.
    #[serde(with = "duration")]
    pub quiet_after: Duration,
    /// How long to keep polling after a run ends (late events).
    #[serde(with = "duration")]
    pub settle: Duration,
    /// Runs that never end are retired after this long.
    #[serde(with = "duration")]
    pub max_age: Duration,
    /// A run is retired as not found only when the API answered 404 for it this long while
    /// other calls succeeded (a wrong `api_url` answers 404 for everything: no verdict then).
    #[serde(with = "duration")]
    pub not_found_after: Duration,
    pub concurrency: usize,
    pub shard: Shard,
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(60),
            quiet_after: Duration::from_secs(120),
            settle: Duration::from_secs(30),
            max_age: Duration::from_secs(24 * 3600),
            not_found_after: Duration::from_secs(600),
            concurrency: 8,
            shard: Shard::SINGLE,
        }
    }
}

/// `[discovery]`: listing runs by filter instead of naming them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    pub enabled: bool,
    /// Where runs are discovered: the realtime stream (`auto`, `realtime`) or the list endpoint.
    pub source: DiscoverySource,
    #[serde(with = "duration")]
    pub interval: Duration,
    #[serde(deserialize_with = "string_list::deserialize")]
    pub tasks: Vec<String>,
    #[serde(deserialize_with = "string_list::deserialize")]
    pub tags: Vec<String>,
    /// Passed through to `filter[status]` unchecked, so new Trigger.dev statuses need no release.
    #[serde(deserialize_with = "string_list::deserialize")]
    pub statuses: Vec<String>,
    #[serde(with = "duration")]
    pub lookback: Duration,
    pub include_test: bool,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            source: DiscoverySource::Auto,
            interval: Duration::from_secs(30),
            tasks: Vec::new(),
            tags: Vec::new(),
            statuses: Vec::new(),
            lookback: Duration::from_secs(3600),
            include_test: false,
        }
    }
}

/// `[export]`: where and how spans are sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    pub endpoint: String,
    pub protocol: Protocol,
    /// Values are secrets because collectors are commonly authenticated by a header.
    #[serde(serialize_with = "serialize_redacted_values")]
    pub headers: BTreeMap<String, SecretString>,
    pub compression: Compression,
    #[serde(with = "duration")]
    pub timeout: Duration,
    pub max_batch_spans: usize,
    /// Spans converted but not yet acknowledged; polling pauses at this bound (backpressure).
    pub max_pending_spans: usize,
    /// `""` in TOML means "not set" (`None`); the same for the other optional paths and URLs.
    #[serde(with = "empty_as_none")]
    pub ca_file: Option<PathBuf>,
    #[serde(with = "empty_as_none")]
    pub cert_file: Option<PathBuf>,
    #[serde(with = "empty_as_none")]
    pub key_file: Option<PathBuf>,
    /// For `conversion.logs = "otlp_logs"`; `None` means use `endpoint`.
    #[serde(with = "empty_as_none")]
    pub logs_endpoint: Option<String>,
    pub resource: ResourceConfig,
}

impl Default for ExportConfig {
    fn default() -> Self {
        Self {
            endpoint: "http://localhost:4317".to_owned(),
            protocol: Protocol::Grpc,
            headers: BTreeMap::new(),
            compression: Compression::Gzip,
            timeout: Duration::from_secs(10),
            max_batch_spans: 2048,
            max_pending_spans: 100_000,
            ca_file: None,
            cert_file: None,
            key_file: None,
            logs_endpoint: None,
            resource: ResourceConfig::default(),
        }
    }
}

/// `[export.resource]`: the OTLP resource of every exported span.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceConfig {
    pub service_name: String,
    /// Use each run's task identifier as `service.name`, so tasks show up as services.
    pub service_name_from_task: bool,
    pub attributes: BTreeMap<String, String>,
}

impl Default for ResourceConfig {
    fn default() -> Self {
        Self {
            service_name: "trigger.dev".to_owned(),
            service_name_from_task: false,
            attributes: BTreeMap::new(),
        }
    }
}

/// `[conversion]`: how events become spans.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConversionConfig {
    pub logs: LogsMode,
    /// Add span attributes from the trace endpoint's `data.properties`.
    pub enrich: bool,
}

impl Default for ConversionConfig {
    fn default() -> Self {
        Self {
            logs: LogsMode::SpanEvents,
            enrich: true,
        }
    }
}

/// `[state]`: the embedded store of acknowledged span ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    pub path: PathBuf,
    #[serde(with = "duration")]
    pub retention: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("trigger-otel-bridge.db"),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// `[server]`: `/metrics`, `/healthz`, `/readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// `None` (`listen = ""`) disables the server.
    #[serde(with = "empty_as_none")]
    pub listen: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: Some("127.0.0.1:9464".to_owned()),
        }
    }
}

/// `[telemetry]`: the bridge's own metrics pushed over OTLP, beside `/metrics`: the same
/// series, for operators whose collector receives rather than scrapes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `None` (`""`) keeps the push off. Filled by `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, never by
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`: that one names where the spans go (`export.endpoint`), and
    /// the bridge's metrics sent there uninvited would surprise a trace backend.
    #[serde(with = "empty_as_none")]
    pub otlp_endpoint: Option<String>,
    pub otlp_protocol: MetricsProtocol,
    /// How often the metrics are pushed.
    #[serde(with = "duration")]
    pub otlp_interval: Duration,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_protocol: MetricsProtocol::Grpc,
            otlp_interval: Duration::from_secs(30),
        }
    }
}

/// `[log]`: the bridge's own logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive: `info`, or `info,trigger_otel_bridge=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

fn serialize_redacted_values<S: Serializer>(
    headers: &BTreeMap<String, SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(headers.keys().map(|name| (name, REDACTED_VALUE)))
}

impl BridgeConfig {
    /// The effective config as TOML, for `check-config`: the secret key appears as its hint
    /// (`tr_dev_…****`), every header value as `****`, each on a comment line. As comments,
    /// because the output is meant to be saved as a config: a saved placeholder would become the
    /// key (loading refuses one anyway, see `validate.rs`), while a commented line reads as
    /// "unset here", and says where to set the real value.
    pub fn to_redacted_toml(&self) -> String {
        // Serialization only fails for shapes this schema does not have (non-string map keys,
        // values outside i64); say so rather than panic in a diagnostic command.
        match toml::to_string_pretty(self) {
            Ok(text) => comment_out_secrets(&text, &self.trigger.secret_key),
            Err(error) => format!("# cannot render the configuration as TOML: {error}\n"),
        }
    }
}

/// `text` (this schema as `toml` prints it: one `[section]` line per table, one `key = value`
/// line per value) with the secret key's line and every header's line turned into comments.
fn comment_out_secrets(text: &str, secret_key: &SecretString) -> String {
    let key_line = format!("secret_key = {}", toml::Value::String(secret_key.redacted_hint()));
    let mut section = "";
    let mut out = String::with_capacity(text.len() + 256);
    for line in text.lines() {
        if line.starts_with('[') {
            section = line;
        }
        let is_value = !line.is_empty() && !line.starts_with('[');
        let note = match section {
            "[trigger]" if !secret_key.is_empty() && line == key_line => {
                Some("(redacted; set it with TRIGGER_SECRET_KEY)")
            }
            "[export.headers]" if is_value => {
                Some("(redacted; set it in [export.headers] or with TRIGGER_OTEL_BRIDGE__EXPORT__HEADERS__<NAME>)")
            }
            _ => None,
        };
        match note {
            Some(note) => out.push_str(&format!("# {line}  {note}\n")),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// A humantime duration (`"5s"`, `"1h 30m"`, `"7d"`). Serialized by `humantime_serde`;
/// deserialized by hand because `humantime_serde` reports only "expected a duration", dropping
/// humantime's explanation ("unknown time unit \"parsecs\"", "time unit needed").
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        humantime_serde::serialize(duration, serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map_err(|error| serde::de::Error::custom(format!("{text:?} is not a duration: {error}")))
    }
}

/// A list of strings, given as an array (TOML) or as one comma-separated string (environment
/// variables, which cannot hold arrays): `"run_a, run_b"` → `["run_a", "run_b"]`.
mod string_list {
    use std::fmt;

    use serde::de::{Deserializer, SeqAccess, Visitor};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
        deserializer.deserialize_any(ListVisitor)
    }

    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of strings or a comma-separated string")
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            // Empty items are dropped so that `""` is an empty list and "a,,b" two items.
            Ok(value
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(item) = seq.next_element::<String>()? {
                items.push(item);
            }
            Ok(items)
        }
    }
}

/// `Option<T>` written as a string where `""` means `None`, so the file can show every key.
mod empty_as_none {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => value.serialize(serializer),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: From<String>>(deserializer: D) -> Result<Option<T>, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok((!text.is_empty()).then(|| T::from(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_design_md() {
        let config = BridgeConfig::default();
        let t = &config.trigger;
        assert_eq!(t.api_url, "https://api.trigger.dev");
        assert!(t.secret_key.is_empty());
        assert_eq!(t.requests_per_minute, 1200);
        assert_eq!(t.rate_limit_reserve, 0.33);
        assert_eq!(t.timeout, Duration::from_secs(10));
        assert_eq!(t.max_body_bytes, 268_435_456);

        let r = &config.runs;
        assert!(r.ids.is_empty());
        assert_eq!(r.poll_interval, Duration::from_secs(5));
        assert_eq!(r.max_poll_interval, Duration::from_secs(60));
        assert_eq!(r.quiet_after, Duration::from_secs(120));
        assert_eq!(r.not_found_after, Duration::from_secs(600));
        assert_eq!(r.settle, Duration::from_secs(30));
        assert_eq!(r.max_age, Duration::from_secs(86_400));
        assert_eq!(r.concurrency, 8);
        assert_eq!(r.shard.to_string(), "0/1");

        let d = &config.discovery;
        assert!(!d.enabled);
        assert_eq!(d.interval, Duration::from_secs(30));
        assert!(d.tasks.is_empty() && d.tags.is_empty() && d.statuses.is_empty());
        assert_eq!(d.lookback, Duration::from_secs(3600));
        assert!(!d.include_test);

        let e = &config.export;
        assert_eq!(e.endpoint, "http://localhost:4317");
        assert_eq!(e.protocol, Protocol::Grpc);
        assert!(e.headers.is_empty());
        assert_eq!(e.compression, Compression::Gzip);
        assert_eq!(e.timeout, Duration::from_secs(10));
        assert_eq!(e.max_batch_spans, 2048);
        assert_eq!(e.max_pending_spans, 100_000);
        assert_eq!((&e.ca_file, &e.cert_file, &e.key_file), (&None, &None, &None));
        assert_eq!(e.logs_endpoint, None);
        assert_eq!(e.resource.service_name, "trigger.dev");
        assert!(!e.resource.service_name_from_task);
        assert!(e.resource.attributes.is_empty());

        assert_eq!(config.conversion.logs, LogsMode::SpanEvents);
        assert!(config.conversion.enrich);
        assert_eq!(config.state.path, PathBuf::from("trigger-otel-bridge.db"));
        assert_eq!(config.state.retention, Duration::from_secs(7 * 86_400));
        assert_eq!(config.server.listen.as_deref(), Some("127.0.0.1:9464"));
        assert_eq!(config.telemetry.otlp_endpoint, None);
        assert_eq!(config.telemetry.otlp_protocol, MetricsProtocol::Grpc);
        assert_eq!(config.telemetry.otlp_interval, Duration::from_secs(30));
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.log.level, "info");

        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn redacted_toml_has_the_secrets_on_comment_lines_only() {
        let mut config = BridgeConfig::default();
        config.trigger.secret_key = SecretString::new("tr_prod_PLANTED");
        config
            .export
            .headers
            .insert("authorization".into(), "Bearer PLANTED".into());
        config.export.headers.insert("x-scope-orgid".into(), "tenant-1".into());
        let text = config.to_redacted_toml();
        assert!(!text.contains("PLANTED"), "{text}");
        assert!(
            text.contains("\n# secret_key = \"tr_prod_…****\"  (redacted; set it with TRIGGER_SECRET_KEY)\n"),
            "{text}"
        );
        assert!(
            text.contains("\n[export.headers]\n# authorization = \"****\"  (redacted; set it in [export.headers]"),
            "{text}"
        );
        assert!(text.contains("\n# x-scope-orgid = \"****\"  (redacted"), "{text}");
        // Saved and read back: no key and no header at all, rather than fake ones.
        let read: BridgeConfig = toml::from_str(&text).expect("still TOML");
        assert!(read.trigger.secret_key.is_empty() && read.export.headers.is_empty());
        assert_eq!(read.trigger.api_url, config.trigger.api_url);
        // No key: nothing to hide, and the empty value says "unset".
        let text = BridgeConfig::default().to_redacted_toml();
        assert!(text.contains("\nsecret_key = \"\"\n"), "{text}");
    }

    #[test]
    fn require_secret_key_explains_how_to_set_it() {
        let mut config = TriggerConfig::default();
        let message = config.require_secret_key().expect_err("unset").to_string();
        assert!(message.contains("trigger.secret_key") && message.contains("TRIGGER_SECRET_KEY"));
        config.secret_key = SecretString::new("tr_dev_x");
        assert_eq!(config.require_secret_key().map(SecretString::expose), Ok("tr_dev_x"));
        config.secret_key = SecretString::new("tr_preview_x");
        let message = config.require_secret_key().expect_err("no branch").to_string();
        assert!(message.contains("TRIGGER_PREVIEW_BRANCH"), "{message}");
        config.preview_branch = Some("feature-x".into());
        assert!(config.require_secret_key().is_ok());
    }
}
