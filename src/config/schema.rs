//! The configuration schema of DESIGN.md as serde types, with its defaults and its checks.
//!
//! Every struct is `#[serde(default, deny_unknown_fields)]`: any key may be left out, and a
//! misspelt key is an error rather than a silently ignored setting. Everything here is pure;
//! reading files and the environment is `load.rs`'s job.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;
use crate::secret::SecretString;

/// What `to_redacted_toml` prints for every header value: they may be credentials whatever their
/// shape, so unlike the secret key they get no prefix hint.
const REDACTED_VALUE: &str = "****";

/// The whole configuration: one field per TOML section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeConfig {
    pub trigger: TriggerConfig,
    pub runs: RunsConfig,
    pub discovery: DiscoveryConfig,
    pub export: ExportConfig,
    pub conversion: ConversionConfig,
    pub state: StateConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
}

/// `[trigger]`: the Trigger.dev API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TriggerConfig {
    pub api_url: String,
    /// Required to poll; not checked at load time because `convert` and `demo` work without it
    /// (see [`TriggerConfig::require_secret_key`]).
    pub secret_key: SecretString,
    /// Client-side budget, kept below Trigger.dev's limit of about 1,500 requests a minute.
    pub requests_per_minute: u32,
    #[serde(with = "duration")]
    pub timeout: Duration,
    pub max_body_bytes: u64,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        Self {
            api_url: "https://api.trigger.dev".to_owned(),
            secret_key: SecretString::default(),
            requests_per_minute: 1200,
            timeout: Duration::from_secs(10),
            max_body_bytes: 256 * 1024 * 1024,
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
    /// Back-off ceiling for runs whose events do not change.
    #[serde(with = "duration")]
    pub max_poll_interval: Duration,
    /// How long to keep polling after a run ends (late events).
    #[serde(with = "duration")]
    pub settle: Duration,
    /// Runs that never end are retired after this long.
    #[serde(with = "duration")]
    pub max_age: Duration,
    pub concurrency: usize,
    pub shard: Shard,
}

impl Default for RunsConfig {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            poll_interval: Duration::from_secs(5),
            max_poll_interval: Duration::from_secs(60),
            settle: Duration::from_secs(30),
            max_age: Duration::from_secs(24 * 3600),
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

/// Defines a config enum written as one of a fixed set of strings, with `FromStr` and serde
/// going through the same table. Hand-written instead of derived because serde's (and the
/// config crate's) error for a bad variant names the Rust type and omits the valid values.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident ($what:literal) { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in the order the docs list them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The spelling used in the config file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text ),+
                }
            }
        }

        impl FromStr for $name {
            type Err = ConfigError;

            fn from_str(value: &str) -> Result<Self, ConfigError> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|variant| variant.as_str() == value)
                    .ok_or_else(|| ConfigError::Parse {
                        what: $what,
                        value: value.to_owned(),
                        reason: format!(
                            "expected one of {}",
                            Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserialize_from_str(deserializer)
            }
        }
    };
}

string_enum! {
    /// `export.protocol`: the OTLP transport, or `stdout` for OTLP/JSON lines on standard output.
    Protocol ("protocol") {
        Grpc = "grpc",
        HttpProtobuf = "http/protobuf",
        HttpJson = "http/json",
        Stdout = "stdout",
    }
}

string_enum! {
    /// `export.compression`.
    Compression ("compression") {
        Gzip = "gzip",
        Zstd = "zstd",
        None = "none",
    }
}

string_enum! {
    /// `conversion.logs`: what becomes of a run's log lines.
    LogsMode ("logs mode") {
        /// Events on the span that logged them.
        SpanEvents = "span_events",
        /// Zero-length child spans.
        Spans = "spans",
        /// Dropped.
        Drop = "drop",
        /// OTLP log records, sent to `export.logs_endpoint`.
        OtlpLogs = "otlp_logs",
    }
}

string_enum! {
    /// `log.format`.
    LogFormat ("log format") {
        Text = "text",
        Json = "json",
    }
}

/// `runs.shard`: this replica takes the runs with `hash(id) % count == index`.
///
/// Written `"i/n"` (`0 <= i < n`), or `"auto/n"` for a Kubernetes StatefulSet, where every pod
/// shares one config: the index is then `None` until [`Shard::resolve_ordinal`] reads it from the
/// pod's ordinal in `HOSTNAME` (`bridge-2` → 2). The fields are private so a `Shard` always holds
/// `index < count` and `count >= 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: Option<u32>,
    count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Self::SINGLE
    }
}

impl Shard {
    /// `"0/1"`: one replica takes every run.
    pub const SINGLE: Self = Self {
        index: Some(0),
        count: 1,
    };

