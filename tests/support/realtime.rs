//! The fake API's Realtime stream, `GET /realtime/v1/runs`: Trigger.dev's Electric shape protocol
//! (docs/realtime-protocol-notes.md §3, §7) computed from the runs the fake serves.
//!
//! Every change a test makes through [`super::fake_api::FakeApi`] (`add`, `set`, `update`,
//! `remove`) is turned into a database row (statuses as the database spells them, zone-less
//! timestamps, `runTags` as a Postgres array literal, an internal `cm…` id beside the public
//! `friendlyId`) and, when the row changed, into an entry of the shape's log: an `insert`, an
//! `update` with only the changed columns and `id` (Electric's default; full rows with
//! [`Updates::Full`], as the native backend), or a `delete`. Requests are answered as Electric
//! behind Trigger.dev's proxy answers them: the snapshot at `offset=-1` (in chunks if asked), the
//! log from an offset, live long polls held until a change or [`StreamOptions::hold`] ends them
//! in a bare `up-to-date`, a 409 `must-refetch` for a handle that is not the current one
//! ([`Stream::force_refetch`]), a 429 above [`StreamOptions::max_live`] live polls of one key.
//! [`Stream::set_availability`] makes it a 404, a 503 `Network error occurred`, any status, or a
//! connection closed with no answer, and back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::watch;

/// Trigger.dev's default columns (`DEFAULT_ELECTRIC_COLUMNS`), in its order.
pub const COLUMNS: [&str; 26] = [
    "id",
    "taskIdentifier",
    "createdAt",
    "updatedAt",
    "startedAt",
    "delayUntil",
    "queuedAt",
    "expiredAt",
    "completedAt",
    "friendlyId",
    "number",
    "isTest",
    "status",
    "usageDurationMs",
    "costInCents",
    "baseCostInCents",
    "ttl",
    "payload",
    "payloadType",
    "metadata",
    "metadataType",
    "output",
    "outputType",
    "runTags",
    "error",
    "realtimeStreams",
];

/// Columns `skipColumns` cannot remove.
const RESERVED: [&str; 5] = ["id", "taskIdentifier", "friendlyId", "status", "createdAt"];

/// The API version whose statuses the stream sends unchanged; other clients get `DEQUEUED` as
/// `EXECUTING`.
const API_VERSION: &str = "2025-07-16";

/// How timestamps are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamps {
    /// Postgres' text output, as Electric sends it: `2026-08-21 10:15:30.12` (space, trailing
    /// zeros of the fraction dropped, no fraction at all on a whole second).
    Electric,
    /// The native backend's `toISOString()` without its `Z`: `2026-08-21T10:15:30.120`.
    Native,
}

/// What an update message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Updates {
    /// The changed columns and `id` (Electric's `replica=default`).
    Partial,
    /// Every column (the native backend).
    Full,
}

/// Whether the stream answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Served,
    /// 404 `{"error":"Not found"}`: an instance without the realtime routes.
    NotFound,
    /// 503 `Network error occurred` (text): Trigger.dev's proxy with no Electric behind it.
    NoElectric,
    /// This status, with `{"error": "…"}`.
    Status(u16),
    /// The connection is closed with no answer at all (a network failure as the client sees it).
    Dropped,
}

/// How the stream behaves; [`Stream::set_options`] changes it at any time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// How long a live poll is held with no change (Electric: 20 s). Short by default: a test's
    /// fake must not keep its server busy when the test ends.
    pub hold: Duration,
    /// Live polls one key may hold at once; one more is a 429 (Trigger.dev's free plan: 10).
    pub max_live: usize,
    /// Rows per snapshot chunk; `None`: the whole snapshot in one answer.
    pub snapshot_chunk: Option<usize>,
    pub timestamps: Timestamps,
    pub updates: Updates,
    /// Apply `createdAt` (the server's window, capped at a day; 24 h when absent; none when it is
    /// not a valid duration, as Trigger.dev's proxy). Off by default: the fixtures' runs were
    /// created in 2025.
    pub window: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            hold: Duration::from_secs(2),
            max_live: 10,
            snapshot_chunk: None,
            timestamps: Timestamps::Electric,
            updates: Updates::Partial,
            window: false,
        }
    }
}

