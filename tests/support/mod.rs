//! The test kit, shared by the tests and the benchmarks (`#[path = "../tests/support/mod.rs"]`):
//! the fake Trigger.dev API, the OTLP receiver, the bridge as a process or in-process daemon,
//! and generated runs. Real servers on loopback, each started on port 0 and stopped by its test.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_api;
pub mod generate;
pub mod otlp_receiver;
pub mod process;

/// Bytes as lowercase hex (span and trace ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