    /// Shard `index` of `count`.
    pub fn new(index: u32, count: u32) -> Result<Self, ConfigError> {
        Self::checked(Some(index), count, || format!("{index}/{count}"))
    }

    /// `auto/count`: the index comes from the StatefulSet ordinal later.
    pub fn auto(count: u32) -> Result<Self, ConfigError> {
        Self::checked(None, count, || format!("auto/{count}"))
    }

    /// The index, or `None` for an unresolved `auto/n`.
    pub fn index(&self) -> Option<u32> {
        self.index
    }

    /// The number of replicas.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// True for `auto/n` before [`Shard::resolve_ordinal`].
    pub fn is_auto(&self) -> bool {
        self.index.is_none()
    }

    /// Fills the index of an `auto/n` shard from a StatefulSet pod name (`HOSTNAME`, e.g.
    /// `trigger-otel-bridge-2`, or its FQDN); a shard with an index is returned unchanged.
    pub fn resolve_ordinal(self, hostname: &str) -> Result<Self, ConfigError> {
        if self.index.is_some() {
            return Ok(self);
        }
        let error = |reason: String| ConfigError::ShardOrdinal {
            hostname: hostname.to_owned(),
            count: self.count,
            reason,
        };
        let pod = hostname.split('.').next().unwrap_or_default();
        let ordinal = pod
            .rsplit_once('-')
            .and_then(|(_, ordinal)| ordinal.parse::<u32>().ok())
            .ok_or_else(|| error("it does not end in a StatefulSet ordinal like `bridge-2`".to_owned()))?;
        if ordinal >= self.count {
            return Err(error(format!(
                "ordinal {ordinal} is not below the shard count {}; raise the count to the number of replicas",
                self.count
            )));
        }
        Ok(Self {
            index: Some(ordinal),
            count: self.count,
        })
    }

    fn checked(index: Option<u32>, count: u32, text: impl Fn() -> String) -> Result<Self, ConfigError> {
        let error = |reason: String| ConfigError::Parse {
            what: "shard",
            value: text(),
            reason,
        };
        if count == 0 {
            return Err(error(
                "the count n must be at least 1 (\"0/1\" means a single replica)".to_owned(),
            ));
        }
        if let Some(index) = index {
            if index >= count {
                return Err(error(format!(
                    "the index must be below the count: shards of {count} are 0/{count} to {}/{count}",
                    count - 1
                )));
            }
        }
        Ok(Self { index, count })
    }
}

impl FromStr for Shard {
    type Err = ConfigError;

    fn from_str(value: &str) -> Result<Self, ConfigError> {
        let error = |reason: &str| ConfigError::Parse {
            what: "shard",
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let (index, count) = value
            .trim()
            .split_once('/')
            .ok_or_else(|| error("expected \"i/n\" with 0 <= i < n, or \"auto/n\""))?;
        let count = count
            .trim()
            .parse::<u32>()
            .map_err(|_| error("the count n after `/` must be a whole number"))?;
        match index.trim() {
            "auto" => Self::auto(count),
            index => {
                let index = index
                    .parse::<u32>()
                    .map_err(|_| error("the index before `/` must be a whole number or `auto`"))?;
                Self::new(index, count)
            }
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            Some(index) => write!(f, "{index}/{}", self.count),
            None => write!(f, "auto/{}", self.count),
        }
    }
}

impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Shard {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_from_str(deserializer)
    }
}

fn deserialize_from_str<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr<Err = ConfigError>,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn serialize_redacted_values<S: Serializer>(
    headers: &BTreeMap<String, SecretString>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(headers.keys().map(|name| (name, REDACTED_VALUE)))
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

/// A broken rule: the key to blame and what is wrong. `load` adds where the value came from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    pub key: &'static str,
    pub message: String,
}

