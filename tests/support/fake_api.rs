//! The fake Trigger.dev API of every test and benchmark, on loopback.
//!
//! Its run endpoints are the library's (`commands::demo::server::run_routes`, which the demo
//! serves too) over runs a test sets and changes while the bridge watches them ([`FakeApi::set`],
//! [`FakeApi::update`]); beside them the list endpoint, with its filters and paging. In front of
//! every request sits a gate that logs it ([`FakeApi::requests`]) and may answer it instead:
//! Trigger.dev's rate-limit bucket (opt-in, [`FakeApi::rate_limit`]), the key check, random
//! failures ([`Chaos`]), answers scripted per path ([`Scripted`]), or a handler that answers
//! every request ([`FakeApi::answering`], for the client tests). Answers whose bodies break midway
//! are in [`broken`]. The Realtime stream (`GET /realtime/v1/runs`) is computed from the same runs
//! ([`FakeApi::stream`], `support::realtime`); [`FakeApi::rest_requests`] and
//! [`FakeApi::stream_requests`] count the two apart.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use trigger_otel_bridge::commands::demo::server::{run_routes, RunBodies};
use trigger_otel_bridge::net::serving::Served;

use super::realtime::Stream;

pub const SECRET_KEY: &str = "tr_dev_FAKEtestKEY0123456789";

/// One run, as a test writes and changes it.
#[derive(Clone, Debug)]
pub struct FakeRun {
    pub events: Value,
    /// `None`: the trace endpoint answers 404.
    pub trace: Option<Value>,
    pub run: Value,
}

impl FakeRun {
    /// `tests/fixtures/{name}.events.json`, `.trace.json` and `.run.json`.
    pub fn fixture(name: &str) -> FakeRun {
        let read = |suffix: &str| -> Option<Value> {
            let path = format!("{}/tests/fixtures/{name}.{suffix}.json", env!("CARGO_MANIFEST_DIR"));
            std::fs::read(path)
                .ok()
                .map(|bytes| serde_json::from_slice(&bytes).unwrap())
        };
        FakeRun {
            events: read("events").expect("events fixture"),
            trace: read("trace"),
            run: read("run").unwrap_or_else(|| json!({"status": "COMPLETED"})),
        }
    }

    pub fn id(&self) -> String {
        self.run["id"].as_str().unwrap_or_default().to_owned()
    }
}

/// A run as served: its bodies serialised once, so that serving costs no JSON encoding (a
/// benchmark's fake must not compete with the bridge it measures).
#[derive(Clone)]
struct Bodies {
    events: Bytes,
    trace: Option<Bytes>,
    run: Bytes,
}

impl Bodies {
    fn of(run: &FakeRun) -> Bodies {
        let bytes = |value: &Value| Bytes::from(serde_json::to_vec(value).unwrap());
        Bodies {
            events: bytes(&run.events),
            trace: run.trace.as_ref().map(bytes),
            run: bytes(&run.run),
        }
    }

    fn to_run(&self) -> FakeRun {
        let value = |bytes: &Bytes| serde_json::from_slice(bytes).unwrap();
        FakeRun {
            events: value(&self.events),
            trace: self.trace.as_ref().map(value),
            run: value(&self.run),
        }
    }
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub at: Instant,
    /// Arrival in unix milliseconds (compared with `x-ratelimit-reset`).
    pub at_unix_ms: u64,
    /// As sent (percent-encoded).
    pub path: String,
    /// The raw query string ("" when there is none).
    pub query: String,
    pub headers: HeaderMap,
}

