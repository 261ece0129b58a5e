//! The Electric shape protocol's client state: handle, offset, cursor, up-to-date, and the rows
//! merged by internal id. Pure: the subscriber hands it each answer and asks it for the next query.
//!
//! As `@electric-sql/client` 1.0.14 and Trigger.dev's `ReadableShapeStream` do it (notes §3, §4):
//! `offset=-1` first; then `offset` and `handle` from the last answer until a body's last message
//! is `up-to-date`; then `live=true&cursor=…` too. An insert sets a row, an update merges its
//! columns into the row kept (Electric sends only the changed ones and the key), a delete forgets
//! it. Changed rows are handed out once per batch that ends in `up-to-date`, in their final state.
//! A `must-refetch` (in a body, or a 409) clears everything and starts again from `offset=-1`
//! *without* the handle: Trigger.dev's proxy pins the created-at window by handle, and a new
//! handle it has not seen gets no window at all (notes §1.4).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};
use thiserror::Error;

/// A row as the stream sends it: column → value (text as Postgres prints it, or null).
pub type RawRow = Map<String, Value>;

/// An answer the protocol cannot use.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("the answer has no {0} header")]
    MissingHeader(&'static str),
    #[error("the body is not a JSON array of messages: {0}")]
    NotMessages(String),
    #[error("message {index} is not a change or control message: {reason}")]
    BadMessage { index: usize, reason: String },
}

/// The Electric headers of one answer ([`crate::trigger::client::RealtimeHeaders`], as far as the
/// protocol needs them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    pub handle: Option<String>,
    pub offset: Option<String>,
    pub cursor: Option<String>,
}

/// What one 2xx answer did to the shape.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// More to fetch before the shape is up to date (a snapshot in chunks, a catch-up).
    Pending,
    /// The body ended in `up-to-date`: the rows changed since the last batch, each once, in the
    /// order they first changed; `snapshot`: every row held (the first batch, or the first after
    /// a must-refetch).
    UpToDate { rows: Vec<RawRow>, snapshot: bool },
    /// A `must-refetch` control message: the shape was reset (as [`Shape::must_refetch`]).
    MustRefetch,
}

/// The client side of one shape.
#[derive(Debug, Clone)]
pub struct Shape {
    handle: Option<String>,
    offset: String,
    cursor: Option<String>,
    up_to_date: bool,
    rows: HashMap<String, RawRow>,
    /// Keys changed since the last batch handed out, in first-change order (`changed_set` dedupes).
    changed: Vec<String>,
    changed_set: HashSet<String>,
    /// The next batch is a snapshot.
    snapshot: bool,
}

impl Default for Shape {
    fn default() -> Self {
        Shape::new()
    }
}

/// Electric's "from the beginning" offset.
pub const INITIAL_OFFSET: &str = "-1";

impl Shape {
    pub fn new() -> Shape {
        Shape {
            handle: None,
            offset: INITIAL_OFFSET.to_owned(),
            cursor: None,
            up_to_date: false,
            rows: HashMap::new(),
            changed: Vec::new(),
            changed_set: HashSet::new(),
            snapshot: true,
        }
    }

