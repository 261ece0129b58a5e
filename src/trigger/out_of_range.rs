//! Number literals beyond the range of a 64-bit float (`1e400`, a 400-digit integer), and values
//! nested deeper than serde_json parses (it stops at 128 levels).
//!
//! JSON puts no limit on numbers, but serde_json (like JavaScript, whose `JSON.stringify` turns
//! such a value into `null`) cannot hold one, and fails the whole document with "number out of
//! range". mapping.md §0 promises that a bad field never fails the parse, so when, and only when,
//! the normal parse fails that way, the body is rewritten with each such literal in a field of an
//! element replaced by `null`, and parsed again; the literals found are reported with the element
//! and field they were in, so the converter can say why that field is invalid.
//!
//! A value nested too deeply fails the whole document the same way ("recursion limit exceeded"),
//! so it is treated the same way: when the normal parse fails for either reason, a container
//! inside a field of an element opened more than [`MAX_NESTING`] levels down from the body's
//! top is replaced by `null` and reported (a body that parses keeps everything, however deep). serde_json's
//! `disable_recursion_limit` was not taken: without a growing stack, a deep enough body would
//! overflow the stack and abort the process instead.
//!
//! serde_json's own ways around a number out of range were not taken: `arbitrary_precision` hands every float to
//! `deserialize_any` visitors as a map (an element `1.5` would stop being `not_an_object`,
//! untagged enums in other crates change) and costs an allocation per float on every body;
//! `raw_value` makes an object whose first key is serde_json's private raw-value token parse its
//! value as JSON text, a new way for a body to fail as a whole.

/// Longest literal text kept for messages.
const KEEP_CHARS: usize = 64;

/// Containers deeper than this inside an element's field are replaced by `null`; below
/// serde_json's limit of 128, which counts the body's own levels too.
pub const MAX_NESTING: usize = 100;

/// Why a literal was read as `null`.
pub const BEYOND_F64: &str = "a number beyond the range of a 64-bit float";
pub const TOO_DEEP: &str = "a value nested more than 100 levels deep in the body";

/// One out-of-range literal in a field of an element: the element (its index in the `events`
/// array that the parse keeps), the top-level field of that element holding the literal, and the
/// literal (shortened).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub element: usize,
    pub field: String,
    pub literal: String,
    /// [`BEYOND_F64`] or [`TOO_DEEP`].
    pub why: &'static str,
}

/// The body with every out-of-range literal inside a field of an events element replaced by
/// `null`, and where they were; anywhere else (the parse ignores it, or judges only its type)
/// the literal becomes `0`.
#[derive(Debug, Default)]
pub struct Rewritten {
    pub body: Vec<u8>,
    pub found: Vec<Found>,
    /// How many literals were replaced in all (inside elements or not).
    pub replaced: usize,
}

/// Whether serde_json failed on a number literal it cannot hold, or on nesting past its limit:
/// the failures [`rewrite`] can remove.
pub fn is_out_of_range(error: &serde_json::Error) -> bool {
    let text = error.to_string();
    error.is_syntax() && (text.starts_with("number out of range") || text.starts_with("recursion limit exceeded"))
}

/// Whether a JSON number literal is beyond what an `f64` holds (serde_json's "out of range").
fn beyond_f64(literal: &str) -> bool {
    literal.parse::<f64>().is_ok_and(f64::is_infinite)
}

enum Frame {
    Array {
        index: usize,
    },
    /// `key`: the member being read (`None` until its key was read).
    Object {
        key: Option<String>,
        expect_key: bool,
    },
}

