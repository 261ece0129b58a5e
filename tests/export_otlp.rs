//! Exporters against a real OTLP receiver on loopback: what arrives equals what the converter
//! produced, for gRPC, OTLP/HTTP protobuf and JSON, with and without compression; retryable
//! outages lose nothing; a poisoned span is isolated and only it is dropped. The same for OTLP
//! log records (`conversion.logs = "otlp_logs"`), and `export.logs_endpoint`. A misconfigured
//! endpoint (a closed port, a web server's 404 page, an untrusted certificate) gives a message
//! naming the endpoint, the cause once and the setting to check; a one-shot sender gives up at
//! its bound, not before.

mod support;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use support::faulty::{closed_port, untrusted_cert_path, NotFoundHtml, UntrustedTls};
use support::otlp_receiver::{body_text, logs_of, spans_of, Fault, Receiver};
use support::SharedBuffer;
use trigger_otel_bridge::config::{Compression, ExportConfig, LogsMode, Protocol};
use trigger_otel_bridge::convert::otlp::{export_logs_request, export_request, ResourceSettings};
use trigger_otel_bridge::convert::{
    convert_events, BridgeSpan, Conversion, NothingExported, Record, RunInfo, RunState,
};
use trigger_otel_bridge::export::{BackoffPolicy, ExportError, ExportSettings, OtlpSender, SenderOptions, Transport};
use trigger_otel_bridge::trigger::model::EventsBody;

fn fixture_spans(run: &str, run_id: &str) -> Vec<BridgeSpan> {
    let path = format!("{}/tests/fixtures/{run}.events.json", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap();
    let body = EventsBody::from_slice(&bytes).unwrap();
    let info = RunInfo::new(run_id, None, RunState::Ended { finished_at: None });
    convert_events(body.events, &info, LogsMode::SpanEvents, &NothingExported).spans
}

fn settings(endpoint: String, protocol: Protocol, compression: Compression, max_batch: usize) -> ExportSettings {
    let config = ExportConfig {
        endpoint,
        protocol,
        compression,
        timeout: Duration::from_secs(5),
        max_batch_spans: max_batch,
        ..ExportConfig::default()
    };
    ExportSettings::resolve(&config, &HashMap::new()).unwrap()
}

fn fast_options(max_batch: usize) -> SenderOptions {
    SenderOptions {
        max_batch_spans: max_batch,
        backoff: BackoffPolicy {
            initial: Duration::from_millis(10),
            multiplier: 1.5,
            max: Duration::from_millis(50),
        },
        give_up_after: None,
    }
}

fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by(|a, b| a.span_id.cmp(&b.span_id));
    spans
}

/// A sender to `receiver` over `protocol`, in batches of at most `max_batch`.
fn sender(receiver: &Receiver, protocol: Protocol, compression: Compression, max_batch: usize) -> OtlpSender {
    let transport = Transport::new(&settings(
        endpoint_for(receiver, protocol),
        protocol,
        compression,
        max_batch,
    ))
    .unwrap();
    OtlpSender::new(transport, ResourceSettings::default(), fast_options(max_batch))
}

fn endpoint_for(receiver: &Receiver, protocol: Protocol) -> String {
    match protocol {
        Protocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    }
}

