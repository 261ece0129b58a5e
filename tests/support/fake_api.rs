//! A fake Trigger.dev API on loopback (axum), serving runs made of the JSON fixtures, with
//! scripted faults per path and a log of every request it received.

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use trigger_otel_bridge::serving::Served;

pub const SECRET_KEY: &str = "tr_dev_FAKEtestKEY0123456789";

/// One run the fake serves.
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

#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub query: String,
    pub at: Instant,
    pub authorization: Option<String>,
}

#[derive(Default)]
pub struct FakeState {
    pub runs: Mutex<HashMap<String, FakeRun>>,
    /// Run ids in list order (newest first).
    pub order: Mutex<Vec<String>>,
    pub scripts: Mutex<HashMap<String, VecDeque<Scripted>>>,
    pub seen: Mutex<Vec<Seen>>,
    /// Delay added to every events response (to let a progress bar draw).
    pub events_delay: Mutex<Duration>,
    pub chaos: Mutex<Option<Chaos>>,
    /// (when a 429 was answered, the reset it announced).
    pub rate_limited: Mutex<Vec<(Instant, Instant)>>,
    /// The key answered with data instead of 401; `None`: [`SECRET_KEY`].
    pub accepted_key: Mutex<Option<String>>,
}

/// Random failures: a share of 500s and of 429s with a reset `reset_after` ahead.
pub struct Chaos {
    pub rng: rand::rngs::StdRng,
    pub p500: f64,
    pub p429: f64,
    pub reset_after: Duration,
}

impl FakeState {
    pub fn add(&self, run: FakeRun) {
        let id = run.id();
        self.order.lock().unwrap().insert(0, id.clone());
        self.runs.lock().unwrap().insert(id, run);
    }

    pub fn script(&self, path: &str, answers: impl IntoIterator<Item = Scripted>) {
        self.scripts
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default()
            .extend(answers);
    }

    pub fn requests_to(&self, path: &str) -> usize {
        self.seen.lock().unwrap().iter().filter(|s| s.path == path).count()
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"error": "Run not found"}))).into_response()
}

async fn scripted_or(state: &FakeState, path: String, query: String, headers: &HeaderMap) -> Option<Response> {
    state.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        query,
        at: Instant::now(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    let key = state.accepted_key.lock().unwrap().clone();
    let expected = format!("Bearer {}", key.as_deref().unwrap_or(SECRET_KEY));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"error": "Invalid or Missing API key"})),
            )
                .into_response(),
        );
    }
    if let Some(response) = chaos(state) {
        return Some(response);
    }
    let next = state
        .scripts
        .lock()
        .unwrap()
        .get_mut(&path)
        .and_then(VecDeque::pop_front);
    let scripted = next?;
    tokio::time::sleep(scripted.delay).await;
    let mut response = (StatusCode::from_u16(scripted.status).unwrap(), scripted.body).into_response();
    for (name, value) in scripted.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    Some(response)
}

fn chaos(state: &FakeState) -> Option<Response> {
    use rand::Rng;
    let mut chaos = state.chaos.lock().unwrap();
    let chaos = chaos.as_mut()?;
    let roll: f64 = chaos.rng.random();
    if roll < chaos.p500 {
        return Some((StatusCode::INTERNAL_SERVER_ERROR, "chaos").into_response());
    }
    if roll < chaos.p500 + chaos.p429 {
        let now = Instant::now();
        let reset_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
            + chaos.reset_after.as_millis();
        // The announced reset is whole milliseconds: round the instant up to match.
        state.rate_limited.lock().unwrap().push((now, now + chaos.reset_after));
        let body = json!({"title": "Rate limit exceeded", "status": 429, "reset": reset_unix_ms as u64, "limit": 1500, "remaining": 0});
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", "1500".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        headers.insert("x-ratelimit-reset", reset_unix_ms.to_string().parse().unwrap());
        return Some(response);
    }
    None
}

async fn events(State(state): State<Arc<FakeState>>, Path(run): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/api/v1/runs/{run}/events");
    if let Some(response) = scripted_or(&state, path, String::new(), &headers).await {
        return response;
    }
    let delay = *state.events_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let body = state.runs.lock().unwrap().get(&run).map(|r| r.events.clone());
    body.map_or_else(not_found, |body| axum::Json(body).into_response())
}

async fn trace(State(state): State<Arc<FakeState>>, Path(run): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/api/v1/runs/{run}/trace");
    if let Some(response) = scripted_or(&state, path, String::new(), &headers).await {
        return response;
    }
    let body = state.runs.lock().unwrap().get(&run).and_then(|r| r.trace.clone());
    body.map_or_else(
        || (StatusCode::NOT_FOUND, axum::Json(json!({"error": "Trace not found"}))).into_response(),
        |body| axum::Json(body).into_response(),
    )
}

async fn retrieve(State(state): State<Arc<FakeState>>, Path(run): Path<String>, headers: HeaderMap) -> Response {
    let path = format!("/api/v3/runs/{run}");
    if let Some(response) = scripted_or(&state, path, String::new(), &headers).await {
        return response;
    }
    let body = state.runs.lock().unwrap().get(&run).map(|r| r.run.clone());
    body.map_or_else(not_found, |body| axum::Json(body).into_response())
}

/// Newest first, filtered by task / tag / status, two per page to exercise cursors.
async fn list(
    State(state): State<Arc<FakeState>>,
    Query(params): Query<HashMap<String, String>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Some(response) = scripted_or(&state, "/api/v1/runs".into(), raw.unwrap_or_default(), &headers).await {
        return response;
    }
    let split =
        |key: &str| -> Option<Vec<String>> { params.get(key).map(|v| v.split(',').map(str::to_owned).collect()) };
    let (tasks, tags, statuses) = (
        split("filter[taskIdentifier]"),
        split("filter[tag]"),
        split("filter[status]"),
    );
    let runs = state.runs.lock().unwrap().clone();
    let matching: Vec<Value> = state
        .order
        .lock()
        .unwrap()
        .iter()
        .filter_map(|id| runs.get(id))
        .map(|r| r.run.clone())
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

pub struct FakeApi {
    pub state: Arc<FakeState>,
    pub addr: SocketAddr,
    served: Served,
}

impl FakeApi {
    pub async fn start(runs: impl IntoIterator<Item = FakeRun>) -> FakeApi {
        let state = Arc::new(FakeState::default());
        for run in runs {
            state.add(run);
        }
        let app = axum::Router::new()
            .route("/api/v1/runs", axum::routing::get(list))
            .route("/api/v1/runs/{run}/events", axum::routing::get(events))
            .route("/api/v1/runs/{run}/trace", axum::routing::get(trace))
            .route("/api/v3/runs/{run}", axum::routing::get(retrieve))
            .with_state(state.clone());
        let served = Served::on_loopback(app).await.unwrap();
        FakeApi {
            state,
            addr: served.addr(),
            served,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(self) {
        self.served.stop(Duration::from_secs(5)).await.unwrap();
    }
}
