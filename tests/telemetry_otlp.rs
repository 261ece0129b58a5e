//! The bridge's own metrics pushed over OTLP (`[telemetry]`): they reach the kit's receiver over
//! gRPC and OTLP/HTTP with the names, labels and values `/metrics` shows (a Prometheus exporter
//! adds `_total` to the counters and `_seconds` to the histograms); the last values are pushed at
//! shutdown; a collector that is down costs one log line and nothing else.

mod support;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};
use std::collections::BTreeMap;
use std::time::Duration;
use support::daemon::{fast_options, Fakes, Running};
use support::generate;
use support::otlp_receiver::Receiver;
use support::process;
use trigger_otel_bridge::config::{BridgeConfig, MetricsProtocol};

const PUSH_EVERY: Duration = Duration::from_millis(200);

fn with_push(mut config: BridgeConfig, endpoint: String, protocol: MetricsProtocol, every: Duration) -> BridgeConfig {
    config.telemetry.otlp_endpoint = Some(endpoint);
    config.telemetry.otlp_protocol = protocol;
    config.telemetry.otlp_interval = every;
    config
}

fn push_endpoint(receiver: &Receiver, protocol: MetricsProtocol) -> String {
    match protocol {
        MetricsProtocol::Grpc => receiver.grpc_endpoint(),
        // No path: the bridge adds /v1/metrics, the receiver's only route to its metrics.
        MetricsProtocol::HttpProtobuf => receiver.http_endpoint(),
    }
}

fn text(value: &Option<opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(text)) => text.clone(),
        other => format!("{other:?}"),
    }
}

/// `name{a="x",b="y"}` with the labels in name order.
fn series(name: &str, labels: impl IntoIterator<Item = (String, String)>) -> String {
    let labels: BTreeMap<String, String> = labels.into_iter().collect();
    if labels.is_empty() {
        return name.to_owned();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

fn attributes(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

/// One push, as the Prometheus series a Prometheus exporter makes of it: counters get `_total`,
/// histograms in seconds `_seconds_count` and `_seconds_sum`.
fn as_prometheus(request: &ExportMetricsServiceRequest) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for metric in support::otlp_receiver::metrics_of(request) {
        assert!(
            metric.name.starts_with("trigger_otel_bridge_") && !metric.name.ends_with("_total"),
            "{}",
            metric.name
        );
        assert!(!metric.description.is_empty(), "{} has no description", metric.name);
        let number = |point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match point.value {
            Some(number_data_point::Value::AsInt(value)) => value as f64,
            Some(number_data_point::Value::AsDouble(value)) => value,
            None => f64::NAN,
        };
        match metric.data.as_ref().expect("data") {
            metric::Data::Sum(sum) => {
                assert!(sum.is_monotonic, "{}", metric.name);
                // Cumulative, as /metrics counts.
                assert_eq!(sum.aggregation_temporality, 2, "{}", metric.name);
                let name = format!("{}_total", metric.name);
                for point in &sum.data_points {
                    samples.insert(series(&name, attributes(&point.attributes)), number(point));
                }
            }
            metric::Data::Gauge(gauge) => {
                for point in &gauge.data_points {
                    samples.insert(series(&metric.name, attributes(&point.attributes)), number(point));
                }
            }
            metric::Data::Histogram(histogram) => {
                assert_eq!(metric.unit, "s", "{}", metric.name);
                for point in &histogram.data_points {
                    samples.insert(format!("{}_seconds_count", metric.name), point.count as f64);
                    samples.insert(format!("{}_seconds_sum", metric.name), point.sum.unwrap_or_default());
                }
            }
            other => panic!("{}: unexpected {other:?}", metric.name),
        }
    }
    samples
}

/// `/metrics` (Prometheus text), without the histograms' buckets, labels in name order.
fn scraped(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name_labels, value) = line.rsplit_once(' ').expect("a sample");
        if name_labels.contains("_bucket{") {
            continue;
        }
        let (name, labels) = match name_labels.split_once('{') {
            Some((name, rest)) => (
                name,
                rest.trim_end_matches('}')
                    .split(',')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').expect("label");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect::<Vec<_>>(),
            ),
            None => (name_labels, Vec::new()),
        };
        samples.insert(series(name, labels), value.parse::<f64>().expect("value"));
    }
    samples
}

