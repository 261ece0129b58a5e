//! `TriggerClient`: the four Trigger.dev REST calls the bridge makes, over reqwest, with the auth
//! headers, the shared rate limit, the retry policy and the body-size limit applied to every one.
//!
//! Each call is a loop of attempts: wait for the rate limiter, send, record the `x-ratelimit-*`
//! headers, read the body as a stream (counting decompressed bytes), parse. A failed attempt is
//! classified ([`RetryClass`]) and [`RetryState`] decides whether to try again.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Response, StatusCode, Url};
use serde_json::Value;
use tracing::{debug, warn};

use super::api_types::{RunDetails, RunFilters, RunPage, RunTrace};
use super::error::{ApiError, ErrorBody};
use super::model::{body_hash, EventsResponse};
use super::rate_limit::{HoldReason, RateLimitTuning, RateLimiter, ServerBudget};
use super::retry::{classify_status, parse_should_retry, Decision, RetryClass, RetryPolicy, RetryState};
use crate::config::secret::SecretString;
use crate::config::TriggerConfig;
use crate::net::error_chain::{error_chain, redacted_url, Cause};
use crate::telemetry::events::{ApiBudget, ApiHold, ApiResponse};
use crate::telemetry::Metrics;

mod realtime;
mod response;
pub use realtime::{RealtimeHeaders, RealtimeResponse, LONG_POLL_TIMEOUT};
use response::{
    error_body, invalid, json_failure, parse_value, read_capped, retry_429_after, server_budget, server_now_ms,
};

/// Sent as `x-trigger-api-version`: the version whose status names this bridge knows.
pub const API_VERSION: &str = "2025-07-16";

/// Sent as `User-Agent`.
pub const USER_AGENT: &str = concat!("trigger-otel-bridge/", env!("CARGO_PKG_VERSION"));

/// How much of an error response (4xx/5xx) is read for its message and 429 reset.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// Behaviour that is not in the config file: the retry policy and the rate limiter's knobs.
/// Tests shrink the backoffs to milliseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct ClientTuning {
    /// Includes `not_found_retries`, the retries of a 404 sent with `x-should-retry: true`.
    pub retry: RetryPolicy,
    pub rate_limit: RateLimitTuning,
    /// The most one response body may take in all. `trigger.timeout` bounds each pause while it
    /// arrives, so a steady slow body is fine; this bounds a body that trickles forever (a broken
    /// proxy), which would otherwise hold a poll slot indefinitely.
    pub body_deadline: Duration,
}

/// [`ClientTuning::body_deadline`] by default: 256 MiB (`max_body_bytes`) at under 0.5 MB/s.
pub const BODY_DEADLINE: Duration = Duration::from_secs(600);

impl Default for ClientTuning {
    fn default() -> Self {
        ClientTuning {
            retry: RetryPolicy::default(),
            rate_limit: RateLimitTuning::default(),
            body_deadline: BODY_DEADLINE,
        }
    }
}

/// An events body, parsed, or known to be byte-identical to an earlier one.
#[derive(Debug)]
pub enum EventsFetch {
    Unchanged { hash: u64 },
    Parsed { hash: u64, events: EventsResponse },
}

/// A Trigger.dev API client. Cloning is cheap and clones share one connection pool and one rate
/// budget.
#[derive(Clone)]
pub struct TriggerClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    limiter: RateLimiter,
    retry: RetryPolicy,
    timeout: Duration,
    body_deadline: Duration,
    max_body_bytes: u64,
    environment: Option<&'static str>,
    /// The key, kept to scrub it from the bodies an error quotes (a proxy's page may echo the
    /// `Authorization` header); never shown.
    secret_key: SecretString,
    /// Counts every attempt's outcome when set ([`TriggerClient::set_metrics`]).
    metrics: OnceLock<Arc<Metrics>>,
    /// When a call last succeeded ([`TriggerClient::last_success`]).
    last_success: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// The default headers (the key among them, marked sensitive), kept for the realtime client.
    headers: HeaderMap,
    /// The realtime stream's own client, built on its first use (`client/realtime.rs`): a long
    /// poll is silent for longer than `timeout`, which the REST client's read timeout forbids.
    realtime_http: OnceLock<reqwest::Client>,
}