impl BridgeConfig {
    /// Checks the rules that span more than one value's type: bounds and cross-field relations.
    /// `load` runs it; call it on a config built in code.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.first_violation() {
            None => Ok(()),
            Some(Violation { key, message }) => Err(ConfigError::Invalid {
                key: key.to_owned(),
                origin: None,
                message,
            }),
        }
    }

    /// The effective config as TOML, for `check-config`: the secret key appears as its hint
    /// (`tr_dev_…****`), every header value as `****`.
    pub fn to_redacted_toml(&self) -> String {
        // Serialization only fails for shapes this schema does not have (non-string map keys,
        // values outside i64); say so rather than panic in a diagnostic command.
        toml::to_string_pretty(self)
            .unwrap_or_else(|error| format!("# cannot render the configuration as TOML: {error}\n"))
    }

    pub(crate) fn first_violation(&self) -> Option<Violation> {
        let violation = |key: &'static str, message: String| Some(Violation { key, message });
        let (trigger, runs, export) = (&self.trigger, &self.runs, &self.export);

        if !is_http_url(&trigger.api_url) {
            return violation("trigger.api_url", url_message(&trigger.api_url));
        }
        if trigger.requests_per_minute == 0 {
            return violation("trigger.requests_per_minute", "must be at least 1".to_owned());
        }
        if trigger.max_body_bytes == 0 {
            return violation("trigger.max_body_bytes", "must be at least 1".to_owned());
        }
        if runs.concurrency == 0 {
            return violation("runs.concurrency", "must be at least 1".to_owned());
        }
        if runs.poll_interval > runs.max_poll_interval {
            return violation(
                "runs.poll_interval",
                format!(
                    "{} must not exceed runs.max_poll_interval ({})",
                    humantime::format_duration(runs.poll_interval),
                    humantime::format_duration(runs.max_poll_interval)
                ),
            );
        }
        if export.protocol != Protocol::Stdout && !is_http_url(&export.endpoint) {
            return violation("export.endpoint", url_message(&export.endpoint));
        }
        if let Some(url) = export.logs_endpoint.as_deref().filter(|url| !is_http_url(url)) {
            return violation("export.logs_endpoint", url_message(url));
        }
        if export.max_batch_spans == 0 {
            return violation("export.max_batch_spans", "must be at least 1".to_owned());
        }
        if export.max_pending_spans < export.max_batch_spans {
            return violation(
                "export.max_pending_spans",
                format!(
                    "{} must be at least export.max_batch_spans ({}), or no batch could ever fill",
                    export.max_pending_spans, export.max_batch_spans
                ),
            );
        }
        // Mutual TLS needs the certificate and its key; one alone is a half-done setup.
        match (&export.cert_file, &export.key_file) {
            (Some(_), None) => return violation("export.cert_file", "needs export.key_file as well".to_owned()),
            (None, Some(_)) => return violation("export.key_file", "needs export.cert_file as well".to_owned()),
            _ => {}
        }
        if export.resource.service_name.is_empty() {
            return violation("export.resource.service_name", "must not be empty".to_owned());
        }
        if self.state.path.as_os_str().is_empty() {
            return violation("state.path", "must not be empty".to_owned());
        }
        if let Some(listen) = self.server.listen.as_deref().filter(|l| !is_listen_address(l)) {
            return violation(
                "server.listen",
                format!("{listen:?} is not HOST:PORT (like \"127.0.0.1:9464\"); \"\" disables the server"),
            );
        }
        if self.log.level.trim().is_empty() {
            return violation("log.level", "must not be empty (try \"info\")".to_owned());
        }

        // A zero duration would turn a timer into a busy loop or fail every request at once.
        let must_be_positive = [
            ("trigger.timeout", trigger.timeout),
            ("runs.poll_interval", runs.poll_interval),
            ("discovery.interval", self.discovery.interval),
            ("export.timeout", export.timeout),
        ];
        must_be_positive
            .into_iter()
            .find(|(_, duration)| duration.is_zero())
            .and_then(|(key, _)| violation(key, "must be longer than zero".to_owned()))
    }
}