#[tokio::test]
async fn every_protocol_and_compression_delivers_exactly_the_converted_spans() {
    let receiver = Receiver::start().await;
    let spans = fixture_spans("finished_run", "run_cm1finished01");
    let expected = sorted(spans_of(&export_request(spans.clone(), &ResourceSettings::default())));
    assert_eq!(expected.len(), 12);
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
        for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
            receiver.recorder.requests.lock().unwrap().clear();
            let transport =
                Transport::new(&settings(endpoint_for(&receiver, protocol), protocol, compression, 5)).unwrap();
            let sender = OtlpSender::new(transport, ResourceSettings::default(), fast_options(5));
            let report = sender.send(spans.clone()).await.unwrap();
            assert_eq!(report.delivered_spans, 12, "{protocol:?}/{compression:?}");
            // 12 spans in batches of at most 5.
            let requests = receiver.recorder.requests.lock().unwrap().clone();
            assert_eq!(requests.len(), 3, "{protocol:?}/{compression:?}");
            assert!(requests.iter().all(|r| spans_of(r).len() <= 5));
            let got = sorted(requests.iter().flat_map(spans_of).collect());
            assert_eq!(
                got, expected,
                "{protocol:?}/{compression:?}: spans differ from the converter's"
            );
            let resource = requests[0].resource_spans[0].resource.clone().unwrap();
            assert!(resource.attributes.iter().any(|kv| kv.key == "service.name"));
        }
    }
    let encodings = receiver.recorder.content_encodings.lock().unwrap().clone();
    assert!(
        encodings.contains(&"gzip".to_owned()) && encodings.contains(&"zstd".to_owned()),
        "{encodings:?}"
    );
    assert!(encodings.contains(&"identity".to_owned()));
    receiver.stop().await;
}

#[tokio::test]
async fn an_outage_of_three_answers_loses_nothing() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = Receiver::start().await;
        receiver.recorder.faults.lock().unwrap().extend([Fault::Unavailable; 3]);
        let spans = fixture_spans("selfhosted_run", "run_cm1selfhosted");
        let report = sender(&receiver, protocol, Compression::Gzip, 100)
            .send(spans.clone())
            .await
            .unwrap();
        assert_eq!(report.retries, 3, "{protocol:?}");
        assert_eq!(*receiver.recorder.attempts.lock().unwrap(), 4);
        assert_eq!(
            receiver.recorder.spans().len(),
            spans.len(),
            "{protocol:?}: nothing lost"
        );
        let covered: usize = spans.iter().map(|s| s.covers.len()).sum();
        assert_eq!(report.delivered.len(), covered);
        receiver.stop().await;
    }
}

#[tokio::test]
async fn a_poisoned_span_is_isolated_and_only_it_is_dropped() {
    for protocol in [Protocol::Grpc, Protocol::HttpJson] {
        let receiver = Receiver::start().await;
        let spans = fixture_spans("finished_run", "run_cm1finished01");
        let poison = spans[5].span.name.clone();
        *receiver.recorder.poison_name.lock().unwrap() = Some(poison.clone());
        let report = sender(&receiver, protocol, Compression::None, 100)
            .send(spans.clone())
            .await
            .unwrap();
        assert_eq!(report.rejected_spans, 1, "{protocol:?}");
        let got = receiver.recorder.spans();
        assert_eq!(got.len(), spans.len() - 1, "{protocol:?}: all others arrive");
        assert!(got.iter().all(|s| s.name != poison));
        receiver.stop().await;
    }
}

/// A collector refusing requests over its size limit (a Go collector answers gRPC
/// ResourceExhausted, the same code as an overloaded one; OTLP/HTTP 413): batches are halved
/// until they fit, and nothing is dropped.
#[tokio::test]
async fn batches_too_large_for_the_collector_are_halved_until_they_fit() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = Receiver::start().await;
        *receiver.recorder.max_records.lock().unwrap() = Some(3);
        let spans = fixture_spans("finished_run", "run_cm1finished01");
        let report = sender(&receiver, protocol, Compression::None, 100)
            .send(spans.clone())
            .await
            .unwrap();
        assert_eq!(report.rejected_spans, 0, "{protocol:?}: nothing dropped");
        assert_eq!(report.delivered_spans, spans.len() as u64, "{protocol:?}");
        let got = receiver.recorder.spans();
        assert_eq!(got.len(), spans.len(), "{protocol:?}: every span arrives once");
        let requests = receiver.recorder.requests.lock().unwrap().clone();
        assert!(requests.iter().all(|r| spans_of(r).len() <= 3), "{protocol:?}");
        receiver.stop().await;
    }
}

