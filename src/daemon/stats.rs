//! Counters the daemon keeps about itself, readable while it runs (tests), and served on
//! `/metrics`: `DaemonStats` is [`crate::telemetry::Metrics`]; read them through its accessors
//! (`polls()`, `spans_exported()` …).

pub use crate::telemetry::Metrics as DaemonStats;
