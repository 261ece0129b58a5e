//! A minimal fake Trigger.dev API for the benchmarks: pre-serialised bodies (so the fake spends
//! no CPU re-encoding JSON while the bridge is measured), a 404 for every trace (the bridge then
//! derives trace ids), retrieve-run answering a fixed body, and a count of every request with its
//! time. tests/support/fake_api.rs is the full-featured one; this one only serves and counts.
#![allow(dead_code)]

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub const SECRET_KEY: &str = "tr_dev_BENCHkey0123456789";

/// What one run answers.
pub struct Served {
    pub events: Bytes,
    pub run: Bytes,
}

#[derive(Default)]
pub struct Counters {
    pub events: AtomicU64,
    pub trace: AtomicU64,
    pub retrieve: AtomicU64,
    pub other: AtomicU64,
    /// When each request arrived (for requests per minute).
    pub times: Mutex<Vec<Instant>>,
}

impl Counters {
    pub fn total(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
            + self.trace.load(Ordering::Relaxed)
            + self.retrieve.load(Ordering::Relaxed)
            + self.other.load(Ordering::Relaxed)
    }

    /// Requests that arrived in `[from, to)`.
    pub fn between(&self, from: Instant, to: Instant) -> usize {
        self.times
            .lock()
            .unwrap()
            .iter()
            .filter(|t| **t >= from && **t < to)
            .count()
    }

    /// The most requests in any window of `window` that lies inside `[from, to)`.
    pub fn max_in_window(&self, from: Instant, to: Instant, window: std::time::Duration) -> usize {
        let times: Vec<Instant> = self
            .times
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|t| *t >= from && *t < to)
            .collect();
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end].duration_since(times[start]) >= window {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }

    fn seen(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.times.lock().unwrap().push(Instant::now());
    }
}

struct AppState {
    runs: HashMap<String, Served>,
    counters: Arc<Counters>,
}

fn json(body: &Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

fn not_found(what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        format!(r#"{{"error":"{what} not found"}}"#),
    )
        .into_response()
}

async fn events(State(state): State<Arc<AppState>>, Path(run): Path<String>) -> Response {
    state.counters.seen(&state.counters.events);
    state
        .runs
        .get(&run)
        .map_or_else(|| not_found("Run"), |r| json(&r.events))
}

async fn trace(State(state): State<Arc<AppState>>, Path(_run): Path<String>) -> Response {
    state.counters.seen(&state.counters.trace);
    not_found("Trace")
}

async fn retrieve(State(state): State<Arc<AppState>>, Path(run): Path<String>) -> Response {
    state.counters.seen(&state.counters.retrieve);
    state.runs.get(&run).map_or_else(|| not_found("Run"), |r| json(&r.run))
}

async fn other(State(state): State<Arc<AppState>>) -> Response {
    state.counters.seen(&state.counters.other);
    not_found("Route")
}

/// Retrieve-run for a run that ended (`COMPLETED`) or still runs (`EXECUTING`).
pub fn run_body(run_id: &str, finished: bool) -> Bytes {
    let (status, finished_at) = if finished {
        ("COMPLETED", "\"2025-09-23T13:40:00.000Z\"")
    } else {
        ("EXECUTING", "null")
    };
    Bytes::from(format!(
        r#"{{"id":"{run_id}","status":"{status}","taskIdentifier":"process-order","tags":[],"createdAt":"2025-09-23T12:32:48.120Z","finishedAt":{finished_at},"isCompleted":{finished},"isTest":false}}"#
    ))
}

pub struct FakeApi {
    pub addr: SocketAddr,
    pub counters: Arc<Counters>,
}

impl FakeApi {
    /// Serve `runs` (run id → answers) on a loopback port, on the current tokio runtime.
    pub async fn start(runs: HashMap<String, Served>) -> FakeApi {
        let counters = Arc::new(Counters::default());
        let state = Arc::new(AppState {
            runs,
            counters: counters.clone(),
        });
        let app = axum::Router::new()
            .route("/api/v1/runs/{run}/events", axum::routing::get(events))
            .route("/api/v1/runs/{run}/trace", axum::routing::get(trace))
            .route("/api/v3/runs/{run}", axum::routing::get(retrieve))
            .fallback(other)
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeApi { addr, counters }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
