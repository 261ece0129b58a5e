//! Trace and span identity (mapping rules 1–3): parse hex ids, or derive them by hashing.
//!
//! Hashing keeps malformed ids stable across polls and machines, so a span derived once is
//! derived identically the next time and the exported-span bookkeeping still recognises it.

use opentelemetry::trace::{SpanId, TraceId};
use sha2::{Digest, Sha256};

/// Parse exactly `N` bytes of hex (either case) into bytes; `None` for anything else.
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = text.as_bytes();
    if bytes.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// A trace id from the API: 32 hex chars, not all zeros.
pub fn parse_trace_id(text: &str) -> Option<TraceId> {
    parse_hex::<16>(text)
        .map(TraceId::from_bytes)
        .filter(|id| *id != TraceId::INVALID)
}

/// The trace id of a run whose own trace id is unknown: the first 16 bytes of
/// SHA-256(`trigger.dev/trace/` + run id).
pub fn derive_trace_id(run_id: &str) -> TraceId {
    let digest = Sha256::new()
        .chain_update(b"trigger.dev/trace/")
        .chain_update(run_id.as_bytes())
        .finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    TraceId::from_bytes(bytes)
}

/// How a span id string was turned into an OTel span id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanIdentity {
    /// The string was a valid span id.
    Parsed(SpanId),
    /// The string was not: this id was derived by hashing it.
    Derived(SpanId),
}

impl SpanIdentity {
    pub fn id(self) -> SpanId {
        match self {
            SpanIdentity::Parsed(id) | SpanIdentity::Derived(id) => id,
        }
    }

    pub fn is_derived(self) -> bool {
        matches!(self, SpanIdentity::Derived(_))
    }
}

/// Rule 2: 16 hex chars and not all zeros are used as is; anything else non-empty is hashed.
/// `None` for an empty string (the caller decides whether that is invalid or "no parent").
pub fn span_identity(text: &str) -> Option<SpanIdentity> {
    if text.is_empty() {
        return None;
    }
    if let Some(id) = parse_hex::<8>(text)
        .map(SpanId::from_bytes)
        .filter(|id| *id != SpanId::INVALID)
    {
        return Some(SpanIdentity::Parsed(id));
    }
    Some(SpanIdentity::Derived(derive_span_id(text)))
}

/// The first 8 bytes of SHA-256(`trigger.dev/span/` + text); the next 8 if those are zero.
pub fn derive_span_id(text: &str) -> SpanId {
    let digest = Sha256::new()
        .chain_update(b"trigger.dev/span/")
        .chain_update(text.as_bytes())
        .finalize();
    let first: [u8; 8] = digest[..8].try_into().expect("sha256 has 32 bytes");
    if first != [0u8; 8] {
        return SpanId::from_bytes(first);
    }
    SpanId::from_bytes(digest[8..16].try_into().expect("sha256 has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_span_ids_are_used_lowercased() {
        let id = span_identity("0123456789ABCDEF").unwrap();
        assert_eq!(id, SpanIdentity::Parsed(SpanId::from_hex("0123456789abcdef").unwrap()));
        assert_eq!(format!("{}", id.id()), "0123456789abcdef");
    }

    #[test]
    fn non_hex_short_long_and_zero_span_ids_are_hashed_deterministically() {
        for bad in [
            "zz-not-hex",
            "abc",
            "0000000000000000",
            "0123456789abcdef0",
            "0123456789abcdeg",
            "ünïcødé",
        ] {
            let first = span_identity(bad).unwrap();
            assert!(first.is_derived(), "{bad} should be derived");
            assert_ne!(first.id(), SpanId::INVALID);
            assert_eq!(first, span_identity(bad).unwrap(), "hashing {bad} must be stable");
        }
        assert_ne!(derive_span_id("a"), derive_span_id("b"));
    }

    #[test]
    fn derived_span_id_is_the_sha256_prefix() {
        // sha256("trigger.dev/span/abc") computed independently with coreutils sha256sum.
        assert_eq!(format!("{}", derive_span_id("abc")), "2b8cb7c5602bf7d1");
    }

    #[test]
    fn empty_span_id_has_no_identity() {
        assert_eq!(span_identity(""), None);
    }

    #[test]
    fn trace_ids_parse_or_are_rejected() {
        let id = parse_trace_id("0AF7651916CD43DD8448EB211C80319C").unwrap();
        assert_eq!(format!("{id}"), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(parse_trace_id("00000000000000000000000000000000"), None);
        assert_eq!(parse_trace_id("0af7651916cd43dd8448eb211c80319"), None);
        assert_eq!(parse_trace_id("xyz7651916cd43dd8448eb211c80319c"), None);
    }

    #[test]
    fn derived_trace_id_is_stable_and_per_run() {
        let a = derive_trace_id("run_abc");
        assert_eq!(a, derive_trace_id("run_abc"));
        assert_ne!(a, derive_trace_id("run_abd"));
        // sha256sum of "trigger.dev/trace/run_abc", first 16 bytes.
        assert_eq!(format!("{a}"), "8da5c4a7813022304a08b7adeff3245e");
    }
}
