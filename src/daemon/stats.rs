//! Counters the daemon keeps about itself, readable while it runs (tests), and served on
//! `/metrics`: `DaemonStats` is [`crate::telemetry::Metrics`], whose atomics keep the names this
//! struct had.

pub use crate::telemetry::Metrics as DaemonStats;
