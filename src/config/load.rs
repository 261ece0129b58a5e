//! Loading: merges the file and the environment with the `config` crate, then checks the result.
//!
//! Precedence, lowest first (a later source overrides an earlier one key by key):
//! 1. built-in defaults (`#[serde(default)]` on the schema);
//! 2. `OTEL_EXPORTER_OTLP_ENDPOINT` for `export.endpoint`, and
//!    `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` and `…_METRICS_PROTOCOL` for `telemetry.otlp_endpoint`
//!    and `telemetry.otlp_protocol`: the OpenTelemetry standard variables only fill what neither
//!    the file nor a prefixed variable sets;
//! 3. the TOML file;
//! 4. the Trigger.dev SDK's own variables, `TRIGGER_SECRET_KEY`, `TRIGGER_API_URL` and
//!    `TRIGGER_PREVIEW_BRANCH`;
//! 5. `TRIGGER_OTEL_BRIDGE__<SECTION>__<KEY>`, which wins over everything.
//!
//! The environment is passed in as a map so that tests never touch the process environment.
//!
//! The `config` crate is lenient where the bridge wants to be strict, and terse where the bridge
//! wants to explain, so loading adds three steps around it:
//! - before deserializing, a walk over the merged values against the default config's shape
//!   reports unknown keys with the full dotted path and a "did you mean", and rejects file values
//!   of the wrong TOML type (the crate would silently round `concurrency = 2.5` to 3, read
//!   `enabled = 5` as true and `api_url = 5` as "5");
//! - its errors are rewritten to name the key's source (the crate leaves the origin out of most
//!   of them, and reports an unknown field only with its parent's key);
//! - cross-field validation runs last, on the typed config.
//!
//! The first two live in `load/diagnose.rs`.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Environment, FileFormat, Map, Source, Value, ValueKind};

use super::{BridgeConfig, ConfigError};

mod diagnose;
use diagnose::{check_shape, Origins};

/// Prefix of the override variables: `TRIGGER_OTEL_BRIDGE__EXPORT__ENDPOINT`.
pub const ENV_PREFIX: &str = "TRIGGER_OTEL_BRIDGE";
/// Names the config file when `--config` is not given.
pub const CONFIG_PATH_VAR: &str = "TRIGGER_OTEL_BRIDGE_CONFIG";

/// Separates the prefix, the section and the key. Double, because keys contain `_`.
const ENV_SEPARATOR: &str = "__";
/// The origin `config::Environment` records for every value it reads.
const ENV_ORIGIN: &str = "the environment";
/// Files looked for, in order, when neither `--config` nor `TRIGGER_OTEL_BRIDGE_CONFIG` is set.
const DEFAULT_PATHS: [&str; 2] = ["bridge.toml", "config/bridge.toml"];
/// Variables of the Trigger.dev SDK, honoured so an existing deployment's env works as is.
const SDK_VARS: [(&str, &str); 3] = [
    ("trigger.secret_key", "TRIGGER_SECRET_KEY"),
    ("trigger.api_url", "TRIGGER_API_URL"),
    ("trigger.preview_branch", "TRIGGER_PREVIEW_BRANCH"),
];
/// The OpenTelemetry SDK's variables the bridge reads; each only fills its key when unset.
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is where the spans go: it never turns the bridge's own metrics
/// on (only the metrics' own variable does), so a span endpoint set for the whole pod does not
/// also receive them.
const OTEL_VARS: [(&str, &str); 3] = [
    ("export.endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ("telemetry.otlp_endpoint", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"),
    ("telemetry.otlp_protocol", "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"),
];
/// Tables whose keys are chosen by the user, so they have no schema to check keys against.
const FREE_FORM_TABLES: [&str; 2] = ["export.headers", "export.resource.attributes"];
/// Keys whose values are credentials: their error messages never quote the value.
const SECRET_KEYS: [&str; 2] = ["trigger.secret_key", "export.headers"];

/// The config file to use: the `--config` flag, else `TRIGGER_OTEL_BRIDGE_CONFIG`, else
/// `./bridge.toml` or `./config/bridge.toml` if one exists, else `None` (built-in defaults).
pub fn resolve_path(flag: Option<PathBuf>, env: &HashMap<String, String>) -> Option<PathBuf> {
    resolve_path_in(flag, env, Path::new(""))
}

fn resolve_path_in(flag: Option<PathBuf>, env: &HashMap<String, String>, base: &Path) -> Option<PathBuf> {
    flag.or_else(|| non_empty(env, CONFIG_PATH_VAR).map(PathBuf::from))
        .or_else(|| {
            DEFAULT_PATHS
                .iter()
                .map(|candidate| base.join(candidate))
                .find(|candidate| candidate.is_file())
        })
}

/// The process environment as a map, skipping variables that are not valid Unicode (which
/// `std::env::vars` would panic on; none of ours can be).
pub fn process_env() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// [`load`] with the process environment.
pub fn load_from_process_env(path: Option<&Path>) -> Result<BridgeConfig, ConfigError> {
    load(path, &process_env())
}

/// Loads the config file at `path` (which must exist; `None` means defaults only), applies the
/// environment overrides in `env`, and validates the result. Every error is reported, as
/// [`ConfigError::Several`] when there is more than one.
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<BridgeConfig, ConfigError> {
    let LoadReport { config, errors } = load_report(path, env);
    ConfigError::from_all(errors)?;
    // `load_report` yields a config whenever it found no error.
    config.ok_or_else(|| ConfigError::Load {
        message: "no configuration was read".to_owned(),
    })
}

/// What [`load_report`] found: every error, and the configuration with each value in error
/// left at its default (`None` when the file could not be read or parsed at all).
#[derive(Debug)]
pub struct LoadReport {
    pub config: Option<BridgeConfig>,
    pub errors: Vec<ConfigError>,
}

