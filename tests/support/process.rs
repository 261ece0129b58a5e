//! The bridge as a process, and the external tools some tests drive (Rotel, Prism): spawning
//! with a clean environment, signals, what a process costs (CPU, memory), free ports, waiting on a
//! condition.

use super::fake_api::SECRET_KEY;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};
use trigger_otel_bridge::config::secret::SecretString;
use trigger_otel_bridge::config::BridgeConfig;

pub const BINARY: &str = env!("CARGO_BIN_EXE_trigger-otel-bridge");

/// `trigger-otel-bridge ARGS` with nothing of the caller's environment but PATH (and
/// RUST_BACKTRACE=1), stdin closed: every other builder starts here. `TRIGGER_OTEL_BRIDGE_BIN`
/// in the caller's environment names another build to run (benchmarks compare two builds).
pub fn command(args: &[&str]) -> std::process::Command {
    let binary = std::env::var_os("TRIGGER_OTEL_BRIDGE_BIN").unwrap_or_else(|| BINARY.into());
    let mut command = std::process::Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    command
}

/// [`command`] for tokio, killed when dropped.
pub fn binary(args: &[&str]) -> Command {
    let mut command = Command::from(command(args));
    command.kill_on_drop(true);
    command
}

/// `trigger-otel-bridge ARGS --config CONFIG` with the fake API's key in its environment,
/// stdout discarded and stderr appended to `log`.
pub fn bridge(args: &[&str], config: &Path, log: &Path) -> Command {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let mut command = binary(args);
    command
        .arg("--config")
        .arg(config)
        .env("TRIGGER_SECRET_KEY", SECRET_KEY)
        .stdout(Stdio::null())
        .stderr(log);
    command
}

/// `trigger-otel-bridge` configured by its environment alone, as a container is: an empty config
/// file (`TRIGGER_OTEL_BRIDGE_CONFIG`), the API at `api_url` with the fake API's key, the
/// collector at `endpoint`. Callers add the command and further `TRIGGER_OTEL_BRIDGE__…`
/// variables.
pub fn bridge_by_env(api_url: &str, endpoint: &str) -> Command {
    let empty = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/empty.toml");
    let mut command = binary(&[]);
    command
        .env("TRIGGER_OTEL_BRIDGE_CONFIG", empty)
        .env("TRIGGER_API_URL", api_url)
        .env("TRIGGER_SECRET_KEY", SECRET_KEY)
        .env("TRIGGER_OTEL_BRIDGE__EXPORT__ENDPOINT", endpoint);
    command
}

/// Runs `command` to its end (within a minute): its output, and stdout and stderr as text.
pub async fn output(command: &mut Command) -> (Output, String, String) {
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("{command:?} did not finish within a minute"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

/// Sends `signal` (`libc::SIGTERM`, `libc::SIGHUP`…) to a child that has not been waited for.
pub fn signal(child: &Child, signal: libc::c_int) {
    let pid = child.id().expect("the child has not been waited for");
    // SAFETY: kill(2) with the pid of our own child, which is not reaped until we wait for it.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill({pid}, {signal}): {}", std::io::Error::last_os_error());
}

/// SIGTERM, then the exit status within `limit`; past it the child is killed and `None` returned.
pub async fn terminate(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    signal(child, libc::SIGTERM);
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(status) => Some(status.unwrap()),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    }
}

/// What Linux says a process costs so far: CPU from /proc/<pid>/stat (utime + stime), current
/// and peak resident memory from /proc/<pid>/status (VmRSS, VmHWM).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU seconds.
    pub cpu_s: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

/// Clock ticks per second of /proc/<pid>/stat's times.
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `None` once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Some(Usage {
        cpu_s: ticks / clock_ticks(),
        rss_kib: kib("VmRSS:"),
        peak_rss_kib: kib("VmHWM:"),
    })
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A fresh directory under the target dir for one benchmark's config, state and log (kept after
/// the run, to be looked at).
pub fn work_dir(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let dir = PathBuf::from(target).join("bench-work").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
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
/// under `installed_under`; `how` says how to get it). `None` skips the test on a developer
/// machine without it, and says so on the terminal of whoever runs `cargo test` (written to
/// stderr directly: the test harness captures `println!` and `eprintln!`, not the stream). Under
/// `CI=true` a missing tool fails instead, so CI never skips.
pub fn external_tool(var: &str, installed_under: &str, how: &str) -> Option<PathBuf> {
    let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) else {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{var} is not set under CI=true: .ci/run installs it and exports it, so CI never skips this test"
        );
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: {var} is not set, so this proof did not run. {how}; .ci/run installs it and sets {var}."
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