/// What the stream has answered, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Answers to `offset=-1`.
    pub snapshots: u64,
    /// Live polls answered (with changes or a bare up-to-date).
    pub live_polls: u64,
    pub conflicts: u64,
    pub too_many: u64,
    /// Live polls held right now, and the most ever held at once.
    pub live_now: usize,
    pub live_peak: usize,
}

/// One entry of the shape's log.
#[derive(Debug, Clone)]
struct Entry {
    seq: u64,
    operation: &'static str,
    /// The row after the change (for full updates and inserts); `id` only for a delete.
    full: Map<String, Value>,
    /// The changed columns and `id`.
    changed: Map<String, Value>,
    /// For the window: when the run was created (unix ms).
    created_ms: u64,
}

/// A snapshot's rows, each with when its run was created (unix ms).
type Snapshot = Vec<(Map<String, Value>, u64)>;

/// A run as the stream knows it.
#[derive(Debug, Clone)]
struct Row {
    values: Map<String, Value>,
    created_ms: u64,
    /// Wire text of `updatedAt` when the run's own JSON has none: moved on each change.
    updated_ms: u64,
}

struct Inner {
    options: StreamOptions,
    availability: Availability,
    /// The handle's number; a forced refetch moves to the next.
    generation: u64,
    /// Changes so far; log positions are `{seq}_0`.
    seq: u64,
    /// This handle's log (entries after its start).
    log: Vec<Entry>,
    rows: HashMap<String, Row>,
    /// Public ids in the order the runs were added (the snapshot's order).
    order: Vec<String>,
    /// Snapshots served in chunks, by the seq they were taken at: their rows as they were then.
    snapshots: HashMap<u64, Snapshot>,
    /// The window each handle's stream got at its first request (`None`: no window).
    windows: HashMap<String, Option<u64>>,
    /// Live polls held, by key.
    live: HashMap<String, usize>,
    stats: StreamStats,
    /// Live answers so far: each gets a new `electric-cursor`.
    cursor: u64,
}

/// Where the stream is: held polls end when it moves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Position {
    seq: u64,
    generation: u64,
    /// Bumped when the availability changes.
    epoch: u64,
}

/// The stream's state, shared by the fake's router and the test.
pub struct Stream {
    inner: Mutex<Inner>,
    /// Moves on every change, forced refetch and change of availability; held polls watch it.
    changes: watch::Sender<Position>,
    /// True once the fake is stopping: held polls end at once.
    closing: watch::Sender<bool>,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            inner: Mutex::new(Inner {
                options: StreamOptions::default(),
                availability: Availability::Served,
                generation: 1,
                seq: 0,
                log: Vec::new(),
                rows: HashMap::new(),
                order: Vec::new(),
                snapshots: HashMap::new(),
                windows: HashMap::new(),
                live: HashMap::new(),
                stats: StreamStats::default(),
                cursor: 0,
            }),
            changes: watch::channel(Position {
                seq: 0,
                generation: 1,
                epoch: 0,
            })
            .0,
            closing: watch::channel(false).0,
        }
    }
}

impl Stream {
    // -- Set up by the test.

    pub fn options(&self) -> StreamOptions {
        self.inner.lock().unwrap().options.clone()
    }

    pub fn set_options(&self, options: StreamOptions) {
        self.inner.lock().unwrap().options = options;
    }

    /// Changes the options as `change` says.
    pub fn configure(&self, change: impl FnOnce(&mut StreamOptions)) {
        change(&mut self.inner.lock().unwrap().options);
    }

    pub fn set_availability(&self, availability: Availability) {
        self.inner.lock().unwrap().availability = availability;
        // Held polls answer as the stream now does.
        self.changes.send_modify(|position| position.epoch += 1);
    }

    /// The shape is rotated (as when Electric loses its storage): a new handle; every request
    /// with the old one, held live polls included, gets 409 `must-refetch`.
    pub fn force_refetch(&self) {
        let mut inner = self.inner.lock().unwrap();
        inner.generation += 1;
        inner.log.clear();
        inner.snapshots.clear();
        let generation = inner.generation;
        drop(inner);
        self.changes.send_modify(|position| position.generation = generation);
    }