/// Rewrite `body` as described on [`Rewritten`]. Works on any bytes: malformed JSON is copied as
/// it is (the parse that follows reports it).
pub fn rewrite(body: &[u8]) -> Rewritten {
    let mut out = Rewritten {
        body: Vec::with_capacity(body.len()),
        ..Rewritten::default()
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let byte = body[i];
        match byte {
            b'"' => {
                let end = string_end(body, i);
                let token = &body[i..end];
                if let Some(Frame::Object { key, expect_key }) = stack.last_mut() {
                    if *expect_key {
                        let text = serde_json::from_slice::<String>(token)
                            .unwrap_or_else(|_| String::from_utf8_lossy(token).into_owned());
                        *key = Some(text);
                        *expect_key = false;
                        member_started(&stack, &mut out.found);
                    }
                }
                out.body.extend_from_slice(token);
                i = end;
                continue;
            }
            b'-' | b'0'..=b'9' => {
                let end = body[i..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(body.len(), |n| i + n);
                let literal = std::str::from_utf8(&body[i..end]).unwrap_or_default();
                if beyond_f64(literal) {
                    out.replaced += 1;
                    match location(&stack) {
                        Some((element, field)) => {
                            out.found.push(Found {
                                element,
                                field,
                                literal: shortened(literal),
                                why: BEYOND_F64,
                            });
                            out.body.extend_from_slice(b"null");
                        }
                        // Not inside a field of an element: the shape of the body is judged
                        // as sent (`{"events": 1e400}` stays an error; an element `1e400`
                        // stays `not_an_object`), so a number stays a number.
                        _ => out.body.push(b'0'),
                    }
                } else {
                    out.body.extend_from_slice(&body[i..end]);
                }
                i = end;
                continue;
            }
            b'{' | b'[' => {
                // Too deep inside an element's field: the whole value becomes `null`. Elsewhere
                // (the body's own shape) it is judged as sent.
                let cut = (stack.len() >= MAX_NESTING).then(|| location(&stack)).flatten();
                if let Some((element, field)) = cut {
                    let end = value_end(body, i);
                    out.replaced += 1;
                    out.found.push(Found {
                        element,
                        field,
                        literal: shortened(&String::from_utf8_lossy(&body[i..end])),
                        why: TOO_DEEP,
                    });
                    out.body.extend_from_slice(b"null");
                    i = end;
                    continue;
                }
                stack.push(match byte {
                    b'{' => Frame::Object {
                        key: None,
                        expect_key: true,
                    },
                    _ => Frame::Array { index: 0 },
                });
            }
            b'}' | b']' => {
                stack.pop();
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, expect_key }) => {
                    *key = None;
                    *expect_key = true;
                }
                None => {}
            },
            _ => {}
        }
        out.body.push(byte);
        i += 1;
    }
    out
}

