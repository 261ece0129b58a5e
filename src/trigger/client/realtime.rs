//! `TriggerClient::realtime_get`: one request of the Realtime API's run stream
//! (`GET /realtime/v1/runs`, an Electric shape over HTTP long polling), outside the REST budget.
//!
//! Trigger.dev does not count `/realtime/` against the environment's REST bucket (it limits
//! concurrent live connections instead), so this request skips the rate limiter, and it is never
//! retried here: the stream's subscriber (`discover::realtime`) owns its backoff and must see
//! every 409 and 429 itself. It uses a client of its own, built on first use with the same
//! default headers (the key, `x-trigger-api-version`, `x-trigger-branch`): a live poll is held
//! by the server for about 20 s with no byte sent, longer than the REST client's read timeout.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Response, Url};

use super::response::{error_body, read_capped};
use super::{TriggerClient, ERROR_BODY_LIMIT};
use crate::net::error_chain::{error_chain, redacted_url, Cause};
use crate::trigger::error::ApiError;

/// How long a realtime request may wait for its response head, and a body may stall: well above
/// the 20 s a live poll is held (Electric's `long_poll_timeout`; the native backend's 17–23 s),
/// so a held poll is never cut short, and a dead connection is noticed within a minute.
pub const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(60);

/// Sent as `x-trigger-electric-version`: without it Trigger.dev renames `electric-handle` and
/// `electric-offset` to their legacy names (any non-empty value works; this is the SDK's).
const ELECTRIC_VERSION: &str = "1.0.0-beta.1";

/// The stream's path under `trigger.api_url`.
const PATH: [&str; 3] = ["realtime", "v1", "runs"];

/// One answer of the stream, whatever its status: the subscriber decides what a 409, a 429 or a
/// 404 means for the stream, so none of them is an error here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeResponse {
    pub status: u16,
    pub headers: RealtimeHeaders,
    /// The whole body of a 2xx (capped at `trigger.max_body_bytes`); of any other status, its
    /// first 64 KiB (for [`RealtimeResponse::message`] and a 409's `must-refetch`).
    pub body: Vec<u8>,
}

/// The Electric headers of an answer, as sent (opaque strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RealtimeHeaders {
    /// `electric-handle` (legacy: `electric-shape-id`).
    pub handle: Option<String>,
    /// `electric-offset` (legacy: `electric-chunk-last-offset`).
    pub offset: Option<String>,
    /// `electric-cursor`: live answers only.
    pub cursor: Option<String>,
    /// `electric-schema`: non-live answers only.
    pub schema: Option<String>,
    /// `electric-up-to-date` is present. Informational: the body's last message decides.
    pub up_to_date: bool,
    /// `retry-after` in seconds (Electric's own 503s).
    pub retry_after: Option<Duration>,
}

impl RealtimeHeaders {
    fn read(headers: &HeaderMap) -> RealtimeHeaders {
        let text = |names: &[&str]| {
            names.iter().find_map(|name| {
                headers
                    .get(*name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            })
        };
        RealtimeHeaders {
            handle: text(&["electric-handle", "electric-shape-id"]),
            offset: text(&["electric-offset", "electric-chunk-last-offset"]),
            cursor: text(&["electric-cursor"]),
            schema: text(&["electric-schema"]),
            up_to_date: headers.contains_key("electric-up-to-date"),
            retry_after: text(&["retry-after"])
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_secs),
        }
    }
}

impl RealtimeResponse {
    /// What an error answer's body says (Trigger.dev's `error`, or the start of a text body such
    /// as `Network error occurred`), the key scrubbed.
    pub fn message(&self, secret: &str) -> Option<String> {
        let json = serde_json::from_slice(&self.body).ok();
        let text = error_body(&self.body, json.as_ref())?.to_string();
        Some(if secret.is_empty() {
            text
        } else {
            text.replace(secret, "****")
        })
    }
}

impl TriggerClient {
    /// `GET /realtime/v1/runs?{query}` once, with `x-trigger-electric-version` beside the
    /// client's headers; not rate limited, not retried, not counted in `api_requests_total`.
    /// `Err` only when no complete answer arrived: no connection, no head within
    /// [`LONG_POLL_TIMEOUT`], a body cut, stalled or larger than `trigger.max_body_bytes`.
    /// Dropping the future aborts the request (and its connection, which frees the server's
    /// live-connection slot).
    pub async fn realtime_get(&self, query: &[(&str, String)]) -> Result<RealtimeResponse, ApiError> {
        let url = self.url(&PATH);
        let endpoint = redacted_url(url.as_str());
        let http = self.realtime_http()?;
        let request = http
            .get(url)
            .query(query)
            .header("x-trigger-electric-version", ELECTRIC_VERSION);
        let response = match tokio::time::timeout(LONG_POLL_TIMEOUT, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => return Err(self.realtime_transport(&endpoint, err)),
            Err(_elapsed) => return Err(timed_out(endpoint)),
        };
        let status = response.status().as_u16();
        let headers = RealtimeHeaders::read(response.headers());
        let body = if response.status().is_success() {
            let deadline = self.inner.body_deadline;
            match tokio::time::timeout(deadline, self.realtime_body(&endpoint, response)).await {
                Ok(body) => body?,
                Err(_elapsed) => {
                    return Err(ApiError::BodyCut {
                        endpoint,
                        reason: format!(
                            "it was still arriving after {} in all",
                            humantime::format_duration(deadline)
                        ),
                        attempts: 1,
                    })
                }
            }
        } else {
            read_capped(response, ERROR_BODY_LIMIT).await
        };
        Ok(RealtimeResponse { status, headers, body })
    }

