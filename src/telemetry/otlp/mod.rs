//! The bridge's own metrics pushed over OTLP (`[telemetry]`), beside `/metrics`.
//!
//! Built on the crates made for it: `opentelemetry_sdk`'s meter provider with a periodic reader,
//! and `opentelemetry-otlp`'s metric exporter (gRPC over the tonic channel built here, or
//! OTLP/HTTP protobuf through [`http::RuntimeClient`], our reqwest client). The instruments
//! ([`instruments`]) are asynchronous: at each push their callbacks read the very counters and
//! gauges `/metrics` shows, so the two never disagree.
//!
//! - `instruments`: the names, labels and callbacks, one per `/metrics` family.
//! - `http`: the `HttpClient` the OTLP/HTTP exporter sends through.
//! - `logged`: the exporter wrapper that logs a failure episode once, with endpoint and cause.

mod http;
mod instruments;
mod logged;

pub(super) use instruments::Histograms;

use super::{Metrics, TelemetryError};
use crate::config::{MetricsProtocol, TelemetryConfig};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{MetricExporter, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use std::sync::Arc;
use std::time::Duration;

/// The scope (instrumentation library) the metrics are reported under, and `service.name`.
const SERVICE: &str = "trigger-otel-bridge";

/// Longest wait for one push: a collector that does not answer delays nothing but the next push,
/// and the final one at shutdown (the periodic reader waits 5 s at most for it).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sent as `User-Agent` over both protocols, like the span export.
const USER_AGENT: &str = concat!("trigger-otel-bridge/", env!("CARGO_PKG_VERSION"));

/// The running push, or nothing when `telemetry.otlp_endpoint` is unset. [`OtlpMetrics::shutdown`]
/// pushes the last values; dropped without it, it still does, on a thread of its own.
pub struct OtlpMetrics {
    provider: Option<SdkMeterProvider>,
}

impl OtlpMetrics {
    /// Start pushing `metrics` as `config` says; off (and free) when no endpoint is set. Call it
    /// within the tokio runtime: the gRPC channel and the HTTP client run their I/O on it, while
    /// the periodic reader collects and exports from a thread of its own. `hostname` (the
    /// environment's `HOSTNAME`) names this replica unless `OTEL_RESOURCE_ATTRIBUTES` does.
    pub fn start(
        config: &TelemetryConfig,
        hostname: Option<&str>,
        metrics: Arc<Metrics>,
    ) -> Result<OtlpMetrics, TelemetryError> {
        let Some(endpoint) = config.otlp_endpoint.as_deref() else {
            return Ok(OtlpMetrics { provider: None });
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|error| TelemetryError::OtlpMetrics {
            endpoint: loggable(endpoint),
            reason: error.to_string(),
        })?;
        let (exporter, url) = build_exporter(config.otlp_protocol, endpoint, runtime)?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(config.otlp_interval)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource(hostname))
            .build();
        let meter = provider.meter(SERVICE);
        // The histograms are recorded where `/metrics`'s are; a second start on the same
        // `Metrics` (not done by the daemon) keeps the first one's.
        let _ = metrics.otlp_histograms.set(instruments::register(&meter, &metrics));
        tracing::info!(
            endpoint = %url,
            protocol = config.otlp_protocol.as_str(),
            interval = %humantime::format_duration(config.otlp_interval),
            "pushing the bridge's own metrics over OTLP (telemetry.otlp_endpoint)"
        );
        Ok(OtlpMetrics {
            provider: Some(provider),
        })
    }

    /// Push the last values and stop. Waits on a blocking thread: the provider's shutdown blocks
    /// until the reader's final export, which needs this runtime to make progress.
    pub async fn shutdown(mut self) {
        let Some(provider) = self.provider.take() else { return };
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => tracing::debug!("the bridge's own metrics were pushed a last time"),
            // The exporter has already logged a collector that is down.
            Ok(Err(error)) => tracing::debug!(%error, "the last push of the bridge's own metrics failed"),
            Err(error) => tracing::warn!(%error, "stopping the OTLP metrics push failed"),
        }
    }
}

impl Drop for OtlpMetrics {
    /// A daemon that ends on an error skips [`OtlpMetrics::shutdown`]: the provider is shut down
    /// on a thread of its own, so this thread (maybe the runtime's only one) is not blocked.
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = std::thread::Builder::new()
                .name("otlp-metrics-shutdown".into())
                .spawn(move || provider.shutdown());
        }
    }
}

/// `service.name`, `service.version` and `service.instance.id`, with what the SDK adds
/// (`telemetry.sdk.*`, `OTEL_RESOURCE_ATTRIBUTES`). A Prometheus exporter makes `job` and
/// `instance` of the name and the instance id, as a scrape has them: replicas stay apart and the
/// dashboard's `instance` filter works. The instance is `OTEL_RESOURCE_ATTRIBUTES`'s, else the
/// host name (a pod's, stable across restarts), else random (the OpenTelemetry default).
fn resource(hostname: Option<&str>) -> opentelemetry_sdk::Resource {
    use opentelemetry::{Key, KeyValue};
    const INSTANCE: &str = "service.instance.id";
    let detected = opentelemetry_sdk::Resource::builder()
        .with_service_name(SERVICE)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    if detected.get(&Key::from_static_str(INSTANCE)).is_some() {
        return detected;
    }
    let instance = match hostname.filter(|name| !name.is_empty()) {
        Some(name) => name.to_owned(),
        None => format!("{:032x}", rand::random::<u128>()),
    };
    opentelemetry_sdk::Resource::builder_empty()
        .with_attributes(
            detected
                .iter()
                .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
        )
        .with_attribute(KeyValue::new(INSTANCE, instance))
        .build()
}