/// At most [`KEEP_CHARS`] characters of `text`, `…` marking a cut.
fn shortened(text: &str) -> String {
    match text.char_indices().nth(KEEP_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The index just past the object or array starting at `start`, or the end of the body.
fn value_end(body: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < body.len() {
        match body[i] {
            b'"' => {
                i = string_end(body, i);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    body.len()
}

/// The index just past the string token starting at `start` (a `"`), or the end of the body.
fn string_end(body: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < body.len() {
        match body[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    body.len()
}

/// The events array's frame depth, and the element index, for the current position: the body
/// itself when it is an array, or the array under the top-level key `events`.
fn element_frame(stack: &[Frame]) -> Option<(usize, usize)> {
    match stack {
        [Frame::Array { index }, ..] => Some((0, *index)),
        [Frame::Object { key: Some(key), .. }, Frame::Array { index }, ..] if key == "events" => Some((1, *index)),
        _ => None,
    }
}

/// The element and its top-level field that a value at the current position is in, if any.
fn location(stack: &[Frame]) -> Option<(usize, String)> {
    let (depth, element) = element_frame(stack)?;
    match stack.get(depth + 1) {
        Some(Frame::Object { key: Some(key), .. }) => Some((element, key.clone())),
        // The element itself, an array as the element, or a value before its key (malformed).
        _ => None,
    }
}

/// A key was just read. Repeated keys keep their last value (as the parse does), so what was
/// found under an earlier copy of the same element field, or of the top-level `events`, no
/// longer applies.
fn member_started(stack: &[Frame], found: &mut Vec<Found>) {
    match stack {
        [Frame::Object { key: Some(key), .. }] if key == "events" => found.clear(),
        _ => {
            let Some((depth, element)) = element_frame(stack) else {
                return;
            };
            if stack.len() == depth + 2 {
                if let Some(Frame::Object { key: Some(key), .. }) = stack.last() {
                    found.retain(|f| f.element != element || f.field != *key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(element: usize, field: &str, literal: &str) -> Found {
        Found {
            element,
            field: field.to_owned(),
            literal: literal.to_owned(),
            why: BEYOND_F64,
        }
    }

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn a_value_nested_too_deeply_in_a_field_is_cut_to_null() {
        let body = format!(
            r#"{{"events": [{{"spanId": "a", "x": {}}}, {{"spanId": "b", "y": {}, "z": "]}}"}}]}}"#,
            nested(150),
            nested(20)
        );
        let error = serde_json::from_str::<serde_json::Value>(&body).unwrap_err();
        assert!(is_out_of_range(&error), "{error}");
        let out = rewrite(body.as_bytes());
        assert_eq!(out.replaced, 1);
        assert_eq!(out.found.len(), 1);
        let found = &out.found[0];
        assert_eq!((found.element, found.field.as_str(), found.why), (0, "x", TOO_DEEP));
        assert!(
            found.literal.starts_with("[[[") && found.literal.ends_with('…'),
            "{}",
            found.literal
        );
        let value: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        // The cut starts MAX_NESTING levels down (the body, `events` and the element are three of
        // them); what is above it, and the next element, stay.
        let mut x = &value["events"][0]["x"];
        let mut depth = 0;
        while let Some(inner) = x.get(0) {
            x = inner;
            depth += 1;
        }
        assert_eq!((x, depth), (&serde_json::Value::Null, MAX_NESTING - 3));
        assert_eq!(
            value["events"][1]["y"],
            serde_json::from_str::<serde_json::Value>(&nested(20)).unwrap()
        );
        assert_eq!(value["events"][1]["z"], "]}");
    }

    #[test]
    fn serde_json_calls_such_a_literal_out_of_range() {
        for literal in ["1e400", "-1e400", &"9".repeat(400), "1.5E+309"] {
            let error = serde_json::from_str::<serde_json::Value>(literal).unwrap_err();
            assert!(is_out_of_range(&error), "{literal}: {error}");
            assert!(beyond_f64(literal), "{literal}");
        }
        for fine in [
            "1e308",
            "1e-400",
            "0",
            "-0.0",
            &"9".repeat(40),
            "1.7976931348623157e308",
        ] {
            assert!(serde_json::from_str::<serde_json::Value>(fine).is_ok(), "{fine}");
            assert!(!beyond_f64(fine), "{fine}");
        }
        let other = serde_json::from_str::<serde_json::Value>("[1,,2]").unwrap_err();
        assert!(!is_out_of_range(&other));
    }

    #[test]
    fn literals_become_null_and_are_located() {
        let body = br#"{"x":1e400,"events":[{"spanId":"a","duration":1e400,"s":"1e400 \" ,]} 2e400"},-1e400,{"events":[{"properties":{"n":[1,1e999]}}],"ok":1.5}]}"#;
        let rewritten = rewrite(body);
        assert_eq!(
            String::from_utf8(rewritten.body).unwrap(),
            r#"{"x":0,"events":[{"spanId":"a","duration":null,"s":"1e400 \" ,]} 2e400"},0,{"events":[{"properties":{"n":[1,null]}}],"ok":1.5}]}"#
        );
        assert_eq!(rewritten.replaced, 4);
        assert_eq!(
            rewritten.found,
            vec![found(0, "duration", "1e400"), found(2, "events", "1e999"),]
        );
    }

    #[test]
    fn bare_arrays_escaped_keys_repeats_and_long_literals() {
        let long = format!("1{}", "0".repeat(400));
        let body = format!(r#"[{{"dur\u0061tion":{long},"startTime":1e400,"startTime":"5"}}]"#);
        let rewritten = rewrite(body.as_bytes());
        let kept = format!("{}…", &long[..KEEP_CHARS]);
        assert_eq!(rewritten.found, vec![found(0, "duration", &kept)]);
        // A repeated top-level `events` key: only the last array counts.
        let body = br#"{"events":[{"duration":1e400}],"events":[{},{"duration":1e400}]}"#;
        assert_eq!(rewrite(body).found, vec![found(1, "duration", "1e400")]);
    }

    #[test]
    fn malformed_input_is_copied_not_repaired() {
        assert_eq!(rewrite(b"{\"a\": [1e400,, }").body, b"{\"a\": [0,, }");
        assert_eq!(rewrite(b"]]}}1e400").body, b"]]}}0");
        for body in [&b"-"[..], b"1e", b"\xff\xfe", b"\"\\"] {
            assert_eq!(rewrite(body).body, body);
        }
        assert_eq!(rewrite(b"\"unterminated 1e400").body, b"\"unterminated 1e400");
    }
}
