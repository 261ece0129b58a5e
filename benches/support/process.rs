//! The bridge as a child process, and what Linux says it costs: CPU seconds from
//! /proc/<pid>/stat (utime + stime), current and peak resident memory from /proc/<pid>/status
//! (VmRSS, VmHWM).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BINARY: &str = env!("CARGO_BIN_EXE_trigger-otel-bridge");

/// Start `trigger-otel-bridge run --config <config>` with only PATH and the secret key in its
/// environment, its log in `log`.
pub fn spawn_bridge(config: &Path, log: &Path, secret_key: &str) -> Child {
    let log = std::fs::File::create(log).expect("log file");
    Command::new(BINARY)
        .args(["run", "--config"])
        .arg(config)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TRIGGER_SECRET_KEY", secret_key)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the bridge binary starts")
}

/// Clock ticks per second of /proc/<pid>/stat's times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU seconds so far.
    pub cpu_s: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

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

/// SIGTERM, then wait (at most `limit`) for the exit.
pub fn stop(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child.wait().ok()
}

/// A fresh directory under the target dir for one benchmark's config, state and log.
pub fn work_dir(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let dir = PathBuf::from(target).join("bench-work").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