#[tokio::test]
async fn a_collector_that_never_answers_is_retried_until_the_limit_for_one_shot_use() {
    // Nothing listens on this port once the listener is dropped.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let transport = Transport::new(&settings(
        format!("http://127.0.0.1:{port}"),
        Protocol::HttpProtobuf,
        Compression::None,
        10,
    ))
    .unwrap();
    let mut options = fast_options(10);
    options.give_up_after = Some(Duration::from_millis(300));
    let error = OtlpSender::new(transport, ResourceSettings::default(), options)
        .send(fixture_spans("child_run", "run_cm1childrun01"))
        .await
        .unwrap_err();
    let ExportError::GaveUp(gave_up) = &error else {
        panic!("expected the sender to give up: {error}")
    };
    assert_eq!(gave_up.delivered, 0);
    assert!(error.to_string().contains("did not accept"), "{error}");
}

#[tokio::test]
async fn stdout_protocol_writes_one_otlp_json_request_per_line() {
    let buffer = SharedBuffer::default();
    let export_settings = settings(String::new(), Protocol::Stdout, Compression::None, 4);
    let transport = Transport::with_stdout(&export_settings, Box::new(buffer.clone())).unwrap();
    let spans = fixture_spans("child_run", "run_cm1childrun01");
    let resources = ResourceSettings {
        service_name_from_task: true,
        ..ResourceSettings::default()
    };
    OtlpSender::new(transport, resources, fast_options(4))
        .send(spans.clone())
        .await
        .unwrap();
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), spans.len().div_ceil(4));
    let mut total = 0;
    for line in lines {
        let request: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
            serde_json::from_str(line).unwrap();
        total += spans_of(&request).len();
    }
    assert_eq!(total, spans.len());
}

// ---- conversion.logs = "otlp_logs" --------------------------------------------------------------

const FINISHED_TRACE_ID: &str = "a4c123b1612dd272d1371c17149d4395";

/// The finished run converted with `otlp_logs`: its spans and its 7 log records.
fn fixture_records() -> Conversion {
    let path = format!("{}/tests/fixtures/finished_run.events.json", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(path).unwrap();
    let body = EventsBody::from_slice(&bytes).unwrap();
    let info = RunInfo::new(
        "run_cm1finished01",
        Some(FINISHED_TRACE_ID),
        RunState::Ended { finished_at: None },
    );
    let conversion = convert_events(body.events, &info, LogsMode::OtlpLogs, &NothingExported);
    assert_eq!(conversion.logs.len(), 7);
    conversion
}

fn sorted_logs(mut logs: Vec<LogRecord>) -> Vec<LogRecord> {
    logs.sort_by_key(|l| (l.time_unix_nano, body_text(l)));
    logs
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn log_records_arrive_over_every_protocol_with_the_runs_trace_and_their_parent_span() {
    let receiver = Receiver::start().await;
    let mut conversion = fixture_records();
    let logs = conversion.logs.clone();
    let expected = sorted_logs(logs_of(&export_logs_request(
        logs.clone(),
        &ResourceSettings::default(),
    )));
    let records = conversion.take_records();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
        receiver.recorder.requests.lock().unwrap().clear();
        receiver.recorder.log_requests.lock().unwrap().clear();
        let report = sender(&receiver, protocol, Compression::Gzip, 3)
            .send(records.clone())
            .await
            .unwrap();
        assert_eq!((report.delivered_spans, report.delivered_logs), (12, 7), "{protocol:?}");
        assert_eq!(report.delivered.len(), 19, "{protocol:?}: every source id is committed");
        for log in &logs {
            assert!(report.delivered.contains(&log.span_id), "{protocol:?}");
        }
        // 7 records in batches of at most 3.
        assert_eq!(receiver.recorder.log_requests.lock().unwrap().len(), 3, "{protocol:?}");
        assert_eq!(receiver.recorder.spans().len(), 12, "{protocol:?}");
        let got = sorted_logs(receiver.recorder.logs());
        assert_eq!(got, expected, "{protocol:?}: records differ from the converter's");
        for (record, source) in got.iter().zip({
            let mut by_time = logs.clone();
            by_time.sort_by_key(|l| (l.time, l.body.clone()));
            by_time
        }) {
            assert_eq!(hex(&record.trace_id), FINISHED_TRACE_ID);
            assert_eq!(hex(&record.span_id), source.parent.unwrap().to_string());
            assert_eq!(body_text(record), source.body);
            assert!(record.severity_number > 0, "{protocol:?}: {record:?}");
        }
    }
    receiver.stop().await;
}

#[tokio::test]
async fn log_records_survive_an_outage_and_a_poisoned_one_is_isolated() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = Receiver::start().await;
        let mut conversion = fixture_records();
        let logs = conversion.logs.clone();
        let poison = logs[2].body.clone();
        *receiver.recorder.poison_name.lock().unwrap() = Some(poison.clone());
        let records: Vec<Record> = conversion.logs.drain(..).map(Record::Log).collect();
        receiver.recorder.faults.lock().unwrap().extend([Fault::Unavailable; 2]);
        let report = sender(&receiver, protocol, Compression::None, 100)
            .send(records)
            .await
            .unwrap();
        assert_eq!(report.retries, 2, "{protocol:?}");
        assert_eq!((report.rejected_logs, report.delivered_logs), (1, 6), "{protocol:?}");
        // The poisoned record counts as handled, so a restart does not send it again.
        assert_eq!(report.delivered.len(), 7, "{protocol:?}");
        let got = receiver.recorder.logs();
        assert_eq!(got.len(), 6, "{protocol:?}: all others arrive");
        assert!(got.iter().all(|l| body_text(l) != poison));
        receiver.stop().await;
    }
}

