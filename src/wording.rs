//! Words shared by every message, log line and summary: counts with their noun in the right
//! number ("1 run", "2 runs") and durations as people write them ("2m", "1s 250ms").

use std::time::Duration;

/// `d` as a person writes it: whole seconds from 10 s up (`2m`, `2m 5s`), whole milliseconds
/// below (`2s 500ms`), never the nanoseconds a measured wait has (`108.308277608s`).
pub fn human_duration(d: Duration) -> humantime::FormattedDuration {
    let rounded = if d >= Duration::from_secs(10) {
        Duration::from_secs(d.as_secs().saturating_add(u64::from(d.subsec_millis() >= 500)))
    } else {
        Duration::from_millis(d.as_millis().min(u64::MAX as u128) as u64)
    };
    humantime::format_duration(rounded)
}

/// `count` and `noun`, plural unless the count is one. For nouns whose plural adds an `s`, which
/// is every noun the commands count (runs, spans, elements, log records).
pub fn plural(count: u64, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_everything_else_plural() {
        assert_eq!(plural(0, "run"), "0 runs");
        assert_eq!(plural(1, "run"), "1 run");
        assert_eq!(plural(2, "log record"), "2 log records");
    }

    #[test]
    fn durations_are_rounded_as_people_write_them() {
        assert_eq!(
            human_duration(Duration::from_nanos(108_308_277_608)).to_string(),
            "1m 48s"
        );
        assert_eq!(human_duration(Duration::from_millis(119_600)).to_string(), "2m");
        assert_eq!(
            human_duration(Duration::from_nanos(2_500_400_000)).to_string(),
            "2s 500ms"
        );
    }
}
