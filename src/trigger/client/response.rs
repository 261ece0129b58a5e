//! Reading an answer: the body capped, JSON parsed with a quoted snippet when it is not JSON, a
//! problem body's message and 429 reset, the `x-ratelimit-*` headers, reqwest's errors on one line.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::Response;
use serde_json::Value;

use super::{Call, Failed};
use crate::trigger::error::ApiError;
use crate::trigger::rate_limit::{until_reset, ServerBudget};
use crate::trigger::retry::RetryClass;

/// How much of a non-JSON body is quoted in [`ApiError::NotJson`].
const SNIPPET_BYTES: usize = 200;

/// Longest server message quoted in an error.
const MESSAGE_CHARS: usize = 200;

/// Reads `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` (unix ms).
pub(super) fn server_budget(headers: &HeaderMap) -> ServerBudget {
    let number = |name: &str| {
        let text = headers.get(name)?.to_str().ok()?.trim();
        text.parse::<u64>().ok().or_else(|| {
            text.parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        })
    };
    ServerBudget {
        limit: number("x-ratelimit-limit"),
        remaining: number("x-ratelimit-remaining"),
        until_reset: number("x-ratelimit-reset").map(|reset| until_reset(reset, now_unix_ms())),
    }
}

/// How long a 429 asks to wait: its problem+json body's `secondsUntilReset` (relative, so right
/// whatever the two clocks say), else an absolute reset, the body's `reset` or the headers'
/// `x-ratelimit-reset` (`header_reset`). An absolute reset already past says nothing (the local
/// clock is ahead of the server's): `None`, and the limiter's fallback hold applies.
pub(super) fn retry_429_after(body: Option<&Value>, header_reset: Option<Duration>) -> Option<Duration> {
    let seconds = body
        .and_then(|body| body.get("secondsUntilReset"))
        .and_then(Value::as_f64)
        .filter(|s| *s >= 0.0)
        // `try_`: a value too large for a Duration (1e20) must not panic; the limiter caps the hold.
        .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX));
    let absolute = || {
        body.and_then(|body| body.get("reset"))
            .and_then(Value::as_u64)
            .map(|reset| until_reset(reset, now_unix_ms()))
            .or(header_reset)
            .filter(|wait| !wait.is_zero())
    };
    seconds.or_else(absolute)
}

/// `error`, `message`, `detail` or `title` of an error body, shortened.
pub(super) fn server_message(body: &Value) -> Option<String> {
    let message = ["error", "message", "detail", "title"]
        .iter()
        .find_map(|key| body.get(key).and_then(Value::as_str))?;
    Some(message.chars().take(MESSAGE_CHARS).collect())
}

/// Up to `limit` bytes of an error body; a body that fails midway yields what arrived.
pub(super) async fn read_capped(mut response: Response, limit: u64) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = (limit as usize).saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= limit {
            break;
        }
    }
    body
}

pub(super) fn parse_value(call: &Call<'_>, body: &[u8]) -> Result<Value, Failed> {
    serde_json::from_slice(body).map_err(|err| json_failure(call, body, err))
}

pub(super) fn invalid(call: &Call<'_>, reason: String) -> Failed {
    Failed::new(
        ApiError::Invalid {
            endpoint: call.endpoint().to_owned(),
            reason,
        },
        RetryClass::Never,
    )
}

/// A body that did not parse. JSON that stops early was most likely cut in transit without the
/// transport noticing (retried); anything else that is not JSON is quoted; JSON of the wrong shape
/// is `Invalid`.
pub(super) fn json_failure(call: &Call<'_>, body: &[u8], err: serde_json::Error) -> Failed {
    use serde_json::error::Category;
    let endpoint = call.endpoint().to_owned();
    match err.classify() {
        Category::Eof | Category::Io => Failed::new(
            ApiError::BodyCut {
                endpoint,
                reason: format!("the JSON stops early ({err}, {} bytes received)", body.len()),
                attempts: 0,
            },
            RetryClass::Transient,
        ),
        Category::Syntax if err.to_string().starts_with("recursion limit exceeded") => Failed::new(
            ApiError::Invalid {
                endpoint,
                reason: format!("nested too deeply to parse ({err})"),
            },
            RetryClass::Never,
        ),
        Category::Syntax => Failed::new(
            ApiError::NotJson {
                endpoint,
                snippet: String::from_utf8_lossy(&body[..body.len().min(SNIPPET_BYTES)]).into_owned(),
            },
            RetryClass::Never,
        ),
        Category::Data => Failed::new(
            ApiError::Invalid {
                endpoint,
                reason: err.to_string(),
            },
            RetryClass::Never,
        ),
    }
}

/// A reqwest error and its causes on one line, without the URL (reqwest would print it, and the
/// endpoint is named separately). Never contains headers, so never the key.
pub(super) fn describe(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    let head = err.to_string();
    let head = head.split(" for url (").next().unwrap_or(&head).to_owned();
    parts.push(head);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

pub(super) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