#[tokio::test]
async fn logs_endpoint_sends_log_records_to_another_collector() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let traces = Receiver::start().await;
        let logs = Receiver::start().await;
        let mut export_settings = settings(endpoint_for(&traces, protocol), protocol, Compression::None, 100);
        export_settings.logs_endpoint = Some(match protocol {
            Protocol::Grpc => logs.grpc_endpoint(),
            _ => format!("{}/v1/logs", logs.http_endpoint()),
        });
        let transport = Transport::new(&export_settings).unwrap();
        let records = fixture_records().take_records();
        OtlpSender::new(transport, ResourceSettings::default(), fast_options(100))
            .send(records)
            .await
            .unwrap();
        assert_eq!(traces.recorder.spans().len(), 12, "{protocol:?}");
        assert!(traces.recorder.logs().is_empty(), "{protocol:?}");
        assert_eq!(logs.recorder.logs().len(), 7, "{protocol:?}");
        assert!(logs.recorder.spans().is_empty(), "{protocol:?}");
        traces.stop().await;
        logs.stop().await;
    }
}

#[tokio::test]
async fn stdout_protocol_writes_log_records_as_an_otlp_json_logs_request() {
    let buffer = SharedBuffer::default();
    let export_settings = settings(String::new(), Protocol::Stdout, Compression::None, 100);
    let transport = Transport::with_stdout(&export_settings, Box::new(buffer.clone())).unwrap();
    OtlpSender::new(transport, ResourceSettings::default(), fast_options(100))
        .send(fixture_records().take_records())
        .await
        .unwrap();
    let text = buffer.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let spans: opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest =
        serde_json::from_str(lines[0]).unwrap();
    let logs: ExportLogsServiceRequest = serde_json::from_str(lines[1]).unwrap();
    assert_eq!((spans_of(&spans).len(), logs_of(&logs).len()), (12, 7));
}

// ---- partial success ----------------------------------------------------------------------------