    /// The protocol's query parameters for the next request, in a fixed order: `offset`, then
    /// `handle` (never with `offset=-1`), then `live=true` and `cursor` once up to date.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        let mut query = vec![("offset", self.offset.clone())];
        if self.offset != INITIAL_OFFSET {
            if let Some(handle) = &self.handle {
                query.push(("handle", handle.clone()));
            }
            if self.up_to_date {
                query.push(("live", "true".to_owned()));
                if let Some(cursor) = &self.cursor {
                    query.push(("cursor", cursor.clone()));
                }
            }
        }
        query
    }

    pub fn handle(&self) -> Option<&str> {
        self.handle.as_deref()
    }

    pub fn offset(&self) -> &str {
        &self.offset
    }

    /// True once a body ended in `up-to-date` (and until a must-refetch): requests are live.
    pub fn is_up_to_date(&self) -> bool {
        self.up_to_date
    }

    /// How many rows are held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row held under `key` (its internal id).
    pub fn row(&self, key: &str) -> Option<&RawRow> {
        self.rows.get(key)
    }

    /// Forget everything and start over from `offset=-1` without a handle; the next batch is a
    /// snapshot. For a 409, a `must-refetch` message, or an answer that makes the offset useless.
    pub fn must_refetch(&mut self) {
        *self = Shape::new();
    }

    /// Forget the rows `keep` refuses (rows the caller no longer needs to merge updates into).
    pub fn retain(&mut self, mut keep: impl FnMut(&RawRow) -> bool) {
        self.rows.retain(|_, row| keep(row));
    }

    /// Applies one 2xx answer. An empty body is no message at all (Electric's client reads it as
    /// `[]`): nothing changes but what the headers say. A body that is not the protocol's leaves
    /// the shape as it was, so the same request can be sent again.
    pub fn apply(&mut self, headers: &Headers, body: &[u8]) -> Result<Applied, ShapeError> {
        let messages = parse_messages(body)?;
        if messages.iter().any(|m| matches!(m, Message::MustRefetch)) {
            // Whatever else the body holds belongs to the shape being replaced.
            self.must_refetch();
            return Ok(Applied::MustRefetch);
        }
        // Every 2xx carries both (the client throws `MissingHeadersError` otherwise); without
        // them the next request could not continue this shape.
        let handle = headers
            .handle
            .clone()
            .or_else(|| self.handle.clone())
            .ok_or(ShapeError::MissingHeader("electric-handle"))?;
        let offset = match &headers.offset {
            Some(offset) => offset.clone(),
            None if messages.is_empty() && self.offset != INITIAL_OFFSET => self.offset.clone(),
            None => return Err(ShapeError::MissingHeader("electric-offset")),
        };
        self.handle = Some(handle);
        self.offset = offset;
        if let Some(cursor) = &headers.cursor {
            self.cursor = Some(cursor.clone());
        }
        let up_to_date = matches!(messages.last(), Some(Message::UpToDate));
        for message in messages {
            match message {
                Message::Insert { key, value } => {
                    self.rows.insert(key.clone(), value);
                    self.mark(key);
                }
                Message::Update { key, value } => {
                    self.rows.entry(key.clone()).or_default().extend(value);
                    self.mark(key);
                }
                Message::Delete { key } => {
                    // Out of the shape (deleted, or moved out of the WHERE clause): not an end.
                    self.rows.remove(&key);
                    if self.changed_set.remove(&key) {
                        self.changed.retain(|changed| *changed != key);
                    }
                }
                Message::UpToDate | Message::MustRefetch | Message::Other => {}
            }
        }
        if !up_to_date {
            return Ok(Applied::Pending);
        }
        self.up_to_date = true;
        let snapshot = std::mem::take(&mut self.snapshot);
        let changed = std::mem::take(&mut self.changed);
        self.changed_set.clear();
        // After a reset every row held came in since, so a snapshot's changed rows are all of them.
        let rows = changed.iter().filter_map(|key| self.rows.get(key).cloned()).collect();
        Ok(Applied::UpToDate { rows, snapshot })
    }

    fn mark(&mut self, key: String) {
        if self.changed_set.insert(key.clone()) {
            self.changed.push(key);
        }
    }
}

/// One message of a body.
#[derive(Debug, Clone, PartialEq)]
enum Message {
    Insert {
        key: String,
        value: RawRow,
    },
    Update {
        key: String,
        value: RawRow,
    },
    Delete {
        key: String,
    },
    UpToDate,
    MustRefetch,
    /// A control message or operation this client has no use for (`snapshot-end`, …).
    Other,
}

fn parse_messages(body: &[u8]) -> Result<Vec<Message>, ShapeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let items: Vec<Value> = serde_json::from_slice(body).map_err(|err| ShapeError::NotMessages(err.to_string()))?;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| parse_message(item).map_err(|reason| ShapeError::BadMessage { index, reason }))
        .collect()
}