fn resource_attribute(request: &ExportMetricsServiceRequest, key: &str) -> Option<String> {
    let resource = request.resource_metrics[0].resource.as_ref().expect("resource");
    attributes(&resource.attributes)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

fn pushes(receiver: &Receiver) -> Vec<ExportMetricsServiceRequest> {
    receiver.recorder.metric_requests.lock().unwrap().clone()
}

async fn the_push_matches_slash_metrics(protocol: MetricsProtocol) {
    let run = format!("run_otlp_{}", protocol.as_str().replace('/', "_"));
    let fakes = Fakes::start([generate::fake_run(&run, "t", 30, false)]).await;
    let endpoint = push_endpoint(&fakes.receiver, protocol);
    let config = with_push(fakes.config(&[run.as_str()]), endpoint, protocol, PUSH_EVERY);
    let daemon = Running::start(config, fast_options());
    daemon.wait_retired(1, Duration::from_secs(15)).await;
    let spans = generate::span_count(30) as u64;
    assert_eq!(daemon.stats.spans_exported(), spans);

    // Nothing moves once the run is retired: a push begun after now carries what /metrics shows.
    let seen = pushes(&fakes.receiver).len();
    process::wait_until("two more pushes", Duration::from_secs(10), || {
        pushes(&fakes.receiver).len() >= seen + 2
    })
    .await;
    let last = pushes(&fakes.receiver).pop().expect("a push");
    let pushed = as_prometheus(&last);
    let scraped = scraped(&daemon.stats.encode_prometheus());
    // A Prometheus exporter makes `job` and `instance` of these, as a scrape has them.
    assert_eq!(
        resource_attribute(&last, "service.name").as_deref(),
        Some("trigger-otel-bridge")
    );
    assert!(resource_attribute(&last, "service.instance.id").is_some());

    // Every series of /metrics is pushed with its value, and nothing else is.
    for (series, value) in &scraped {
        let got = pushed
            .get(series)
            .unwrap_or_else(|| panic!("{protocol}: {series} not pushed; pushed: {pushed:#?}"));
        if series.ends_with("_sum") {
            assert!(
                (got - value).abs() < 1e-9,
                "{protocol}: {series}: {got} pushed, {value} on /metrics"
            );
        } else {
            assert_eq!(got, value, "{protocol}: {series}");
        }
    }
    let extra: Vec<&String> = pushed.keys().filter(|k| !scraped.contains_key(*k)).collect();
    assert!(extra.is_empty(), "{protocol}: pushed but not on /metrics: {extra:?}");

    // The counters moved, and as /metrics names them.
    for (series, value) in [
        ("trigger_otel_bridge_spans_exported_total", spans as f64),
        ("trigger_otel_bridge_runs_retired_total{reason=\"settled\"}", 1.0),
        ("trigger_otel_bridge_runs_retired_total{reason=\"not_found\"}", 0.0),
        ("trigger_otel_bridge_runs_watched", 0.0),
        ("trigger_otel_bridge_build_info{version=\"0.1.0\"}", 1.0),
    ] {
        assert_eq!(pushed.get(series), Some(&value), "{protocol}: {series}");
    }
    assert!(pushed["trigger_otel_bridge_api_requests_total{endpoint=\"events\",status=\"200\"}"] >= 1.0);
    assert!(pushed["trigger_otel_bridge_poll_lag_seconds_count"] >= 1.0);
    // The span export's own receiver got the spans.
    assert_eq!(fakes.receiver.recorder.spans().len() as u64, spans);
    fakes.stop_with(daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pushed_over_grpc_are_those_of_slash_metrics() {
    the_push_matches_slash_metrics(MetricsProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pushed_over_http_are_those_of_slash_metrics() {
    the_push_matches_slash_metrics(MetricsProtocol::HttpProtobuf).await;
}

/// A push every hour: the only one is the last, at shutdown, with the final values.
#[tokio::test]
async fn the_last_values_are_pushed_at_shutdown() {
    for protocol in MetricsProtocol::ALL.iter().copied() {
        let run = format!("run_last_{}", protocol.as_str().replace('/', "_"));
        let fakes = Fakes::start([generate::fake_run(&run, "t", 10, false)]).await;
        let endpoint = push_endpoint(&fakes.receiver, protocol);
        let config = with_push(
            fakes.config(&[run.as_str()]),
            endpoint,
            protocol,
            Duration::from_secs(3600),
        );
        let daemon = Running::start(config, fast_options());
        daemon.wait_retired(1, Duration::from_secs(15)).await;
        assert!(pushes(&fakes.receiver).is_empty(), "{protocol}: pushed before the hour");
        let exported = daemon.stats.spans_exported();
        daemon.stop().await;
        let pushed = pushes(&fakes.receiver);
        assert_eq!(pushed.len(), 1, "{protocol}: one push, at shutdown");
        let samples = as_prometheus(&pushed[0]);
        assert_eq!(
            samples["trigger_otel_bridge_spans_exported_total"], exported as f64,
            "{protocol}"
        );
        fakes.stop().await;
    }
}

/// Pushing to a closed port: the daemon exports its spans as ever, logs the failure once (with
/// the endpoint and the cause) however many pushes fail, and stops cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_one_log_line() {
    for protocol in MetricsProtocol::ALL.iter().copied() {
        let run = format!("run_down_{}", protocol.as_str().replace('/', "_"));
        let fakes = Fakes::start([generate::fake_run(&run, "t", 20, false)]).await;
        let closed = format!("http://127.0.0.1:{}", process::free_port());
        let config = with_push(fakes.config(&[run.as_str()]), closed.clone(), protocol, PUSH_EVERY);
        let dir = fakes.dir.path();
        let config_path = process::write_config(dir, "bridge.toml", &config);
        let log = dir.join("stderr.log");
        let mut child = process::bridge(&["run"], &config_path, &log).spawn().unwrap();

        let spans = generate::span_count(20);
        let recorder = fakes.receiver.recorder.clone();
        process::wait_until("the run's spans", Duration::from_secs(20), || {
            recorder.spans().len() >= spans
        })
        .await;
        // Ten pushes or so fail meanwhile.
        tokio::time::sleep(PUSH_EVERY * 10).await;
        let status = process::terminate(&mut child, Duration::from_secs(15))
            .await
            .expect("exits after SIGTERM");
        assert!(status.success(), "{protocol}: {status:?}");

        let logs = std::fs::read_to_string(&log).unwrap();
        let failures: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("pushing the bridge's own metrics over OTLP failed"))
            .collect();
        assert_eq!(failures.len(), 1, "{protocol}: one line per outage:\n{logs}");
        let line = failures[0];
        assert!(line.contains("WARN"), "{line}");
        assert!(line.contains(&closed), "{protocol}: the endpoint: {line}");
        assert!(
            line.contains("telemetry.otlp_endpoint"),
            "{protocol}: the setting: {line}"
        );
        assert!(
            line.to_lowercase().contains("connection refused"),
            "{protocol}: the cause: {line}"
        );
        assert_eq!(recorder.spans().len(), spans, "{protocol}: spans unaffected");
        fakes.stop().await;
    }
}
