//! Reading an answer: the body capped, JSON parsed with a quoted snippet when it is not JSON, an
//! error body's message (or the start of a page that is not the API's), a 429's reset, the
//! `x-ratelimit-*` headers.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::Response;
use serde_json::Value;

use super::{Call, Failed};
use crate::trigger::error::{ApiError, ErrorBody};
use crate::trigger::rate_limit::{until_reset, ServerBudget};
use crate::trigger::retry::RetryClass;

/// How much of a non-JSON body is quoted in [`ApiError::NotJson`].
const SNIPPET_BYTES: usize = 200;

/// Longest server message quoted in an error.
const MESSAGE_CHARS: usize = 200;

/// Longest excerpt of an error body that is not JSON: enough to recognise a web server's or a
/// proxy's page by its title.
const EXCERPT_CHARS: usize = 120;

/// The server's clock when it answered (unix ms): this host's, unless the server's `Date`
/// header says the two disagree by more than [`CLOCK_SKEW_TOLERATED`].
///
/// `x-ratelimit-reset` is an instant on the server's clock: read against this host's, a host
/// running ahead would see every reset as past (and pace as if no window were known), one
/// running behind would wait too long. `Date` has whole seconds and arrives after some latency,
/// so it is used only when the clocks are clearly apart, taken as the start of the server's
/// second (a reset then looks up to a second later than it is: a wait a little long, never a
/// request sent into a window before its refill).
pub(super) fn server_now_ms(headers: &HeaderMap) -> u64 {
    let local = now_unix_ms();
    let date = headers
        .get(reqwest::header::DATE)
        .and_then(|date| date.to_str().ok())
        .and_then(|date| httpdate::parse_http_date(date).ok())
        .and_then(|date| date.duration_since(UNIX_EPOCH).ok())
        .map(|since| since.as_millis() as u64);
    match date {
        Some(server) if server.abs_diff(local) > CLOCK_SKEW_TOLERATED.as_millis() as u64 => server,
        _ => local,
    }
}

/// Clocks closer than this are taken as agreeing (`Date`'s whole seconds, plus latency).
const CLOCK_SKEW_TOLERATED: Duration = Duration::from_secs(2);

/// Reads `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` (unix ms, on the
/// server's clock: [`server_now_ms`]).
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
        until_reset: number("x-ratelimit-reset").map(|reset| until_reset(reset, server_now_ms(headers))),
    }
}

/// How long a 429 asks to wait: its problem+json body's `secondsUntilReset` (relative, so right
/// whatever the two clocks say), else an absolute reset, the body's `reset` or the headers'
/// `x-ratelimit-reset` (`header_reset`). An absolute reset already past says nothing (the local
/// clock is ahead of the server's): `None`, and the limiter's fallback hold applies.
/// `server_now_ms`: the server's clock ([`server_now_ms`]), for the body's absolute `reset`.
pub(super) fn retry_429_after(
    body: Option<&Value>,
    header_reset: Option<Duration>,
    server_now_ms: u64,
) -> Option<Duration> {
    let seconds = body
        .and_then(|body| body.get("secondsUntilReset"))
        .and_then(Value::as_f64)
        .filter(|s| *s >= 0.0)
        // `try_`: a value too large for a Duration (1e20) must not panic; the limiter caps the hold.
        .map(|s| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX));
    let absolute = || {
        body.and_then(|body| body.get("reset"))
            .and_then(Value::as_u64)
            .map(|reset| until_reset(reset, server_now_ms))
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

/// What an error answer's body says: Trigger.dev's message when it is JSON (nothing when that
/// JSON has none), else the start of whatever it is, whitespace collapsed.
pub(super) fn error_body(body: &[u8], json: Option<&Value>) -> Option<ErrorBody> {
    match json {
        Some(json) => server_message(json).map(ErrorBody::Message),
        None => {
            let text = String::from_utf8_lossy(&body[..body.len().min(4 * EXCERPT_CHARS)]);
            let collapsed = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let mut excerpt: String = collapsed.chars().take(EXCERPT_CHARS).collect();
            if excerpt.len() < collapsed.len() {
                excerpt.push('…');
            }
            Some(ErrorBody::NotJson(excerpt))
        }
    }
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
            endpoint: call.endpoint(),
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
    let endpoint = call.endpoint();
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

pub(super) fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(date: SystemTime, reset_after_date: Duration) -> HeaderMap {
        let reset_ms =
            date.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64 + reset_after_date.as_millis() as u64;
        let mut headers = HeaderMap::new();
        headers.insert(
            reqwest::header::DATE,
            HeaderValue::try_from(httpdate::fmt_http_date(date)).unwrap(),
        );
        headers.insert("x-ratelimit-limit", HeaderValue::from_static("750"));
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::try_from(reset_ms.to_string()).unwrap(),
        );
        headers
    }

    #[test]
    fn the_reset_is_read_on_the_server_s_clock() {
        // The server's clock an hour behind this host's, and an hour ahead: the reset is 5 s
        // after the server's Date either way.
        let whole_second = UNIX_EPOCH + Duration::from_secs(now_unix_ms() / 1000);
        let hour = Duration::from_secs(3600);
        for (skew, date) in [("behind", whole_second - hour), ("ahead", whole_second + hour)] {
            let budget = server_budget(&headers(date, Duration::from_secs(5)));
            assert_eq!(
                budget.until_reset,
                Some(Duration::from_secs(5)),
                "server clock an hour {skew}"
            );
        }
        // Without a Date header, this host's clock.
        let mut no_date = headers(whole_second, Duration::from_secs(5));
        no_date.remove(reqwest::header::DATE);
        let left = server_budget(&no_date).until_reset.unwrap();
        assert!(
            left <= Duration::from_secs(5) && left > Duration::from_secs(3),
            "{left:?}"
        );
    }
}