    /// The handle a fresh request gets now.
    pub fn handle(&self) -> String {
        handle_of(self.inner.lock().unwrap().generation)
    }

    pub fn stats(&self) -> StreamStats {
        self.inner.lock().unwrap().stats
    }

    /// Live polls held right now.
    pub fn live_now(&self) -> usize {
        self.inner.lock().unwrap().stats.live_now
    }

    /// The internal id (`cm…`) the stream gives the run `run_id`.
    pub fn internal_id(run_id: &str) -> String {
        internal_id(run_id)
    }

    /// Held polls end now (the fake is stopping).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    // -- Fed by the fake API.

    /// The run `run` (its REST JSON) was added or changed: log what changed in its row.
    pub fn changed(&self, run: &Value) {
        let Some(run_id) = run["id"].as_str() else { return };
        let now = now_ms();
        let mut inner = self.inner.lock().unwrap();
        let timestamps = inner.options.timestamps;
        let previous = inner.rows.get(run_id).cloned();
        let created_ms = run["createdAt"]
            .as_str()
            .and_then(parse_ms)
            .or(previous.as_ref().map(|row| row.created_ms))
            .unwrap_or(now);
        let mut updated_ms = previous.as_ref().map_or(now, |row| row.updated_ms);
        let mut values = row_values(run, created_ms, updated_ms, timestamps);
        let changed: Map<String, Value> = match &previous {
            None => values.clone(),
            Some(previous) => {
                let differs = |values: &Map<String, Value>| {
                    values
                        .iter()
                        .filter(|(column, value)| previous.values.get(*column) != Some(*value))
                        .map(|(column, value)| (column.clone(), value.clone()))
                        .collect::<Map<String, Value>>()
                };
                let mut changed = differs(&values);
                if !changed.is_empty() && run.get("updatedAt").is_none_or(Value::is_null) {
                    // Prisma moves `updatedAt` on every update of the row.
                    updated_ms = now.max(previous.updated_ms + 1);
                    values = row_values(run, created_ms, updated_ms, timestamps);
                    changed = differs(&values);
                }
                changed
            }
        };
        if changed.is_empty() {
            return;
        }
        let operation = if previous.is_some() { "update" } else { "insert" };
        let mut changed = changed;
        changed.insert("id".into(), values["id"].clone());
        if previous.is_none() {
            inner.order.push(run_id.to_owned());
        }
        inner.rows.insert(
            run_id.to_owned(),
            Row {
                values: values.clone(),
                created_ms,
                updated_ms,
            },
        );
        inner.seq += 1;
        let entry = Entry {
            seq: inner.seq,
            operation,
            full: values,
            changed,
            created_ms,
        };
        inner.log.push(entry);
        let seq = inner.seq;
        drop(inner);
        // Never backwards: two changes may reach here in either order once the lock is released.
        self.changes
            .send_modify(|position| position.seq = position.seq.max(seq));
    }

    /// The run left the shape (deleted, or moved out of its WHERE clause): a `delete` message.
    pub fn removed(&self, run_id: &str) {
        let mut inner = self.inner.lock().unwrap();
        let Some(row) = inner.rows.remove(run_id) else { return };
        inner.order.retain(|id| id != run_id);
        inner.seq += 1;
        let mut key = Map::new();
        key.insert("id".into(), row.values["id"].clone());
        let entry = Entry {
            seq: inner.seq,
            operation: "delete",
            full: key.clone(),
            changed: key,
            created_ms: row.created_ms,
        };
        inner.log.push(entry);
        let seq = inner.seq;
        drop(inner);
        // Never backwards: two changes may reach here in either order once the lock is released.
        self.changes
            .send_modify(|position| position.seq = position.seq.max(seq));
    }

    // -- Answering.