fn parse_message(item: Value) -> Result<Message, String> {
    let Value::Object(mut item) = item else {
        return Err("not an object".to_owned());
    };
    let headers = match item.remove("headers") {
        Some(Value::Object(headers)) => headers,
        _ => return Err("no `headers` object".to_owned()),
    };
    if let Some(control) = headers.get("control") {
        return Ok(match control.as_str() {
            Some("up-to-date") => Message::UpToDate,
            Some("must-refetch") => Message::MustRefetch,
            _ => Message::Other,
        });
    }
    let Some(operation) = headers.get("operation").and_then(Value::as_str) else {
        return Err("neither `control` nor `operation` in its headers".to_owned());
    };
    let value = match item.remove("value") {
        Some(Value::Object(value)) => value,
        Some(Value::Null) | None => Map::new(),
        Some(_) => return Err("`value` is not an object".to_owned()),
    };
    // The message key is `"public"."TaskRun"/"<id>"`; the row's `id` is the same internal id and
    // is the simpler one to key by. Either identifies the row: the key when there is no `id`.
    let key = value
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| item.get("key").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| "a change without `key` or `value.id`".to_owned())?;
    Ok(match operation {
        "insert" => Message::Insert { key, value },
        "update" => Message::Update { key, value },
        "delete" => Message::Delete { key },
        _ => Message::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(handle: &str, offset: &str) -> Headers {
        Headers {
            handle: Some(handle.to_owned()),
            offset: Some(offset.to_owned()),
            cursor: None,
        }
    }

    fn live(handle: &str, offset: &str, cursor: &str) -> Headers {
        Headers {
            cursor: Some(cursor.to_owned()),
            ..headers(handle, offset)
        }
    }

    fn body(messages: Value) -> Vec<u8> {
        serde_json::to_vec(&messages).unwrap()
    }

    fn insert(id: &str, status: &str) -> Value {
        json!({"key": format!("\"public\".\"TaskRun\"/\"{id}\""),
               "value": {"id": id, "friendlyId": format!("run_{id}"), "status": status, "taskIdentifier": "t"},
               "headers": {"operation": "insert", "relation": ["public", "TaskRun"]}})
    }

    fn update(id: &str, columns: Value) -> Value {
        let mut value = columns;
        value["id"] = json!(id);
        json!({"key": format!("\"public\".\"TaskRun\"/\"{id}\""), "value": value,
               "headers": {"operation": "update", "lsn": "1", "op_position": 0, "txids": [1]}})
    }

    fn delete(id: &str) -> Value {
        json!({"key": format!("\"public\".\"TaskRun\"/\"{id}\""), "value": {"id": id},
               "headers": {"operation": "delete"}})
    }

    /// A shape whose snapshot (handle `h`, offset `1_0`) held run `a`, executing.
    fn synced_with_a() -> Shape {
        let mut shape = Shape::new();
        shape
            .apply(
                &headers("h", "1_0"),
                &body(json!([insert("a", "EXECUTING"), up_to_date()])),
            )
            .unwrap();
        shape
    }

    fn up_to_date() -> Value {
        json!({"headers": {"control": "up-to-date", "global_last_seen_lsn": "42"}})
    }

    fn ids(applied: &Applied) -> Vec<String> {
        match applied {
            Applied::UpToDate { rows, .. } => rows.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect(),
            other => panic!("not up to date: {other:?}"),
        }
    }

    fn query(shape: &Shape) -> String {
        shape
            .query()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }

    #[test]
    fn snapshot_then_catch_up_then_live() {
        let mut shape = Shape::new();
        assert_eq!(query(&shape), "offset=-1");
        // A snapshot in two chunks: the first does not end in up-to-date.
        let first = shape
            .apply(&headers("h1", "0_1"), &body(json!([insert("a", "EXECUTING")])))
            .unwrap();
        assert_eq!(first, Applied::Pending);
        assert_eq!(query(&shape), "offset=0_1&handle=h1");
        let second = shape
            .apply(
                &headers("h1", "0_2"),
                &body(json!([insert("b", "PENDING"), up_to_date()])),
            )
            .unwrap();
        assert_eq!(ids(&second), ["a", "b"]);
        assert!(matches!(second, Applied::UpToDate { snapshot: true, .. }));
        assert_eq!(query(&shape), "offset=0_2&handle=h1&live=true");
        // A live answer: cursor echoed from now on; only the changed row comes out.
        let change = shape
            .apply(
                &live("h1", "5_0", "c-9"),
                &body(json!([update("b", json!({"status": "EXECUTING"})), up_to_date()])),
            )
            .unwrap();
        assert_eq!(ids(&change), ["b"]);
        assert!(matches!(change, Applied::UpToDate { snapshot: false, .. }));
        assert_eq!(query(&shape), "offset=5_0&handle=h1&live=true&cursor=c-9");
        // The live hold expired: a bare up-to-date, nothing changed.
        let idle = shape
            .apply(&live("h1", "5_0", "c-10"), &body(json!([up_to_date()])))
            .unwrap();
        assert_eq!(
            idle,
            Applied::UpToDate {
                rows: vec![],
                snapshot: false
            }
        );
        assert_eq!(query(&shape), "offset=5_0&handle=h1&live=true&cursor=c-10");
    }

    #[test]
    fn a_partial_update_is_merged_into_the_row_from_its_insert() {
        let mut shape = synced_with_a();
        let applied = shape
            .apply(
                &live("h", "2_0", "c"),
                &body(json!([
                    update("a", json!({"status": "WAITING_TO_RESUME"})),
                    update(
                        "a",
                        json!({"status": "COMPLETED_SUCCESSFULLY", "completedAt": "2026-08-21 10:15:30.1"})
                    ),
                    up_to_date()
                ])),
            )
            .unwrap();
        let Applied::UpToDate { rows, snapshot: false } = applied else {
            panic!("{applied:?}")
        };
        // One entry for the run, in its final state, with the columns the updates left out.
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["friendlyId"], "run_a");
        assert_eq!(rows[0]["taskIdentifier"], "t");
        assert_eq!(rows[0]["status"], "COMPLETED_SUCCESSFULLY");
        assert_eq!(rows[0]["completedAt"], "2026-08-21 10:15:30.1");
    }

    #[test]
    fn a_full_row_update_replaces_the_values() {
        let mut shape = synced_with_a();
        let mut full = insert("a", "CANCELED");
        full["headers"]["operation"] = json!("update");
        let applied = shape
            .apply(&live("h", "2_0", "c"), &body(json!([full, up_to_date()])))
            .unwrap();
        let Applied::UpToDate { rows, .. } = applied else {
            panic!()
        };
        assert_eq!(rows[0]["status"], "CANCELED");
    }

    #[test]
    fn an_update_for_an_unknown_row_keeps_what_it_has() {
        let mut shape = Shape::new();
        shape.apply(&headers("h", "1_0"), &body(json!([up_to_date()]))).unwrap();
        let applied = shape
            .apply(
                &live("h", "2_0", "c"),
                &body(json!([update("x", json!({"status": "EXECUTING"})), up_to_date()])),
            )
            .unwrap();
        let Applied::UpToDate { rows, .. } = applied else {
            panic!()
        };
        assert_eq!(rows.len(), 1);
        assert!(rows[0].get("friendlyId").is_none());
    }

    #[test]
    fn a_delete_forgets_the_row_and_is_not_handed_out() {
        let mut shape = Shape::new();
        shape
            .apply(
                &headers("h", "1_0"),
                &body(json!([
                    insert("a", "EXECUTING"),
                    insert("b", "EXECUTING"),
                    up_to_date()
                ])),
            )
            .unwrap();
        assert_eq!(shape.len(), 2);
        let applied = shape
            .apply(&live("h", "2_0", "c"), &body(json!([delete("a"), up_to_date()])))
            .unwrap();
        assert_eq!(ids(&applied), Vec::<String>::new());
        assert!(shape.row("a").is_none() && shape.row("b").is_some());
        // Changed and deleted in one batch: not handed out either.
        let applied = shape
            .apply(
                &live("h", "3_0", "c"),
                &body(json!([
                    update("b", json!({"status": "PAUSED"})),
                    delete("b"),
                    up_to_date()
                ])),
            )
            .unwrap();
        assert_eq!(ids(&applied), Vec::<String>::new());
        assert!(shape.is_empty());
    }

    #[test]
    fn must_refetch_starts_over_without_the_handle_and_the_next_batch_is_a_snapshot() {
        let mut shape = Shape::new();
        shape
            .apply(
                &headers("h1", "1_0"),
                &body(json!([insert("a", "EXECUTING"), up_to_date()])),
            )
            .unwrap();
        shape
            .apply(&live("h1", "2_0", "c"), &body(json!([up_to_date()])))
            .unwrap();
        assert!(shape.is_up_to_date());
        // In a 200's body: everything after it is ignored.
        let applied = shape
            .apply(
                &live("h1", "3_0", "c"),
                &body(json!([{"headers": {"control": "must-refetch"}}, insert("z", "EXECUTING")])),
            )
            .unwrap();
        assert_eq!(applied, Applied::MustRefetch);
        assert_eq!(query(&shape), "offset=-1");
        assert!(shape.is_empty() && shape.handle().is_none() && !shape.is_up_to_date());
        let again = shape
            .apply(
                &headers("h2", "9_0"),
                &body(json!([insert("a", "COMPLETED_SUCCESSFULLY"), up_to_date()])),
            )
            .unwrap();
        assert!(matches!(again, Applied::UpToDate { snapshot: true, .. }));
        assert_eq!(ids(&again), ["a"]);
        assert_eq!(query(&shape), "offset=9_0&handle=h2&live=true");

        // As for a 409: the caller resets.
        shape.must_refetch();
        assert_eq!(query(&shape), "offset=-1");
    }

    #[test]
    fn empty_bodies_and_unknown_messages_change_nothing() {
        let mut shape = synced_with_a();
        for empty in [&b""[..], b"  ", b"[]"] {
            assert_eq!(shape.apply(&Headers::default(), empty).unwrap(), Applied::Pending);
            assert_eq!(query(&shape), "offset=1_0&handle=h&live=true");
        }
        let applied = shape
            .apply(
                &live("h", "2_0", "c"),
                &body(json!([{"headers": {"control": "snapshot-end"}}, {"key": "k", "headers": {"operation": "truncate"}}, up_to_date()])),
            )
            .unwrap();
        assert_eq!(ids(&applied), Vec::<String>::new());
        assert_eq!(shape.len(), 1);
    }

    #[test]
    fn what_is_not_the_protocol_is_refused_and_leaves_the_shape_as_it_was() {
        let mut shape = Shape::new();
        assert_eq!(
            shape.apply(&Headers::default(), &body(json!([up_to_date()]))),
            Err(ShapeError::MissingHeader("electric-handle"))
        );
        let no_offset = Headers {
            handle: Some("h".into()),
            ..Headers::default()
        };
        assert_eq!(
            shape.apply(&no_offset, &body(json!([up_to_date()]))),
            Err(ShapeError::MissingHeader("electric-offset"))
        );
        assert!(matches!(
            shape.apply(&headers("h", "1"), b"<html>"),
            Err(ShapeError::NotMessages(_))
        ));
        assert!(matches!(
            shape.apply(&headers("h", "1"), br#"{"error":"x"}"#),
            Err(ShapeError::NotMessages(_))
        ));
        assert!(matches!(
            shape.apply(&headers("h", "1"), br#"[{"value":{}}]"#),
            Err(ShapeError::BadMessage { index: 0, .. })
        ));
        assert!(matches!(
            shape.apply(
                &headers("h", "1"),
                br#"[{"headers":{"operation":"insert"},"value":{}}]"#
            ),
            Err(ShapeError::BadMessage { index: 0, .. })
        ));
        assert_eq!(query(&shape), "offset=-1");
    }

    #[test]
    fn the_message_key_identifies_a_row_without_an_id() {
        let mut shape = Shape::new();
        let message = json!({"key": "\"public\".\"TaskRun\"/\"k\"", "value": {"status": "PENDING"},
                             "headers": {"operation": "insert"}});
        shape
            .apply(&headers("h", "1_0"), &body(json!([message, up_to_date()])))
            .unwrap();
        assert!(shape.row("\"public\".\"TaskRun\"/\"k\"").is_some());
    }

    #[test]
    fn retain_forgets_rows() {
        let mut shape = Shape::new();
        shape
            .apply(
                &headers("h", "1_0"),
                &body(json!([insert("a", "EXECUTING"), insert("b", "CANCELED"), up_to_date()])),
            )
            .unwrap();
        shape.retain(|row| row["status"] != "CANCELED");
        assert!(shape.row("a").is_some() && shape.row("b").is_none());
    }
}
