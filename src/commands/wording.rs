//! Words shared by the commands' output: counts with their noun in the right number ("1 run",
//! "2 runs"), read on every summary line.

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
}