/// A collector that accepts every request but reports some of its records rejected
/// (`partial_success`, the collector dropped them): over gRPC as over OTLP/HTTP, for spans and
/// log records, the report's `collector_rejected_*` and the `*_rejected_total` metrics count
/// them, the requests count as delivered and nothing is sent again.
#[tokio::test]
async fn a_partial_success_is_counted_alike_over_grpc_and_http_for_spans_and_log_records() {
    use trigger_otel_bridge::telemetry::Metrics;
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
        let receiver = Receiver::start().await;
        *receiver.recorder.partial_success.lock().unwrap() = Some((2, "too old".to_owned()));
        let sender = sender(&receiver, protocol, Compression::Gzip, 5);
        let metrics = Arc::new(Metrics::new());
        sender.set_metrics(metrics.clone());
        let report = sender.send(fixture_records().take_records()).await.unwrap();
        // 12 spans in 3 requests, 7 log records in 2: each answered "2 rejected".
        assert_eq!(
            (report.collector_rejected_spans, report.collector_rejected_logs),
            (6, 4),
            "{protocol:?}"
        );
        assert_eq!((report.delivered_spans, report.delivered_logs), (12, 7), "{protocol:?}");
        assert_eq!((report.rejected_spans, report.rejected_logs), (0, 0), "{protocol:?}");
        assert_eq!(
            (report.retries, report.batches),
            (0, 5),
            "{protocol:?}: nothing sent again"
        );
        assert_eq!(*receiver.recorder.attempts.lock().unwrap(), 5, "{protocol:?}");
        assert_eq!(
            (metrics.spans_rejected(), metrics.log_records_rejected()),
            (6, 4),
            "{protocol:?}"
        );
        let text = metrics.encode_prometheus();
        assert!(
            text.contains("trigger_otel_bridge_spans_rejected_total 6")
                && text.contains("trigger_otel_bridge_log_records_rejected_total 4"),
            "{protocol:?}: {text}"
        );
        receiver.stop().await;
    }
}

/// `partial_success` with nothing rejected and a message is a warning: nothing is counted.
#[tokio::test]
async fn a_partial_success_warning_rejects_nothing() {
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let receiver = Receiver::start().await;
        *receiver.recorder.partial_success.lock().unwrap() = Some((0, "attribute deprecated".to_owned()));
        let spans = fixture_spans("finished_run", "run_cm1finished01");
        let report = sender(&receiver, protocol, Compression::None, 100)
            .send(spans.clone())
            .await
            .unwrap();
        assert_eq!(report.collector_rejected_spans, 0, "{protocol:?}");
        assert_eq!(report.delivered_spans, spans.len() as u64, "{protocol:?}");
        receiver.stop().await;
    }
}

/// What goes over the wire is what the converter's request encodes to: the same protobuf bytes
/// over gRPC and OTLP/HTTP, the same OTLP/JSON over `http/json` (pretty, as before) — checked by
/// decoding both back into the converter's request.
#[tokio::test]
async fn every_protocol_carries_the_converters_request_unchanged() {
    let receiver = Receiver::start().await;
    let spans = fixture_spans("child_run", "run_cm1childrun01");
    let expected = export_request(spans.clone(), &ResourceSettings::default());
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf, Protocol::HttpJson] {
        receiver.recorder.requests.lock().unwrap().clear();
        sender(&receiver, protocol, Compression::Zstd, 1000)
            .send(spans.clone())
            .await
            .unwrap();
        let requests = receiver.recorder.requests.lock().unwrap().clone();
        assert_eq!(requests.len(), 1, "{protocol:?}");
        assert_eq!(requests[0], expected, "{protocol:?}");
    }
    receiver.stop().await;
}

// ---- misconfigured endpoints: the endpoint, the cause once, the setting to check --------------

const HEADER_SECRET: &str = "Bearer s3cr3t-exporter-token";

