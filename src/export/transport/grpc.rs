//! gRPC: an encoded request to `TraceService/Export` or `LogsService/Export` over tonic.
//!
//! The call goes through `tonic::client::Grpc::unary` with [`PassThrough`], a codec that writes
//! bytes already encoded, rather than through `opentelemetry-proto`'s generated clients: those
//! take the message and encode it on every call. Here a batch is encoded once (the same
//! protobuf bytes an OTLP/HTTP body carries), its message freed at once, and a retry resends
//! the bytes — a batch waiting out a collector outage holds only its encoding. The path is the
//! generated client's, and the receiver in `tests/support` is the generated server, so a wrong
//! path fails the tests. The answer is decoded with prost for its `partial_success`.

use super::connection::{grpc_channel, grpc_metadata};
use super::failure::Destination;
use super::observe::{grpc_status, partial_success};
use super::OtlpRequest;
use crate::config::Compression;
use crate::export::policy::Disposition;
use crate::export::settings::ExportSettings;
use crate::export::ExportError;
use crate::telemetry::events::Signal;
use bytes::{Buf, BufMut, Bytes};
use std::time::Duration;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;

pub(in crate::export) struct GrpcWire {
    traces: tonic::client::Grpc<Channel>,
    /// The traces channel again unless `logs_endpoint` names another collector.
    logs: tonic::client::Grpc<Channel>,
    /// `export.headers` (the file's over `OTEL_EXPORTER_OTLP_HEADERS`, resolved in
    /// `settings`); a name ending in `-bin` is binary metadata. No library reads the variable
    /// behind the bridge's back any more, so these are exactly what is sent.
    metadata: tonic::metadata::MetadataMap,
    timeout: Duration,
    /// How failures of each signal's calls name the endpoint and the setting to check.
    traces_at: Destination,
    logs_at: Destination,
}

impl GrpcWire {
    pub(super) fn new(settings: &ExportSettings) -> Result<Self, ExportError> {
        let traces = grpc_channel(settings, &settings.endpoint)?;
        let logs = match &settings.logs_endpoint {
            Some(endpoint) => grpc_channel(settings, endpoint)?,
            None => traces.clone(),
        };
        let client = |channel| {
            let client = tonic::client::Grpc::new(channel);
            match settings.compression {
                Compression::Gzip => client.send_compressed(CompressionEncoding::Gzip),
                Compression::Zstd => client.send_compressed(CompressionEncoding::Zstd),
                Compression::None => client,
            }
        };
        Ok(GrpcWire {
            traces: client(traces),
            logs: client(logs),
            metadata: grpc_metadata(settings)?,
            timeout: settings.timeout,
            traces_at: Destination::new(settings, Signal::Traces),
            logs_at: Destination::new(settings, Signal::Logs),
        })
    }

    /// One call with `body`, a protobuf-encoded `R`.
    pub(super) async fn send<R: OtlpRequest>(&self, body: Bytes) -> Disposition {
        let (mut client, to) = match R::SIGNAL {
            Signal::Traces => (self.traces.clone(), &self.traces_at),
            Signal::Logs => (self.logs.clone(), &self.logs_at),
        };
        let mut request = tonic::Request::new(body);
        *request.metadata_mut() = self.metadata.clone();
        // `grpc-timeout`, so the collector stops working on an answer nobody waits for.
        request.set_timeout(self.timeout);
        let path = http::uri::PathAndQuery::from_static(R::GRPC_PATH);
        let call = async {
            client.ready().await.map_err(|e| Disposition::Retry {
                after: None,
                reason: to.no_answer(None, &e),
            })?;
            client
                .unary(request, path, PassThrough)
                .await
                .map_err(|status| grpc_status(&status, to))
        };
        // The channel's own timeout covers the response's headers; this bounds the whole call.
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => partial_success::<R>(response.get_ref(), false),
            Ok(Err(disposition)) => disposition,
            Err(_) => Disposition::Retry {
                after: None,
                reason: to.timed_out(),
            },
        }
    }
}

/// A codec of bytes as they are: the request is encoded already, the answer is decoded by the
/// caller (its type depends on the signal).
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
