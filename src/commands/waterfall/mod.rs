//! The terminal waterfall of converted spans, printed by `inspect` and `demo`.
//!
//! [`render`] is a pure function: spans and options in, text out. No clock, no terminal
//! detection: the caller decides about colours ([`RenderOptions::color`]), so tests are exact.
//!
//! Spans come as [`SpanView`]s, made from OTLP spans ([`SpanView::from_otlp`]): the converter's
//! output and what a collector receives are the same messages, so both commands draw the same
//! picture of the same data.
//!
//! The picture: a header line (trace id, counts, duration), a time axis, then one line per span,
//! indented as a tree by parent (a span whose parent is not among the spans is drawn at the top
//! level with a note), with its duration and a bar scaled to the whole trace. Under each span,
//! its log records (the span events named `log`) and its other span events, with their offset
//! from the span's start. Errors are red, cancelled spans yellow, partial spans marked (and drawn
//! with a lighter bar, because their end is assumed).

mod text;
mod view;

use crate::wording::plural;
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use std::collections::HashMap;
use std::fmt::Write as _;
pub use text::human_duration;
use text::{cut, offset, one_line, paint, Paint};
use unicode_width::UnicodeWidthStr;
pub use view::{EventView, SpanView};

/// Columns of the bar of a span.
pub const BAR_WIDTH: usize = 40;
/// The name column grows with the tree up to this many columns (display width); longer names are cut.
const NAME_MAX: usize = 56;
const NAME_MIN: usize = 24;
/// Longest log message or event detail shown (the first line only).
const TEXT_MAX: usize = 160;
/// Longest error description shown next to a span.
const ERROR_MAX: usize = 80;

/// How to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// ANSI colours (only on a terminal, and not with `NO_COLOR`: the caller decides).
    pub color: bool,
    /// Columns of each span's bar.
    pub bar_width: usize,
    /// The run is still executing: partial spans are "running" (they end now), not "partial".
    pub live: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            bar_width: BAR_WIDTH,
            live: false,
        }
    }
}

/// Counts shown in the header, also useful to callers (the demo's summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Spans, not counting the ones made from log records.
    pub spans: usize,
    /// Log records: `log` events plus spans made from log records.
    pub logs: usize,
    /// Spans with status ERROR.
    pub errors: usize,
}

impl Tally {
    pub fn of(spans: &[SpanView]) -> Tally {
        let mut tally = Tally::default();
        for span in spans {
            if span.is_log() {
                tally.logs += 1;
            } else {
                tally.spans += 1;
            }
            tally.logs += span.events.iter().filter(|e| e.is_log()).count();
            tally.errors += usize::from(span.error.is_some());
        }
        tally
    }
}

/// One line of the tree.
struct Row {
    index: usize,
    /// Drawn before the span's name (`│  ├─ `).
    line_prefix: String,
    /// Drawn before its children's and its events' lines.
    child_prefix: String,
    has_children: bool,
    /// Why it is drawn at the top level although it has a parent.
    note: Option<String>,
}

