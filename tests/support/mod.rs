//! The test kit, shared by the tests and the benchmarks (`#[path = "../tests/support/mod.rs"]`):
//! the fake Trigger.dev API, the OTLP receiver, the bridge as a process or in-process daemon,
//! and generated runs. Real servers on loopback, each started on port 0 and stopped by its test.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_api;
pub mod faulty;
pub mod generate;
pub mod otlp_receiver;
pub mod process;
pub mod realtime;

/// Bytes as lowercase hex (span and trace ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An in-memory writer whose clones share one buffer: what `tracing` or the stdout exporter
/// writes during a test.
#[derive(Clone, Default)]
pub struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// Everything written so far, as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("utf-8")
    }
}

impl std::io::Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
