//! The bridge as a process, and the external tools some tests drive (Rotel, Prism): spawning
//! with a clean environment, free ports, waiting on a condition.

use super::fake_api::SECRET_KEY;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;
use trigger_otel_bridge::config::BridgeConfig;
use trigger_otel_bridge::secret::SecretString;

/// `trigger-otel-bridge ARGS --config CONFIG` with only PATH and the fake API's key in its
/// environment, stderr appended to `log`; killed when dropped.
pub fn bridge(args: &[&str], config: &Path, log: &Path) -> Command {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_trigger-otel-bridge"));
    command
        .args(args)
        .arg("--config")
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRIGGER_SECRET_KEY", SECRET_KEY)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    command
}

/// `config` written as the TOML file `name` in `dir`, for a bridge process (through the real
/// loader: every test that starts the binary also checks that such a file loads). The secret key
/// stays out of the file: [`bridge`] passes it in the environment, as a deployment would. Header
/// values are written redacted, so a test that needs them sets them another way.
pub fn write_config(dir: &Path, name: &str, config: &BridgeConfig) -> PathBuf {
    let mut config = config.clone();
    config.trigger.secret_key = SecretString::default();
    let path = dir.join(name);
    std::fs::write(&path, config.to_redacted_toml()).unwrap();
    path
}

/// An external tool named by the environment variable `var` (set by .ci/run, which installs it
/// under `installed_under`). `None` skips the test on a developer machine without it; under
/// `CI=true` a missing tool fails instead, so CI never skips.
pub fn external_tool(var: &str, installed_under: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{var} is not set under CI=true: .ci/run installs it and exports it, so CI never skips this test"
        );
        return None;
    };
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{var}={} is not a file (.ci/run installs it under {installed_under})",
        path.display()
    );
    Some(path)
}

/// A loopback port nothing listens on now (for processes that cannot take port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `condition` every 50 ms; fail the test after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
