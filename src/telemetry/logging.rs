//! The bridge's own logs: `tracing` to stderr, text or JSON, `log.level` unless `RUST_LOG` says
//! otherwise. The level can be changed while running (config reload).

use super::TelemetryError;
use crate::config::{LogConfig, LogFormat};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// Changes the log level of the installed subscriber (config reload).
#[derive(Clone, Debug)]
pub struct LevelControl(reload::Handle<EnvFilter, Registry>);

impl LevelControl {
    pub fn set(&self, level: &str) -> Result<(), TelemetryError> {
        let filter = EnvFilter::try_new(level).map_err(|e| TelemetryError::LogLevel {
            level: level.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(self.0.reload(filter)?)
    }
}

/// Install the global subscriber and return a control for its level; `None` when a subscriber
/// was installed already (tests) or `RUST_LOG` fixes the filter.
pub fn init(config: &LogConfig) -> Option<LevelControl> {
    let from_env = EnvFilter::try_from_default_env().ok();
    let env_fixed = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    // Colour only for a person at a terminal, never in files, journald or container logs.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let installed = match config.format {
        LogFormat::Json => Registry::default().with(filter).with(fmt.json()).try_init(),
        LogFormat::Text => Registry::default().with(filter).with(fmt).try_init(),
    };
    if installed.is_err() || env_fixed {
        return None;
    }
    Some(LevelControl(handle))
}