/// [`load`] that goes on after an error, for `check-config`: each value in error is reported
/// and read at its default, so the values after it are still checked, and rules that compare a
/// value with one already reported are left out (they would blame a value nobody wrote).
pub fn load_report(path: Option<&Path>, env: &HashMap<String, String>) -> LoadReport {
    let prefixed = PrefixedEnv::new(env);
    let merged = match build(path, env, &prefixed) {
        Ok(merged) => merged,
        Err(error) => {
            return LoadReport {
                config: None,
                errors: vec![error],
            }
        }
    };
    let origins = Origins {
        file: path,
        prefixed: &prefixed,
        root: &merged.cache,
    };

    let mut errors = Vec::new();
    if let ValueKind::Table(table) = &merged.cache.kind {
        // The default config's serialized form is the schema's shape: every key, every type.
        // Serializing it cannot fail; if it ever did, serde's own checks below still apply.
        if let Ok(shape) = toml::Table::try_from(BridgeConfig::default()) {
            check_shape(&shape, &shape, table, "", &origins, &mut errors);
        }
    }

    // Serde stops at the first error: take the key it names out and read again, until the rest
    // reads. What was taken out is read at its default.
    let mut values = merged.cache.clone();
    let mut dropped: Vec<String> = Vec::new();
    for error in &errors {
        if let Some(key) = error.key() {
            drop_key(&mut values, key, &mut dropped);
        }
    }
    let config = loop {
        match values.clone().try_deserialize::<BridgeConfig>() {
            Ok(config) => break Some(config),
            Err(error) => {
                let error = origins.translate(error);
                // An error without a key, or about a key that cannot be taken out, cannot be
                // read past: report it and stop.
                let dropped_now = error.key().is_some_and(|key| drop_key(&mut values, key, &mut dropped));
                errors.push(error);
                if !dropped_now {
                    break None;
                }
            }
        }
    };

    if let Some(config) = &config {
        let in_error = |key: &str| dropped.iter().any(|gone| is_within(key, gone));
        for violation in config.violations() {
            if in_error(&violation.key) || violation.involves.iter().any(|key| in_error(key)) {
                continue;
            }
            errors.push(ConfigError::Invalid {
                origin: Some(origins.origin_of(&violation.key)),
                key: violation.key,
                message: violation.message,
            });
        }
    }
    LoadReport { config, errors }
}

/// Removes the value at `key` (`runs.ids[1]` removes the whole list) from `values`, and records
/// it in `dropped`; false when there was nothing there to remove.
fn drop_key(values: &mut Value, key: &str, dropped: &mut Vec<String>) -> bool {
    let key = key.split('[').next().unwrap_or(key);
    let mut segments: Vec<&str> = key.split('.').collect();
    let Some(last) = segments.pop() else { return false };
    let mut table = values;
    for segment in segments {
        let ValueKind::Table(map) = &mut table.kind else {
            return false;
        };
        let Some(child) = map.get_mut(segment) else {
            return false;
        };
        table = child;
    }
    let ValueKind::Table(map) = &mut table.kind else {
        return false;
    };
    let removed = map.remove(last).is_some();
    if removed {
        dropped.push(key.to_owned());
    }
    removed
}

/// Whether `key` is `section` or inside it (`export.headers.x` is within `export.headers`).
fn is_within(key: &str, section: &str) -> bool {
    key == section || key.strip_prefix(section).is_some_and(|rest| rest.starts_with('.'))
}

fn build(
    path: Option<&Path>,
    env: &HashMap<String, String>,
    prefixed: &PrefixedEnv,
) -> Result<config::Config, ConfigError> {
    let mut builder = config::Config::builder();

    let otel = NamedVars::from_env(env, &OTEL_VARS);
    if !otel.is_empty() {
        builder = builder.add_source(otel);
    }
    if let Some(path) = path {
        check_file(path)?;
        builder = builder.add_source(config::File::from(path).format(FileFormat::Toml));
    }
    let sdk = NamedVars::from_env(env, &SDK_VARS);
    if !sdk.is_empty() {
        builder = builder.add_source(sdk);
    }
    // No `try_parsing`: it would turn "007" into 7, "1e3" into 1000 and "true" into a boolean
    // before we know the key's type, corrupting header values, tags and run ids. Left as
    // strings, values are still read as numbers or booleans where the schema wants them, and
    // lists are split on commas by the schema (`string_list`), which `try_parsing`'s own
    // splitting could not do for a single numeric item.
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .source(Some(prefixed.vars.clone())),
    );

    builder.build().map_err(|error| {
        let path = path.map(Path::to_path_buf).unwrap_or_default();
        match error {
            config::ConfigError::FileParse { cause, .. } => ConfigError::FileParse {
                message: syntax_message(cause.as_ref(), &path),
                path,
            },
            // The file source is the only one that does I/O.
            config::ConfigError::Foreign(cause) => ConfigError::FileRead {
                path,
                message: cause.to_string(),
            },
            other => ConfigError::Load {
                message: other.to_string(),
            },
        }
    })
}