    /// The answer to `GET /realtime/v1/runs?{query}`.
    pub async fn answer(self: Arc<Self>, query: &str, headers: &HeaderMap) -> Response {
        if *self.closing.borrow() {
            // Not an instant answer: a client still polling would loop on it while the server stops.
            return error(503, "the fake API is stopping");
        }
        let availability = self.inner.lock().unwrap().availability;
        match availability {
            Availability::Served => {}
            Availability::NotFound => return error(404, "Not found"),
            Availability::NoElectric => {
                return (StatusCode::SERVICE_UNAVAILABLE, "Network error occurred").into_response()
            }
            Availability::Status(status) => return error(status, "Unavailable (fake)"),
            // Unwinding ends the connection's task: the socket closes with no answer. (`resume_unwind`
            // runs no panic hook, so nothing is printed.)
            Availability::Dropped => std::panic::resume_unwind(Box::new("connection dropped (fake)")),
        }
        let request = match Params::parse(query, headers) {
            Ok(request) => request,
            Err(response) => return *response,
        };
        if request.offset == "-1" {
            if request.live {
                return json_status(400, json!({"live": ["can't be live with offset -1"]}));
            }
            return self.snapshot(&request);
        }
        let Some(handle) = request.handle.clone() else {
            return json_status(400, json!({"handle": ["can't be blank when offset != -1"]}));
        };
        let Some((seq, chunk)) = parse_offset(&request.offset) else {
            return json_status(400, json!({"offset": ["has invalid format"]}));
        };
        if let Some(conflict) = self.conflict(&handle) {
            return conflict;
        }
        if seq > self.inner.lock().unwrap().seq {
            return json_status(400, json!({"offset": ["out of bounds for this shape"]}));
        }
        if chunk > 0 {
            return self.next_chunk(&request, &handle, seq, chunk);
        }
        if !request.live {
            return self.log_since(&request, &handle, seq, false);
        }
        // Only live polls with a handle count against the limit (notes §2.3).
        let Some(_slot) = LiveSlot::take(&self, &request.key) else {
            return json_status(429, json!({"error": "Too many concurrent requests"}));
        };
        let mut changes = self.changes.subscribe();
        let mut closing = self.closing.subscribe();
        let hold = self.inner.lock().unwrap().options.hold;
        let start = *changes.borrow_and_update();
        let moved = |now: &Position| now.seq > seq || now.generation != start.generation || now.epoch != start.epoch;
        tokio::select! {
            _ = changes.wait_for(moved) => {}
            _ = closing.wait_for(|closing| *closing) => {}
            _ = tokio::time::sleep(hold) => {}
        }
        let availability = self.inner.lock().unwrap().availability;
        if availability != Availability::Served {
            drop(_slot);
            return Box::pin(self.answer(query, headers)).await;
        }
        if let Some(conflict) = self.conflict(&handle) {
            return conflict;
        }
        self.log_since(&request, &handle, seq, true)
    }

