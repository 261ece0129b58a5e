//! The `HttpClient` the OTLP/HTTP metric exporter sends through: our reqwest client (one HTTP
//! and TLS stack in the tree), run on the daemon's tokio runtime.
//!
//! Why not opentelemetry-otlp's own reqwest client: the periodic reader exports from a thread of
//! its own, blocking on the export, and reqwest's async client needs a tokio reactor, which that
//! thread does not have; so each request is spawned onto the runtime and awaited from there. And
//! the exporter reduces a failure without a response to "network error": the cause (connection
//! refused, DNS, TLS) is kept here for the bridge's log line ([`RuntimeClient::causes`]).

use crate::net::error_chain::error_chain;
use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError, Request, Response, ResponseBodyTooLarge};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A collector's answer is a small protobuf message; more than this is not one.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// The last transport failure's cause, taken by the exporter wrapper when it logs.
pub(super) type Causes = Arc<Mutex<Option<String>>>;

#[derive(Debug)]
pub(super) struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    last_cause: Causes,
}

impl RuntimeClient {
    pub fn new(timeout: Duration, user_agent: &str, runtime: tokio::runtime::Handle) -> Result<Self, String> {
        crate::net::tls::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(user_agent)
            .build()
            .map_err(|e| error_chain(&e))?;
        Ok(RuntimeClient {
            client,
            runtime,
            last_cause: Causes::default(),
        })
    }

    pub fn causes(&self) -> Causes {
        self.last_cause.clone()
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move { send(client, request).await }).await;
        let result = sent.unwrap_or_else(|join| Err(join.to_string().into()));
        if let Err(error) = &result {
            *self.last_cause.lock().unwrap_or_else(|e| e.into_inner()) = Some(error_chain(error.as_ref()));
        }
        result
    }
}

async fn send(client: reqwest::Client, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
    // Without the URL in the error: the log line names the endpoint already, without what a URL
    // may carry for credentials.
    let mut response = client
        .execute(reqwest::Request::try_from(request)?)
        .await
        .map_err(reqwest::Error::without_url)?;
    let mut answer = Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        *headers = std::mem::take(response.headers_mut());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(reqwest::Error::without_url)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(Box::new(ResponseBodyTooLarge::new()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(answer.body(Bytes::from(body))?)
}