impl Request {
    /// A header's value ("" when absent or not text).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn authorization(&self) -> Option<&str> {
        self.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
    }

    /// The first value of a query parameter, decoded.
    pub fn param(&self, key: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// The head of an answer the fake gave.
#[derive(Clone, Debug)]
pub struct Answered {
    pub status: u16,
    pub headers: HeaderMap,
}

impl Answered {
    /// A header's value ("" when absent or not text).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// A scripted answer, served instead of the real one for the next request to a path.
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Scripted {
    pub fn status(status: u16, body: &str) -> Scripted {
        Scripted {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }
}

/// Random failures: a share of 500s and of 429s with a reset `reset_after` ahead.
pub struct Chaos {
    pub rng: rand::rngs::StdRng,
    pub p500: f64,
    pub p429: f64,
    pub reset_after: Duration,
}

/// A rate-limit token bucket's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// The bucket's size, and what it holds at first (`x-ratelimit-limit`).
    pub max_tokens: u32,
    /// Tokens added at each refill step, up to the size.
    pub refill: u32,
    /// Time between refill steps (the refill is in steps, not continuous).
    pub interval: Duration,
}

impl RateLimit {
    /// Trigger.dev's default, per environment: 750 tokens, 250 more every 10 s (about 1,500
    /// requests a minute once the first 750 are spent).
    pub const TRIGGER_DEV: RateLimit = RateLimit {
        max_tokens: 750,
        refill: 250,
        interval: Duration::from_secs(10),
    };
}

/// One environment's bucket; the clock is the caller's (`now`), so it can be tested alone.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: u32,
    /// When the last refill step happened (the bucket's start, at first).
    refilled_at: Instant,
}

/// What taking a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// `false`: the bucket was empty (a 429).
    pub allowed: bool,
    /// Tokens left after this request.
    pub remaining: u32,
    /// The next refill step.
    pub reset_at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        TokenBucket {
            limit,
            tokens: limit.max_tokens,
            refilled_at: now,
        }
    }

    /// Refill for the steps passed since the last one, then take a token if there is one.
    pub fn take(&mut self, now: Instant) -> Taken {
        let steps = (now.saturating_duration_since(self.refilled_at).as_nanos() / self.limit.interval.as_nanos())
            .min(u128::from(u32::MAX)) as u32;
        if steps > 0 {
            self.tokens = self
                .tokens
                .saturating_add(steps.saturating_mul(self.limit.refill))
                .min(self.limit.max_tokens);
            self.refilled_at += self.limit.interval * steps;
        }
        let allowed = self.tokens > 0;
        if allowed {
            self.tokens -= 1;
        }
        Taken {
            allowed,
            remaining: self.tokens,
            reset_at: self.refilled_at + self.limit.interval,
        }
    }
}

type Reply = Pin<Box<dyn Future<Output = Response> + Send>>;
type Handler = Arc<dyn Fn(Request, usize) -> Reply + Send + Sync>;

#[derive(Default)]
struct FakeState {
    runs: Mutex<HashMap<String, Bodies>>,
    /// Run ids in list order (newest first).
    order: Mutex<VecDeque<String>>,
    requests: Mutex<Vec<Request>>,
    /// The answer to each request, by its index in `requests`.
    answers: Mutex<HashMap<usize, Answered>>,
    scripts: Mutex<HashMap<String, VecDeque<Scripted>>>,
    /// Delay added to every events response (to let a progress bar draw).
    events_delay: Mutex<Duration>,
    chaos: Mutex<Option<Chaos>>,
    /// (when a 429 was answered, the reset it announced).
    rate_limited: Mutex<Vec<(Instant, Instant)>>,
    /// The key answered with data instead of 401; `None`: [`SECRET_KEY`].
    accepted_key: Mutex<Option<String>>,
    /// The rate limit and each environment's bucket (by Authorization header); `None`: off.
    buckets: Mutex<Option<(RateLimit, HashMap<String, TokenBucket>)>>,
    /// Answers every request instead of all of the above.
    handler: Option<Handler>,
    /// The Realtime stream over `runs`.
    realtime: Arc<Stream>,
}

impl RunBodies for FakeState {
    fn events(&self, run_id: &str) -> Option<Bytes> {
        self.runs.lock().unwrap().get(run_id).map(|r| r.events.clone())
    }

    fn trace(&self, run_id: &str) -> Option<Bytes> {
        self.runs.lock().unwrap().get(run_id).and_then(|r| r.trace.clone())
    }