/// The exporter for `protocol` to `endpoint`, wrapped to log failures, and the URL it sends to
/// as logs show it ([`loggable`]).
fn build_exporter(
    protocol: MetricsProtocol,
    endpoint: &str,
    runtime: tokio::runtime::Handle,
) -> Result<(logged::Logged, String), TelemetryError> {
    let error = |reason: String| TelemetryError::OtlpMetrics {
        endpoint: loggable(endpoint),
        // opentelemetry-otlp quotes the endpoint in some of its errors.
        reason: reason.replace(endpoint, &loggable(endpoint)),
    };
    // Cumulative, as `/metrics` counts; retries off: the next push carries the same totals, so a
    // push retried would only delay the next one.
    let builder = MetricExporter::builder().with_temporality(Temporality::Cumulative);
    let (exporter, url, causes) = match protocol {
        MetricsProtocol::Grpc => {
            let exporter = builder
                .with_tonic()
                .with_channel(grpc_channel(endpoint).map_err(error)?)
                .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                .with_timeout(EXPORT_TIMEOUT)
                .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
                .build()
                .map_err(|e| error(e.to_string()))?;
            (exporter, endpoint.to_owned(), None)
        }
        MetricsProtocol::HttpProtobuf => {
            let url = http_metrics_url(endpoint);
            let client = http::RuntimeClient::new(EXPORT_TIMEOUT, USER_AGENT, runtime).map_err(error)?;
            let causes = client.causes();
            let exporter = builder
                .with_http()
                .with_http_client(client)
                .with_endpoint(url.clone())
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_timeout(EXPORT_TIMEOUT)
                .with_retry_policy(opentelemetry_otlp::RetryPolicy::disabled())
                .build()
                .map_err(|e| error(e.to_string()))?;
            (exporter, url, Some(causes))
        }
    };
    let shown = loggable(&url);
    Ok((logged::Logged::new(exporter, shown.clone(), protocol, causes), shown))
}

/// `url` as logs show it: without user information or query, where a URL carries credentials.
fn loggable(url: &str) -> String {
    crate::net::error_chain::redacted_url(url)
}

/// A lazily connecting channel: a collector that is down at start is no error, only a failed push.
fn grpc_channel(endpoint: &str) -> Result<tonic::transport::Channel, String> {
    let mut channel = tonic::transport::Channel::from_shared(endpoint.to_owned())
        .map_err(|e| e.to_string())?
        .timeout(EXPORT_TIMEOUT)
        .connect_timeout(EXPORT_TIMEOUT)
        .user_agent(USER_AGENT)
        .map_err(|e| e.to_string())?;
    if endpoint.starts_with("https://") {
        crate::net::tls::install_crypto_provider();
        let tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        channel = channel.tls_config(tls).map_err(|e| e.to_string())?;
    }
    Ok(channel.connect_lazy())
}

/// The URL an OTLP/HTTP push posts to: the endpoint as given when it names a path, else the
/// endpoint plus `/v1/metrics` (as `export.endpoint` gets `/v1/traces`).
fn http_metrics_url(endpoint: &str) -> String {
    crate::net::signal_url::signal_url(endpoint, "/v1/metrics", true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_endpoint_without_a_path_gets_v1_metrics() {
        assert_eq!(http_metrics_url("http://otel:4318"), "http://otel:4318/v1/metrics");
        assert_eq!(http_metrics_url("http://otel:4318/"), "http://otel:4318/v1/metrics");
        assert_eq!(
            http_metrics_url("https://otel.example.com/otlp/v1/metrics"),
            "https://otel.example.com/otlp/v1/metrics"
        );
    }

    #[test]
    fn logs_show_urls_without_credentials() {
        assert_eq!(
            loggable("https://user:secret@otel.example.com:4318/v1/metrics?token=secret"),
            "https://otel.example.com:4318/v1/metrics"
        );
        assert_eq!(loggable("http://otel:4317"), "http://otel:4317");
    }

    #[test]
    fn the_resource_names_the_service_and_this_replica() {
        let instance = |resource: &opentelemetry_sdk::Resource| {
            resource
                .get(&opentelemetry::Key::from_static_str("service.instance.id"))
                .map(|v| v.to_string())
        };
        let named = resource(Some("trigger-otel-bridge-2"));
        let get = |key: &'static str| {
            named
                .get(&opentelemetry::Key::from_static_str(key))
                .map(|v| v.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some(SERVICE));
        assert_eq!(get("service.version").as_deref(), Some(env!("CARGO_PKG_VERSION")));
        assert_eq!(instance(&named).as_deref(), Some("trigger-otel-bridge-2"));
        assert_eq!(instance(&resource(None)).map(|id| id.len()), Some(32));
    }

    #[test]
    fn off_without_an_endpoint_even_outside_a_runtime() {
        let push = OtlpMetrics::start(&TelemetryConfig::default(), None, Arc::new(Metrics::new())).expect("off");
        assert!(push.provider.is_none());
    }
}