    /// A 409 when `handle` is not the current shape's.
    fn conflict(&self, handle: &str) -> Option<Response> {
        let mut inner = self.inner.lock().unwrap();
        let current = handle_of(inner.generation);
        if handle == current {
            return None;
        }
        inner.stats.conflicts += 1;
        let mut response = json_status(409, json!([{"headers": {"control": "must-refetch"}}]));
        response
            .headers_mut()
            .insert("electric-handle", HeaderValue::from_str(&current).unwrap());
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60, must-revalidate"),
        );
        Some(response)
    }

    fn snapshot(&self, request: &Params) -> Response {
        let mut inner = self.inner.lock().unwrap();
        inner.stats.snapshots += 1;
        let handle = handle_of(inner.generation);
        let window = if inner.options.window { request.window() } else { None };
        inner.windows.insert(handle.clone(), window);
        let rows: Snapshot = inner
            .order
            .iter()
            .filter_map(|id| inner.rows.get(id))
            .filter(|row| window.is_none_or(|after| row.created_ms > after))
            .map(|row| (row.values.clone(), row.created_ms))
            .collect();
        let seq = inner.seq;
        let chunk = inner.options.snapshot_chunk.unwrap_or(usize::MAX).max(1);
        if rows.len() > chunk {
            inner.snapshots.insert(seq, rows.clone());
        }
        drop(inner);
        self.chunk_answer(request, &handle, seq, rows, 0, chunk)
    }

    fn next_chunk(&self, request: &Params, handle: &str, seq: u64, served: usize) -> Response {
        let inner = self.inner.lock().unwrap();
        let Some(rows) = inner.snapshots.get(&seq).cloned() else {
            drop(inner);
            return self.conflict(handle).unwrap_or_else(|| error(409, "snapshot gone"));
        };
        let chunk = inner.options.snapshot_chunk.unwrap_or(usize::MAX).max(1);
        drop(inner);
        self.chunk_answer(request, handle, seq, rows, served, chunk)
    }

    /// Chunk number `served` of a snapshot taken at `seq`; the last one carries the log since
    /// and `up-to-date`.
    fn chunk_answer(
        &self,
        request: &Params,
        handle: &str,
        seq: u64,
        rows: Snapshot,
        served: usize,
        chunk: usize,
    ) -> Response {
        let start = served.saturating_mul(chunk).min(rows.len());
        let end = start.saturating_add(chunk).min(rows.len());
        let mut messages: Vec<Value> = rows[start..end]
            .iter()
            .map(|(row, _)| change("insert", request.columns(row)))
            .collect();
        if end < rows.len() {
            let offset = format!("{seq}_{}", served + 1);
            return self.body(request, handle, &offset, messages, false, false);
        }
        let inner = self.inner.lock().unwrap();
        let window = inner.windows.get(handle).copied().flatten();
        let updates = inner.options.updates;
        messages.extend(
            inner
                .log
                .iter()
                .filter(|entry| entry.seq > seq && window.is_none_or(|after| entry.created_ms > after))
                .filter_map(|entry| entry_message(entry, updates, request)),
        );
        let offset = format!("{}_0", inner.seq);
        drop(inner);
        messages.push(up_to_date());
        self.body(request, handle, &offset, messages, false, true)
    }

    fn log_since(&self, request: &Params, handle: &str, seq: u64, live: bool) -> Response {
        let mut inner = self.inner.lock().unwrap();
        let window = inner.windows.get(handle).copied().flatten();
        let updates = inner.options.updates;
        let mut messages: Vec<Value> = inner
            .log
            .iter()
            .filter(|entry| entry.seq > seq && window.is_none_or(|after| entry.created_ms > after))
            .filter_map(|entry| entry_message(entry, updates, request))
            .collect();
        messages.push(up_to_date());
        let offset = format!("{}_0", inner.seq);
        if live {
            inner.stats.live_polls += 1;
        }
        drop(inner);
        self.body(request, handle, &offset, messages, live, true)
    }

    /// A 200 with the Electric headers (legacy names for a client that does not say its Electric
    /// version) and `messages`, `DEQUEUED` shown as `EXECUTING` to older API versions.
    fn body(
        &self,
        request: &Params,
        handle: &str,
        offset: &str,
        mut messages: Vec<Value>,
        live: bool,
        up_to_date: bool,
    ) -> Response {
        if !request.current_api {
            for message in &mut messages {
                if message["value"]["status"] == "DEQUEUED" {
                    message["value"]["status"] = json!("EXECUTING");
                }
            }
        }
        let mut response = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::to_vec(&messages).unwrap(),
        )
            .into_response();
        let headers = response.headers_mut();
        let (handle_name, offset_name) = if request.electric_version {
            ("electric-handle", "electric-offset")
        } else {
            ("electric-shape-id", "electric-chunk-last-offset")
        };
        headers.insert(handle_name, HeaderValue::from_str(handle).unwrap());
        headers.insert(offset_name, HeaderValue::from_str(offset).unwrap());
        if live {
            let cursor = {
                let mut inner = self.inner.lock().unwrap();
                inner.cursor += 1;
                inner.cursor
            };
            headers.insert("electric-cursor", HeaderValue::from(cursor));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=5, stale-while-revalidate=5"),
            );
        } else {
            headers.insert("electric-schema", HeaderValue::from_static(SCHEMA));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=604800, s-maxage=3600, stale-while-revalidate=2629746"),
            );
        }
        if up_to_date {
            headers.insert("electric-up-to-date", HeaderValue::from_static(""));
        }
        response
    }
}

/// A held live poll's place in its key's count, given back when the answer is sent or the
/// client goes away (the handler's future is dropped).
struct LiveSlot {
    stream: Arc<Stream>,
    key: String,
}

