//! A counting OTLP/gRPC receiver for the benchmarks: opentelemetry-proto's tonic
//! `TraceService` on loopback (gzip accepted, as the bridge compresses by default) that keeps
//! only counts and the time of the last span, so the benchmark process stays small.
#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Default)]
pub struct Received {
    pub requests: AtomicU64,
    pub spans: AtomicU64,
    /// Distinct span ids seen (to tell duplicates from new spans).
    pub ids: Mutex<HashSet<Vec<u8>>>,
    pub last_at: Mutex<Option<Instant>>,
}

impl Received {
    pub fn spans(&self) -> u64 {
        self.spans.load(Ordering::Relaxed)
    }

    pub fn distinct(&self) -> usize {
        self.ids.lock().unwrap().len()
    }
}

struct Counting(Arc<Received>);

#[tonic::async_trait]
impl TraceService for Counting {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let request = request.into_inner();
        let mut count = 0;
        {
            let mut ids = self.0.ids.lock().unwrap();
            for span in request
                .resource_spans
                .into_iter()
                .flat_map(|r| r.scope_spans)
                .flat_map(|s| s.spans)
            {
                ids.insert(span.span_id);
                count += 1;
            }
        }
        self.0.requests.fetch_add(1, Ordering::Relaxed);
        self.0.spans.fetch_add(count, Ordering::Relaxed);
        *self.0.last_at.lock().unwrap() = Some(Instant::now());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

pub struct Collector {
    pub addr: SocketAddr,
    pub received: Arc<Received>,
}

impl Collector {
    pub async fn start() -> Collector {
        let received = Arc::new(Received::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = TraceServiceServer::new(Counting(received.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Zstd)
            .max_decoding_message_size(256 * 1024 * 1024);
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        });
        Collector { addr, received }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}