impl fmt::Debug for TriggerClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TriggerClient")
            .field("api_url", &self.inner.base.as_str())
            .field("environment", &self.inner.environment)
            .finish_non_exhaustive()
    }
}

/// One request: where it goes and what it is about (for errors and logs).
struct Call<'a> {
    url: Url,
    /// The endpoint's name in metrics: `events`, `trace`, `run` or `list`.
    kind: &'static str,
    run_id: Option<&'a str>,
    query: Vec<(&'static str, String)>,
}

impl Call<'_> {
    /// The URL as sent (run ids percent-encoded), without its query or any credentials of
    /// `api_url`: how errors and logs name the endpoint.
    fn endpoint(&self) -> String {
        redacted_url(self.url.as_str())
    }
}

/// A failed attempt: the error to return if the policy gives up, and how it may be retried.
struct Failed {
    error: ApiError,
    class: RetryClass,
}

impl Failed {
    fn new(error: ApiError, class: RetryClass) -> Self {
        Self { error, class }
    }
}

impl TriggerClient {
    /// A client with the default retry policy and rate-limit tuning.
    pub fn new(config: &TriggerConfig) -> Result<Self, ApiError> {
        Self::with_tuning(config, ClientTuning::default())
    }

    /// A client with its own tuning. Fails when the key is unset or not a valid header value, or
    /// `api_url` is not an http(s) URL. Installs rustls' ring provider as the process default if no
    /// provider is installed yet (reqwest is built with `rustls-no-provider`).
    pub fn with_tuning(config: &TriggerConfig, tuning: ClientTuning) -> Result<Self, ApiError> {
        let build_error = |reason: &str| ApiError::Build {
            reason: reason.to_owned(),
        };
        if config.secret_key.is_empty() {
            return Err(build_error(
                "trigger.secret_key is not set (set TRIGGER_SECRET_KEY to a tr_dev_/tr_prod_ key)",
            ));
        }
        let base = Url::parse(config.api_url.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && !url.cannot_be_a_base())
            .ok_or_else(|| build_error(&format!("trigger.api_url {:?} is not an http(s) URL", config.api_url)))?;

        let mut authorization = HeaderValue::try_from(format!("Bearer {}", config.secret_key.expose()))
            .map_err(|_| build_error("trigger.secret_key contains characters that cannot be sent in an HTTP header"))?;
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        headers.insert("x-trigger-api-version", HeaderValue::from_static(API_VERSION));
        if let Some(branch) = &config.preview_branch {
            let branch = HeaderValue::try_from(branch.trim())
                .map_err(|_| build_error("trigger.preview_branch cannot be sent in an HTTP header"))?;
            headers.insert("x-trigger-branch", branch);
        }

        crate::net::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .default_headers(headers.clone())
            .user_agent(USER_AGENT)
            .gzip(true)
            // Not `.timeout()`: that deadline would cover the whole body, and a big run's events
            // (tens of MB) on a slow link would then time out on every attempt. Instead the
            // response head must arrive within `timeout` (see `attempt`) and the body may never
            // stall for longer than `timeout`.
            .connect_timeout(config.timeout)
            .read_timeout(config.timeout)
            .build()
            .map_err(|err| build_error(&error_chain(&err)))?;

        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                limiter: RateLimiter::new(config.requests_per_minute, config.rate_limit_reserve, tuning.rate_limit),
                retry: tuning.retry,
                timeout: config.timeout,
                body_deadline: tuning.body_deadline,
                max_body_bytes: config.max_body_bytes,
                environment: config.secret_key.environment_prefix(),
                secret_key: config.secret_key.clone(),
                metrics: OnceLock::new(),
                last_success: std::sync::Mutex::new(None),
                headers,
                realtime_http: OnceLock::new(),
            }),
        })
    }

    /// When a call of this client (or a clone) last succeeded: the evidence that the API answers
    /// at this `api_url` with this key, before a 404 is taken as a verdict on one run.
    pub fn last_success(&self) -> Option<tokio::time::Instant> {
        *self.inner.last_success.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `trigger.api_url` as messages may show it: no user name, password, query or fragment.
    pub fn api_url_shown(&self) -> String {
        redacted_url(self.inner.base.as_str()).trim_end_matches('/').to_owned()
    }

    /// The budget shared by every request of this client (and its clones).
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// Count every attempt of this client and its clones in `metrics` (`api_requests_total`, the
    /// rate-limit budget and holds, readiness); the first call wins.
    pub fn set_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.inner.metrics.set(metrics);
        // The pace and the reserve are known before any request: show them from the start.
        self.publish_budget();
    }

    /// `x-ratelimit-remaining` of the latest response, for metrics.
    pub fn remaining(&self) -> Option<u64> {
        self.inner.limiter.remaining()
    }

    /// `GET /api/v1/runs/{runId}/events`: every event of the run (no paging exists).
    pub async fn events(&self, run_id: &str) -> Result<EventsResponse, ApiError> {
        let call = self.run_call("events", run_id, &["api", "v1", "runs", run_id, "events"])?;
        self.get(&call, |body| {
            EventsResponse::parse(body, |body, err| json_failure(&call, body, err))
        })
        .await
    }

    /// `GET /api/v1/runs/{runId}/events`, unless its body is byte-identical to the one whose
    /// [`body_hash`] is `unchanged_from`: then it is not parsed (a live run re-read on every poll
    /// costs a hash, not a parse).
    pub async fn events_unless_unchanged(
        &self,
        run_id: &str,
        unchanged_from: Option<u64>,
    ) -> Result<EventsFetch, ApiError> {
        let call = self.run_call("events", run_id, &["api", "v1", "runs", run_id, "events"])?;
        self.get(&call, |body| {
            let hash = body_hash(&body);
            if unchanged_from == Some(hash) {
                return Ok(EventsFetch::Unchanged { hash });
            }
            let events = EventsResponse::parse(body, |body, err| json_failure(&call, body, err))?;
            Ok(EventsFetch::Parsed { hash, events })
        })
        .await
    }

    /// `GET /api/v1/runs/{runId}/trace`: the trace id and span attributes; `Ok(None)` on a 404
    /// (after the retries a 404 marked `x-should-retry` gets), so the caller derives the trace id.
    pub async fn trace(&self, run_id: &str) -> Result<Option<RunTrace>, ApiError> {
        let call = self.run_call("trace", run_id, &["api", "v1", "runs", run_id, "trace"])?;
        let result = self
            .get(&call, |body| {
                let value = parse_value(&call, &body)?;
                RunTrace::from_value(&value).map_err(|shape| invalid(&call, shape.to_string()))
            })
            .await;
        match result {
            Ok(trace) => Ok(Some(trace)),
            Err(ApiError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// `GET /api/v3/runs/{runId}`: the run's status and times.
    pub async fn retrieve_run(&self, run_id: &str) -> Result<RunDetails, ApiError> {
        let call = self.run_call("run", run_id, &["api", "v3", "runs", run_id])?;
        self.get(&call, |body| {
            let value = parse_value(&call, &body)?;
            RunDetails::from_value(&value).map_err(|shape| invalid(&call, shape.to_string()))
        })
        .await
    }

    /// `GET /api/v1/runs`: one page of runs matching `filters`, newest first; pass the page's
    /// `next_cursor` back as `cursor` for the next one.
    pub async fn list_runs(&self, filters: &RunFilters, cursor: Option<&str>) -> Result<RunPage, ApiError> {
        let call = Call {
            url: self.url(&["api", "v1", "runs"]),
            kind: "list",
            run_id: None,
            query: filters.to_query(cursor),
        };
        self.get(&call, |body| {
            let value = parse_value(&call, &body)?;
            RunPage::from_value(&value).map_err(|shape| invalid(&call, shape.to_string()))
        })
        .await
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        // `cannot_be_a_base` was ruled out at construction; each segment is percent-encoded,
        // `/` included, so a run id is always exactly one segment.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A call about one run. Ids that cannot be one path segment (`""`, `.`, `..`, which URL
    /// normalisation would drop) are refused without a request.
    fn run_call<'a>(&self, kind: &'static str, run_id: &'a str, segments: &[&str]) -> Result<Call<'a>, ApiError> {
        let url = self.url(segments);
        if matches!(run_id, "" | "." | "..") {
            return Err(ApiError::NotFound {
                endpoint: redacted_url(url.as_str()),
                message: Some(ErrorBody::Message(format!("{run_id:?} is not a run id"))),
            });
        }
        Ok(Call {
            url,
            kind,
            run_id: Some(run_id),
            query: Vec::new(),
        })
    }

    /// The attempt loop shared by every endpoint.
    async fn get<T>(&self, call: &Call<'_>, parse: impl Fn(Vec<u8>) -> Result<T, Failed>) -> Result<T, ApiError> {
        let mut state = RetryState::new();
        loop {
            let permit = self.inner.limiter.acquire().await;
            if let Some(reason) = permit.began_hold {
                self.count_hold(reason);
            }
            let outcome = self.attempt(call).await;
            // The response's headers (if any) now count this request; the retry wait must not.
            drop(permit);
            let failed = match outcome {
                Ok(body) => match parse(body) {
                    Ok(value) => {
                        *self.inner.last_success.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(tokio::time::Instant::now());
                        return Ok(value);
                    }
                    Err(failed) => failed,
                },
                Err(failed) => failed,
            };
            let attempt = state.attempts();
            let error = failed
                .error
                .with_attempts(attempt)
                .scrubbed(self.inner.secret_key.expose());
            match state.next(&self.inner.retry, failed.class) {
                Decision::GiveUp => return Err(error),
                Decision::Retry { wait } => {
                    warn!(
                        run_id = call.run_id.unwrap_or("-"),
                        endpoint = %call.endpoint(),
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        held_ms = self.inner.limiter.held_for().map_or(0, |d| d.as_millis() as u64),
                        error = %error,
                        "Trigger.dev API call failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One request and its body.
    async fn attempt(&self, call: &Call<'_>) -> Result<Vec<u8>, Failed> {
        let mut request = self.inner.http.get(call.url.clone());
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        let response = match tokio::time::timeout(self.inner.timeout, request.send()).await {
            Ok(Ok(response)) => response,
            Ok(Err(err)) => {
                self.count(call, None);
                return Err(self.transport_failure(call, err, false));
            }
            Err(_elapsed) => {
                self.count(call, None);
                return Err(self.timed_out(call));
            }
        };
        let budget = server_budget(response.headers());
        self.inner.limiter.observe(&budget);
        let status = response.status();
        self.count(call, Some(status.as_u16()));
        debug!(
            run_id = call.run_id.unwrap_or("-"),
            endpoint = %call.endpoint(),
            status = status.as_u16(),
            remaining = budget.remaining,
            "Trigger.dev API response"
        );
        if status.is_success() {
            let deadline = self.inner.body_deadline;
            match tokio::time::timeout(deadline, self.read_body(call, response)).await {
                Ok(read) => read,
                Err(_elapsed) => Err(Failed::new(
                    ApiError::BodyCut {
                        endpoint: call.endpoint(),
                        reason: format!(
                            "it was still arriving after {} in all",
                            humantime::format_duration(deadline)
                        ),
                        attempts: 0,
                    },
                    RetryClass::Transient,
                )),
            }
        } else {
            Err(self.status_failure(call, status, response, budget).await)
        }
    }

    /// The single place an attempt's outcome is counted: its status, or `None` without a response.
    fn count(&self, call: &Call<'_>, status: Option<u16>) {
        if let Some(metrics) = self.inner.metrics.get() {
            ApiResponse {
                endpoint: call.kind,
                status,
            }
            .emit(metrics);
        }
        self.publish_budget();
    }

    /// The limiter's view (limit, reserve, remaining, the pace now) into the gauges.
    fn publish_budget(&self) {
        if let Some(metrics) = self.inner.metrics.get() {
            let snapshot = self.inner.limiter.snapshot();
            ApiBudget {
                limit: snapshot.limit,
                reserve: snapshot.reserve,
                remaining: snapshot.remaining,
                allowed_per_minute: snapshot.allowed_per_minute,
            }
            .emit(metrics);
        }
    }

    fn count_hold(&self, reason: HoldReason) {
        if let Some(metrics) = self.inner.metrics.get() {
            ApiHold {
                reason: reason.as_str(),
            }
            .emit(metrics);
        }
        self.publish_budget();
    }

    /// Reads the body chunk by chunk (already decompressed by reqwest), stopping as soon as it
    /// passes `max_body_bytes`.
    async fn read_body(&self, call: &Call<'_>, mut response: Response) -> Result<Vec<u8>, Failed> {
        let limit = self.inner.max_body_bytes;
        let too_large = || {
            Failed::new(
                ApiError::BodyTooLarge {
                    endpoint: call.endpoint(),
                    limit,
                },
                RetryClass::Never,
            )
        };
        // Known only for an uncompressed body; a compressed one is checked as it streams.
        let declared = response.content_length();
        if declared.is_some_and(|len| len > limit) {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit).min(64 << 20) as usize);
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_failure(call, err, true))?
        {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Turns a non-2xx response into its error and retry class; a 429 also holds the limiter.
    async fn status_failure(
        &self,
        call: &Call<'_>,
        status: StatusCode,
        response: Response,
        mut budget: ServerBudget,
    ) -> Failed {
        let should_retry = response
            .headers()
            .get("x-should-retry")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_should_retry);
        let server_now = server_now_ms(response.headers());
        let body = read_capped(response, ERROR_BODY_LIMIT).await;
        let json: Option<Value> = serde_json::from_slice(&body).ok();
        let message = error_body(&body, json.as_ref());
        let endpoint = call.endpoint();
        let class = classify_status(status.as_u16(), should_retry);
        let error = match status.as_u16() {
            401 | 403 => ApiError::Unauthorized {
                endpoint,
                status: status.as_u16(),
                environment: self.inner.environment,
            },
            404 => ApiError::NotFound { endpoint, message },
            429 => {
                budget.until_reset = retry_429_after(json.as_ref(), budget.until_reset, server_now);
                self.inner.limiter.rate_limited(&budget);
                self.count_hold(HoldReason::RateLimited);
                ApiError::RateLimited { endpoint, attempts: 0 }
            }
            500..=599 => ApiError::Server {
                endpoint,
                status: status.as_u16(),
                message,
                attempts: 0,
            },
            other => ApiError::Rejected {
                endpoint,
                status: other,
                message,
            },
        };
        Failed::new(error, class)
    }

    /// A reqwest error: a timeout (connect, or a read stalled for `timeout`), a connection that
    /// failed or dropped before the response (`in_body` false), or a body that broke off
    /// (`in_body` true). The reason is the error's chain without the URL (the endpoint is named
    /// on its own); reqwest never puts headers in it, so never the key.
    fn transport_failure(&self, call: &Call<'_>, err: reqwest::Error, in_body: bool) -> Failed {
        let endpoint = call.endpoint();
        let err = err.without_url();
        let reason = error_chain(&err);
        let cause = Cause::of(&err);
        if err.is_builder() || err.is_redirect() {
            return Failed::new(
                ApiError::Connection {
                    endpoint,
                    reason,
                    cause,
                    attempts: 0,
                },
                RetryClass::Never,
            );
        }
        if err.is_timeout() {
            return self.timed_out(call);
        }
        // A certificate this host does not trust, or plain HTTP where TLS was asked, will not
        // change in the next second: said at once, not after the retries' back-off.
        let class = match cause {
            Cause::Certificate | Cause::NotTls if !in_body => RetryClass::Never,
            _ => RetryClass::Transient,
        };
        let error = if in_body {
            ApiError::BodyCut {
                endpoint,
                reason,
                attempts: 0,
            }
        } else {
            ApiError::Connection {
                endpoint,
                reason,
                cause,
                attempts: 0,
            }
        };
        Failed::new(error, class)
    }

    fn timed_out(&self, call: &Call<'_>) -> Failed {
        let error = ApiError::Timeout {
            endpoint: call.endpoint(),
            timeout: self.inner.timeout,
            attempts: 0,
        };
        Failed::new(error, RetryClass::Transient)
    }
}

#[cfg(test)]
mod tests {
    use super::response::now_unix_ms;
    use super::*;

    fn config() -> TriggerConfig {
        TriggerConfig {
            api_url: "https://api.example.com/base/".into(),
            secret_key: "tr_dev_abc".into(),
            ..TriggerConfig::default()
        }
    }

    #[test]
    fn run_ids_are_one_escaped_path_segment() {
        let client = TriggerClient::new(&config()).expect("client");
        let call = client
            .run_call(
                "events",
                "run a/b?c#d%",
                &["api", "v1", "runs", "run a/b?c#d%", "events"],
            )
            .expect("call");
        assert_eq!(
            call.endpoint(),
            "https://api.example.com/base/api/v1/runs/run%20a%2Fb%3Fc%23d%25/events"
        );
        for bad in ["", ".", ".."] {
            assert!(matches!(
                client.run_call("run", bad, &["api", "v3", "runs", bad]),
                Err(ApiError::NotFound { .. })
            ));
        }
    }

    #[test]
    fn construction_checks_key_and_url_without_echoing_the_key() {
        let mut no_key = config();
        no_key.secret_key = "".into();
        assert!(TriggerClient::new(&no_key)
            .expect_err("no key")
            .to_string()
            .contains("TRIGGER_SECRET_KEY"));

        let mut bad_url = config();
        bad_url.api_url = "ftp://x".into();
        assert!(TriggerClient::new(&bad_url).is_err());

        let mut bad_key = config();
        bad_key.secret_key = "tr_dev_bad\nkey".into();
        let message = TriggerClient::new(&bad_key).expect_err("bad key").to_string();
        assert!(!message.contains("bad"), "{message}");

        let client = TriggerClient::new(&config()).expect("client");
        assert!(!format!("{client:?}").contains("abc"));
    }

    #[test]
    fn rate_limit_headers() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("1500"));
        headers.insert("x-ratelimit-remaining", HeaderValue::from_static(" 1499 "));
        let reset = (now_unix_ms() + 60_000).to_string();
        headers.insert("x-ratelimit-reset", HeaderValue::try_from(reset).expect("ascii"));
        let budget = server_budget(&headers);
        assert_eq!((budget.limit, budget.remaining), (Some(1500), Some(1499)));
        let left = budget.until_reset.expect("reset");
        assert!(
            left > Duration::from_secs(59) && left <= Duration::from_secs(60),
            "{left:?}"
        );
        assert_eq!(server_budget(&HeaderMap::new()), ServerBudget::default());
    }

    #[test]
    fn a_429_waits_for_the_relative_reset_first_and_ignores_a_past_one() {
        let wait =
            |body: Option<&serde_json::Value>, header: Option<Duration>| retry_429_after(body, header, now_unix_ms());
        let body = serde_json::json!({"secondsUntilReset": 2.5, "limit": 1500});
        assert_eq!(wait(Some(&body), None), Some(Duration::from_millis(2500)));
        // Relative wins over absolute: it does not depend on the clocks agreeing.
        let body = serde_json::json!({"reset": now_unix_ms() + 3_000, "secondsUntilReset": 9});
        assert_eq!(
            wait(Some(&body), Some(Duration::from_secs(1))),
            Some(Duration::from_secs(9))
        );
        let body = serde_json::json!({"reset": now_unix_ms() + 3_000});
        assert!(wait(Some(&body), None).expect("reset") <= Duration::from_secs(3));
        assert_eq!(wait(None, Some(Duration::from_secs(4))), Some(Duration::from_secs(4)));
        // The absolute reset is read on the server's clock (its Date), not this host's.
        let body = serde_json::json!({"reset": 1_000_000_000_000u64 + 3_000});
        assert_eq!(
            retry_429_after(Some(&body), None, 1_000_000_000_000),
            Some(Duration::from_secs(3))
        );
        // A reset already past is no answer: the fallback hold applies.
        let body = serde_json::json!({"reset": now_unix_ms() - 30_000});
        assert_eq!(wait(Some(&body), None), None);
        assert_eq!(wait(None, Some(Duration::ZERO)), None);
        assert_eq!(wait(Some(&serde_json::json!({})), None), None);
        // Absurd values neither panic nor go negative.
        let body = serde_json::json!({"secondsUntilReset": 1e20});
        assert_eq!(wait(Some(&body), None), Some(Duration::MAX));
        let body = serde_json::json!({"secondsUntilReset": -1});
        assert_eq!(wait(Some(&body), None), None);
    }
}