impl LiveSlot {
    fn take(stream: &Arc<Stream>, key: &str) -> Option<LiveSlot> {
        let mut inner = stream.inner.lock().unwrap();
        let limit = inner.options.max_live;
        let held = inner.live.entry(key.to_owned()).or_default();
        if *held >= limit {
            inner.stats.too_many += 1;
            return None;
        }
        *held += 1;
        inner.stats.live_now += 1;
        inner.stats.live_peak = inner.stats.live_peak.max(inner.stats.live_now);
        Some(LiveSlot {
            stream: stream.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for LiveSlot {
    fn drop(&mut self) {
        let mut inner = self.stream.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = inner.live.get_mut(&self.key) {
            *held = held.saturating_sub(1);
        }
        inner.stats.live_now = inner.stats.live_now.saturating_sub(1);
    }
}

/// What a request asks for.
struct Params {
    offset: String,
    handle: Option<String>,
    live: bool,
    created_at: Option<String>,
    skip: Vec<String>,
    /// `tags`: every one must be on the run (`@>`).
    tags: Vec<String>,
    key: String,
    electric_version: bool,
    current_api: bool,
}

impl Params {
    /// The request's parameters, or Electric's 400 (boxed: an answer is large beside them).
    fn parse(query: &str, headers: &HeaderMap) -> Result<Params, Box<Response>> {
        let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let Some(offset) = params.get("offset").cloned() else {
            return Err(Box::new(json_status(400, json!({"offset": ["can't be blank"]}))));
        };
        let tags: Vec<String> = match params.get("tags") {
            None => Vec::new(),
            Some(tags) => tags.split(',').map(str::to_owned).collect(),
        };
        if tags
            .iter()
            .any(|tag| tag.is_empty() || tag.chars().any(|c| c.is_control() || c == '\\' || c == '"'))
        {
            return Err(Box::new(error(400, "Query Error")));
        }
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        Ok(Params {
            offset,
            handle: params.get("handle").cloned(),
            live: params.get("live").is_some_and(|live| live == "true"),
            created_at: params.get("createdAt").cloned(),
            skip: params
                .get("skipColumns")
                .map(|skip| skip.split(',').map(|c| c.trim().to_owned()).collect())
                .unwrap_or_default(),
            tags,
            key: header("authorization").to_owned(),
            electric_version: !header("x-trigger-electric-version").is_empty(),
            current_api: header("x-trigger-api-version") == API_VERSION,
        })
    }

    /// The window's lower bound (unix ms) from `createdAt`: capped at a day, 24 h when absent,
    /// none when invalid (Trigger.dev's proxy then adds no bound at all).
    fn window(&self) -> Option<u64> {
        let duration = match &self.created_at {
            None => Duration::from_secs(24 * 3600),
            Some(text) => parse_duration(text)?,
        };
        let duration = duration.min(Duration::from_secs(24 * 3600));
        Some(now_ms().saturating_sub(duration.as_millis() as u64))
    }

    /// The row with only the shape's columns, or `None` when its tags do not match.
    fn columns(&self, row: &Map<String, Value>) -> Option<Map<String, Value>> {
        if !self.tags.is_empty() {
            let tags = row
                .get("runTags")
                .and_then(Value::as_str)
                .map(parse_array)
                .unwrap_or_default();
            if !self.tags.iter().all(|tag| tags.contains(tag)) {
                return None;
            }
        }
        Some(
            row.iter()
                .filter(|(column, _)| RESERVED.contains(&column.as_str()) || !self.skip.contains(*column))
                .map(|(column, value)| (column.clone(), value.clone()))
                .collect(),
        )
    }
}

/// A change message, or nothing when the row is not the request's.
fn change(operation: &str, value: Option<Map<String, Value>>) -> Value {
    let value = value.unwrap_or_default();
    let id = value.get("id").and_then(Value::as_str).unwrap_or_default().to_owned();
    json!({
        "key": format!("\"public\".\"TaskRun\"/\"{id}\""),
        "value": value,
        "headers": {"operation": operation, "relation": ["public", "TaskRun"]},
    })
}

fn entry_message(entry: &Entry, updates: Updates, request: &Params) -> Option<Value> {
    let message = match entry.operation {
        "delete" => change("delete", Some(entry.changed.clone())),
        "insert" => change("insert", Some(request.columns(&entry.full)?)),
        _ => {
            // Tags are matched on the whole row; the message carries what the mode says.
            request.columns(&entry.full)?;
            let source = match updates {
                Updates::Partial => &entry.changed,
                Updates::Full => &entry.full,
            };
            let value: Map<String, Value> = source
                .iter()
                .filter(|(column, _)| RESERVED.contains(&column.as_str()) || !request.skip.contains(*column))
                .map(|(c, v)| (c.clone(), v.clone()))
                .collect();
            // A change only in skipped columns is no change of this shape.
            if value.len() <= 1 {
                return None;
            }
            change("update", Some(value))
        }
    };
    let mut message = message;
    message["headers"]["lsn"] = json!(entry.seq.to_string());
    message["headers"]["op_position"] = json!(0);
    message["headers"]["txids"] = json!([entry.seq]);
    Some(message)
}

fn up_to_date() -> Value {
    json!({"headers": {"control": "up-to-date", "global_last_seen_lsn": "0"}})
}

fn error(status: u16, message: &str) -> Response {
    json_status(status, json!({"error": message}))
}

fn json_status(status: u16, body: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn handle_of(generation: u64) -> String {
    format!("{generation}-1787300000000")
}

/// `{seq}_{chunk}`: a log position (`chunk` 0) or `chunk` chunks into the snapshot taken at `seq`.
fn parse_offset(offset: &str) -> Option<(u64, usize)> {
    let (seq, chunk) = offset.split_once('_')?;
    Some((seq.parse().ok()?, chunk.parse().ok()?))
}

/// Trigger.dev's duration syntax, `^(\d+(w|d|hr|h|m|s))+$`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() || text.len() > 100 {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let (unit, seconds) = [
            ("w", 604_800),
            ("d", 86_400),
            ("hr", 3_600),
            ("h", 3_600),
            ("m", 60),
            ("s", 1),
        ]
        .into_iter()
        .find(|(unit, _)| rest.starts_with(unit))?;
        rest = &rest[unit.len()..];
        total += Duration::from_secs(number.checked_mul(seconds)?);
    }
    Some(total)
}

/// The `cm…` id of a run: deterministic, never the public one.
fn internal_id(run_id: &str) -> String {
    let digest = Sha256::digest(run_id.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cm{}", &hex[..23])
}

/// The database's status for a REST status (`dbStatus` in the run's JSON wins: a test that wants
/// `PAUSED` or `RETRYING_AFTER_FAILURE` says so).
pub fn db_status(run: &Value) -> String {
    if let Some(db) = run["dbStatus"].as_str() {
        return db.to_owned();
    }
    let status = run["status"].as_str().unwrap_or("PENDING");
    match status {
        "COMPLETED" => "COMPLETED_SUCCESSFULLY",
        "FAILED" => "COMPLETED_WITH_ERRORS",
        "WAITING" => "WAITING_TO_RESUME",
        "QUEUED" => "PENDING",
        "REATTEMPTING" => "RETRYING_AFTER_FAILURE",
        "FROZEN" => "PAUSED",
        "WAITING_FOR_DEPLOY" => "WAITING_FOR_DEPLOY",
        other => other,
    }
    .to_owned()
}

/// The row of the run `run` (its REST JSON), every default column.
fn row_values(run: &Value, created_ms: u64, updated_ms: u64, style: Timestamps) -> Map<String, Value> {
    let run_id = run["id"].as_str().unwrap_or_default();
    let time = |key: &str| -> Value {
        run[key]
            .as_str()
            .and_then(parse_ms)
            .map_or(Value::Null, |ms| json!(timestamp(ms, style)))
    };
    let json_text = |key: &str| -> Value {
        match &run[key] {
            Value::Null => Value::Null,
            value => json!(value.to_string()),
        }
    };
    let tags: Vec<String> = run["tags"]
        .as_array()
        .map(|tags| tags.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let updated = match run["updatedAt"].as_str().and_then(parse_ms) {
        Some(ms) => ms,
        None => updated_ms,
    };
    let mut row = Map::new();
    for column in COLUMNS {
        let value = match column {
            "id" => json!(internal_id(run_id)),
            "friendlyId" => json!(run_id),
            "taskIdentifier" => run["taskIdentifier"].clone(),
            "status" => json!(db_status(run)),
            "createdAt" => json!(timestamp(created_ms, style)),
            "updatedAt" => json!(timestamp(updated, style)),
            "startedAt" => time("startedAt"),
            "completedAt" => time("finishedAt"),
            "delayUntil" => time("delayedUntil"),
            "expiredAt" => time("expiredAt"),
            "number" => json!(run["number"].as_u64().unwrap_or(1).to_string()),
            "isTest" => json!(if run["isTest"].as_bool().unwrap_or(false) {
                "t"
            } else {
                "f"
            }),
            "usageDurationMs" => json!(run["durationMs"].as_u64().unwrap_or(0).to_string()),
            "costInCents" => json!(run["costInCents"].as_f64().unwrap_or(0.0).to_string()),
            "baseCostInCents" => json!(run["baseCostInCents"].as_f64().unwrap_or(0.0).to_string()),
            "payload" => json_text("payload"),
            "payloadType" => json!("application/json"),
            "metadata" => json_text("metadata"),
            "metadataType" => json!("application/json"),
            "output" => json_text("output"),
            "outputType" => json!("application/json"),
            "runTags" => array_literal(&tags, style),
            "error" => json_text("error"),
            "realtimeStreams" => json!("{}"),
            _ => Value::Null,
        };
        row.insert(column.to_owned(), value);
    }
    row
}

/// A Postgres array literal: Electric quotes only the elements that need it and sends `{}` for
/// none; the native backend quotes every element and sends null for none.
pub fn array_literal(tags: &[String], style: Timestamps) -> Value {
    if tags.is_empty() {
        return match style {
            Timestamps::Electric => json!("{}"),
            Timestamps::Native => Value::Null,
        };
    }
    let quote = |tag: &str| format!("\"{}\"", tag.replace('\\', "\\\\").replace('"', "\\\""));
    let elements: Vec<String> = tags
        .iter()
        .map(|tag| {
            let needs_quotes = tag.is_empty()
                || tag.eq_ignore_ascii_case("NULL")
                || tag
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '{' | '}' | ',' | '"' | '\\'));
            if needs_quotes || style == Timestamps::Native {
                quote(tag)
            } else {
                tag.clone()
            }
        })
        .collect();
    json!(format!("{{{}}}", elements.join(",")))
}

/// The elements of an array literal this module wrote (for the `tags` filter).
fn parse_array(literal: &str) -> Vec<String> {
    let inner = literal.trim_start_matches('{').trim_end_matches('}');
    let mut elements = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in inner.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => elements.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    if !inner.is_empty() {
        elements.push(current);
    }
    elements
}

/// A timestamp as the chosen backend writes it (UTC, no zone, millisecond precision).
pub fn timestamp(ms: u64, style: Timestamps) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    let (date, time) = (at.date(), at.time());
    let base = format!(
        "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        if style == Timestamps::Native { 'T' } else { ' ' },
        time.hour(),
        time.minute(),
        time.second()
    );
    let millis = ms % 1000;
    match style {
        Timestamps::Native => format!("{base}.{millis:03}"),
        Timestamps::Electric if millis == 0 => base,
        Timestamps::Electric => format!("{base}.{}", format!("{millis:03}").trim_end_matches('0')),
    }
}

fn parse_ms(text: &str) -> Option<u64> {
    let at = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// What `electric-schema` says of the columns (informational: the bridge reads text).
const SCHEMA: &str = r#"{"id":{"type":"text","pk_index":0},"taskIdentifier":{"type":"text"},"createdAt":{"type":"timestamp"},"updatedAt":{"type":"timestamp"},"startedAt":{"type":"timestamp"},"completedAt":{"type":"timestamp"},"friendlyId":{"type":"text"},"isTest":{"type":"bool"},"status":{"type":"TaskRunStatus"},"runTags":{"type":"text","dims":1}}"#;