/// The message of a one-shot sender that gave up on `export_settings` (after 300 ms of fast
/// retries), sending `records`. Every request carries an `authorization` header that must
/// never show.
async fn gave_up(mut export_settings: ExportSettings, records: Vec<Record>) -> String {
    export_settings
        .headers
        .insert("authorization".into(), HEADER_SECRET.into());
    let transport = Transport::new(&export_settings).unwrap();
    let mut options = fast_options(100);
    options.give_up_after = Some(Duration::from_millis(300));
    let error = OtlpSender::new(transport, ResourceSettings::default(), options)
        .send(records)
        .await
        .unwrap_err();
    assert!(matches!(error, ExportError::GaveUp(_)), "{error}");
    let message = error.to_string();
    assert!(!message.contains("s3cr3t"), "a header value leaked: {message}");
    // The cause told once: no `: `-separated link the same as the one before it.
    let links: Vec<&str> = message.split(": ").collect();
    for pair in links.windows(2) {
        assert_ne!(pair[0], pair[1], "a cause told twice: {message}");
    }
    message
}

fn span_records() -> Vec<Record> {
    fixture_spans("child_run", "run_cm1childrun01")
        .into_iter()
        .map(Record::Span)
        .collect()
}

fn assert_says(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "missing {part:?} in: {message}");
    }
}

#[tokio::test]
async fn a_closed_port_is_named_with_the_refusal_and_export_endpoint_over_both_protocols() {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let message = gave_up(
            settings(endpoint.clone(), protocol, Compression::None, 100),
            span_records(),
        )
        .await;
        let shown = match protocol {
            Protocol::Grpc => format!("last attempt: gRPC {endpoint}: Unavailable: "),
            _ => format!("last attempt: OTLP/HTTP POST {endpoint}/v1/traces: error sending request: "),
        };
        assert_says(
            &message,
            &[
                "gave up after ",
                "ms (0 spans and log records delivered): the collector did not accept the export; ",
                &shown,
                "Connection refused",
                "; check export.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): nothing listens at its host and port",
            ],
        );
        assert_eq!(
            message.matches("tcp connect error").count(),
            1,
            "{protocol:?}: {message}"
        );
    }
}

#[tokio::test]
async fn a_closed_logs_endpoint_is_named_as_export_logs_endpoint() {
    let receiver = Receiver::start().await;
    let logs_endpoint = format!("http://127.0.0.1:{}", closed_port());
    let mut conversion = fixture_records();
    let logs: Vec<Record> = conversion.logs.drain(..).map(Record::Log).collect();
    for protocol in [Protocol::Grpc, Protocol::HttpJson] {
        let mut export_settings = settings(endpoint_for(&receiver, protocol), protocol, Compression::None, 100);
        let url = match protocol {
            Protocol::Grpc => logs_endpoint.clone(),
            _ => format!("{logs_endpoint}/v1/logs"),
        };
        export_settings.logs_endpoint = Some(url.clone());
        let message = gave_up(export_settings, logs.clone()).await;
        assert_says(
            &message,
            &[
                &url,
                "Connection refused",
                "check export.logs_endpoint (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)",
            ],
        );
    }
    receiver.stop().await;
}

