//! Export: converted spans → an OpenTelemetry collector, with the bridge's own retry and split
//! policy on top of `opentelemetry-otlp`'s transports.
//!
//! - `settings`: `[export]` plus the standard `OTEL_EXPORTER_OTLP_*` variables.
//! - `policy`: what each collector answer means (retry, split, delivered), and backoff.
//! - `transport`: one attempt of one batch (gRPC, HTTP protobuf/JSON, stdout).
//! - `sender`: batching, retrying and splitting until every span is delivered or rejected.

pub mod policy;
pub mod sender;
pub mod settings;
pub mod transport;

pub use policy::BackoffPolicy;
pub use sender::{GaveUp, SendReport, SenderOptions, SpanSender};
pub use settings::ExportSettings;
pub use transport::Transport;