    /// The key, for callers that scrub it from quoted bodies ([`RealtimeResponse::message`]).
    pub(crate) fn secret_key_text(&self) -> &str {
        self.inner.secret_key.expose()
    }

    fn realtime_http(&self) -> Result<&reqwest::Client, ApiError> {
        if let Some(http) = self.inner.realtime_http.get() {
            return Ok(http);
        }
        let http = reqwest::Client::builder()
            .default_headers(self.inner.headers.clone())
            .user_agent(super::USER_AGENT)
            .gzip(true)
            .connect_timeout(self.inner.timeout)
            .read_timeout(LONG_POLL_TIMEOUT)
            .build()
            .map_err(|err| ApiError::Build {
                reason: error_chain(&err),
            })?;
        // Two first uses at once build two clients; one is kept, which is harmless.
        Ok(self.inner.realtime_http.get_or_init(|| http))
    }

    async fn realtime_body(&self, endpoint: &str, mut response: Response) -> Result<Vec<u8>, ApiError> {
        let limit = self.inner.max_body_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.realtime_transport(endpoint, err))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(ApiError::BodyTooLarge {
                    endpoint: endpoint.to_owned(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// As the REST client describes a transport failure: the error chain without the URL (which
    /// carries the stream's query), so never the key either (reqwest never quotes headers).
    fn realtime_transport(&self, endpoint: &str, err: reqwest::Error) -> ApiError {
        let err = err.without_url();
        if err.is_timeout() {
            return timed_out(endpoint.to_owned());
        }
        let reason = error_chain(&err);
        let error = if err.is_body() || err.is_decode() {
            ApiError::BodyCut {
                endpoint: endpoint.to_owned(),
                reason,
                attempts: 1,
            }
        } else {
            ApiError::Connection {
                endpoint: endpoint.to_owned(),
                reason,
                cause: Cause::of(&err),
                attempts: 1,
            }
        };
        error.scrubbed(self.inner.secret_key.expose())
    }

    /// The base URL with the stream's path, for tests and messages.
    pub fn realtime_url(&self) -> Url {
        self.url(&PATH)
    }
}

fn timed_out(endpoint: String) -> ApiError {
    ApiError::Timeout {
        endpoint,
        timeout: LONG_POLL_TIMEOUT,
        attempts: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn headers_are_read_under_both_names() {
        let mut headers = HeaderMap::new();
        headers.insert("electric-handle", HeaderValue::from_static("h-1"));
        headers.insert("electric-offset", HeaderValue::from_static("0_0"));
        headers.insert("electric-up-to-date", HeaderValue::from_static(""));
        headers.insert("retry-after", HeaderValue::from_static("5"));
        let read = RealtimeHeaders::read(&headers);
        assert_eq!(read.handle.as_deref(), Some("h-1"));
        assert_eq!(read.offset.as_deref(), Some("0_0"));
        assert!(read.up_to_date && read.cursor.is_none());
        assert_eq!(read.retry_after, Some(Duration::from_secs(5)));

        let mut legacy = HeaderMap::new();
        legacy.insert("electric-shape-id", HeaderValue::from_static("h-2"));
        legacy.insert("electric-chunk-last-offset", HeaderValue::from_static("7_1"));
        let read = RealtimeHeaders::read(&legacy);
        assert_eq!(
            (read.handle.as_deref(), read.offset.as_deref()),
            (Some("h-2"), Some("7_1"))
        );
        assert!(!read.up_to_date);
    }

    #[test]
    fn an_error_message_is_scrubbed() {
        let response = RealtimeResponse {
            status: 503,
            headers: RealtimeHeaders::default(),
            body: b"Network error occurred for tr_dev_secret".to_vec(),
        };
        let message = response.message("tr_dev_secret").expect("message");
        assert!(message.contains("Network error occurred") && !message.contains("tr_dev_secret"));
        let json = RealtimeResponse {
            body: br#"{"error":"Too many concurrent requests"}"#.to_vec(),
            ..response
        };
        assert_eq!(json.message("").as_deref(), Some("Too many concurrent requests"));
    }
}