#[tokio::test]
async fn a_web_server_s_404_page_is_quoted_over_http_and_told_over_grpc() {
    let web = NotFoundHtml::start().await;
    let endpoint = format!("{}/otlp", web.url());
    let message = gave_up(
        settings(endpoint.clone(), Protocol::HttpProtobuf, Compression::None, 100),
        span_records(),
    )
    .await;
    assert_says(
        &message,
        &[
            // An endpoint with a path is used as is.
            &format!("OTLP/HTTP POST {endpoint}: HTTP 404: \"<html> <head><title>404 Not Found</title>"),
            "check export.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): the whole URL is used as given; and \
             export.protocol (OTEL_EXPORTER_OTLP_PROTOCOL)",
        ],
    );
    let message = gave_up(
        settings(web.url(), Protocol::Grpc, Compression::None, 100),
        span_records(),
    )
    .await;
    assert_says(
        &message,
        &[
            &format!("gRPC {}: the server answered HTTP 404, not gRPC", web.url()),
            "check export.endpoint (OTEL_EXPORTER_OTLP_ENDPOINT) and export.protocol (OTEL_EXPORTER_OTLP_PROTOCOL)",
        ],
    );
    assert!(!message.contains("nginx"), "gRPC answers are never quoted: {message}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_named_with_rustls_words_and_export_ca_file() {
    let tls = UntrustedTls::start();
    for protocol in [Protocol::Grpc, Protocol::HttpProtobuf] {
        let message = gave_up(settings(tls.url(), protocol, Compression::None, 100), span_records()).await;
        assert_says(
            &message,
            &[
                &tls.url(),
                "invalid peer certificate: UnknownIssuer",
                "set export.ca_file (OTEL_EXPORTER_OTLP_CERTIFICATE) to the CA that signed the collector's certificate",
            ],
        );
        assert_eq!(
            message.matches("invalid peer certificate").count(),
            1,
            "{protocol:?}: {message}"
        );
        // Trusting the certificate (`ca_file`) gets past it: the endpoint then closes without
        // answering, which is told as something else.
        let mut trusted = settings(tls.url(), protocol, Compression::None, 100);
        trusted.ca_file = Some(untrusted_cert_path().into());
        let message = gave_up(trusted, span_records()).await;
        assert!(!message.contains("UnknownIssuer"), "{protocol:?}: {message}");
    }
}

// ---- the one-shot deadline ---------------------------------------------------------------------

/// A stdout that refuses every write: each attempt fails at once, with no I/O to wait for, so
/// the paused clock moves only by the sender's own backoff.
struct RefusingStdout(Arc<std::sync::atomic::AtomicU32>);

impl std::io::Write for RefusingStdout {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(std::io::Error::other("disk full"))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// README and docs/export.md: `export` gives up on a collector that stays down for two minutes.
/// With the default backoff (5 s ×1.5 up to 30 s, jittered) it gave up after 98–108 s, skipping a
/// retry whose wait crossed the bound; now the last retry is made at the bound and the message
/// says so in the words a person writes.
#[tokio::test(start_paused = true)]
async fn export_gives_up_at_the_documented_two_minutes_not_before() {
    use trigger_otel_bridge::commands::export::GIVE_UP_AFTER;
    assert_eq!(
        GIVE_UP_AFTER,
        Duration::from_secs(120),
        "README and docs/export.md say two minutes"
    );
    // The backoff is jittered: several draws.
    for _ in 0..20 {
        let attempts = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let transport = Transport::with_stdout(
            &settings(String::new(), Protocol::Stdout, Compression::None, 100),
            Box::new(RefusingStdout(attempts.clone())),
        )
        .unwrap();
        let options = SenderOptions {
            max_batch_spans: 100,
            backoff: BackoffPolicy::default(),
            give_up_after: Some(GIVE_UP_AFTER),
        };
        let started = tokio::time::Instant::now();
        let error = OtlpSender::new(transport, ResourceSettings::default(), options)
            .send(span_records())
            .await
            .unwrap_err();
        assert_eq!(
            started.elapsed(),
            GIVE_UP_AFTER,
            "given up at the bound, not before or after"
        );
        let ExportError::GaveUp(gave_up) = &error else {
            panic!("{error}")
        };
        assert_eq!(gave_up.waited, GIVE_UP_AFTER);
        let message = error.to_string();
        assert!(
            message.starts_with("gave up after 2m (0 spans and log records delivered): "),
            "{message}"
        );
        assert!(message.contains("disk full"), "{message}");
        // 2.5–30 s apart: at least 5 attempts in two minutes, the last at the bound.
        assert!(attempts.load(std::sync::atomic::Ordering::Relaxed) >= 5);
    }
}
