//! trigger-otel-bridge: Trigger.dev run events → OTLP traces.
//!
//! Data flows one way, one folder per stage:
//! [`discover`] → [`schedule`] → [`fetch`] → [`convert`] → [`export`] → [`commit`].
//! Only [`daemon`] knows them all; [`commands`] reuses the stages one-shot. Around them:
//! [`trigger`] (the API client), [`config`], [`telemetry`] (the bridge's own logs, metrics and
//! health), [`net`] (what the HTTP servers and clients share) and [`wording`] (counts and
//! durations as messages print them). The binary (`src/main.rs`,
//! `src/cli.rs`) only parses the command line, calls in here and maps the exit code.

pub mod commands;
pub mod commit;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod discover;
pub mod export;
pub mod fetch;
pub mod net;
pub mod schedule;
pub mod telemetry;
pub mod trigger;
pub mod wording;
