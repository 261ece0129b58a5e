//! Configuration: the TOML schema, environment overrides, validation and redaction.
//!
//! - `schema.rs`: the serde types of DESIGN.md's "Configuration schema", and their defaults.
//! - `values.rs`: settings written as one string (the enums, `runs.shard`), parsed alike from
//!   a file, the environment or code.
//! - `validate.rs`: the checks that span several values ([`BridgeConfig::validate`]).
//! - `load.rs`: where values come from and in which order (environment > file > default), and
//!   turning the `config` crate's errors into messages that name the key and its source.
//!
//! Every error names the dotted key it is about (`runs.concurrency`) and, where it knows,
//! where the value came from: the file's path or the environment variable's name.

mod load;
pub mod reload;
mod schema;
pub mod secret;
mod validate;
mod values;

use std::fmt;
use std::path::PathBuf;

pub use load::{
    load, load_from_process_env, load_report, process_env, resolve_path, LoadReport, CONFIG_PATH_VAR, ENV_PREFIX,
};
pub use schema::{
    BridgeConfig, ConversionConfig, DiscoveryConfig, ExportConfig, LogConfig, ResourceConfig, RunsConfig, ServerConfig,
    StateConfig, TelemetryConfig, TriggerConfig,
};
pub use values::{Compression, DiscoverySource, LogFormat, LogsMode, MetricsProtocol, Protocol, Shard};

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Not set anywhere: the built-in default.
    Default,
    /// The config file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("built-in default"),
            Self::File(path) => write!(f, "in {}", path.display()),
            Self::Env(var) => write!(f, "from environment variable {var}"),
        }
    }
}

/// Everything that can be wrong with a configuration.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `--config` (or `TRIGGER_OTEL_BRIDGE_CONFIG`) names a file that is not there.
    #[error("config file {} does not exist", path.display())]
    FileNotFound { path: PathBuf },

    /// The file exists but could not be read.
    #[error("cannot read config file {}: {message}", path.display())]
    FileRead { path: PathBuf, message: String },

    /// The file is not valid TOML.
    #[error("config file {} is not valid TOML: {message}", path.display())]
    FileParse { path: PathBuf, message: String },

    /// A key the schema does not have; usually a typo.
    #[error("unknown key `{key}` ({origin}){}", unknown_key_hint(.suggestions, .valid))]
    UnknownKey {
        key: String,
        origin: Origin,
        /// What was probably meant: the same name in another section (a misplaced key), else
        /// the closest valid key, when one is close.
        suggestions: Vec<String>,
        /// The valid keys at that level.
        valid: Vec<String>,
    },

    /// A value of the wrong type, out of range, or inconsistent with another value.
    #[error("invalid value for `{key}`{}: {message}", origin_suffix(.origin))]
    Invalid {
        key: String,
        /// `None` when checking a config built in code, which has no source to name.
        origin: Option<Origin>,
        message: String,
    },

    /// A value required by the command being run is not set.
    #[error("`{key}` is not set: {hint}")]
    Missing { key: &'static str, hint: &'static str },

    /// What a command would refuse at its start (`check-config --for COMMAND`).
    #[error("`{command}` would not start: {source}")]
    NeededBy {
        command: &'static str,
        source: Box<ConfigError>,
    },

    /// A string that does not parse as the value it stands for (a shard, a protocol…).
    #[error("{value:?} is not a valid {what}: {reason}")]
    Parse {
        what: &'static str,
        value: String,
        reason: String,
    },

    /// `runs.shard = "auto/n"` on a host whose name carries no usable StatefulSet ordinal.
    #[error("cannot take the index of runs.shard = \"auto/{count}\" from HOSTNAME {hostname:?}: {reason}")]
    ShardOrdinal {
        hostname: String,
        count: u32,
        reason: String,
    },

    /// Any other failure of the `config` crate, passed on as it reported it.
    #[error("cannot load the configuration: {message}")]
    Load { message: String },

    /// More than one of the above, all found in one pass so that one edit can fix them all;
    /// never nested, never with fewer than two.
    #[error("{} errors in the configuration:{}", .errors.len(), list(.errors))]
    Several { errors: Vec<ConfigError> },
}

impl ConfigError {
    /// `Ok` for no errors, the error itself for one, [`ConfigError::Several`] for more.
    pub fn from_all(mut errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(ConfigError::Several {
                errors: errors.into_iter().flat_map(ConfigError::into_list).collect(),
            }),
        }
    }

    /// The errors one by one (a `Several` opened up).
    pub fn into_list(self) -> Vec<ConfigError> {
        match self {
            ConfigError::Several { errors } => errors,
            other => vec![other],
        }
    }

    /// The dotted key the error is about, where it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            ConfigError::Missing { key, .. } => Some(key),
            ConfigError::NeededBy { source, .. } => source.key(),
            _ => None,
        }
    }
}

fn list(errors: &[ConfigError]) -> String {
    errors.iter().map(|error| format!("\n  - {error}")).collect()
}

fn origin_suffix(origin: &Option<Origin>) -> String {
    origin.as_ref().map(|origin| format!(" ({origin})")).unwrap_or_default()
}

fn unknown_key_hint(suggestions: &[String], valid: &[String]) -> String {
    if !suggestions.is_empty() {
        let keys: Vec<String> = suggestions.iter().map(|key| format!("`{key}`")).collect();
        return format!("; did you mean {}?", keys.join(" or "));
    }
    match valid.is_empty() {
        true => String::new(),
        false => format!("; valid keys here: {}", valid.join(", ")),
    }
}
