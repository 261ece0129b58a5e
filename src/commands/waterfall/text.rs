//! Small text helpers of the waterfall: human durations and offsets, colours, cutting long text.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// A duration in human units with three significant digits: `850ns`, `1.23µs`, `456ms`,
/// `1.5s`, `10.2s`, `2m05s`, `1h02m`.
pub fn human_duration(nanos: u64) -> String {
    const MICRO: u64 = 1_000;
    const SECOND: u64 = 1_000_000_000;
    if nanos < MICRO {
        return format!("{nanos}ns");
    }
    for (unit, name, below) in [(MICRO, "µs", 1000), (1_000_000, "ms", 1000), (SECOND, "s", 60)] {
        if let Some(text) = three_digits(nanos, unit, below) {
            return format!("{text}{name}");
        }
    }
    let seconds = (u128::from(nanos) + u128::from(SECOND / 2)) / u128::from(SECOND);
    if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        let minutes = (seconds + 30) / 60;
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    }
}

/// `nanos` in `unit`, rounded to three significant digits, when the result is below `below`.
pub(super) fn three_digits(nanos: u64, unit: u64, below: u128) -> Option<String> {
    let (nanos, unit) = (u128::from(nanos), u128::from(unit));
    for decimals in [2u32, 1, 0] {
        let scale = 10u128.pow(decimals);
        let scaled = (nanos * scale + unit / 2) / unit;
        if scaled < 1000 {
            if scaled >= below * scale {
                return None;
            }
            let whole = scaled / scale;
            let fraction = scaled % scale;
            let mut text = if decimals == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{fraction:0width$}", width = decimals as usize)
            };
            if text.contains('.') {
                while text.ends_with('0') {
                    text.pop();
                }
                if text.ends_with('.') {
                    text.pop();
                }
            }
            return Some(text);
        }
    }
    None
}

/// An offset such as `+118ms` or `-3ms`.
pub(super) fn offset(from: u64, to: u64) -> String {
    if to >= from {
        format!("+{}", human_duration(to - from))
    } else {
        format!("-{}", human_duration(from - to))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Paint {
    Red,
    Yellow,
    Cyan,
    Dim,
}

pub(super) fn paint(text: &str, paint: Option<Paint>, color: bool) -> String {
    match (paint, color) {
        (Some(paint), true) if !text.is_empty() => {
            let code = match paint {
                Paint::Red => "31",
                Paint::Yellow => "33",
                Paint::Cyan => "36",
                Paint::Dim => "2",
            };
            format!("\x1b[{code}m{text}\x1b[0m")
        }
        _ => text.to_owned(),
    }
}

/// At most `max` columns of a terminal (display width: a CJK character or an emoji takes two),
/// the last one `…` when cut.
pub(super) fn cut(text: &str, max: usize) -> String {
    if text.width() <= max {
        return text.to_owned();
    }
    let room = max.saturating_sub(1);
    let (mut end, mut used) = (0, 0);
    for (at, c) in text.char_indices() {
        let columns = c.width().unwrap_or(0);
        if used + columns > room {
            break;
        }
        used += columns;
        end = at + c.len_utf8();
    }
    // A string is not always as wide as the sum of its characters (emoji sequences, control
    // characters): drop characters until the kept part fits.
    let mut kept = &text[..end];
    while kept.width() > room {
        let last = kept.chars().next_back().map_or(0, char::len_utf8);
        kept = &kept[..kept.len() - last];
    }
    format!("{kept}…")
}

/// The first line of `text`, cut to `max`; `…` marks anything left out.
pub(super) fn one_line(text: &str, max: usize) -> String {
    let mut lines = text.trim_end().lines();
    let first = lines.next().unwrap_or_default();
    if lines.next().is_some() {
        cut(&format!("{first} …"), max)
    } else {
        cut(first, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn cut_counts_columns_not_characters() {
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdefg", 6), "abcde…");
        assert_eq!(cut("abc", 0), "…");
        // Two columns each: "日本語" is 6 wide, so 5 columns keep two of them and the `…`.
        assert_eq!(cut("日本語テキスト", 6), "日本…");
        assert_eq!(cut("日本語", 6), "日本語");
        assert_eq!(cut("ab日本", 4), "ab…");
        assert_eq!(cut("🚀🚀🚀", 4), "🚀…");
        for (text, max) in [("日本語テキスト", 7), ("a🚀b🚀c🚀", 5), ("👩‍👩‍👧‍👦 family", 3)]
        {
            assert!(cut(text, max).width() <= max, "{text:?} cut to {max}");
        }
    }

    #[test]
    fn durations_are_human() {
        let cases = [
            (0, "0ns"),
            (999, "999ns"),
            (1_000, "1µs"),
            (1_234, "1.23µs"),
            (12_345, "12.3µs"),
            (999_499, "999µs"),
            (999_600, "1ms"),
            (456 * MS, "456ms"),
            (1_230 * MS, "1.23s"),
            (1_500 * MS, "1.5s"),
            (2_000 * MS, "2s"),
            (10_165 * MS, "10.2s"),
            (59_940 * MS, "59.9s"),
            (59_960 * MS, "1m00s"),
            (125_000 * MS, "2m05s"),
            (3_720_000 * MS, "1h02m"),
            (u64::MAX, "5124095h35m"),
        ];
        for (nanos, text) in cases {
            assert_eq!(human_duration(nanos), text, "{nanos} ns");
        }
    }
}