/// The tree, depth first, children by start time. Iterative: a deep chain of spans cannot
/// overflow the stack. A parent cycle (only possible in malformed input) is cut where found.
fn tree(spans: &[SpanView]) -> Vec<Row> {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by(|&a, &b| (spans[a].start, &spans[a].span_id, a).cmp(&(spans[b].start, &spans[b].span_id, b)));
    let mut position: HashMap<&str, usize> = HashMap::new();
    for &i in &order {
        position.entry(spans[i].span_id.as_str()).or_insert(i);
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots: Vec<(usize, Option<String>)> = Vec::new();
    for &i in &order {
        match spans[i].parent_id.as_deref() {
            Some(parent) => match position.get(parent) {
                Some(&p) if p != i => children[p].push(i),
                Some(_) => roots.push((i, Some(format!("parent {parent} is itself")))),
                None => roots.push((i, Some(format!("parent {parent} is outside this run")))),
            },
            None => roots.push((i, None)),
        }
    }
    let mut rows = Vec::with_capacity(spans.len());
    let mut visited = vec![false; spans.len()];
    // Spans left over after the roots are in a parent cycle: drawn at the top level.
    let cycles = order.iter().map(|&i| {
        let parent = spans[i].parent_id.clone().unwrap_or_default();
        (i, Some(format!("parent {parent} is in a cycle")))
    });
    for (top, note) in roots.into_iter().chain(cycles) {
        if visited[top] {
            continue;
        }
        let mut stack = vec![(top, String::new(), String::new(), note)];
        while let Some((index, line_prefix, child_prefix, note)) = stack.pop() {
            if visited[index] {
                continue;
            }
            visited[index] = true;
            let kids: Vec<usize> = children[index].iter().copied().filter(|&k| !visited[k]).collect();
            for (n, &kid) in kids.iter().enumerate().rev() {
                let last = n + 1 == kids.len();
                stack.push((
                    kid,
                    format!("{child_prefix}{}", if last { "└─ " } else { "├─ " }),
                    format!("{child_prefix}{}", if last { "   " } else { "│  " }),
                    None,
                ));
            }
            rows.push(Row {
                index,
                line_prefix,
                child_prefix,
                has_children: !kids.is_empty(),
                note,
            });
        }
    }
    rows
}

/// The cells `[first, last)` of a bar for `[start, end]` within `[t0, t0 + total]`.
fn bar_cells(start: u64, end: u64, t0: u64, total: u64, width: usize) -> (usize, usize) {
    if total == 0 || width == 0 {
        return (0, width.min(1));
    }
    let (width128, total128) = (width as u128, u128::from(total));
    let first = (u128::from(start.saturating_sub(t0)) * width128 / total128) as usize;
    let last = (u128::from(end.saturating_sub(t0)) * width128).div_ceil(total128) as usize;
    let first = first.min(width - 1);
    (first, last.clamp(first + 1, width))
}

/// Draw `spans` (one trace, or one run of it) as a waterfall. See the module documentation.
pub fn render(spans: &[SpanView], options: &RenderOptions) -> String {
    let mut out = String::new();
    if spans.is_empty() {
        out.push_str("no spans\n");
        return out;
    }
    let color = options.color;
    let width = options.bar_width.max(1);
    let t0 = spans.iter().map(|s| s.start).min().unwrap_or(0);
    let t1 = spans.iter().map(|s| s.end.max(s.start)).max().unwrap_or(t0);
    let total = t1 - t0;

    let tally = Tally::of(spans);
    let mut traces: Vec<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    traces.sort_unstable();
    traces.dedup();
    let mut header = format!("trace {}", traces[0]);
    if traces.len() > 1 {
        let _ = write!(header, " (+{} more)", traces.len() - 1);
    }
    let _ = write!(
        header,
        " · {} · {} · {} · {}",
        plural(tally.spans as u64, "span"),
        plural(tally.logs as u64, "log"),
        plural(tally.errors as u64, "error"),
        human_duration(total)
    );
    if options.live {
        header.push_str(" so far (still running)");
    }
    let _ = writeln!(out, "{header}");

    let rows = tree(spans);
    let labels: Vec<String> = rows
        .iter()
        .map(|row| format!("{}{}", row.line_prefix, spans[row.index].name))
        .collect();
    let name_width = labels
        .iter()
        .map(|l| l.width())
        .max()
        .unwrap_or(0)
        .clamp(NAME_MIN, NAME_MAX);
    const DURATION_WIDTH: usize = 7;

    // The time axis: 0 over the first cell, the total over the last.
    let mut axis: Vec<char> = vec![' '; width + 2];
    axis[1] = '0';
    let end_label: Vec<char> = human_duration(total).chars().collect();
    if end_label.len() + 3 <= width {
        let from = width + 1 - end_label.len();
        axis[from..width + 1].copy_from_slice(&end_label);
    }
    let axis: String = axis.into_iter().collect();
    let _ = writeln!(
        out,
        "{}",
        format!("{:name_width$}  {:DURATION_WIDTH$}  {axis}", "", "").trim_end()
    );

    for (row, label) in rows.iter().zip(&labels) {
        let span = &spans[row.index];
        let tone = if span.error.is_some() {
            Some(Paint::Red)
        } else if span.cancelled {
            Some(Paint::Yellow)
        } else {
            None
        };
        let label = cut(label, name_width);
        let pad = name_width.saturating_sub(label.width());
        let (first, last) = bar_cells(span.start, span.end.max(span.start), t0, total, width);
        let fill = if span.partial { '▒' } else { '█' };
        let bar: String = (0..width)
            .map(|cell| if (first..last).contains(&cell) { fill } else { ' ' })
            .collect();
        let mut markers: Vec<String> = Vec::new();
        if let Some(description) = &span.error {
            markers.push(paint(&format!("✗ {}", one_line(description, ERROR_MAX)), tone, color));
        }
        if span.cancelled {
            markers.push(paint("cancelled", Some(Paint::Yellow), color));
        }
        if span.partial {
            let word = if options.live { "running" } else { "partial" };
            markers.push(paint(word, Some(Paint::Cyan), color));
        }
        if span.is_log() {
            markers.push(format!("log {}", span.level.as_deref().unwrap_or_default()));
        }
        if let Some(note) = &row.note {
            markers.push(paint(&format!("↖ {note}"), Some(Paint::Dim), color));
        }
        let line = format!(
            "{}{}  {:>DURATION_WIDTH$}  │{}│ {}",
            paint(&label, tone, color),
            " ".repeat(pad),
            human_duration(span.duration()),
            paint(&bar, tone, color),
            markers.join(" "),
        );
        let _ = writeln!(out, "{}", line.trim_end());

        let detail_prefix = format!("{}{}", row.child_prefix, if row.has_children { "│ " } else { "  " });
        let mut events: Vec<&EventView> = span.events.iter().collect();
        events.sort_by_key(|e| e.time);
        for event in events {
            let at = offset(span.start, event.time);
            let line = if event.is_log() {
                let level = event.attribute("log.severity").unwrap_or("LOG");
                let message = one_line(event.attribute("log.message").unwrap_or_default(), TEXT_MAX);
                let tone = match level {
                    "ERROR" | "FATAL" => Some(Paint::Red),
                    "WARN" | "WARNING" => Some(Paint::Yellow),
                    "DEBUG" => Some(Paint::Dim),
                    _ => None,
                };
                paint(&format!("· {level:<5} {at:>7}  {message}"), tone, color)
            } else {
                let detail = match event.attribute("exception.message") {
                    Some(message) => one_line(message, TEXT_MAX),
                    None => one_line(
                        &event
                            .attributes
                            .iter()
                            .filter(|(key, _)| !key.starts_with("trigger."))
                            .take(3)
                            .map(|(key, value)| format!("{key}={}", cut(value, 40)))
                            .collect::<Vec<_>>()
                            .join(" "),
                        TEXT_MAX,
                    ),
                };
                let tone = matches!(event.name.as_str(), "exception" | "attempt_failed").then_some(Paint::Red);
                paint(&format!("◆ {} {at}  {detail}", event.name), tone, color)
            };
            let _ = writeln!(out, "{}", format!("{detail_prefix}{line}").trim_end());
        }
    }
    out
}

/// Whether standard output gets colours: only on a terminal, and not when `NO_COLOR` is set to
/// anything non-empty (<https://no-color.org>). The one impure helper here; [`render`] is told.
pub fn stdout_wants_color() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// [`render`] for OTLP spans (the converter's, or what a collector received).
pub fn render_spans<'a>(spans: impl IntoIterator<Item = &'a OtlpSpan>, options: &RenderOptions) -> String {
    let views: Vec<SpanView> = spans.into_iter().map(SpanView::from_otlp).collect();
    render(&views, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;
    const T0: u64 = 1_758_630_768_000_000_000;

    fn span(id: &str, parent: Option<&str>, name: &str, start_ms: u64, end_ms: u64) -> SpanView {
        SpanView {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            span_id: id.into(),
            parent_id: parent.map(str::to_owned),
            name: name.into(),
            start: T0 + start_ms * MS,
            end: T0 + end_ms * MS,
            level: Some("TRACE".into()),
            ..SpanView::default()
        }
    }

    fn log(at_ms: u64, level: &str, message: &str) -> EventView {
        EventView {
            name: "log".into(),
            time: T0 + at_ms * MS,
            attributes: vec![
                ("log.message".into(), message.into()),
                ("log.severity".into(), level.into()),
            ],
        }
    }

    #[test]
    fn a_tree_with_bars_logs_events_and_markers() {
        let mut root = span("aaaaaaaaaaaaaaaa", None, "process-order", 0, 10_000);
        root.events.push(EventView {
            name: "attempt_failed".into(),
            time: T0 + 2_500 * MS,
            attributes: vec![("exception.message".into(), "Card declined".into())],
        });
        let mut attempt1 = span("bbbbbbbbbbbbbbbb", Some("aaaaaaaaaaaaaaaa"), "Attempt 1", 0, 2_500);
        attempt1.error = Some("Card declined".into());
        attempt1.events.push(log(100, "ERROR", "Failed to charge"));
        let mut attempt2 = span("cccccccccccccccc", Some("aaaaaaaaaaaaaaaa"), "Attempt 2", 5_000, 10_000);
        attempt2.events.push(log(5_500, "INFO", "Charged\nsecond line"));
        attempt2.events.push(EventView {
            name: "checkpoint".into(),
            time: T0 + 5_250 * MS,
            attributes: vec![("step".into(), "3".into()), ("trigger.span_id".into(), "x".into())],
        });
        let mut cancelled = span("dddddddddddddddd", Some("cccccccccccccccc"), "upload", 7_500, 10_000);
        cancelled.cancelled = true;
        cancelled.partial = true;
        let text = render(&[attempt2, cancelled, root, attempt1], &RenderOptions::default());
        let expected = "\
trace 0af7651916cd43dd8448eb211c80319c · 4 spans · 2 logs · 1 error · 10s
                                    0                                    10s
process-order                 10s  │████████████████████████████████████████│
│ ◆ attempt_failed +2.5s  Card declined
├─ Attempt 1                 2.5s  │██████████                              │ ✗ Card declined
│    · ERROR  +100ms  Failed to charge
└─ Attempt 2                   5s  │                    ████████████████████│
   │ ◆ checkpoint +250ms  step=3
   │ · INFO   +500ms  Charged …
   └─ upload                 2.5s  │                              ▒▒▒▒▒▒▒▒▒▒│ cancelled partial
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn orphans_are_top_level_and_noted_and_live_partials_are_running() {
        let mut child_root = span("1111111111111111", Some("ffffffffffffffff"), "send-email", 0, 1_000);
        child_root.partial = true;
        let child = span("2222222222222222", Some("1111111111111111"), "POST /emails", 100, 600);
        let options = RenderOptions {
            live: true,
            bar_width: 10,
            ..RenderOptions::default()
        };
        let text = render(&[child, child_root], &options);
        assert!(
            text.starts_with(
                "trace 0af7651916cd43dd8448eb211c80319c · 2 spans · 0 logs · 0 errors · 1s so far (still running)\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("send-email                     1s  │▒▒▒▒▒▒▒▒▒▒│ running ↖ parent ffffffffffffffff is outside this run\n"),
            "{text}"
        );
        assert!(
            text.contains("└─ POST /emails             500ms  │ █████    │\n"),
            "{text}"
        );
    }

    #[test]
    fn colours_only_when_asked() {
        let mut failed = span("aaaaaaaaaaaaaaaa", None, "task", 0, 10);
        failed.error = Some("boom".into());
        let mut cancelled = span("bbbbbbbbbbbbbbbb", Some("aaaaaaaaaaaaaaaa"), "child", 0, 5);
        cancelled.cancelled = true;
        let spans = [failed, cancelled];
        let plain = render(&spans, &RenderOptions::default());
        assert!(!plain.contains('\x1b'));
        let colored = render(
            &spans,
            &RenderOptions {
                color: true,
                ..RenderOptions::default()
            },
        );
        assert!(colored.contains("\x1b[31mtask\x1b[0m"), "{colored}");
        assert!(colored.contains("\x1b[31m✗ boom\x1b[0m"), "{colored}");
        assert!(colored.contains("\x1b[33m└─ child\x1b[0m"), "{colored}");
        assert!(colored.contains("\x1b[33mcancelled\x1b[0m"), "{colored}");
    }

    #[test]
    fn cycles_and_self_parents_do_not_hang_or_lose_spans() {
        let a = span("aaaaaaaaaaaaaaaa", Some("bbbbbbbbbbbbbbbb"), "a", 0, 10);
        let b = span("bbbbbbbbbbbbbbbb", Some("aaaaaaaaaaaaaaaa"), "b", 1, 10);
        let c = span("cccccccccccccccc", Some("cccccccccccccccc"), "c", 2, 10);
        let text = render(&[a, b, c], &RenderOptions::default());
        for name in ["a ", "└─ b", "c "] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name:?} in\n{text}");
        }
        assert!(text.contains("is in a cycle"));
        assert!(text.contains("is itself"));
    }

    #[test]
    fn zero_length_traces_and_long_names() {
        let long = "x".repeat(100);
        let text = render(
            &[span("aaaaaaaaaaaaaaaa", None, &long, 0, 0)],
            &RenderOptions::default(),
        );
        let line = text.lines().nth(2).unwrap();
        assert!(line.starts_with(&format!("{}…", "x".repeat(NAME_MAX - 1))), "{line}");
        assert!(line.contains("0ns  │█"), "{line}");
        assert_eq!(render(&[], &RenderOptions::default()), "no spans\n");
    }

    #[test]
    fn wide_characters_keep_the_columns_aligned() {
        let root = span("aaaaaaaaaaaaaaaa", None, "注文を処理する", 0, 10_000);
        let rocket = span("bbbbbbbbbbbbbbbb", Some("aaaaaaaaaaaaaaaa"), "🚀 launch", 0, 5_000);
        // "└─ x" and 40 two-column characters: cut to NAME_MAX, where the 26th wide character
        // does not fit in the one column left before the `…` (a space pads it).
        let long = span(
            "cccccccccccccccc",
            Some("aaaaaaaaaaaaaaaa"),
            &format!("x{}", "長".repeat(40)),
            5_000,
            10_000,
        );
        let plain = span("dddddddddddddddd", Some("aaaaaaaaaaaaaaaa"), "plain", 2_000, 3_000);
        let text = render(&[root, rocket, long, plain], &RenderOptions::default());
        let span_lines: Vec<&str> = text.lines().skip(2).collect();
        assert_eq!(span_lines.len(), 4, "\n{text}");
        let columns: Vec<(usize, usize)> = span_lines
            .iter()
            .map(|line| {
                let (left, right) = (line.find('│').unwrap(), line.rfind('│').unwrap());
                (line[..left].width(), line[..right].width())
            })
            .collect();
        assert!(
            columns.iter().all(|c| *c == columns[0]),
            "bars start and end in the same column: {columns:?}\n{text}"
        );
        assert_eq!(columns[0].0, NAME_MAX + 2 + 7 + 2, "\n{text}");
        assert!(text.contains(&format!("└─ x{}…   ", "長".repeat(25))), "\n{text}");
    }

    #[test]
    fn log_spans_count_as_logs() {
        let mut log_span = span("aaaaaaaaaaaaaaaa", None, "Order done", 0, 0);
        log_span.level = Some("INFO".into());
        let tally = Tally::of(&[log_span.clone(), span("bbbbbbbbbbbbbbbb", None, "x", 0, 1)]);
        assert_eq!(
            tally,
            Tally {
                spans: 1,
                logs: 1,
                errors: 0
            }
        );
        assert!(render(&[log_span], &RenderOptions::default()).contains("│ log INFO"));
    }
}
