//! Exporters against a real OTLP receiver on loopback: what arrives equals what the converter
//! produced, for gRPC, OTLP/HTTP protobuf and JSON, with and without compression; retryable
//! outages lose nothing; a poisoned span is isolated and only it is dropped.

mod support;

use opentelemetry_proto::tonic::trace::v1::Span;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::otlp_receiver::{spans_of, Fault, Receiver};
use trigger_otel_bridge::config::{Compression, ExportConfig, LogsMode, Protocol};
use trigger_otel_bridge::convert::otlp::{export_request, ResourceSettings};
use trigger_otel_bridge::convert::{convert_events, BridgeSpan, NothingExported, RunInfo, RunState};
use trigger_otel_bridge::export::{BackoffPolicy, ExportSettings, OtlpSender, SenderOptions, Transport};
use trigger_otel_bridge::trigger::model::EventsBody;

fn fixture_spans(run: &str, run_id: &str) -> Vec<BridgeSpan> {
    let path = format!("{}/tests/fixtures/{run}.events.json", env!("CARGO_MANIFEST_DIR"));
    let body = EventsBody::from_slice(&std::fs::read(path).unwrap()).unwrap();
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
        let transport = Transport::new(&settings(
            endpoint_for(&receiver, protocol),
            protocol,
            Compression::Gzip,
            100,
        ))
        .unwrap();
        let report = OtlpSender::new(transport, ResourceSettings::default(), fast_options(100))
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
        let poison = spans[5].data.name.to_string();
        *receiver.recorder.poison_name.lock().unwrap() = Some(poison.clone());
        let transport = Transport::new(&settings(
            endpoint_for(&receiver, protocol),
            protocol,
            Compression::None,
            100,
        ))
        .unwrap();
        let report = OtlpSender::new(transport, ResourceSettings::default(), fast_options(100))
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
    assert_eq!(error.delivered, 0);
    assert!(error.to_string().contains("did not accept"), "{error}");
}

#[derive(Clone, Default)]
struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
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