    fn run(&self, run_id: &str) -> Option<Bytes> {
        self.runs.lock().unwrap().get(run_id).map(|r| r.run.clone())
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// A 429 as Trigger.dev sends it: `x-ratelimit-*` headers (reset in unix milliseconds) and a
/// problem+json body with the same numbers and `secondsUntilReset`; no Retry-After.
pub fn too_many_requests(limit: u32, remaining: u32, until_reset: Duration) -> Response {
    let reset = unix_ms(SystemTime::now() + until_reset);
    let seconds = (until_reset.as_millis() as f64 / 1000.0).max(0.0);
    let detail = format!("Rate limit exceeded {remaining}/{limit} requests remaining. Retry in {seconds} seconds.");
    let body = json!({
        "title": "Rate Limit Exceeded", "status": 429, "type": "https://trigger.dev/docs/limits#rate-limits",
        "detail": detail, "error": detail, "reset": reset, "limit": limit, "remaining": remaining,
        "secondsUntilReset": seconds,
    });
    let mut response = (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response();
    set_limit_headers(response.headers_mut(), limit, remaining, reset);
    response
}

/// The `x-ratelimit-*` headers Trigger.dev puts on every `/api/` answer.
pub fn set_limit_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, reset_unix_ms: u64) {
    for (name, value) in [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        ("x-ratelimit-reset", reset_unix_ms.to_string()),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
}

impl FakeState {
    fn record(&self, request: Request) -> usize {
        let mut requests = self.requests.lock().unwrap();
        requests.push(request);
        requests.len() - 1
    }

    /// A token from the bucket of the request's environment (its key), for `/api/` paths while
    /// the rate limit is on: `Err` is the 429, `Ok` the headers every answer then carries.
    fn take_token(&self, request: &Request) -> Option<Result<(u32, u32, u64), Response>> {
        if !request.path.starts_with("/api/") {
            return None;
        }
        let mut buckets = self.buckets.lock().unwrap();
        let (limit, buckets) = buckets.as_mut()?;
        let now = Instant::now();
        let environment = request.authorization().unwrap_or_default().to_owned();
        let taken = buckets
            .entry(environment)
            .or_insert_with(|| TokenBucket::new(*limit, now))
            .take(now);
        let until_reset = taken.reset_at.saturating_duration_since(now);
        if !taken.allowed {
            self.rate_limited.lock().unwrap().push((now, taken.reset_at));
            return Some(Err(too_many_requests(limit.max_tokens, taken.remaining, until_reset)));
        }
        let reset = unix_ms(SystemTime::now() + until_reset);
        Some(Ok((limit.max_tokens, taken.remaining, reset)))
    }

    fn authorized(&self, request: &Request) -> bool {
        let key = self.accepted_key.lock().unwrap().clone();
        let expected = format!("Bearer {}", key.as_deref().unwrap_or(SECRET_KEY));
        request.authorization() == Some(expected.as_str())
    }

    fn chaos(&self) -> Option<Response> {
        use rand::Rng;
        let mut chaos = self.chaos.lock().unwrap();
        let chaos = chaos.as_mut()?;
        let roll: f64 = chaos.rng.random();
        if roll < chaos.p500 {
            return Some((StatusCode::INTERNAL_SERVER_ERROR, "chaos").into_response());
        }
        if roll < chaos.p500 + chaos.p429 {
            let now = Instant::now();
            let reset_unix_ms = unix_ms(SystemTime::now()) + chaos.reset_after.as_millis() as u64;
            // The announced reset is whole milliseconds: round the instant up to match.
            self.rate_limited.lock().unwrap().push((now, now + chaos.reset_after));
            let body = json!({"title": "Rate limit exceeded", "status": 429, "reset": reset_unix_ms, "limit": 1500, "remaining": 0});
            let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
            set_limit_headers(response.headers_mut(), 1500, 0, reset_unix_ms);
            return Some(response);
        }
        None
    }

    async fn scripted(&self, path: &str) -> Option<Response> {
        let scripted = self
            .scripts
            .lock()
            .unwrap()
            .get_mut(path)
            .and_then(VecDeque::pop_front)?;
        tokio::time::sleep(scripted.delay).await;
        let mut response = (StatusCode::from_u16(scripted.status).unwrap(), scripted.body).into_response();
        for (name, value) in scripted.headers {
            response.headers_mut().insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
        Some(response)
    }

    /// Whatever of the key check, chaos, scripts and the events delay applies, then the routes.
    async fn answer(&self, request: &Request, http: axum::extract::Request, next: Next) -> Response {
        if !self.authorized(request) {
            let body = json!({"error": "Invalid or Missing API key"});
            return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
        }
        if let Some(response) = self.chaos() {
            return response;
        }
        if let Some(response) = self.scripted(&request.path).await {
            return response;
        }
        if request.path.ends_with("/events") {
            let delay = *self.events_delay.lock().unwrap();
            tokio::time::sleep(delay).await;
        }
        next.run(http).await
    }
}

/// In front of every route: log the request, answer it as the fake is set up to, log the
/// answer's head.
async fn gate(State(state): State<Arc<FakeState>>, http: axum::extract::Request, next: Next) -> Response {
    let request = Request {
        at: Instant::now(),
        at_unix_ms: unix_ms(SystemTime::now()),
        path: http.uri().path().to_owned(),
        query: http.uri().query().unwrap_or_default().to_owned(),
        headers: http.headers().clone(),
    };
    let index = state.record(request.clone());
    let response = match &state.handler {
        Some(handler) => handler(request, index).await,
        None => match state.take_token(&request) {
            Some(Err(refused)) => refused,
            Some(Ok((limit, remaining, reset))) => {
                let mut response = state.answer(&request, http, next).await;
                set_limit_headers(response.headers_mut(), limit, remaining, reset);
                response
            }
            None => state.answer(&request, http, next).await,
        },
    };
    let answered = Answered {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
    };
    state.answers.lock().unwrap().insert(index, answered);
    response
}

/// `GET /api/v1/runs`: newest first, filtered by task / tag / status (comma lists), two per page
/// to exercise the cursor (`page[after]`).
async fn list(State(state): State<Arc<FakeState>>, RawQuery(query): RawQuery) -> Response {
    let params: HashMap<String, String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let split =
        |key: &str| -> Option<Vec<String>> { params.get(key).map(|v| v.split(',').map(str::to_owned).collect()) };
    let (tasks, tags, statuses) = (
        split("filter[taskIdentifier]"),
        split("filter[tag]"),
        split("filter[status]"),
    );
    let order: Vec<String> = state.order.lock().unwrap().iter().cloned().collect();
    let matching: Vec<Value> = order
        .iter()
        .filter_map(|id| state.run(id))
        .map(|run| serde_json::from_slice::<Value>(&run).unwrap())
        .filter(|run| {
            let field = |name: &str| run[name].as_str().unwrap_or_default().to_owned();
            tasks.as_ref().is_none_or(|t| t.contains(&field("taskIdentifier")))
                && statuses.as_ref().is_none_or(|s| s.contains(&field("status")))
                && tags.as_ref().is_none_or(|t| {
                    run["tags"]
                        .as_array()
                        .is_some_and(|have| have.iter().any(|h| t.iter().any(|w| h == w.as_str())))
                })
        })
        .collect();
    let start: usize = params.get("page[after]").and_then(|c| c.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = matching.iter().skip(start).take(2).cloned().collect();
    let next = (start + 2 < matching.len()).then(|| (start + 2).to_string());
    axum::Json(json!({"data": page, "pagination": {"next": next}})).into_response()
}

/// `GET /realtime/v1/runs`: the stream ([`Stream::answer`]).
async fn realtime(State(state): State<Arc<FakeState>>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    state
        .realtime
        .clone()
        .answer(query.as_deref().unwrap_or_default(), &headers)
        .await
}

fn routes(state: Arc<FakeState>) -> Router {
    let list = Router::new()
        .route("/api/v1/runs", axum::routing::get(list))
        // The gate logs and authenticates the stream like the rest; its bucket counts only
        // `/api/` paths, as Trigger.dev's does.
        .route("/realtime/v1/runs", axum::routing::get(realtime))
        .with_state(state.clone());
    run_routes(state.clone())
        .merge(list)
        .fallback(|| async { (StatusCode::NOT_FOUND, axum::Json(json!({"error": "Not found"}))) })
        .layer(axum::middleware::from_fn_with_state(state, gate))
}

pub struct FakeApi {
    state: Arc<FakeState>,
    pub addr: SocketAddr,
    served: Served,
}

impl FakeApi {
    /// Serve `runs` (the first is the oldest in the list).
    pub async fn start(runs: impl IntoIterator<Item = FakeRun>) -> FakeApi {
        let api = FakeApi::serve(FakeState::default()).await;
        for run in runs {
            api.add(run);
        }
        api
    }

    /// A fake that answers every request with `handler(request, index)` (index: its place in
    /// [`FakeApi::requests`]), for tests of the client that shape each answer themselves.
    pub async fn answering<F, Fut>(handler: F) -> FakeApi
    where
        F: Fn(Request, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        FakeApi::serve(FakeState {
            handler: Some(Arc::new(move |request, index| Box::pin(handler(request, index)))),
            ..FakeState::default()
        })
        .await
    }

    async fn serve(state: FakeState) -> FakeApi {
        let state = Arc::new(state);
        let served = Served::on_loopback(routes(state.clone())).await.unwrap();
        FakeApi {
            state,
            addr: served.addr(),
            served,
        }
    }

    pub fn url(&self) -> String {
        self.served.url()
    }

    pub async fn stop(self) {
        // Held live polls answer at once instead of keeping the server for their hold.
        self.state.realtime.close();
        self.served.stop(Duration::from_secs(5)).await.unwrap();
    }

    // -- The runs, as the test makes them evolve.

    /// A new run, the newest in the list.
    pub fn add(&self, run: FakeRun) {
        let id = run.id();
        self.state.order.lock().unwrap().push_front(id.clone());
        self.state.runs.lock().unwrap().insert(id, Bodies::of(&run));
        self.state.realtime.changed(&run.run);
    }

    /// The run now answers as `run` (events added, spans finished, status changed…).
    pub fn set(&self, run: FakeRun) {
        let id = run.id();
        assert!(
            self.state
                .runs
                .lock()
                .unwrap()
                .insert(id.clone(), Bodies::of(&run))
                .is_some(),
            "{id} is not served: add it first"
        );
        self.state.realtime.changed(&run.run);
    }

    /// Changes the run `id` as `change` says.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut FakeRun)) {
        let mut runs = self.state.runs.lock().unwrap();
        let bodies = runs.get_mut(id).unwrap_or_else(|| panic!("{id} is not served"));
        let mut run = bodies.to_run();
        change(&mut run);
        *bodies = Bodies::of(&run);
        drop(runs);
        self.state.realtime.changed(&run.run);
    }

    /// The run `id` is no longer served (REST answers 404, the list leaves it out) and leaves
    /// the stream with a `delete` message.
    pub fn remove(&self, id: &str) {
        self.state.runs.lock().unwrap().remove(id);
        self.state.order.lock().unwrap().retain(|listed| listed != id);
        self.state.realtime.removed(id);
    }

    /// The Realtime stream over these runs: its options, availability, forced refetch and
    /// counters.
    pub fn stream(&self) -> &Stream {
        &self.state.realtime
    }

    // -- Faults.

    /// Answer the next requests to `path` with `answers`, one each, before the real answers.
    pub fn script(&self, path: &str, answers: impl IntoIterator<Item = Scripted>) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .extend(answers);
    }

    pub fn clear_scripts(&self) {
        self.state.scripts.lock().unwrap().clear();
    }

    pub fn set_chaos(&self, chaos: Chaos) {
        *self.state.chaos.lock().unwrap() = Some(chaos);
    }

    /// Every events answer waits this long.
    pub fn delay_events(&self, delay: Duration) {
        *self.state.events_delay.lock().unwrap() = delay;
    }

    /// The key the fake accepts instead of [`SECRET_KEY`].
    pub fn accept_key(&self, key: &str) {
        *self.state.accepted_key.lock().unwrap() = Some(key.to_owned());
    }

    /// From now on, `/api/` requests spend tokens of their environment's bucket (one per secret
    /// key), and every answer says what is left in `x-ratelimit-*` headers; an empty bucket
    /// answers 429 as Trigger.dev does. Off unless asked for.
    pub fn rate_limit(&self, limit: RateLimit) {
        *self.state.buckets.lock().unwrap() = Some((limit, HashMap::new()));
    }

    // -- What it saw.

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.state.requests.lock().unwrap().len()
    }

    /// Requests to the REST API (`/api/…`, what Trigger.dev's rate limit counts).
    pub fn rest_requests(&self) -> Vec<Request> {
        self.requests_under("/api/")
    }

    /// Requests to the Realtime API (`/realtime/…`).
    pub fn stream_requests(&self) -> Vec<Request> {
        self.requests_under("/realtime/")
    }

    fn requests_under(&self, prefix: &str) -> Vec<Request> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Requests whose path is `path`.
    pub fn requests_to(&self, path: &str) -> usize {
        self.queries_to(path).len()
    }

    /// The raw query strings of the requests to `path`.
    pub fn queries_to(&self, path: &str) -> Vec<String> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.query.clone())
            .collect()
    }

