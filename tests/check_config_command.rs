//! `check-config` through the built binary: effective config printed with secrets redacted,
//! bad configuration rejected with exit 2 and a message naming the key and the file.

mod support;

use assert_cmd::Command;
use std::io::Write;

const PLANTED_KEY: &str = "tr_dev_PLANTEDsecret123";
const PLANTED_HEADER: &str = "Bearer PLANTEDheader456";

fn bridge() -> Command {
    Command::from_std(support::process::command(&[]))
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[test]
fn prints_the_effective_config_with_secrets_redacted() {
    let file = config_file(&format!(
        "[trigger]\nsecret_key = \"{PLANTED_KEY}\"\n[export]\nheaders = {{ authorization = \"{PLANTED_HEADER}\" }}\n"
    ));
    let output = bridge()
        .args(["check-config", "--config", file.path().to_str().unwrap()])
        .env("TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY", "3")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stdout.contains("tr_dev_…****"), "{stdout}");
    assert!(stdout.contains("concurrency = 3"), "env override applied: {stdout}");
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("PLANTEDsecret123") && !text.contains("PLANTEDheader456"),
            "{text}"
        );
    }
    // What it prints is itself a valid config that loads (round trip through TOML).
    let printed: toml::Table = toml::from_str(&stdout).expect("check-config prints TOML");
    assert!(printed.contains_key("export"));
}

#[test]
fn secret_from_the_sdk_environment_variable_is_redacted_too() {
    let empty = config_file("");
    let output = bridge()
        .args(["check-config", "--config", empty.path().to_str().unwrap()])
        .env("TRIGGER_SECRET_KEY", "tr_prod_PLANTEDsecret789")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success());
    assert!(
        stdout.contains("tr_prod_…****") && !stdout.contains("PLANTEDsecret789"),
        "{stdout}"
    );
}

#[test]
fn bad_configs_exit_2_naming_the_key_and_file() {
    let cases = [
        ("[export]\nendpont = \"http://x:4317\"\n", "export.endpont"),
        ("[runs]\nconcurrency = \"many\"\n", "runs.concurrency"),
        ("[runs]\npoll_interval = \"5 parsecs\"\n", "runs.poll_interval"),
        ("[runs]\nshard = \"3/3\"\n", "runs.shard"),
        ("[export]\nprotocol = \"carrier-pigeon\"\n", "export.protocol"),
    ];
    for (text, key) in cases {
        let file = config_file(text);
        let output = bridge()
            .args(["check-config", "--config", file.path().to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(key), "{text}: {stderr}");
        assert!(
            stderr.contains(&*file.path().to_string_lossy()),
            "names the file: {stderr}"
        );
        assert!(output.stdout.is_empty());
    }
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let output = bridge()
        .args(["check-config", "--config", "/nonexistent/bridge.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/bridge.toml"));
}

#[test]
fn bad_environment_override_names_the_variable() {
    let empty = config_file("");
    let output = bridge()
        .args(["check-config", "--config", empty.path().to_str().unwrap()])
        .env("TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY", "zero")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("runs.concurrency") && stderr.contains("TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY"),
        "{stderr}"
    );
}

/// `--config PATH check-config` reads PATH, as `check-config --config PATH` does; before a
/// subcommand that reads no config it is refused rather than ignored.
#[test]
fn config_before_the_subcommand_is_the_subcommands() {
    let file = config_file("[runs]\nconcurrency = 7\n");
    let path = file.path().to_str().unwrap();
    let output = bridge().args(["--config", path, "check-config"]).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("concurrency = 7"));
    // The subcommand's own flag wins.
    let other = config_file("[runs]\nconcurrency = 9\n");
    let output = bridge()
        .args([
            "--config",
            path,
            "check-config",
            "--config",
            other.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("concurrency = 9"));
    let output = bridge().args(["--config", path, "convert", "-"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--config is not used by `convert`"));
}

/// What `run` will send with is shown too: the standard OTLP variables fill what `[export]`
/// leaves at its defaults, header names only.
#[test]
fn shows_the_export_settings_after_the_otel_variables() {
    let output = bridge()
        .args(["check-config"])
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization={PLANTED_HEADER}"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("#   protocol = \"http/protobuf\""), "{stdout}");
    assert!(
        stdout.contains("#   headers = [\"authorization\"] (values not shown)"),
        "{stdout}"
    );
    assert!(!stdout.contains("PLANTED"), "{stdout}");
    toml::from_str::<toml::Table>(&stdout).expect("still TOML");
    let output = bridge()
        .args(["check-config"])
        .env("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("OTEL_EXPORTER_OTLP_COMPRESSION"));
}
