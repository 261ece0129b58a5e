//! Settings written as one string: the enums (one of a fixed set of spellings) and `runs.shard`
//! (`"i/n"` or `"auto/n"`), each parsed by `FromStr` so a file, the environment and code
//! read them alike, with errors that list what is valid; the command line (clap) takes the same
//! spellings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ConfigError;

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

        /// The same spellings on the command line (`--logs span_events`, `--protocol grpc`).
        impl clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.as_str()))
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
    /// `telemetry.otlp_protocol`: how the bridge's own metrics reach an OTLP collector.
    MetricsProtocol ("metrics protocol") {
        Grpc = "grpc",
        HttpProtobuf = "http/protobuf",
    }
}

string_enum! {
    /// `discovery.source`: how new runs and run ends are learnt.
    DiscoverySource ("discovery source") {
        /// Trigger.dev's realtime stream when it is available, else the list endpoint.
        Auto = "auto",
        /// The stream only (the list endpoint once at start, for runs older than its window).
        Realtime = "realtime",
        /// The list endpoint every `discovery.interval`.
        List = "list",
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