/// Where and what toml found wrong, without the source line its own report quotes: that line may
/// hold the secret key or a header value (an unquoted `secret_key = tr_prod_…` is a syntax error).
fn syntax_message(cause: &(dyn std::error::Error + Send + Sync + 'static), path: &Path) -> String {
    let Some(error) = cause.downcast_ref::<toml::de::Error>() else {
        return "the file cannot be parsed".to_owned();
    };
    let message = error.message().trim_end().replace('\n', "; ");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    match error.span().and_then(|span| text.get(..span.start)) {
        Some(before) => {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or_default().chars().count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// A path given explicitly must exist; checked here so the error names the path as given
/// (the crate would also try `path.toml`, `path.json`… before failing).
fn check_file(path: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => Ok(()),
        Ok(_) => Err(ConfigError::FileRead {
            path: path.to_path_buf(),
            message: "not a regular file".to_owned(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Err(ConfigError::FileNotFound {
            path: path.to_path_buf(),
        }),
        Err(error) => Err(ConfigError::FileRead {
            path: path.to_path_buf(),
            message: error.to_string(),
        }),
    }
}

fn non_empty<'a>(env: &'a HashMap<String, String>, var: &str) -> Option<&'a str> {
    // Empty counts as unset, as the OpenTelemetry spec asks of its variables.
    env.get(var).map(String::as_str).filter(|value| !value.is_empty())
}

/// The `TRIGGER_OTEL_BRIDGE__…` variables, and for each config key the variable that set it.
struct PrefixedEnv {
    /// Only the prefixed variables go to `config::Environment`, so no unrelated secret of the
    /// process environment sits in the builder.
    vars: Map<String, String>,
    var_of_key: HashMap<String, String>,
}

impl PrefixedEnv {
    fn new(env: &HashMap<String, String>) -> Self {
        let prefix = format!("{ENV_PREFIX}{ENV_SEPARATOR}").to_lowercase();
        let mut vars = Map::new();
        let mut var_of_key = HashMap::new();
        for (name, value) in env {
            // The same key mapping as `config::Environment`: case-insensitive, `__` → `.`.
            let lower = name.to_lowercase();
            if let Some(rest) = lower.strip_prefix(&prefix) {
                var_of_key.insert(rest.replace(ENV_SEPARATOR, "."), name.clone());
                vars.insert(name.clone(), value.clone());
            }
        }
        Self { vars, var_of_key }
    }

    fn var_for(&self, key: &str) -> String {
        self.var_of_key
            .get(key)
            .cloned()
            .unwrap_or_else(|| format!("{ENV_PREFIX}{ENV_SEPARATOR}{}", key.replace('.', ENV_SEPARATOR)).to_uppercase())
    }
}

/// Environment variables with names of their own (not prefixed) mapped to config keys. Each
/// value's origin is its variable's name, so errors can name it.
#[derive(Clone)]
struct NamedVars(Vec<(&'static str, &'static str, String)>);

impl NamedVars {
    fn from_env(env: &HashMap<String, String>, names: &[(&'static str, &'static str)]) -> Self {
        Self(
            names
                .iter()
                .filter_map(|&(key, var)| Some((key, var, non_empty(env, var)?.to_owned())))
                .collect(),
        )
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// By hand: a derived `Debug` would print `TRIGGER_SECRET_KEY`'s value.
impl fmt::Debug for NamedVars {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(_, var, _)| var)).finish()
    }
}

impl Source for NamedVars {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self
            .0
            .iter()
            .map(|(key, var, value)| {
                let origin = (*var).to_owned();
                (
                    (*key).to_owned(),
                    Value::new(Some(&origin), ValueKind::String(value.clone())),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::io::Write;
    use std::time::Duration;

    use super::diagnose::lookup;
    use super::*;
    use crate::config::secret::SecretString;
    use crate::config::{Compression, LogFormat, LogsMode, MetricsProtocol, Protocol, Shard};

    const PLANTED_SECRET: &str = "tr_dev_PLANTEDsecret123";
    const PLANTED_HEADER: &str = "Bearer PLANTEDheader456";
    const SHIPPED_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/bridge.toml");

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().expect("temp file");
        file.write_all(text.as_bytes()).expect("write");
        file
    }

    fn load_text(text: &str, vars: &[(&str, &str)]) -> Result<BridgeConfig, ConfigError> {
        let file = file(text);
        load(Some(file.path()), &env(vars))
    }

    /// The error message for a file, with the temp path replaced by `FILE`.
    fn file_error(text: &str) -> String {
        let file = file(text);
        let error = load(Some(file.path()), &HashMap::new()).expect_err(text);
        error.to_string().replace(&file.path().display().to_string(), "FILE")
    }

    fn env_error(vars: &[(&str, &str)]) -> String {
        load(None, &env(vars)).expect_err("invalid").to_string()
    }

    #[test]
    fn no_file_and_no_env_gives_the_defaults() {
        assert_eq!(load(None, &HashMap::new()), Ok(BridgeConfig::default()));
        assert_eq!(load_text("", &[]), Ok(BridgeConfig::default()));
    }

    #[test]
    fn shipped_bridge_toml_loads_to_the_defaults() {
        let config = load(Some(Path::new(SHIPPED_CONFIG)), &HashMap::new());
        assert_eq!(config, Ok(BridgeConfig::default()));
    }

    #[test]
    fn shipped_bridge_toml_shows_every_key() {
        let text = std::fs::read_to_string(SHIPPED_CONFIG).expect("config/bridge.toml");
        let merged = config::Config::builder()
            .add_source(config::File::from_str(&text, FileFormat::Toml))
            .build()
            .expect("valid TOML");
        let shape = toml::Table::try_from(BridgeConfig::default()).expect("serializable");
        let mut missing = Vec::new();
        collect_missing(&shape, &merged.cache, "", &mut missing);
        // Commented out so that the OpenTelemetry variables can fill them.
        assert_eq!(
            missing,
            ["export.endpoint", "telemetry.otlp_endpoint", "telemetry.otlp_protocol"]
        );
        assert!(text.contains("\n# endpoint = \"http://localhost:4317\"\n"));
        assert!(text.contains("\n# otlp_endpoint = \"\"\n"));
        assert!(text.contains("\n# otlp_protocol = \"grpc\"\n"));
    }

    fn collect_missing(shape: &toml::Table, value: &Value, parent: &str, out: &mut Vec<String>) {
        for (name, expected) in shape {
            let key = if parent.is_empty() {
                name.clone()
            } else {
                format!("{parent}.{name}")
            };
            match lookup(value, name) {
                None => out.push(key),
                Some(child) => {
                    if let toml::Value::Table(shape) = expected {
                        collect_missing(shape, child, &key, out);
                    }
                }
            }
        }
    }

    const FULL: &str = r#"
        [trigger]
        api_url = "https://trigger.example.com"
        secret_key = "tr_prod_abc"
        requests_per_minute = 600
        rate_limit_reserve = 0.5
        timeout = "3s"
        max_body_bytes = 1048576

        [runs]
        ids = ["run_a", "run_b"]
        poll_interval = "2s"
        max_poll_interval = "2m"
        quiet_after = "5m"
        settle = "10s"
        max_age = "12h"
        not_found_after = "20m"
        concurrency = 4
        shard = "1/3"

        [discovery]
        enabled = true
        interval = "1m"
        tasks = ["task-a"]
        tags = ["team:x", "007"]
        statuses = ["COMPLETED", "FAILED"]
        lookback = "2h"
        include_test = true

        [export]
        endpoint = "https://tempo.example.com:4318"
        protocol = "http/protobuf"
        headers = { "x-scope-orgid" = "tenant-1" }
        compression = "zstd"
        timeout = "20s"
        max_batch_spans = 512
        max_pending_spans = 4096
        ca_file = "/etc/ca.pem"
        cert_file = "/etc/cert.pem"
        key_file = "/etc/key.pem"
        logs_endpoint = "https://loki.example.com"

        [export.resource]
        service_name = "jobs"
        service_name_from_task = true
        attributes = { "deployment.environment" = "prod" }

        [conversion]
        logs = "otlp_logs"
        enrich = false

        [state]
        path = "/var/lib/bridge/state.db"
        retention = "30d"

        [server]
        listen = ""

        [telemetry]
        otlp_endpoint = "https://otel.example.com:4318/v1/metrics"
        otlp_protocol = "http/protobuf"
        otlp_interval = "1m"

        [log]
        format = "json"
        level = "debug"
    "#;

    fn full_config() -> BridgeConfig {
        let mut c = BridgeConfig::default();
        c.trigger.api_url = "https://trigger.example.com".into();
        c.trigger.secret_key = SecretString::new("tr_prod_abc");
        c.trigger.requests_per_minute = 600;
        c.trigger.rate_limit_reserve = 0.5;
        c.trigger.timeout = Duration::from_secs(3);
        c.trigger.max_body_bytes = 1_048_576;
        c.runs.ids = vec!["run_a".into(), "run_b".into()];
        c.runs.poll_interval = Duration::from_secs(2);
        c.runs.max_poll_interval = Duration::from_secs(120);
        c.runs.quiet_after = Duration::from_secs(300);
        c.runs.settle = Duration::from_secs(10);
        c.runs.max_age = Duration::from_secs(12 * 3600);
        c.runs.not_found_after = Duration::from_secs(1200);
        c.runs.concurrency = 4;
        c.runs.shard = Shard::new(1, 3).expect("valid");
        c.discovery.enabled = true;
        c.discovery.interval = Duration::from_secs(60);
        c.discovery.tasks = vec!["task-a".into()];
        c.discovery.tags = vec!["team:x".into(), "007".into()];
        c.discovery.statuses = vec!["COMPLETED".into(), "FAILED".into()];
        c.discovery.lookback = Duration::from_secs(7200);
        c.discovery.include_test = true;
        c.export.endpoint = "https://tempo.example.com:4318".into();
        c.export.protocol = Protocol::HttpProtobuf;
        c.export.headers = BTreeMap::from([("x-scope-orgid".into(), "tenant-1".into())]);
        c.export.compression = Compression::Zstd;
        c.export.timeout = Duration::from_secs(20);
        c.export.max_batch_spans = 512;
        c.export.max_pending_spans = 4096;
        c.export.ca_file = Some("/etc/ca.pem".into());
        c.export.cert_file = Some("/etc/cert.pem".into());
        c.export.key_file = Some("/etc/key.pem".into());
        c.export.logs_endpoint = Some("https://loki.example.com".into());
        c.export.resource.service_name = "jobs".into();
        c.export.resource.service_name_from_task = true;
        c.export.resource.attributes = BTreeMap::from([("deployment.environment".into(), "prod".into())]);
        c.conversion.logs = LogsMode::OtlpLogs;
        c.conversion.enrich = false;
        c.state.path = "/var/lib/bridge/state.db".into();
        c.state.retention = Duration::from_secs(30 * 86_400);
        c.server.listen = None;
        c.telemetry.otlp_endpoint = Some("https://otel.example.com:4318/v1/metrics".into());
        c.telemetry.otlp_protocol = MetricsProtocol::HttpProtobuf;
        c.telemetry.otlp_interval = Duration::from_secs(60);
        c.log.format = LogFormat::Json;
        c.log.level = "debug".into();
        c
    }

    #[test]
    fn a_full_file_loads_every_key() {
        assert_eq!(load_text(FULL, &[]), Ok(full_config()));
    }

    /// The secrets are comments in the printed config, so a saved copy has none rather than
    /// placeholders posing as them.
    #[test]
    fn redacted_toml_reloads_to_the_same_config_but_the_secrets() {
        let printed = full_config().to_redacted_toml();
        let reloaded = load_text(&printed, &[]).expect(&printed);
        let mut expected = full_config();
        expected.trigger.secret_key = SecretString::default();
        expected.export.headers = BTreeMap::new();
        assert_eq!(reloaded, expected);
    }

    #[test]
    fn a_redacted_placeholder_is_refused_as_the_key_wherever_it_is_read() {
        let message = file_error("[trigger]\nsecret_key = \"tr_dev_…****\"\n");
        assert_eq!(
            message,
            "invalid value for `trigger.secret_key` (in FILE): \"tr_dev_…****\" is a redacted placeholder (as \
             check-config prints a key), not a key: set the real key with TRIGGER_SECRET_KEY or secret_key in [trigger]"
        );
        for var in ["TRIGGER_SECRET_KEY", "TRIGGER_OTEL_BRIDGE__TRIGGER__SECRET_KEY"] {
            let message = env_error(&[(var, "tr_prod_…****")]);
            assert!(
                message.starts_with(&format!(
                    "invalid value for `trigger.secret_key` (from environment variable {var}): \"tr_prod_…****\" is a redacted placeholder"
                )),
                "{message}"
            );
        }
        let message = env_error(&[("TRIGGER_SECRET_KEY", "**REDACTED**")]);
        assert!(message.contains("is a redacted placeholder"), "{message}");
        let message = file_error("[export.headers]\nauthorization = \"****\"\n");
        assert!(
            message
                .starts_with("invalid value for `export.headers.authorization` (in FILE): is a redacted placeholder"),
            "{message}"
        );
    }

    #[test]
    fn every_error_is_reported_in_one_pass() {
        let text = "secret_key = \"tr_dev_abc\"\n\
                    [runs]\nconcurrency = \"many\"\npoll_interval = \"5 parsecs\"\nsettle = \"forever\"\n\
                    [export]\nendpont = \"http://x\"\nmax_batch_spans = 0\nprotocol = \"http\"\n";
        let file = file(text);
        let error = load(
            Some(file.path()),
            &env(&[("TRIGGER_OTEL_BRIDGE__TRIGGER__TIMEOUT", "0s")]),
        )
        .expect_err("bad");
        let message = error.to_string();
        let errors: Vec<String> = error
            .into_list()
            .iter()
            .map(|e| e.to_string().replace(&file.path().display().to_string(), "FILE"))
            .collect();
        let starts = [
            "unknown key `export.endpont` (in FILE); did you mean `export.endpoint`?",
            "unknown key `secret_key` (in FILE); did you mean `trigger.secret_key`?",
            "invalid value for `runs.concurrency` (in FILE): expected an integer like 8",
            "invalid value for `export.protocol` (in FILE):",
            "invalid value for `runs.poll_interval` (in FILE): \"5 parsecs\" is not a duration",
            "invalid value for `runs.settle` (in FILE): \"forever\" is not a duration",
            "invalid value for `trigger.timeout` (from environment variable TRIGGER_OTEL_BRIDGE__TRIGGER__TIMEOUT): must be longer than zero",
            "invalid value for `export.max_batch_spans` (in FILE): must be at least 1",
        ];
        assert_eq!(errors.len(), starts.len(), "{errors:#?}");
        for start in starts {
            assert!(errors.iter().any(|e| e.starts_with(start)), "{start}: {errors:#?}");
        }
        assert!(message.starts_with("8 errors in the configuration:\n  - "), "{message}");
        // The secret value of the misplaced key is not quoted.
        assert!(!message.contains("tr_dev_abc"), "{message}");
    }

    #[test]
    fn a_rule_comparing_with_a_value_in_error_is_left_out() {
        // poll_interval is read at its default (5s) after its error; blaming it against
        // max_poll_interval = 2s would be about a value nobody wrote.
        let message = file_error("[runs]\npoll_interval = 5\nmax_poll_interval = \"2s\"\n");
        assert!(
            message.starts_with("invalid value for `runs.poll_interval` (in FILE): expected a string"),
            "{message}"
        );
        assert!(!message.contains("must not exceed"), "{message}");
    }

    #[test]
    fn a_misplaced_key_names_its_section_from_the_environment_too() {
        let message = env_error(&[("TRIGGER_OTEL_BRIDGE__SECRET_KEY", "tr_dev_abc")]);
        assert_eq!(
            message,
            "unknown key `secret_key` (from environment variable TRIGGER_OTEL_BRIDGE__SECRET_KEY); \
             did you mean `trigger.secret_key`?"
        );
        let message = file_error("[runs]\nendpoint = \"http://x\"\n");
        assert_eq!(
            message,
            "unknown key `runs.endpoint` (in FILE); did you mean `export.endpoint`?"
        );
    }

    #[test]
    fn prefixed_env_overrides_each_kind_of_value() {
        let config = load_text(
            FULL,
            &[
                ("TRIGGER_OTEL_BRIDGE__TRIGGER__API_URL", "http://trigger.internal"),
                ("TRIGGER_OTEL_BRIDGE__TRIGGER__SECRET_KEY", "tr_stg_env"),
                ("TRIGGER_OTEL_BRIDGE__TRIGGER__REQUESTS_PER_MINUTE", "60"),
                ("TRIGGER_OTEL_BRIDGE__TRIGGER__RATE_LIMIT_RESERVE", "0.25"),
                ("TRIGGER_OTEL_BRIDGE__RUNS__POLL_INTERVAL", "1s"),
                ("TRIGGER_OTEL_BRIDGE__RUNS__IDS", "run_x, run_y,,"),
                ("TRIGGER_OTEL_BRIDGE__RUNS__SHARD", "auto/5"),
                ("TRIGGER_OTEL_BRIDGE__DISCOVERY__ENABLED", "false"),
                ("TRIGGER_OTEL_BRIDGE__DISCOVERY__TAGS", "007"),
                ("TRIGGER_OTEL_BRIDGE__DISCOVERY__STATUSES", ""),
                ("TRIGGER_OTEL_BRIDGE__EXPORT__PROTOCOL", "stdout"),
                ("TRIGGER_OTEL_BRIDGE__EXPORT__HEADERS__AUTHORIZATION", "0123"),
                ("TRIGGER_OTEL_BRIDGE__EXPORT__RESOURCE__SERVICE_NAME", "svc"),
                ("TRIGGER_OTEL_BRIDGE__SERVER__LISTEN", "0.0.0.0:9000"),
                ("trigger_otel_bridge__log__level", "warn"),
            ],
        )
        .expect("valid");
        assert_eq!(config.trigger.api_url, "http://trigger.internal");
        assert_eq!(config.trigger.secret_key.expose(), "tr_stg_env");
        assert_eq!(config.trigger.requests_per_minute, 60);
        assert_eq!(config.trigger.rate_limit_reserve, 0.25);
        assert_eq!(config.runs.poll_interval, Duration::from_secs(1));
        assert_eq!(config.runs.ids, ["run_x", "run_y"]);
        assert_eq!(config.runs.shard, Shard::auto(5).expect("valid"));
        assert!(!config.discovery.enabled);
        // Kept as a string: no leading zero or other digit is lost on the way.
        assert_eq!(config.discovery.tags, ["007"]);
        assert!(config.discovery.statuses.is_empty());
        assert_eq!(config.export.protocol, Protocol::Stdout);
        // Merged into the file's table; the environment lowercases names.
        let headers: Vec<(&str, &str)> = config
            .export
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose()))
            .collect();
        assert_eq!(headers, [("authorization", "0123"), ("x-scope-orgid", "tenant-1")]);
        assert_eq!(config.export.resource.service_name, "svc");
        assert_eq!(config.server.listen.as_deref(), Some("0.0.0.0:9000"));
        assert_eq!(config.log.level, "warn");
        // Untouched keys keep the file's values.
        assert_eq!(config.runs.concurrency, 4);
    }

    #[test]
    fn sdk_variables_override_the_file() {
        let vars = [
            ("TRIGGER_SECRET_KEY", "tr_dev_sdk"),
            ("TRIGGER_API_URL", "http://localhost:3030"),
        ];
        let config = load_text(FULL, &vars).expect("valid");
        assert_eq!(config.trigger.secret_key.expose(), "tr_dev_sdk");
        assert_eq!(config.trigger.api_url, "http://localhost:3030");
        let config = load(None, &env(&vars)).expect("valid");
        assert_eq!(config.trigger.secret_key.expose(), "tr_dev_sdk");
    }

    #[test]
    fn prefixed_variables_override_sdk_variables() {
        let config = load_text(
            FULL,
            &[
                ("TRIGGER_SECRET_KEY", "tr_dev_sdk"),
                ("TRIGGER_API_URL", "http://sdk"),
                ("TRIGGER_OTEL_BRIDGE__TRIGGER__SECRET_KEY", "tr_dev_prefixed"),
                ("TRIGGER_OTEL_BRIDGE__TRIGGER__API_URL", "http://prefixed"),
            ],
        )
        .expect("valid");
        assert_eq!(config.trigger.secret_key.expose(), "tr_dev_prefixed");
        assert_eq!(config.trigger.api_url, "http://prefixed");
    }

    #[test]
    fn empty_sdk_variables_count_as_unset() {
        let config = load_text(FULL, &[("TRIGGER_SECRET_KEY", "")]).expect("valid");
        assert_eq!(config.trigger.secret_key.expose(), "tr_prod_abc");
    }

    #[test]
    fn otel_endpoint_fills_only_an_unset_endpoint() {
        let otel = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317");
        let config = load(None, &env(&[otel])).expect("valid");
        assert_eq!(config.export.endpoint, "http://otel:4317");
        let config = load_text("[export]\nprotocol = \"grpc\"", &[otel]).expect("valid");
        assert_eq!(config.export.endpoint, "http://otel:4317");
        let config = load(Some(Path::new(SHIPPED_CONFIG)), &env(&[otel])).expect("valid");
        assert_eq!(config.export.endpoint, "http://otel:4317");

        let config = load_text(FULL, &[otel]).expect("valid");
        assert_eq!(config.export.endpoint, "https://tempo.example.com:4318");
        let prefixed = ("TRIGGER_OTEL_BRIDGE__EXPORT__ENDPOINT", "http://prefixed:4317");
        let config = load(None, &env(&[otel, prefixed])).expect("valid");
        assert_eq!(config.export.endpoint, "http://prefixed:4317");
        let config = load(None, &env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])).expect("valid");
        assert_eq!(config.export.endpoint, "http://localhost:4317");
    }

    #[test]
    fn the_metrics_variables_fill_only_an_unset_telemetry_section() {
        let endpoint = ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://otel:4318");
        let protocol = ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf");
        let config = load(None, &env(&[endpoint, protocol])).expect("valid");
        assert_eq!(config.telemetry.otlp_endpoint.as_deref(), Some("http://otel:4318"));
        assert_eq!(config.telemetry.otlp_protocol, MetricsProtocol::HttpProtobuf);
        // The shipped file leaves both to the variables.
        let config = load(Some(Path::new(SHIPPED_CONFIG)), &env(&[endpoint, protocol])).expect("valid");
        assert_eq!(config.telemetry.otlp_endpoint.as_deref(), Some("http://otel:4318"));
        assert_eq!(config.telemetry.otlp_protocol, MetricsProtocol::HttpProtobuf);

        // The file, then a prefixed variable, win over them.
        let config = load_text(FULL, &[endpoint, ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")]).expect("valid");
        assert_eq!(config.telemetry, full_config().telemetry);
        let prefixed = ("TRIGGER_OTEL_BRIDGE__TELEMETRY__OTLP_ENDPOINT", "");
        let config = load(None, &env(&[endpoint, prefixed])).expect("valid");
        assert_eq!(
            config.telemetry.otlp_endpoint, None,
            "an empty prefixed variable turns it off"
        );

        // A bad protocol is named with its variable.
        let message = env_error(&[("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")]);
        assert!(message.contains("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"), "{message}");
        assert!(message.contains("grpc, http/protobuf"), "{message}");
        let message = env_error(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "otel:4318")]);
        assert!(
            message
                .contains("`telemetry.otlp_endpoint` (from environment variable OTEL_EXPORTER_OTLP_METRICS_ENDPOINT)"),
            "{message}"
        );
    }

    #[test]
    fn the_span_endpoint_variables_never_turn_the_metrics_on() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:4317"),
        ];
        let config = load(None, &env(&vars)).expect("valid");
        assert_eq!(config.export.endpoint, "http://otel:4317");
        assert_eq!(config.telemetry, crate::config::TelemetryConfig::default());
        let config = load(Some(Path::new(SHIPPED_CONFIG)), &env(&vars)).expect("valid");
        assert_eq!(config.telemetry.otlp_endpoint, None);
    }

    #[test]
    fn unrelated_variables_are_ignored() {
        let vars = [
            ("TRIGGER_OTEL_BRIDGE_CONFIG", "elsewhere.toml"),
            ("TRIGGER_OTEL_BRIDGE_SERVICE_HOST", "10.0.0.1"),
            ("PATH", "/usr/bin"),
        ];
        assert_eq!(load(None, &env(&vars)), Ok(BridgeConfig::default()));
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nope.toml");
        let error = load(Some(&path), &HashMap::new()).expect_err("missing");
        assert_eq!(error, ConfigError::FileNotFound { path: path.clone() });
        assert!(error.to_string().contains(&path.display().to_string()));
        let error = load(Some(dir.path()), &HashMap::new()).expect_err("a directory");
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn invalid_toml_names_the_path_and_line() {
        let message = file_error("[runs\nconcurrency = 1");
        assert!(message.starts_with("config file FILE is not valid TOML"), "{message}");
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn a_syntax_error_never_quotes_the_line_it_is_on() {
        for text in [
            format!("[trigger]\nsecret_key = {PLANTED_SECRET}\n"),
            format!("[trigger]\nsecret_key = \"{PLANTED_SECRET}\n"),
            format!("[export.headers]\nauthorization = {PLANTED_HEADER}\n"),
        ] {
            let message = file_error(&text);
            assert!(
                message.starts_with("config file FILE is not valid TOML: line 2, column"),
                "{message}"
            );
            assert!(!message.contains("PLANTED"), "{message}");
        }
    }

    #[test]
    fn unknown_keys_name_the_full_key_the_file_and_a_suggestion() {
        let message = file_error("[export]\nendpont = \"http://x\"");
        assert_eq!(
            message,
            "unknown key `export.endpont` (in FILE); did you mean `export.endpoint`?"
        );
        let message = file_error("[exporter]\nendpoint = \"http://x\"");
        assert_eq!(message, "unknown key `exporter` (in FILE); did you mean `export`?");
        let message = file_error("[runs]\nfrobnicate = 1");
        assert!(
            message.starts_with("unknown key `runs.frobnicate` (in FILE); valid keys here: concurrency, ids,"),
            "{message}"
        );
        let message = file_error("[export.resource]\nservice = \"x\"");
        assert!(message.contains("`export.resource.service`"), "{message}");
        // User-chosen keys are not checked against the schema.
        let config = load_text("[export.headers]\nanything = \"x\"", &[]).expect("valid");
        assert_eq!(config.export.headers.len(), 1);
    }

    #[test]
    fn unknown_env_keys_name_the_variable() {
        let message = env_error(&[("TRIGGER_OTEL_BRIDGE__RUNS__POLLINTERVAL", "5s")]);
        assert_eq!(
            message,
            "unknown key `runs.pollinterval` (from environment variable \
             TRIGGER_OTEL_BRIDGE__RUNS__POLLINTERVAL); did you mean `runs.poll_interval`?"
        );
    }

    #[test]
    fn wrong_types_in_the_file_name_the_key() {
        let cases = [
            ("[runs]\nconcurrency = \"many\"", "`runs.concurrency` (in FILE): expected an integer like 8, found a string"),
            // The config crate alone would round this to 3.
            ("[runs]\nconcurrency = 2.7", "`runs.concurrency` (in FILE): expected an integer like 8, found a float"),
            // … and read this as true.
            ("[discovery]\nenabled = 5", "`discovery.enabled` (in FILE): expected true or false, found an integer"),
            ("[runs]\npoll_interval = 5", "`runs.poll_interval` (in FILE): expected a string like \"5s\", found an integer"),
            ("[runs]\nids = \"run_a\"", "`runs.ids` (in FILE): expected an array of strings, found a string"),
            ("[runs]\nids = [\"run_a\", 2]", "`runs.ids[1]` (in FILE): expected a string, found an integer"),
            ("runs = 1", "`runs` (in FILE): expected a table, found an integer"),
            ("[runs]\nconcurrency = -1", "`runs.concurrency` (in FILE): invalid type: 64-bit integer `-1`, expected an unsigned 64 bit or less integer"),
            ("[trigger]\nrate_limit_reserve = \"a third\"", "`trigger.rate_limit_reserve` (in FILE): expected a number like 0.33, found a string"),
            ("[trigger]\nrequests_per_minute = 5000000000", "`trigger.requests_per_minute` (in FILE): invalid type: 64-bit unsigned integer `5000000000`, expected an unsigned 32 bit integer"),
        ];
        for (text, expected) in cases {
            let message = file_error(text);
            assert_eq!(message, format!("invalid value for {expected}"), "{text}");
        }
    }

    #[test]
    fn wrong_types_in_the_env_name_the_key_and_variable() {
        let message = env_error(&[("TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY", "many")]);
        assert_eq!(
            message,
            "invalid value for `runs.concurrency` (from environment variable \
             TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY): invalid type: string \"many\", expected an integer"
        );
        let message = env_error(&[("TRIGGER_OTEL_BRIDGE__EXPORT__HEADERS", "Bearer xyz")]);
        assert!(message.contains("`export.headers`"), "{message}");
        assert!(
            message.contains("TRIGGER_OTEL_BRIDGE__EXPORT__HEADERS__<KEY>"),
            "{message}"
        );
        assert!(!message.contains("xyz"), "{message}");
    }

    #[test]
    fn bad_durations_explain_the_unit() {
        let message = file_error("[runs]\npoll_interval = \"5 parsecs\"");
        assert!(
            message.starts_with("invalid value for `runs.poll_interval` (in FILE): \"5 parsecs\" is not a duration: unknown time unit \"parsecs\""),
            "{message}"
        );
        let message = env_error(&[("TRIGGER_OTEL_BRIDGE__EXPORT__TIMEOUT", "10")]);
        assert!(message.starts_with("invalid value for `export.timeout` (from environment variable TRIGGER_OTEL_BRIDGE__EXPORT__TIMEOUT): \"10\" is not a duration: time unit needed"), "{message}");
    }

    #[test]
    fn bad_shards_name_the_key_and_the_rule() {
        for (shard, reason) in [
            ("3/3", "index must be below the count"),
            ("a/2", "index before `/` must be a whole number"),
            ("1", "expected \"i/n\""),
            ("0/0", "count n must be at least 1"),
        ] {
            let message = file_error(&format!("[runs]\nshard = \"{shard}\""));
            let prefix = format!("invalid value for `runs.shard` (in FILE): \"{shard}\" is not a valid shard: ");
            assert!(message.starts_with(&prefix) && message.contains(reason), "{message}");
        }
        let message = env_error(&[("TRIGGER_OTEL_BRIDGE__RUNS__SHARD", "3/3")]);
        assert!(
            message.contains("(from environment variable TRIGGER_OTEL_BRIDGE__RUNS__SHARD)"),
            "{message}"
        );
    }

    #[test]
    fn bad_enum_values_list_the_valid_ones() {
        let cases = [
            (
                "[export]\nprotocol = \"http\"",
                "export.protocol",
                "grpc, http/protobuf, http/json, stdout",
            ),
            (
                "[export]\ncompression = \"brotli\"",
                "export.compression",
                "gzip, zstd, none",
            ),
            (
                "[conversion]\nlogs = \"events\"",
                "conversion.logs",
                "span_events, spans, drop, otlp_logs",
            ),
            ("[log]\nformat = \"yaml\"", "log.format", "text, json"),
        ];
        for (text, key, valid) in cases {
            let message = file_error(text);
            assert!(
                message.starts_with(&format!("invalid value for `{key}` (in FILE): ")),
                "{message}"
            );
            assert!(message.ends_with(&format!("expected one of {valid}")), "{message}");
        }
    }

    #[test]
    fn validation_errors_name_the_key_and_its_source() {
        let cases = [
            ("[runs]\nconcurrency = 0", "runs.concurrency", "must be at least 1"),
            (
                "[export]\nmax_batch_spans = 0",
                "export.max_batch_spans",
                "must be at least 1",
            ),
            (
                "[export]\nmax_pending_spans = 100",
                "export.max_pending_spans",
                "must be at least export.max_batch_spans (2048)",
            ),
            (
                "[trigger]\nrequests_per_minute = 0",
                "trigger.requests_per_minute",
                "must be at least 1",
            ),
            (
                "[trigger]\nrate_limit_reserve = 1",
                "trigger.rate_limit_reserve",
                "1 is not a share of x-ratelimit-limit left for the application's own calls",
            ),
            (
                "[trigger]\nrate_limit_reserve = -0.5",
                "trigger.rate_limit_reserve",
                "from 0 to below 1",
            ),
            (
                "[runs]\npoll_interval = \"2m\"",
                "runs.poll_interval",
                "2m must not exceed runs.max_poll_interval (1m)",
            ),
            (
                "[trigger]\ntimeout = \"0s\"",
                "trigger.timeout",
                "must be longer than zero",
            ),
            (
                "[export]\ntimeout = \"0s\"",
                "export.timeout",
                "must be longer than zero",
            ),
            (
                "[export]\ncert_file = \"c.pem\"",
                "export.cert_file",
                "needs export.key_file",
            ),
            (
                "[export]\nkey_file = \"k.pem\"",
                "export.key_file",
                "needs export.cert_file",
            ),
        ];
        for (text, key, message_part) in cases {
            let message = file_error(text);
            let prefix = format!("invalid value for `{key}` (in FILE): ");
            assert!(
                message.starts_with(&prefix) && message.contains(message_part),
                "{message}"
            );
        }
        // Blamed on a key left at its default: say so.
        let message = file_error("[export]\nmax_batch_spans = 200000");
        assert!(
            message.starts_with("invalid value for `export.max_pending_spans` (built-in default)"),
            "{message}"
        );
        let message = env_error(&[("TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY", "0")]);
        assert!(
            message.contains("(from environment variable TRIGGER_OTEL_BRIDGE__RUNS__CONCURRENCY)"),
            "{message}"
        );
        let message = env_error(&[("TRIGGER_OTEL_BRIDGE__TRIGGER__RATE_LIMIT_RESERVE", "NaN")]);
        assert!(
            message.starts_with(
                "invalid value for `trigger.rate_limit_reserve` (from environment variable \
                 TRIGGER_OTEL_BRIDGE__TRIGGER__RATE_LIMIT_RESERVE)"
            ),
            "{message}"
        );
        // An integer is a fraction too.
        assert_eq!(
            load_text("[trigger]\nrate_limit_reserve = 0", &[]).map(|c| c.trigger.rate_limit_reserve),
            Ok(0.0)
        );
        let message = env_error(&[("TRIGGER_API_URL", "localhost:3030")]);
        assert!(
            message.starts_with("invalid value for `trigger.api_url` (from environment variable TRIGGER_API_URL)"),
            "{message}"
        );
        let message = env_error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "otel:4317")]);
        assert!(
            message.starts_with(
                "invalid value for `export.endpoint` (from environment variable OTEL_EXPORTER_OTLP_ENDPOINT)"
            ),
            "{message}"
        );
    }

    #[test]
    fn secrets_never_appear_in_debug_output_or_printed_toml() {
        let text = format!(
            "[trigger]\nsecret_key = \"{PLANTED_SECRET}\"\n[export.headers]\nauthorization = \"{PLANTED_HEADER}\"\n"
        );
        for config in [
            load_text(&text, &[]).expect("valid"),
            load(
                None,
                &env(&[
                    ("TRIGGER_SECRET_KEY", PLANTED_SECRET),
                    ("TRIGGER_OTEL_BRIDGE__EXPORT__HEADERS__AUTHORIZATION", PLANTED_HEADER),
                ]),
            )
            .expect("valid"),
        ] {
            assert_eq!(config.trigger.secret_key.expose(), PLANTED_SECRET);
            assert_eq!(config.export.headers["authorization"].expose(), PLANTED_HEADER);
            for printed in [format!("{config:?}"), format!("{config:#?}"), config.to_redacted_toml()] {
                assert!(!printed.contains("PLANTED"), "{printed}");
            }
            let toml = config.to_redacted_toml();
            assert!(toml.contains("secret_key = \"tr_dev_…****\""), "{toml}");
            assert!(toml.contains("authorization = \"****\""), "{toml}");
        }
    }

    #[test]
    fn errors_about_secret_keys_do_not_quote_the_value() {
        let message = file_error(&format!("[export]\nheaders = \"{PLANTED_HEADER}\""));
        assert!(
            message.contains("`export.headers`") && !message.contains("PLANTED"),
            "{message}"
        );
        let message = file_error(&format!("[export.headers]\nauthorization = [\"{PLANTED_HEADER}\"]"));
        assert!(
            message.contains("`export.headers.authorization`") && !message.contains("PLANTED"),
            "{message}"
        );
        let message = file_error("[trigger]\nsecret_key = 123456");
        assert!(
            message.contains("`trigger.secret_key`") && !message.contains("123456"),
            "{message}"
        );
    }

    #[test]
    fn resolve_path_precedence() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path();
        let flag = Some(PathBuf::from("flag.toml"));
        let var = env(&[(CONFIG_PATH_VAR, "var.toml")]);
        let none = HashMap::new();

        assert_eq!(resolve_path_in(None, &none, base), None);
        std::fs::create_dir(base.join("config")).expect("mkdir");
        std::fs::write(base.join("config/bridge.toml"), "").expect("write");
        assert_eq!(
            resolve_path_in(None, &none, base),
            Some(base.join("config/bridge.toml"))
        );
        std::fs::write(base.join("bridge.toml"), "").expect("write");
        assert_eq!(resolve_path_in(None, &none, base), Some(base.join("bridge.toml")));
        assert_eq!(resolve_path_in(None, &var, base), Some(PathBuf::from("var.toml")));
        assert_eq!(resolve_path_in(flag.clone(), &var, base), flag);
        let empty = env(&[(CONFIG_PATH_VAR, "")]);
        assert_eq!(resolve_path_in(None, &empty, base), Some(base.join("bridge.toml")));
    }
}