fn is_http_url(url: &str) -> bool {
    ["http://", "https://"]
        .iter()
        .any(|scheme| url.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
}

fn url_message(url: &str) -> String {
    format!("{url:?} is not an http:// or https:// URL")
}

/// `host:port` or `[v6]:port`; hostnames are allowed, so this cannot be a `SocketAddr` parse.
fn is_listen_address(listen: &str) -> bool {
    listen
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
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
        assert_eq!(t.timeout, Duration::from_secs(10));
        assert_eq!(t.max_body_bytes, 268_435_456);

        let r = &config.runs;
        assert!(r.ids.is_empty());
        assert_eq!(r.poll_interval, Duration::from_secs(5));
        assert_eq!(r.max_poll_interval, Duration::from_secs(60));
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
        assert_eq!(config.log.format, LogFormat::Text);
        assert_eq!(config.log.level, "info");

        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn shard_parses_i_of_n_and_auto() {
        let shard: Shard = "2/3".parse().expect("valid");
        assert_eq!((shard.index(), shard.count()), (Some(2), 3));
        let shard: Shard = " 0 / 1 ".parse().expect("valid");
        assert_eq!(shard, Shard::SINGLE);
        let shard: Shard = "auto/4".parse().expect("valid");
        assert_eq!((shard.index(), shard.count(), shard.is_auto()), (None, 4, true));
        assert_eq!(shard.to_string(), "auto/4");
    }

    #[test]
    fn shard_rejects_bad_values_with_a_reason() {
        let cases = [
            ("3/3", "index must be below the count"),
            ("a/2", "index before `/` must be a whole number"),
            ("1", "expected \"i/n\""),
            ("0/0", "count n must be at least 1"),
            ("auto/0", "count n must be at least 1"),
            ("1/x", "count n after `/` must be a whole number"),
            ("-1/2", "index before `/` must be a whole number"),
        ];
        for (value, reason) in cases {
            let message = value.parse::<Shard>().expect_err(value).to_string();
            assert!(message.contains(reason), "{value}: {message}");
            assert!(message.contains(&format!("{value:?}")), "{value}: {message}");
        }
    }

    #[test]
    fn shard_resolves_the_statefulset_ordinal() {
        let auto = Shard::auto(3).expect("valid");
        let resolved = auto.resolve_ordinal("trigger-otel-bridge-2").expect("ordinal");
        assert_eq!(resolved, Shard::new(2, 3).expect("valid"));
        let fqdn = auto.resolve_ordinal("bridge-0.bridge.ns.svc.cluster.local");
        assert_eq!(fqdn.expect("ordinal").index(), Some(0));

        let message = auto.resolve_ordinal("bridge-3").expect_err("too big").to_string();
        assert!(
            message.contains("ordinal 3 is not below the shard count 3"),
            "{message}"
        );
        let message = auto.resolve_ordinal("laptop").expect_err("no ordinal").to_string();
        assert!(message.contains("\"laptop\""), "{message}");

        let fixed = Shard::new(1, 2).expect("valid");
        assert_eq!(fixed.resolve_ordinal("whatever"), Ok(fixed));
    }

    #[test]
    fn enums_round_trip_their_spelling() {
        for protocol in Protocol::ALL {
            assert_eq!(protocol.as_str().parse::<Protocol>(), Ok(*protocol));
        }
        assert_eq!("http/protobuf".parse(), Ok(Protocol::HttpProtobuf));
        assert_eq!("none".parse(), Ok(Compression::None));
        assert_eq!("otlp_logs".parse(), Ok(LogsMode::OtlpLogs));
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        let message = "grpcs".parse::<Protocol>().expect_err("bad").to_string();
        assert!(
            message.contains("expected one of grpc, http/protobuf, http/json, stdout"),
            "{message}"
        );
    }

    #[test]
    fn validation_rules() {
        type Edit = fn(&mut BridgeConfig);
        let cases: [(Edit, &str); 16] = [
            (|c| c.runs.concurrency = 0, "runs.concurrency"),
            (|c| c.export.max_batch_spans = 0, "export.max_batch_spans"),
            (|c| c.export.max_pending_spans = 10, "export.max_pending_spans"),
            (|c| c.trigger.requests_per_minute = 0, "trigger.requests_per_minute"),
            (|c| c.trigger.max_body_bytes = 0, "trigger.max_body_bytes"),
            (|c| c.runs.poll_interval = Duration::from_secs(61), "runs.poll_interval"),
            (|c| c.runs.poll_interval = Duration::ZERO, "runs.poll_interval"),
            (|c| c.trigger.timeout = Duration::ZERO, "trigger.timeout"),
            (|c| c.export.timeout = Duration::ZERO, "export.timeout"),
            (|c| c.discovery.interval = Duration::ZERO, "discovery.interval"),
            (|c| c.export.cert_file = Some("c.pem".into()), "export.cert_file"),
            (|c| c.export.key_file = Some("k.pem".into()), "export.key_file"),
            (|c| c.trigger.api_url = "api.trigger.dev".into(), "trigger.api_url"),
            (|c| c.export.endpoint = "localhost:4317".into(), "export.endpoint"),
            (|c| c.server.listen = Some("9464".into()), "server.listen"),
            (|c| c.state.path = PathBuf::new(), "state.path"),
        ];
        for (edit, key) in cases {
            let mut config = BridgeConfig::default();
            edit(&mut config);
            let violation = config.first_violation().expect(key);
            assert_eq!(violation.key, key, "{}", violation.message);
            assert!(config.validate().expect_err(key).to_string().contains(key));
        }

        let mut config = BridgeConfig::default();
        config.export.protocol = Protocol::Stdout;
        config.export.endpoint = String::new();
        config.export.cert_file = Some("c.pem".into());
        config.export.key_file = Some("k.pem".into());
        config.server.listen = Some("[::]:9464".into());
        assert_eq!(config.first_violation(), None);
    }

    #[test]
    fn require_secret_key_explains_how_to_set_it() {
        let mut config = TriggerConfig::default();
        let message = config.require_secret_key().expect_err("unset").to_string();
        assert!(message.contains("trigger.secret_key") && message.contains("TRIGGER_SECRET_KEY"));
        config.secret_key = SecretString::new("tr_dev_x");
        assert_eq!(config.require_secret_key().map(SecretString::expose), Ok("tr_dev_x"));
    }
}
