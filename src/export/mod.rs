//! Export: converted spans → an OpenTelemetry collector, with the bridge's own transport (tonic
//! for gRPC, reqwest for OTLP/HTTP) and its own retry and split policy.
//!
//! - `settings`: `[export]` plus the standard `OTEL_EXPORTER_OTLP_*` variables.
//! - `policy`: what each collector answer means (retry, split, delivered), and backoff.
//! - `transport`: a batch's request encoded once, and one attempt to send it (gRPC, HTTP
//!   protobuf/JSON, stdout).
//! - `sender`: batching, retrying and splitting until every span is delivered or rejected.
//! - `error`: [`ExportError`], the one error type of all of them.

mod error;
pub mod policy;
pub mod sender;
pub mod settings;
pub mod transport;

pub use error::{ExportError, GaveUp};
pub use policy::BackoffPolicy;
pub use sender::{OtlpSender, SendReport, SenderOptions};
pub use settings::ExportSettings;
pub use transport::{Encoded, OtlpRequest, Transport};

use crate::config::BridgeConfig;
use crate::convert::otlp::ResourceSettings;
use std::collections::HashMap;
use std::time::Duration;

/// The sender `[export]` describes, with the standard variables from `env`. `give_up_after`:
/// `None` retries a down collector forever (the daemon), `Some` bounds it (one-shot commands).
/// The error names the step that failed ([`ExportError::Settings`] or [`ExportError::Exporter`]).
pub fn build_sender(
    config: &BridgeConfig,
    env: &HashMap<String, String>,
    backoff: BackoffPolicy,
    give_up_after: Option<Duration>,
) -> Result<OtlpSender, ExportError> {
    let settings =
        ExportSettings::resolve(&config.export, env).map_err(|error| ExportError::Settings(Box::new(error)))?;
    let resource = &config.export.resource;
    Ok(OtlpSender::new(
        Transport::new(&settings).map_err(|error| ExportError::Exporter(Box::new(error)))?,
        ResourceSettings {
            service_name: resource.service_name.clone(),
            service_name_from_task: resource.service_name_from_task,
            attributes: resource.attributes.clone(),
        },
        SenderOptions {
            max_batch_spans: settings.max_batch_spans,
            backoff,
            give_up_after,
        },
    ))
}
