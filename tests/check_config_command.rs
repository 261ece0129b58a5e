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
    // On comment lines: saved as a config, the output has no key rather than a fake one.
    assert!(
        stdout.contains("\n# secret_key = \"tr_dev_…****\"  (redacted; set it with TRIGGER_SECRET_KEY)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\n# authorization = \"****\"  (redacted; "), "{stdout}");
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

fn check(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let output = bridge()
        .arg("check-config")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// Three mistakes of three kinds (a misplaced key, a wrong type, a broken rule), plus a bad
/// environment variable: one run names them all, each with its key and where it was set.
#[test]
fn every_error_is_reported_in_one_run() {
    let file = config_file(&format!(
        "secret_key = \"{PLANTED_KEY}\"\n[runs]\nconcurrency = \"many\"\n[export]\nmax_batch_spans = 0\n"
    ));
    let path = file.path().to_str().unwrap();
    let (code, stdout, stderr) = check(&["--config", path], &[("TRIGGER_OTEL_BRIDGE__RUNS__SETTLE", "a while")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let expected = [
        "error: 4 errors in the configuration:".to_owned(),
        format!("  - unknown key `secret_key` (in {path}); did you mean `trigger.secret_key`?"),
        format!("  - invalid value for `runs.concurrency` (in {path}): expected an integer like 8, found a string"),
        "  - invalid value for `runs.settle` (from environment variable TRIGGER_OTEL_BRIDGE__RUNS__SETTLE): \
         \"a while\" is not a duration"
            .to_owned(),
        format!("  - invalid value for `export.max_batch_spans` (in {path}): must be at least 1"),
    ];
    for line in &expected {
        assert!(
            stderr.lines().any(|l| l.starts_with(line.as_str())),
            "{line}:\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), expected.len(), "{stderr}");
    assert!(!stderr.contains("PLANTED"), "{stderr}");
}

/// Any key valid in another section is suggested there, from the file or the environment.
#[test]
fn a_misplaced_key_is_suggested_in_its_section() {
    let file = config_file("[trigger]\nendpoint = \"http://collector:4317\"\n");
    let (code, _, stderr) = check(&["--config", file.path().to_str().unwrap()], &[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("unknown key `trigger.endpoint`") && stderr.contains("did you mean `export.endpoint`?"),
        "{stderr}"
    );
    let (code, _, stderr) = check(&[], &[("TRIGGER_OTEL_BRIDGE__LEVEL", "debug")]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(
            "unknown key `level` (from environment variable TRIGGER_OTEL_BRIDGE__LEVEL); did you mean `log.level`?"
        ),
        "{stderr}"
    );
}

/// The round trip: check-config's output saved as the config holds no key, so it
/// cannot pass for one; `--for run` then says the key is missing and where to set it.
#[test]
fn saved_output_has_no_fake_key() {
    let file = config_file(&format!("[trigger]\nsecret_key = \"{PLANTED_KEY}\"\n"));
    let (code, printed, stderr) = check(&["--config", file.path().to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let saved = config_file(&printed);
    let saved_path = saved.path().to_str().unwrap();
    let (code, stdout, stderr) = check(&["--config", saved_path], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("\nsecret_key = \"\"\n"), "no key at all: {stdout}");
    let (code, _, stderr) = check(&["--config", saved_path, "--for", "run"], &[]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr,
        "error: `run` would not start: `trigger.secret_key` is not set: set TRIGGER_SECRET_KEY (or secret_key in \
         [trigger]) to a tr_dev_/tr_prod_ key\n"
    );
}

/// A placeholder (what redaction prints) is refused as the key with exit 2 wherever the key is
/// read, by every command that reads the configuration, saying what it is and where to set it.
#[test]
fn a_redacted_placeholder_is_refused_wherever_the_key_is_read() {
    // A config saved from an earlier release's check-config, which printed the hint as the key.
    let old = config_file("[trigger]\nsecret_key = \"tr_dev_…****\"\n");
    let old_path = old.path().to_str().unwrap();
    let empty = config_file("");
    let empty_path = empty.path().to_str().unwrap();
    // (the command's arguments, its config file, its environment, where the key came from)
    type Case<'a> = (&'a [&'a str], &'a str, &'a [(&'a str, &'a str)], String);
    let cases: [Case; 6] = [
        (&["check-config"], old_path, &[], format!("(in {old_path})")),
        (&["run"], old_path, &[], format!("(in {old_path})")),
        (&["export", "run_1"], old_path, &[], format!("(in {old_path})")),
        (&["inspect", "run_1"], old_path, &[], format!("(in {old_path})")),
        (
            &["check-config"],
            empty_path,
            &[("TRIGGER_SECRET_KEY", "tr_prod_…****")],
            "(from environment variable TRIGGER_SECRET_KEY)".to_owned(),
        ),
        (
            &["export", "run_1"],
            empty_path,
            &[("TRIGGER_OTEL_BRIDGE__TRIGGER__SECRET_KEY", "****")],
            "(from environment variable TRIGGER_OTEL_BRIDGE__TRIGGER__SECRET_KEY)".to_owned(),
        ),
    ];
    for (args, config, env, origin) in cases {
        let output = bridge()
            .args(args)
            .args(["--config", config])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("invalid value for `trigger.secret_key` {origin}: ")),
            "{args:?}: {stderr}"
        );
        assert!(
            stderr.contains("is a redacted placeholder")
                && stderr.contains("set the real key with TRIGGER_SECRET_KEY or secret_key in [trigger]"),
            "{args:?}: {stderr}"
        );
    }
}

/// `--for run|export|inspect`: a missing key is refused (exit 2) for each, and only with
/// `--for`; a key set, each passes. `run` also needs a usable shard ordinal.
#[test]
fn check_config_for_a_command_refuses_a_missing_key() {
    for command in ["run", "export", "inspect"] {
        let (code, stdout, stderr) = check(&["--for", command], &[]);
        assert_eq!(code, Some(2), "{command}: {stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.starts_with(&format!(
                "error: `{command}` would not start: `trigger.secret_key` is not set: "
            )),
            "{stderr}"
        );
        assert!(stderr.contains("TRIGGER_SECRET_KEY"), "{stderr}");
        let (code, _, stderr) = check(&["--for", command], &[("TRIGGER_SECRET_KEY", PLANTED_KEY)]);
        assert_eq!(code, Some(0), "{command}: {stderr}");
    }
    let (code, _, stderr) = check(&[], &[]);
    assert_eq!(code, Some(0), "without --for a key is not needed: {stderr}");
    let (code, _, stderr) = check(
        &["--for", "run"],
        &[
            ("TRIGGER_SECRET_KEY", PLANTED_KEY),
            ("TRIGGER_OTEL_BRIDGE__RUNS__SHARD", "auto/3"),
            ("HOSTNAME", "laptop"),
        ],
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("error: `run` would not start: cannot take the index of runs.shard = \"auto/3\""),
        "{stderr}"
    );
    let (code, _, stderr) = check(&["--for", "demo"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("[possible values: run, export, inspect]"), "{stderr}");
}
