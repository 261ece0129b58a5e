//! Realistic Trigger.dev runs for the benchmarks: what the cloud store sends for a busy task.
//!
//! A root span, one attempt under it, and a tree of child spans (HTTP calls, database queries,
//! `triggerAndWait`s, SDK operations) with log records under them: about 70 % spans and 30 %
//! logs, span events (exceptions, `trigger.dev/start`) on about 10 % of the elements, startTimes as
//! millisecond-precise decimal strings of ns, the cloud's styles and `kind: "UNSPECIFIED"`.
//! Deterministic: the same seed gives the same bytes.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

pub const BASE_NS: u64 = 1_758_630_768_120_000_000;

/// Span names and their style icon (every span's variant is `primary`).
const SPAN_MESSAGES: &[(&str, &str)] = &[
    ("GET https://api.stripe.com/v1/payment_intents/{n}", "http"),
    ("POST https://inventory.internal/reserve", "http"),
    ("SELECT * FROM orders WHERE id = $1", "database"),
    ("UPDATE orders SET status = 'reserved' WHERE id = $1", "database"),
    ("send-confirmation-email.triggerAndWait()", "trigger"),
    ("openai.chat.completions.create", "openai"),
    ("wait.for()", "wait"),
    ("s3.PutObject orders/{n}.pdf", "aws"),
    ("render-invoice", "task"),
    ("redis GET cart:{n}", "redis"),
];

const LOG_MESSAGES: &[(&str, &str, &str)] = &[
    ("INFO", "Charging card for order {n}", "info"),
    ("INFO", "Reserved {n} items", "info"),
    ("DEBUG", "cache miss for cart:{n}", "debug"),
    ("LOG", "processing batch {n}", "log"),
    ("WARN", "Inventory service responded 503, retrying ({n}/3)", "warning"),
    ("ERROR", "Card declined for order {n}", "error"),
];

fn span_id(rng: &mut StdRng) -> String {
    format!("{:016x}", rng.random::<u64>() | 1)
}

fn fill(template: &str, rng: &mut StdRng) -> String {
    template.replace("{n}", &rng.random_range(1000..99_999).to_string())
}

fn iso(ns: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128).expect("in range");
    let ms = at.millisecond();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The `events` of a run with `count` elements (a JSON object, as the endpoint sends it).
pub fn run_events(run_id: &str, count: usize, seed: u64) -> Value {
    let mut rng = StdRng::seed_from_u64(seed);
    let root = span_id(&mut rng);
    let attempt = span_id(&mut rng);
    let total_ns = count as u64 * 2_000_000 + 50_000_000;
    let mut elements: Vec<Value> = Vec::with_capacity(count);
    elements.push(json!({
        "spanId": root, "parentId": null, "runId": run_id, "message": "process-order",
        "style": {"icon": "task", "variant": "primary"},
        "startTime": BASE_NS.to_string(), "duration": total_ns + 10_000_000,
        "isError": false, "isPartial": false, "isCancelled": false, "level": "TRACE",
        "kind": "UNSPECIFIED", "attemptNumber": null,
        "events": [{"name": "trigger.dev/start", "time": iso(BASE_NS),
                    "properties": {"runId": run_id, "taskIdentifier": "process-order"}}]
    }));
    if count > 1 {
        elements.push(json!({
            "spanId": attempt, "parentId": root, "runId": run_id, "message": "Attempt 1",
            "style": {"icon": "attempt", "variant": "primary"},
            "startTime": (BASE_NS + 5_000_000).to_string(), "duration": total_ns,
            "isError": false, "isPartial": false, "isCancelled": false, "level": "TRACE",
            "kind": "UNSPECIFIED", "attemptNumber": 1, "events": []
        }));
    }
    // Recent spans, so the tree has depth: children hang under the attempt or a recent span.
    let mut open: Vec<String> = vec![attempt.clone()];
    let mut clock = BASE_NS + 10_000_000;
    while elements.len() < count {
        clock += rng.random_range(0..4) * 1_000_000;
        let parent = open[rng.random_range(0..open.len())].clone();
        let id = span_id(&mut rng);
        if rng.random_bool(0.3) {
            let (level, template, icon) = LOG_MESSAGES[rng.random_range(0..LOG_MESSAGES.len())];
            elements.push(json!({
                "spanId": id, "parentId": parent, "runId": run_id, "message": fill(template, &mut rng),
                "style": {"icon": icon, "variant": if level == "ERROR" { "error" } else { "primary" }},
                "startTime": clock.to_string(), "duration": 0,
                "isError": level == "ERROR", "isPartial": false, "isCancelled": false, "level": level,
                "kind": "UNSPECIFIED", "attemptNumber": 1, "events": []
            }));
            continue;
        }
        let (template, icon) = SPAN_MESSAGES[rng.random_range(0..SPAN_MESSAGES.len())];
        let duration = rng.random_range(1..400) * 1_000_000;
        let is_error = rng.random_bool(0.02);
        // Span events on 10 % of all elements: one span in seven.
        let events = if rng.random_bool(1.0 / 7.0) {
            if is_error || rng.random_bool(0.5) {
                json!([{"name": "exception", "time": iso(clock + duration),
                "properties": {"exception": {
                    "type": "InventoryUnavailableError",
                    "message": fill("Inventory service returned 503 for SKU-{n} after 3 tries", &mut rng),
                    "stacktrace": "InventoryUnavailableError: Inventory service returned 503\n    at reserveInventory (file:///src/trigger/orders/inventory.ts:48:11)\n    at async run (file:///src/trigger/orders/process-order.ts:27:5)"
                }}}])
            } else {
                json!([{"name": "trigger.dev/start", "time": iso(clock),
                        "properties": {"runId": run_id, "attemptNumber": 1, "ok": true, "ratio": 0.5}}])
            }
        } else {
            json!([])
        };
        let accessory = (icon == "database").then(|| json!({"text": "postgres", "style": "codepath"}));
        let mut style = json!({"icon": icon, "variant": "primary"});
        if let Some(accessory) = accessory {
            style["accessory"] = accessory;
        }
        elements.push(json!({
            "spanId": id, "parentId": parent, "runId": run_id, "message": fill(template, &mut rng),
            "style": style,
            "startTime": clock.to_string(), "duration": duration,
            "isError": is_error, "isPartial": false, "isCancelled": false, "level": "TRACE",
            "kind": "UNSPECIFIED", "attemptNumber": 1, "events": events
        }));
        open.push(id);
        if open.len() > 24 {
            open.remove(1);
        }
    }
    json!({ "events": elements })
}

/// The body bytes of [`run_events`].
pub fn run_body(run_id: &str, count: usize, seed: u64) -> Vec<u8> {
    serde_json::to_vec(&run_events(run_id, count, seed)).expect("serialises")
}