    /// The head of the answer to request `index` (of [`FakeApi::requests`]), once given.
    pub fn answer(&self, index: usize) -> Option<Answered> {
        self.state.answers.lock().unwrap().get(&index).cloned()
    }

    /// Every 429 answered: (when, the reset it announced).
    pub fn rate_limited(&self) -> Vec<(Instant, Instant)> {
        self.state.rate_limited.lock().unwrap().clone()
    }

    /// Requests that arrived after a 429 and before the reset it announced (with 2 ms of slack:
    /// the reset travels as whole unix milliseconds).
    pub fn requests_before_a_reset(&self) -> Vec<Request> {
        let limited = self.rate_limited();
        let requests = self.requests();
        requests
            .into_iter()
            .filter(|r| {
                limited
                    .iter()
                    .any(|(answered, reset)| r.at > *answered && r.at + Duration::from_millis(2) < *reset)
            })
            .collect()
    }
}

/// Answers whose bodies break: what a dying server or a slow proxy sends. Each is a 200 with a
/// JSON content type and a streamed body.
pub mod broken {
    use super::*;
    use futures_util::StreamExt;

    /// `pieces`, each sent after its pause; `length` is declared as Content-Length (a body that
    /// ends short of it is cut: the connection closes), none means a chunked body.
    fn streamed(length: Option<usize>, pieces: Vec<(Duration, Bytes)>) -> Response {
        let stream = futures_util::stream::iter(pieces).then(|(pause, piece)| async move {
            tokio::time::sleep(pause).await;
            Ok::<_, std::convert::Infallible>(piece)
        });
        let mut response = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from_stream(stream),
        )
            .into_response();
        if let Some(length) = length {
            response.headers_mut().insert(header::CONTENT_LENGTH, length.into());
        }
        response
    }

    /// Declares 1,000 bytes, sends a few of an events body, closes.
    pub fn cut_short() -> Response {
        streamed(
            Some(1000),
            vec![(Duration::ZERO, Bytes::from_static(b"{\"events\": [{\"spanId\": \"0123"))],
        )
    }

    /// The start of an events body and then nothing for `stall`, then the connection closes.
    pub fn stall(stall: Duration) -> Response {
        streamed(
            Some(1000),
            vec![
                (Duration::ZERO, Bytes::from_static(b"{\"events\": [")),
                (stall, Bytes::new()),
            ],
        )
    }

    /// `body` in `chunks` pieces, `gap` before each.
    pub fn trickle(body: &[u8], chunks: usize, gap: Duration) -> Response {
        let pieces = body
            .chunks(body.len().div_ceil(chunks))
            .map(|piece| (gap, Bytes::copy_from_slice(piece)))
            .collect();
        streamed(Some(body.len()), pieces)
    }

    /// An events body of about `len` bytes with no declared length (chunked), all blanks.
    pub fn endless(len: usize) -> Response {
        let chunk = Bytes::from(vec![b' '; 64 * 1024]);
        let mut pieces = vec![(Duration::ZERO, Bytes::from_static(b"{\"events\": ["))];
        pieces.extend((0..len.div_ceil(chunk.len())).map(|_| (Duration::ZERO, chunk.clone())));
        pieces.push((Duration::ZERO, Bytes::from_static(b"]}")));
        streamed(None, pieces)
    }
}
