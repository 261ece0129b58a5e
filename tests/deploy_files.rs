//! The deployment files under `deploy/`: every YAML file parses; the Kubernetes manifests, the
//! compose stack, the collector, Tempo, Prometheus and Grafana files, the dashboard, the systemd
//! unit and the Dockerfile have what operators rely on; and every configuration they hand the
//! bridge (the image's `deploy/bridge.toml`, the ConfigMap, the containers' environment) is
//! accepted by the binary's own `check-config`.
//!
//! Each check is a function returning the problems it found, so that next to the test of the
//! real file a test of a broken copy shows the check can fail.

use serde_json::Value as Json;
use serde_yaml_ng::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The bridge's metrics (issue 5), as exposed: counters end in `_total`; histograms exist only as
/// their `_bucket`, `_sum` and `_count` series.
const METRICS: [&str; 21] = [
    "trigger_otel_bridge_runs_watched",
    "trigger_otel_bridge_runs_retired_total",
    "trigger_otel_bridge_api_requests_total",
    "trigger_otel_bridge_api_rate_limit_remaining",
    "trigger_otel_bridge_api_rate_limit_limit",
    "trigger_otel_bridge_api_rate_limit_reserve",
    "trigger_otel_bridge_api_allowed_requests_per_minute",
    "trigger_otel_bridge_api_holds_total",
    "trigger_otel_bridge_spans_exported_total",
    "trigger_otel_bridge_spans_export_failed_total",
    "trigger_otel_bridge_spans_rejected_total",
    "trigger_otel_bridge_log_records_exported_total",
    "trigger_otel_bridge_log_records_export_failed_total",
    "trigger_otel_bridge_log_records_rejected_total",
    "trigger_otel_bridge_export_batch_duration_seconds",
    "trigger_otel_bridge_invalid_events_total",
    "trigger_otel_bridge_pending_spans",
    "trigger_otel_bridge_poll_lag_seconds",
    "trigger_otel_bridge_build_info",
    "trigger_otel_bridge_discovery_source",
    "trigger_otel_bridge_discovery_source_switches_total",
];
const HISTOGRAMS: [&str; 2] = [
    "trigger_otel_bridge_export_batch_duration_seconds",
    "trigger_otel_bridge_poll_lag_seconds",
];
/// What the dashboard must show (the list: exported spans, failures, rate-limit
/// headroom, lag, watched runs; and the brief's pending spans, invalid events, batch duration;
/// issue 13's reserve left to the application and the pace the bridge allows itself).
const DASHBOARD_MUST_SHOW: [&str; 11] = [
    "trigger_otel_bridge_api_rate_limit_reserve",
    "trigger_otel_bridge_api_allowed_requests_per_minute",
    "trigger_otel_bridge_spans_exported_total",
    "trigger_otel_bridge_spans_export_failed_total",
    "trigger_otel_bridge_spans_rejected_total",
    "trigger_otel_bridge_api_rate_limit_remaining",
    "trigger_otel_bridge_poll_lag_seconds",
    "trigger_otel_bridge_runs_watched",
    "trigger_otel_bridge_pending_spans",
    "trigger_otel_bridge_invalid_events_total",
    "trigger_otel_bridge_export_batch_duration_seconds",
];
/// Variables the bridge reads that are not `TRIGGER_OTEL_BRIDGE__<SECTION>__<KEY>`.
const OTHER_BRIDGE_VARS: [&str; 8] = [
    "TRIGGER_SECRET_KEY",
    "TRIGGER_API_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    "TRIGGER_OTEL_BRIDGE_CONFIG",
    "RUST_LOG",
    "HOSTNAME",
];
const ENV_PREFIX: &str = "TRIGGER_OTEL_BRIDGE__";
const IMAGE_CONFIG_PATH: &str = "/etc/trigger-otel-bridge/bridge.toml";
const STATE_DIR: &str = "/var/lib/trigger-otel-bridge";
const METRICS_PORT: u64 = 9464;
const DUMMY_KEY: &str = "tr_dev_deployfilestest";
/// Trigger.dev's API rate limit per environment, requests a minute.
const TRIGGER_RATE_LIMIT: u64 = 1500;

// ---------------------------------------------------------------------------------------------
// Files

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    let path = repo().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn yaml_files() -> Vec<PathBuf> {
    let mut all = Vec::new();
    files_under(&repo().join("deploy"), &mut all);
    all.retain(|path| matches!(path.extension().and_then(|e| e.to_str()), Some("yml" | "yaml")));
    all
}

/// Every document of a YAML stream, empty ones (a bare `---`) left out.
fn parse_documents(text: &str) -> Result<Vec<Yaml>, String> {
    use serde::Deserialize;
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Yaml::deserialize(document).map_err(|error| error.to_string())?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

fn documents(relative: &str) -> Vec<Yaml> {
    parse_documents(&read(relative)).unwrap_or_else(|error| panic!("{relative}: {error}"))
}

fn document(relative: &str) -> Yaml {
    let mut all = documents(relative);
    assert_eq!(all.len(), 1, "{relative}: expected one YAML document");
    all.remove(0)
}

// ---------------------------------------------------------------------------------------------
// YAML helpers

/// The value at a dotted path of mapping keys (`spec.template.spec`); `None` when absent.
fn at<'a>(value: &'a Yaml, path: &str) -> Option<&'a Yaml> {
    path.split('.').try_fold(value, |node, key| node.get(key))
}

fn str_at<'a>(value: &'a Yaml, path: &str) -> Option<&'a str> {
    at(value, path).and_then(Yaml::as_str)
}

fn seq_at<'a>(value: &'a Yaml, path: &str) -> &'a [Yaml] {
    at(value, path)
        .and_then(Yaml::as_sequence)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn string_map(value: Option<&Yaml>) -> BTreeMap<String, String> {
    value
        .and_then(Yaml::as_mapping)
        .map(|mapping| {
            mapping
                .iter()
                .filter_map(|(key, value)| {
                    let value = match value {
                        Yaml::String(text) => text.clone(),
                        Yaml::Number(number) => number.to_string(),
                        Yaml::Bool(flag) => flag.to_string(),
                        _ => return None,
                    };
                    Some((key.as_str()?.to_owned(), value))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn kind_of(doc: &Yaml) -> &str {
    str_at(doc, "kind").unwrap_or_default()
}

fn find_kind<'a>(docs: &'a [Yaml], kind: &str) -> Vec<&'a Yaml> {
    docs.iter().filter(|doc| kind_of(doc) == kind).collect()
}

// ---------------------------------------------------------------------------------------------
// The binary

fn bridge(args: &[&str], env: &BTreeMap<String, String>) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trigger-otel-bridge"))
        .args(args)
        .env_clear()
        .envs(env)
        .current_dir(repo())
        .output()
        .expect("run trigger-otel-bridge")
}

/// `check-config --config <path>` with exactly `env`: its stdout, or what went wrong.
fn check_config(path: &Path, env: &BTreeMap<String, String>) -> Result<String, String> {
    let output = bridge(&["check-config", "--config", path.to_str().unwrap()], env);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "check-config --config {} exited with {:?}: {}",
            path.display(),
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn check_config_text(text: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, text).unwrap();
    check_config(&path, env)
}

/// The config keys `config/bridge.toml` documents (`export.endpoint` is commented out there on
/// purpose, so it is added), as dotted paths; tables are keys too.
fn schema_keys() -> BTreeSet<String> {
    fn walk(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if let toml::Value::Table(inner) = value {
                walk(inner, &path, out);
            }
            out.insert(path);
        }
    }
    let table: toml::Table = read("config/bridge.toml").parse().expect("config/bridge.toml parses");
    let mut keys = BTreeSet::new();
    walk(&table, "", &mut keys);
    keys.insert("export.endpoint".to_owned());
    keys
}

/// Problems with environment variable names given to the bridge: every prefixed one must name a
/// key of the schema (headers and resource attributes take any name below their table).
fn env_name_problems(names: impl IntoIterator<Item = String>, keys: &BTreeSet<String>) -> Vec<String> {
    let free_form = ["export.headers", "export.resource.attributes"];
    let mut problems = Vec::new();
    for name in names {
        if let Some(rest) = name.strip_prefix(ENV_PREFIX) {
            let key = rest.to_lowercase().replace("__", ".");
            let known = keys.contains(&key) || free_form.iter().any(|table| key.starts_with(&format!("{table}.")));
            if !known {
                problems.push(format!("{name}: no key `{key}` in config/bridge.toml"));
            }
        } else if !OTHER_BRIDGE_VARS.contains(&name.as_str()) {
            problems.push(format!("{name}: not a variable the bridge reads"));
        }
    }
    problems
}

// ---------------------------------------------------------------------------------------------
// Every YAML file

#[test]
fn every_yaml_file_under_deploy_parses() {
    let files = yaml_files();
    let names: BTreeSet<String> = files
        .iter()
        .map(|path| path.strip_prefix(repo()).unwrap().to_string_lossy().into_owned())
        .collect();
    for expected in [
        "deploy/docker-compose.yml",
        "deploy/otel-collector/config.yaml",
        "deploy/tempo/tempo.yaml",
        "deploy/prometheus/prometheus.yml",
        "deploy/grafana/provisioning/datasources/datasources.yaml",
        "deploy/grafana/provisioning/dashboards/dashboards.yaml",
        "deploy/kubernetes/configmap.yaml",
        "deploy/kubernetes/secret.example.yaml",
        "deploy/kubernetes/sidecar.yaml",
        "deploy/kubernetes/statefulset.yaml",
        "deploy/kubernetes/servicemonitor.yaml",
    ] {
        assert!(names.contains(expected), "{expected} is missing; found {names:?}");
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = parse_documents(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        assert!(!docs.is_empty(), "{}: no YAML document", path.display());
        for doc in docs {
            assert!(doc.is_mapping(), "{}: a document is not a mapping", path.display());
        }
    }
}

#[test]
fn the_yaml_check_reads_every_document_and_rejects_broken_yaml() {
    let docs = parse_documents("---\na: 1\n---\nb: 2\n---\n").unwrap();
    assert_eq!(docs.len(), 2);
    assert!(parse_documents("a: [1, 2\n").is_err());
    assert!(parse_documents("a: 1\n  b: 2\n").is_err());
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

fn kubernetes_docs() -> Vec<(String, Yaml)> {
    let mut all = Vec::new();
    for path in yaml_files() {
        let relative = path.strip_prefix(repo()).unwrap().to_string_lossy().into_owned();
        if relative.starts_with("deploy/kubernetes/") {
            for doc in documents(&relative) {
                all.push((relative.clone(), doc));
            }
        }
    }
    all
}

fn manifest_problems(doc: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    for key in ["apiVersion", "kind", "metadata.name"] {
        if str_at(doc, key).is_none_or(str::is_empty) {
            problems.push(format!("no {key}"));
        }
    }
    let name = str_at(doc, "metadata.name").unwrap_or_default();
    let valid_name = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if !valid_name {
        problems.push(format!("metadata.name {name:?} is not a DNS label"));
    }
    if str_at(doc, "metadata.namespace").is_some() {
        problems.push("hard-codes metadata.namespace (apply with -n instead)".to_owned());
    }
    problems
}

#[test]
fn every_kubernetes_manifest_has_api_version_kind_and_name() {
    let docs = kubernetes_docs();
    let kinds: BTreeSet<&str> = docs.iter().map(|(_, doc)| kind_of(doc)).collect();
    for kind in [
        "ConfigMap",
        "Secret",
        "Deployment",
        "StatefulSet",
        "Service",
        "ServiceMonitor",
    ] {
        assert!(kinds.contains(kind), "no {kind} under deploy/kubernetes/: {kinds:?}");
    }
    for (file, doc) in &docs {
        let problems = manifest_problems(doc);
        assert!(problems.is_empty(), "{file}: {problems:?}");
    }
    let broken: Yaml = serde_yaml_ng::from_str("apiVersion: v1\nmetadata:\n  name: Bad_Name\n").unwrap();
    let problems = manifest_problems(&broken);
    assert!(problems.iter().any(|p| p.contains("kind")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("DNS label")), "{problems:?}");
}

/// The container running the bridge: the one whose image names it.
fn bridge_container(pod_spec: &Yaml) -> Option<&Yaml> {
    seq_at(pod_spec, "containers")
        .iter()
        .find(|container| str_at(container, "image").is_some_and(|image| image.contains("trigger-otel-bridge")))
}

/// Probes, port, key and mounts every bridge container needs, wherever it runs.
fn bridge_container_problems(pod_spec: &Yaml, configmap_name: &str, secret: (&str, &str)) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(container) = bridge_container(pod_spec) else {
        return vec!["no container with a trigger-otel-bridge image".to_owned()];
    };
    let metrics_port = seq_at(container, "ports")
        .iter()
        .find(|port| str_at(port, "name") == Some("metrics"));
    match metrics_port
        .and_then(|port| at(port, "containerPort"))
        .and_then(Yaml::as_u64)
    {
        Some(METRICS_PORT) => {}
        other => problems.push(format!("port `metrics` should be {METRICS_PORT}, is {other:?}")),
    }
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let Some(get) = at(container, &format!("{probe}.httpGet")) else {
            problems.push(format!("no {probe}.httpGet"));
            continue;
        };
        if str_at(get, "path") != Some(path) {
            problems.push(format!("{probe} should get {path}, gets {:?}", str_at(get, "path")));
        }
        let port_ok = match at(get, "port") {
            Some(Yaml::String(name)) => name == "metrics",
            Some(Yaml::Number(number)) => number.as_u64() == Some(METRICS_PORT),
            _ => false,
        };
        if !port_ok {
            problems.push(format!("{probe} is not on the metrics port"));
        }
    }
    let env = seq_at(container, "env");
    let key = env.iter().find(|var| str_at(var, "name") == Some("TRIGGER_SECRET_KEY"));
    let reference = key.and_then(|var| at(var, "valueFrom.secretKeyRef"));
    match reference {
        Some(reference)
            if (str_at(reference, "name"), str_at(reference, "key")) == (Some(secret.0), Some(secret.1)) => {}
        Some(reference) => problems.push(format!(
            "TRIGGER_SECRET_KEY refers to secret {:?} key {:?}, not {secret:?} of secret.example.yaml",
            str_at(reference, "name"),
            str_at(reference, "key")
        )),
        None => problems.push("TRIGGER_SECRET_KEY is not taken from a secretKeyRef".to_owned()),
    }
    if env
        .iter()
        .any(|var| str_at(var, "name") == Some("TRIGGER_SECRET_KEY") && at(var, "value").is_some())
    {
        problems.push("TRIGGER_SECRET_KEY has a literal value".to_owned());
    }
    let mounts = seq_at(container, "volumeMounts");
    let mount_of = |path: &str| {
        mounts
            .iter()
            .find(|mount| str_at(mount, "mountPath") == Some(path))
            .and_then(|mount| str_at(mount, "name"))
    };
    let config_volume = mount_of("/etc/trigger-otel-bridge").and_then(|name| {
        seq_at(pod_spec, "volumes")
            .iter()
            .find(|volume| str_at(volume, "name") == Some(name))
    });
    if config_volume.and_then(|volume| str_at(volume, "configMap.name")) != Some(configmap_name) {
        problems.push(format!(
            "/etc/trigger-otel-bridge is not the ConfigMap {configmap_name} (a directory mount, no subPath)"
        ));
    }
    if mount_of(STATE_DIR).is_none() {
        problems.push(format!("nothing mounted at the state directory {STATE_DIR}"));
    }
    let args: Vec<&str> = seq_at(container, "args").iter().filter_map(Yaml::as_str).collect();
    if args != ["run", "--config", IMAGE_CONFIG_PATH] {
        problems.push(format!("args should be run --config {IMAGE_CONFIG_PATH}, are {args:?}"));
    }
    if at(container, "securityContext.allowPrivilegeEscalation").and_then(Yaml::as_bool) != Some(false) {
        problems.push("allowPrivilegeEscalation is not false".to_owned());
    }
    problems
}

/// The literal environment of the bridge container, with the secret replaced by a dummy key.
fn container_env(pod_spec: &Yaml) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for var in seq_at(bridge_container(pod_spec).unwrap(), "env") {
        let name = str_at(var, "name").unwrap().to_owned();
        let value = match str_at(var, "value") {
            Some(value) => value.to_owned(),
            None if name == "TRIGGER_SECRET_KEY" => DUMMY_KEY.to_owned(),
            None => continue,
        };
        env.insert(name, value);
    }
    env
}

fn configmap() -> (String, String) {
    let doc = document("deploy/kubernetes/configmap.yaml");
    assert_eq!(kind_of(&doc), "ConfigMap");
    let name = str_at(&doc, "metadata.name").unwrap().to_owned();
    let toml = doc["data"]["bridge.toml"]
        .as_str()
        .expect("configmap.yaml has data[bridge.toml]")
        .to_owned();
    (name, toml)
}

fn secret() -> (String, String) {
    let doc = document("deploy/kubernetes/secret.example.yaml");
    assert_eq!(kind_of(&doc), "Secret");
    let data = string_map(at(&doc, "stringData"));
    assert_eq!(
        data.len(),
        1,
        "secret.example.yaml should hold only the key: {:?}",
        data.keys()
    );
    let (key, value) = data.into_iter().next().unwrap();
    assert!(value.starts_with("tr_"), "the example key looks like a Trigger.dev key");
    (str_at(&doc, "metadata.name").unwrap().to_owned(), key)
}

fn statefulset_problems(docs: &[Yaml], configmap_name: &str, secret: (&str, &str)) -> Vec<String> {
    let mut problems = Vec::new();
    let sets = find_kind(docs, "StatefulSet");
    let [set] = sets.as_slice() else {
        return vec![format!("expected one StatefulSet, found {}", sets.len())];
    };
    let replicas = at(set, "spec.replicas").and_then(Yaml::as_u64);
    if replicas != Some(3) {
        problems.push(format!("spec.replicas should be 3, is {replicas:?}"));
    }
    let pod_spec = at(set, "spec.template.spec").cloned().unwrap_or_default();
    problems.extend(bridge_container_problems(&pod_spec, configmap_name, secret));

    // The shard: auto/N with N = replicas, from the environment or the ConfigMap.
    let env = match bridge_container(&pod_spec) {
        Some(_) => container_env(&pod_spec),
        None => BTreeMap::new(),
    };
    match env.get("TRIGGER_OTEL_BRIDGE__RUNS__SHARD") {
        Some(shard) if Some(shard.as_str()) == replicas.map(|n| format!("auto/{n}")).as_deref() => {}
        other => problems.push(format!(
            "TRIGGER_OTEL_BRIDGE__RUNS__SHARD should be auto/<replicas>, is {other:?}"
        )),
    }

    // All replicas share one key's rate limit (about 1,500 requests a minute).
    let budget = env
        .get("TRIGGER_OTEL_BRIDGE__TRIGGER__REQUESTS_PER_MINUTE")
        .and_then(|value| value.parse::<u64>().ok());
    match (budget, replicas) {
        (Some(each), Some(n)) if each * n <= TRIGGER_RATE_LIMIT => {}
        _ => problems.push(format!(
            "TRIGGER_OTEL_BRIDGE__TRIGGER__REQUESTS_PER_MINUTE ({budget:?}) × replicas ({replicas:?}) \
             should be set and stay under Trigger.dev's {TRIGGER_RATE_LIMIT} a minute"
        )),
    }

    // One PVC per pod, mounted at the state directory.
    let claims = seq_at(set, "spec.volumeClaimTemplates");
    let state_mount = bridge_container(&pod_spec).and_then(|container| {
        seq_at(container, "volumeMounts")
            .iter()
            .find(|mount| str_at(mount, "mountPath") == Some(STATE_DIR))
            .and_then(|mount| str_at(mount, "name"))
    });
    let claimed = claims
        .iter()
        .any(|claim| str_at(claim, "metadata.name").is_some() && str_at(claim, "metadata.name") == state_mount);
    if !claimed {
        problems.push(format!("no volumeClaimTemplate mounted at {STATE_DIR}"));
    }
    if seq_at(&pod_spec, "volumes")
        .iter()
        .any(|volume| str_at(volume, "name") == state_mount && volume.get("emptyDir").is_some())
    {
        problems.push("the state directory is an emptyDir".to_owned());
    }

    // The headless Service named by serviceName, and a metrics Service selecting the pods.
    let pod_labels = string_map(at(set, "spec.template.metadata.labels"));
    let selects_pods = |service: &Yaml| {
        let selector = string_map(at(service, "spec.selector"));
        !selector.is_empty() && selector.iter().all(|(key, value)| pod_labels.get(key) == Some(value))
    };
    let services = find_kind(docs, "Service");
    let service_name = str_at(set, "spec.serviceName");
    let headless = services
        .iter()
        .find(|service| str_at(service, "metadata.name") == service_name);
    match headless {
        Some(service) if str_at(service, "spec.clusterIP") == Some("None") && selects_pods(service) => {}
        _ => problems.push(format!(
            "spec.serviceName {service_name:?} is not a headless Service of these pods"
        )),
    }
    let metrics_port_named = |service: &Yaml| {
        seq_at(service, "spec.ports").iter().any(|port| {
            str_at(port, "name") == Some("metrics")
                && matches!(at(port, "targetPort"), Some(Yaml::String(t)) if t == "metrics")
        })
    };
    let metrics = services
        .iter()
        .find(|service| str_at(service, "spec.clusterIP") != Some("None") && metrics_port_named(service));
    match metrics {
        Some(service) if selects_pods(service) => {}
        _ => problems.push("no (non-headless) Service with a port named `metrics` selecting the pods".to_owned()),
    }
    let selector = string_map(at(set, "spec.selector.matchLabels"));
    if selector.is_empty() || !selector.iter().all(|(key, value)| pod_labels.get(key) == Some(value)) {
        problems.push("spec.selector does not match the pod template's labels".to_owned());
    }
    let grace = at(&pod_spec, "terminationGracePeriodSeconds").and_then(Yaml::as_u64);
    if grace.is_none_or(|seconds| seconds <= 10) {
        problems.push(format!(
            "terminationGracePeriodSeconds should exceed the 10 s drain, is {grace:?}"
        ));
    }
    problems
}

#[test]
fn the_statefulset_is_sharded_over_three_replicas_with_state_probes_and_secret() {
    let docs = documents("deploy/kubernetes/statefulset.yaml");
    let (configmap_name, _) = configmap();
    let (secret_name, secret_key) = secret();
    let secret = (secret_name.as_str(), secret_key.as_str());
    let problems = statefulset_problems(&docs, &configmap_name, secret);
    assert!(problems.is_empty(), "statefulset.yaml: {problems:#?}");

    // The same check on broken copies.
    let text = read("deploy/kubernetes/statefulset.yaml");
    for (from, to, expected) in [
        ("replicas: 3", "replicas: 2", "spec.replicas"),
        ("value: auto/3", "value: auto/2", "RUNS__SHARD"),
        ("value: \"400\"", "value: \"1200\"", "REQUESTS_PER_MINUTE"),
        ("path: /readyz", "path: /ready", "readinessProbe"),
        (
            "path: /healthz\n              port: metrics\n            periodSeconds: 10",
            "path: /livez\n              port: metrics\n            periodSeconds: 10",
            "livenessProbe",
        ),
        (
            "secretKeyRef:\n                  name: trigger-otel-bridge",
            "secretKeyRef:\n                  name: other",
            "TRIGGER_SECRET_KEY",
        ),
        (
            "  volumeClaimTemplates:",
            "  volumeClaimTemplatesX:",
            "volumeClaimTemplate",
        ),
        ("clusterIP: None", "clusterIP: 10.0.0.1", "headless"),
        (
            "    - name: metrics\n      port: 9464\n      targetPort: metrics\n      protocol: TCP",
            "    - name: http\n      port: 9464\n      targetPort: metrics\n      protocol: TCP",
            "named `metrics`",
        ),
    ] {
        assert!(text.contains(from), "mutation anchor {from:?} not in statefulset.yaml");
        let broken = parse_documents(&text.replacen(from, to, 1)).unwrap();
        let problems = statefulset_problems(&broken, &configmap_name, secret);
        assert!(
            problems.iter().any(|problem| problem.contains(expected)),
            "replacing {from:?} should be reported ({expected}); got {problems:#?}"
        );
    }
}

fn sidecar_problems(docs: &[Yaml], configmap_name: &str, secret: (&str, &str)) -> Vec<String> {
    let deployments = find_kind(docs, "Deployment");
    let [deployment] = deployments.as_slice() else {
        return vec![format!("expected one Deployment, found {}", deployments.len())];
    };
    let pod_spec = at(deployment, "spec.template.spec").cloned().unwrap_or_default();
    let containers = seq_at(&pod_spec, "containers");
    let mut problems = Vec::new();
    let apps = containers
        .iter()
        .filter(|container| {
            !str_at(container, "image")
                .unwrap_or_default()
                .contains("trigger-otel-bridge")
        })
        .count();
    if containers.len() < 2 || apps == 0 {
        problems.push(format!(
            "expected the app and the bridge containers, found {}",
            containers.len()
        ));
    }
    problems.extend(bridge_container_problems(&pod_spec, configmap_name, secret));
    if at(deployment, "spec.replicas").and_then(Yaml::as_u64) != Some(1) {
        problems.push("one bridge per environment: spec.replicas should be 1".to_owned());
    }
    problems
}

#[test]
fn the_sidecar_runs_the_bridge_next_to_the_app() {
    let docs = documents("deploy/kubernetes/sidecar.yaml");
    let (configmap_name, _) = configmap();
    let (secret_name, secret_key) = secret();
    let secret = (secret_name.as_str(), secret_key.as_str());
    let problems = sidecar_problems(&docs, &configmap_name, secret);
    assert!(problems.is_empty(), "sidecar.yaml: {problems:#?}");

    let text = read("deploy/kubernetes/sidecar.yaml");
    let bridge_at = text
        .find("        - name: trigger-otel-bridge\n")
        .expect("the bridge container");
    let volumes_at = text.find("      volumes:").unwrap();
    let without_bridge = format!("{}{}", &text[..bridge_at], &text[volumes_at..]);
    let problems = sidecar_problems(&parse_documents(&without_bridge).unwrap(), &configmap_name, secret);
    assert!(problems.iter().any(|p| p.contains("containers")), "{problems:#?}");
    let wrong_config = text.replace(
        "name: trigger-otel-bridge\n        - name: bridge-state",
        "name: other\n        - name: bridge-state",
    );
    assert_ne!(wrong_config, text);
    let problems = sidecar_problems(&parse_documents(&wrong_config).unwrap(), &configmap_name, secret);
    assert!(problems.iter().any(|p| p.contains("ConfigMap")), "{problems:#?}");
}

#[test]
fn the_servicemonitor_selects_the_metrics_service_port() {
    let monitor = document("deploy/kubernetes/servicemonitor.yaml");
    assert_eq!(str_at(&monitor, "apiVersion"), Some("monitoring.coreos.com/v1"));
    assert_eq!(kind_of(&monitor), "ServiceMonitor");
    let selector = string_map(at(&monitor, "spec.selector.matchLabels"));
    assert!(!selector.is_empty(), "the ServiceMonitor selects by labels");
    let docs = documents("deploy/kubernetes/statefulset.yaml");
    let selected: Vec<&str> = find_kind(&docs, "Service")
        .into_iter()
        .filter(|service| {
            let labels = string_map(at(service, "metadata.labels"));
            selector.iter().all(|(key, value)| labels.get(key) == Some(value))
        })
        .filter_map(|service| str_at(service, "metadata.name"))
        .collect();
    assert_eq!(
        selected,
        ["trigger-otel-bridge-metrics"],
        "exactly the metrics Service, so each pod is scraped once"
    );
    let scrapes_metrics_port =
        |endpoint: &Yaml| str_at(endpoint, "port") == Some("metrics") && str_at(endpoint, "path") == Some("/metrics");
    assert!(
        seq_at(&monitor, "spec.endpoints").iter().any(scrapes_metrics_port),
        "an endpoint on port `metrics`, path /metrics"
    );
}

#[test]
fn the_configmap_and_each_workloads_environment_are_accepted_by_the_binary() {
    let (_, toml) = configmap();
    let keys = schema_keys();
    for file in ["deploy/kubernetes/statefulset.yaml", "deploy/kubernetes/sidecar.yaml"] {
        let docs = documents(file);
        let workload = docs
            .iter()
            .find(|doc| matches!(kind_of(doc), "StatefulSet" | "Deployment"))
            .unwrap();
        let pod_spec = at(workload, "spec.template.spec").unwrap();
        let env = container_env(pod_spec);
        let problems = env_name_problems(env.keys().cloned(), &keys);
        assert!(problems.is_empty(), "{file}: {problems:?}");
        let effective = check_config_text(&toml, &env).unwrap_or_else(|error| panic!("{file}: {error}"));
        assert!(
            effective.contains(&format!("path = \"{STATE_DIR}/state.db\"")),
            "{effective}"
        );
        assert!(effective.contains("listen = \"0.0.0.0:9464\""), "{effective}");
        if file.ends_with("statefulset.yaml") {
            assert!(effective.contains("shard = \"auto/3\""), "{effective}");
        }
    }
}

#[test]
fn a_misspelt_variable_is_caught_by_name_and_by_the_binary() {
    let keys = schema_keys();
    assert!(env_name_problems(["TRIGGER_OTEL_BRIDGE__SERVER__LISTEN".to_owned()], &keys).is_empty());
    assert!(env_name_problems(
        ["TRIGGER_OTEL_BRIDGE__EXPORT__HEADERS__X_SCOPE_ORGID".to_owned()],
        &keys
    )
    .is_empty());
    assert_eq!(
        env_name_problems(["TRIGGER_OTEL_BRIDGE__SERVER__LISTN".to_owned()], &keys).len(),
        1
    );
    assert_eq!(env_name_problems(["TRIGGER_SECRET".to_owned()], &keys).len(), 1);
    let env = BTreeMap::from([(
        "TRIGGER_OTEL_BRIDGE__SERVER__LISTN".to_owned(),
        "0.0.0.0:9464".to_owned(),
    )]);
    let error = check_config(&repo().join("deploy/bridge.toml"), &env).expect_err("unknown key");
    assert!(error.contains("listn"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Compose stack

/// Compose's variable interpolation, enough for these files: `${VAR}`, `${VAR:-default}`,
/// `${VAR-default}`, `${VAR:?message}`, `${VAR?message}` and `$$`.
fn interpolate(text: &str, vars: &BTreeMap<&str, &str>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or("unclosed ${")?;
            let expression = &after[..end];
            rest = &after[end + 1..];
            let name_end = expression
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expression.len());
            let (name, operator) = expression.split_at(name_end);
            let value = vars.get(name).copied();
            let set = value.is_some_and(|v| !v.is_empty());
            out.push_str(&if let Some(default) = operator.strip_prefix(":-") {
                if set {
                    value.unwrap().to_owned()
                } else {
                    default.to_owned()
                }
            } else if let Some(default) = operator.strip_prefix('-') {
                value.unwrap_or(default).to_owned()
            } else if let Some(message) = operator.strip_prefix(":?") {
                if set {
                    value.unwrap().to_owned()
                } else {
                    return Err(format!("{name}: {message}"));
                }
            } else if let Some(message) = operator.strip_prefix('?') {
                value.ok_or_else(|| format!("{name}: {message}"))?.to_owned()
            } else if operator.is_empty() {
                value.unwrap_or_default().to_owned()
            } else {
                return Err(format!("unsupported interpolation ${{{expression}}}"));
            });
        } else {
            return Err(format!(
                "bare `$` at {:?}: write $$ or ${{VAR}}",
                &rest[..rest.len().min(20)]
            ));
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn interpolation_follows_compose() {
    let vars = BTreeMap::from([("SET", "x"), ("EMPTY", "")]);
    assert_eq!(
        interpolate("${SET} ${EMPTY:-d} ${EMPTY-d} ${UNSET:-d} $$x", &vars).unwrap(),
        "x d  d $x"
    );
    assert!(interpolate("${UNSET:?needed}", &vars).unwrap_err().contains("needed"));
    assert!(interpolate("${EMPTY:?needed}", &vars).is_err());
    assert!(interpolate("$UNBRACED", &vars).is_err());
}

fn compose(vars: &BTreeMap<&str, &str>) -> Result<Yaml, String> {
    let text = interpolate(&read("deploy/docker-compose.yml"), vars)?;
    serde_yaml_ng::from_str(&text).map_err(|error| error.to_string())
}

fn compose_env(service: &Yaml) -> BTreeMap<String, String> {
    match at(service, "environment") {
        Some(Yaml::Sequence(items)) => items
            .iter()
            .filter_map(Yaml::as_str)
            .map(|item| {
                let (name, value) = item.split_once('=').unwrap_or((item, ""));
                (name.to_owned(), value.to_owned())
            })
            .collect(),
        other => string_map(other),
    }
}

fn compose_problems(compose: &Yaml) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(services) = at(compose, "services").and_then(Yaml::as_mapping) else {
        return vec!["no services".to_owned()];
    };
    let names: BTreeSet<&str> = services.keys().filter_map(Yaml::as_str).collect();
    for required in ["bridge", "otel-collector", "jaeger", "tempo", "prometheus", "grafana"] {
        if !names.contains(required) {
            problems.push(format!("no service `{required}`"));
        }
    }
    for (name, service) in services {
        let name = name.as_str().unwrap_or_default();
        match (str_at(service, "image"), at(service, "build")) {
            (_, Some(build)) => {
                let context = repo().join("deploy").join(str_at(build, "context").unwrap_or("."));
                let dockerfile = context.join(str_at(build, "dockerfile").unwrap_or("Dockerfile"));
                if !dockerfile.is_file() {
                    problems.push(format!("{name}: build file {} does not exist", dockerfile.display()));
                }
            }
            (Some(image), None) => {
                let tag = image
                    .rsplit_once(':')
                    .map(|(_, tag)| tag)
                    .filter(|tag| !tag.contains('/'));
                if tag.is_none_or(|tag| tag == "latest" || !tag.chars().any(|c| c.is_ascii_digit())) {
                    problems.push(format!("{name}: image {image} is not pinned to a version"));
                }
            }
            (None, None) => problems.push(format!("{name}: neither image nor build")),
        }
        for volume in seq_at(service, "volumes").iter().filter_map(Yaml::as_str) {
            if let Some(source) = volume.split(':').next().filter(|source| source.starts_with('.')) {
                if !repo().join("deploy").join(source).exists() {
                    problems.push(format!("{name}: mounts {source}, which does not exist under deploy/"));
                }
            }
        }
        for dependency in seq_at(service, "depends_on").iter().filter_map(Yaml::as_str) {
            if !names.contains(dependency) {
                problems.push(format!("{name}: depends on unknown service {dependency}"));
            }
        }
    }
    let bridge = services.get("bridge").cloned().unwrap_or_default();
    let env = compose_env(&bridge);
    let endpoint = env
        .get("TRIGGER_OTEL_BRIDGE__EXPORT__ENDPOINT")
        .or_else(|| env.get("OTEL_EXPORTER_OTLP_ENDPOINT"));
    if endpoint.map(String::as_str) != Some("http://otel-collector:4317") {
        problems.push(format!(
            "the bridge should export to http://otel-collector:4317, exports to {endpoint:?}"
        ));
    }
    if env.get("TRIGGER_OTEL_BRIDGE__SERVER__LISTEN").map(String::as_str) != Some("0.0.0.0:9464") {
        problems.push("the bridge's server should listen on 0.0.0.0:9464".to_owned());
    }
    if !seq_at(&bridge, "volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .any(|volume| volume.split(':').nth(1) == Some(STATE_DIR))
    {
        problems.push(format!("the bridge's {STATE_DIR} is not a volume"));
    }
    problems
}

#[test]
fn the_compose_stack_has_every_service_and_a_bridge_config_the_binary_accepts() {
    let raw = read("deploy/docker-compose.yml");
    assert!(
        raw.contains("TRIGGER_SECRET_KEY: ${TRIGGER_SECRET_KEY:?"),
        "the key comes from the environment or .env, and its absence is an error naming it"
    );
    let unset = compose(&BTreeMap::new()).expect_err("TRIGGER_SECRET_KEY is required");
    assert!(unset.contains("TRIGGER_SECRET_KEY"), "{unset}");

    let compose = compose(&BTreeMap::from([("TRIGGER_SECRET_KEY", DUMMY_KEY)])).unwrap();
    let problems = compose_problems(&compose);
    assert!(problems.is_empty(), "docker-compose.yml: {problems:#?}");

    // The bridge's environment names keys of the schema, and the binary accepts the result.
    let env = compose_env(&compose["services"]["bridge"]);
    assert_eq!(env.get("TRIGGER_SECRET_KEY").map(String::as_str), Some(DUMMY_KEY));
    let problems = env_name_problems(env.keys().cloned(), &schema_keys());
    assert!(problems.is_empty(), "{problems:?}");
    let effective = check_config(&repo().join("deploy/bridge.toml"), &env).unwrap();
    assert!(
        effective.contains("endpoint = \"http://otel-collector:4317\""),
        "{effective}"
    );

    // Broken copies are reported.
    let text = interpolate(&raw, &BTreeMap::from([("TRIGGER_SECRET_KEY", DUMMY_KEY)])).unwrap();
    for (from, to, expected) in [
        ("  tempo:\n", "  tempo-renamed:\n", "no service `tempo`"),
        (
            "image: jaegertracing/jaeger:2.20.0",
            "image: jaegertracing/jaeger:latest",
            "not pinned",
        ),
        ("image: prom/prometheus:v3.13.1", "image: prom/prometheus", "not pinned"),
        ("./tempo/tempo.yaml:", "./tempo/missing.yaml:", "does not exist"),
        ("http://otel-collector:4317", "http://jaeger:4317", "otel-collector"),
    ] {
        assert!(text.contains(from), "mutation anchor {from:?}");
        let broken: Yaml = serde_yaml_ng::from_str(&text.replacen(from, to, 1)).unwrap();
        let problems = compose_problems(&broken);
        assert!(problems.iter().any(|p| p.contains(expected)), "{from:?}: {problems:#?}");
    }
}

#[test]
fn the_collector_fans_out_to_jaeger_and_tempo() {
    let config = document("deploy/otel-collector/config.yaml");
    let names = |pipeline: &str, key: &str| -> Vec<String> {
        let pipeline = at(&config, &format!("service.pipelines.{pipeline}")).expect("a pipeline");
        seq_at(pipeline, key)
            .iter()
            .filter_map(Yaml::as_str)
            .map(str::to_owned)
            .collect()
    };
    // A logs pipeline too: without one, `conversion.logs = "otlp_logs"` is refused forever.
    for pipeline in ["traces", "logs"] {
        assert!(
            names(pipeline, "receivers").iter().any(|r| r == "otlp"),
            "{pipeline} receives OTLP"
        );
        for section in ["receivers", "processors", "exporters"] {
            for name in names(pipeline, section) {
                assert!(
                    config.get(section).and_then(|s| s.get(name.as_str())).is_some(),
                    "{section}.{name} is used by the {pipeline} pipeline but not defined"
                );
            }
        }
    }
    let targets: BTreeSet<String> = names("traces", "exporters")
        .iter()
        .filter_map(|name| config["exporters"][name.as_str()]["endpoint"].as_str())
        .map(str::to_owned)
        .collect();
    assert!(
        targets.contains("jaeger:4317") && targets.contains("tempo:4317"),
        "{targets:?}"
    );
    for protocol in ["grpc", "http"] {
        let endpoint = str_at(&config, &format!("receivers.otlp.protocols.{protocol}.endpoint"));
        assert!(
            endpoint.is_some_and(|e| e.starts_with("0.0.0.0:")),
            "OTLP {protocol} must listen beyond localhost in a container: {endpoint:?}"
        );
    }
}

#[test]
fn tempo_prometheus_and_grafana_are_wired_to_the_stack() {
    let tempo = document("deploy/tempo/tempo.yaml");
    assert!(
        at(&tempo, "distributor.receivers.otlp.protocols.grpc").is_some(),
        "Tempo receives OTLP gRPC"
    );
    assert_eq!(at(&tempo, "server.http_listen_port").and_then(Yaml::as_u64), Some(3200));

    let prometheus = document("deploy/prometheus/prometheus.yml");
    let scrapes_bridge = seq_at(&prometheus, "scrape_configs").iter().any(|job| {
        seq_at(job, "static_configs")
            .iter()
            .flat_map(|config| seq_at(config, "targets"))
            .any(|target| target.as_str() == Some("bridge:9464"))
    });
    assert!(scrapes_bridge, "Prometheus scrapes bridge:9464");

    let datasources = document("deploy/grafana/provisioning/datasources/datasources.yaml");
    let by_type: BTreeMap<&str, &Yaml> = seq_at(&datasources, "datasources")
        .iter()
        .filter_map(|ds| Some((str_at(ds, "type")?, ds)))
        .collect();
    assert_eq!(str_at(by_type["prometheus"], "url"), Some("http://prometheus:9090"));
    assert_eq!(str_at(by_type["tempo"], "url"), Some("http://tempo:3200"));
    let prometheus_uid = str_at(by_type["prometheus"], "uid").expect("a fixed Prometheus uid");

    // The dashboards provider reads the directory compose mounts the dashboards into.
    let providers = document("deploy/grafana/provisioning/dashboards/dashboards.yaml");
    let path = str_at(&seq_at(&providers, "providers")[0], "options.path").unwrap();
    let compose = compose(&BTreeMap::from([("TRIGGER_SECRET_KEY", DUMMY_KEY)])).unwrap();
    let grafana = &compose["services"]["grafana"];
    let mounts: Vec<&str> = seq_at(grafana, "volumes").iter().filter_map(Yaml::as_str).collect();
    assert!(mounts
        .iter()
        .any(|m| m.starts_with("./grafana/dashboards:") && m.split(':').nth(1) == Some(path)));
    assert!(mounts
        .iter()
        .any(|m| m.starts_with("./grafana/provisioning:/etc/grafana/provisioning")));
    let home = compose_env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].clone();
    let file = home
        .strip_prefix(&format!("{path}/"))
        .expect("home dashboard in the provider's directory");
    assert!(repo().join("deploy/grafana/dashboards").join(file).is_file(), "{home}");

    // The dashboard's data source variable defaults to the provisioned Prometheus.
    let dashboard: Json = serde_json::from_str(&read("deploy/grafana/dashboards/trigger-otel-bridge.json")).unwrap();
    let variable = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a data source variable");
    assert_eq!(variable["current"]["value"], prometheus_uid);
}

// ---------------------------------------------------------------------------------------------
// Dashboard

fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("trigger_otel_bridge_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The metric a series name in a query belongs to: itself, or a histogram's
/// `_bucket`/`_sum`/`_count`. A histogram's bare name selects nothing in Prometheus.
fn known_metric(series: &str) -> Result<&'static str, String> {
    if let Some(histogram) = HISTOGRAMS.iter().copied().find(|histogram| *histogram == series) {
        return Err(format!(
            "`{histogram}` is a histogram: query its _bucket, _sum or _count series"
        ));
    }
    METRICS
        .iter()
        .copied()
        .find(|metric| *metric == series)
        .or_else(|| {
            HISTOGRAMS.iter().copied().find(|histogram| {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|suffix| series == format!("{histogram}{suffix}"))
            })
        })
        .ok_or_else(|| format!("`{series}` is not one of the bridge's metrics"))
}

fn panels(dashboard: &Json) -> Vec<&Json> {
    fn walk<'a>(list: &'a Json, out: &mut Vec<&'a Json>) {
        for panel in list.as_array().into_iter().flatten() {
            out.push(panel);
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn dashboard_problems(dashboard: &Json) -> Vec<String> {
    let mut problems = Vec::new();
    match dashboard["schemaVersion"].as_u64() {
        Some(version) if (36..=45).contains(&version) => {}
        other => problems.push(format!("schemaVersion {other:?} is not a current Grafana one")),
    }
    for field in ["uid", "title"] {
        if dashboard[field].as_str().is_none_or(str::is_empty) {
            problems.push(format!("no {field}"));
        }
    }
    let mut ids = BTreeSet::new();
    let mut shown = BTreeSet::new();
    let mut queries = 0;
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().unwrap_or("?");
        if !ids.insert(panel["id"].as_u64()) {
            problems.push(format!("panel {title}: duplicate id {}", panel["id"]));
        }
        if !panel["gridPos"].is_object() {
            problems.push(format!("panel {title}: no gridPos"));
        }
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problems.push(format!("panel {title}: no query"));
        }
        for target in targets {
            let expr = target["expr"].as_str().unwrap_or_default();
            queries += 1;
            let names = metric_names(expr);
            if names.is_empty() {
                problems.push(format!("panel {title}: `{expr}` reads none of the bridge's metrics"));
            }
            for name in names {
                match known_metric(&name) {
                    Ok(metric) => {
                        shown.insert(metric);
                    }
                    Err(problem) => problems.push(format!("panel {title}: {problem}")),
                }
            }
            if expr.matches('(').count() != expr.matches(')').count() {
                problems.push(format!("panel {title}: unbalanced parentheses in `{expr}`"));
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(query) = variable["query"]["query"].as_str() {
            for name in metric_names(query) {
                if let Err(problem) = known_metric(&name) {
                    problems.push(format!("variable {}: {problem}", variable["name"]));
                }
            }
        }
    }
    if queries == 0 {
        problems.push("no queries".to_owned());
    }
    for metric in DASHBOARD_MUST_SHOW {
        if !shown.contains(metric) {
            problems.push(format!("no panel shows {metric}"));
        }
    }
    problems
}

#[test]
fn the_dashboard_queries_only_the_bridges_metrics_and_shows_the_essentials() {
    let text = read("deploy/grafana/dashboards/trigger-otel-bridge.json");
    let dashboard: Json = serde_json::from_str(&text).expect("the dashboard is JSON");
    let problems = dashboard_problems(&dashboard);
    assert!(problems.is_empty(), "{problems:#?}");

    for (from, to, expected) in [
        (
            "trigger_otel_bridge_spans_rejected_total",
            "trigger_otel_bridge_spans_refused_total",
            "not one of",
        ),
        ("trigger_otel_bridge_poll_lag_seconds", "up", "poll_lag_seconds"),
        ("\"schemaVersion\": 39", "\"schemaVersion\": 12", "schemaVersion"),
        ("poll_lag_seconds_bucket", "poll_lag_seconds", "is a histogram"),
    ] {
        assert!(text.contains(from), "mutation anchor {from:?}");
        let broken: Json = serde_json::from_str(&text.replace(from, to)).unwrap();
        let problems = dashboard_problems(&broken);
        assert!(problems.iter().any(|p| p.contains(expected)), "{from:?}: {problems:#?}");
    }
    assert_eq!(
        known_metric("trigger_otel_bridge_export_batch_duration_seconds_bucket"),
        Ok("trigger_otel_bridge_export_batch_duration_seconds")
    );
    assert!(known_metric("trigger_otel_bridge_pending_spans_bucket").is_err());
    assert!(known_metric("trigger_otel_bridge_export_batch_duration_seconds").is_err());
}

// ---------------------------------------------------------------------------------------------
// systemd

/// `[Section]` → key → values (a key may repeat).
fn unit_file(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut sections: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            sections.entry(current.clone()).or_default();
        } else if let Some((key, value)) = line.split_once('=') {
            sections
                .entry(current.clone())
                .or_default()
                .entry(key.trim().to_owned())
                .or_default()
                .push(value.trim().to_owned());
        }
    }
    sections
}

fn systemd_problems(text: &str) -> Vec<String> {
    let unit = unit_file(text);
    let mut problems = Vec::new();
    let service = unit.get("Service").cloned().unwrap_or_default();
    let value = |key: &str| service.get(key).map(|values| values.join(" "));
    for (key, expected) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("CapabilityBoundingSet", ""),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("TimeoutStopSec", "20"),
    ] {
        if value(key).as_deref() != Some(expected) {
            problems.push(format!("{key} should be {expected:?}, is {:?}", value(key)));
        }
    }
    let families = value("RestrictAddressFamilies").unwrap_or_default();
    let families: BTreeSet<&str> = families.split_whitespace().collect();
    if families != BTreeSet::from(["AF_INET", "AF_INET6", "AF_UNIX"]) {
        problems.push(format!(
            "RestrictAddressFamilies should be AF_INET AF_INET6 AF_UNIX, is {families:?}"
        ));
    }
    if !service
        .get("SystemCallFilter")
        .is_some_and(|filters| filters.iter().any(|f| f == "@system-service"))
    {
        problems.push("no SystemCallFilter=@system-service".to_owned());
    }
    if value("DynamicUser").as_deref() != Some("yes") && value("User").is_none_or(|user| user == "root") {
        problems.push("runs as root: set DynamicUser=yes or User=".to_owned());
    }
    if value("StateDirectory").as_deref() != Some("trigger-otel-bridge") {
        problems.push("StateDirectory should be trigger-otel-bridge (→ /var/lib/trigger-otel-bridge)".to_owned());
    }
    if value("EnvironmentFile").is_none() {
        problems.push("no EnvironmentFile for TRIGGER_SECRET_KEY".to_owned());
    }
    if service
        .get("Environment")
        .into_iter()
        .flatten()
        .any(|env| env.contains("SECRET_KEY"))
    {
        problems.push("the secret key is in the unit file".to_owned());
    }
    match value("ExecStart") {
        Some(exec) if exec.contains(" run ") && exec.contains(&format!("--config {IMAGE_CONFIG_PATH}")) => {}
        other => problems.push(format!(
            "ExecStart should be `… run --config {IMAGE_CONFIG_PATH}`, is {other:?}"
        )),
    }
    if !unit
        .get("Install")
        .is_some_and(|install| install.contains_key("WantedBy"))
    {
        problems.push("no [Install] WantedBy".to_owned());
    }
    problems
}

#[test]
fn the_systemd_unit_is_hardened() {
    let text = read("deploy/systemd/trigger-otel-bridge.service");
    let problems = systemd_problems(&text);
    assert!(problems.is_empty(), "{problems:#?}");
    for (from, to, expected) in [
        ("ProtectSystem=strict", "ProtectSystem=full", "ProtectSystem"),
        (
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
            "RestrictAddressFamilies",
        ),
        (
            "CapabilityBoundingSet=\n",
            "CapabilityBoundingSet=CAP_NET_ADMIN\n",
            "CapabilityBoundingSet",
        ),
        ("DynamicUser=yes", "DynamicUser=no", "root"),
        ("TimeoutStopSec=20", "TimeoutStopSec=5", "TimeoutStopSec"),
    ] {
        assert!(text.contains(from), "mutation anchor {from:?}");
        let problems = systemd_problems(&text.replacen(from, to, 1));
        assert!(problems.iter().any(|p| p.contains(expected)), "{from:?}: {problems:#?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and the image's configuration

/// Instructions of a Dockerfile (continuations joined, comments dropped), each as
/// (INSTRUCTION, arguments), grouped by stage (a new stage at each FROM).
fn dockerfile_stages(text: &str) -> Vec<Vec<(String, String)>> {
    let mut logical = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        if !pending.trim().is_empty() {
            logical.push(std::mem::take(&mut pending));
        }
        pending.clear();
    }
    let mut stages: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in logical {
        let (instruction, arguments) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let instruction = instruction.to_uppercase();
        if instruction == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .unwrap()
            .push((instruction, arguments.trim().to_owned()));
    }
    stages
}

fn dockerfile_problems(text: &str) -> Vec<String> {
    let stages = dockerfile_stages(text);
    let mut problems = Vec::new();
    if stages.len() < 3 {
        problems.push("not a multi-stage build".to_owned());
        return problems;
    }
    let all: Vec<&(String, String)> = stages.iter().flatten().collect();
    if !all
        .iter()
        .any(|(i, args)| i == "RUN" && args.contains("cargo build --release --locked"))
    {
        problems.push("no `cargo build --release --locked`".to_owned());
    }
    let runtime = stages.last().unwrap();
    let find = |name: &str| -> Vec<&str> {
        runtime
            .iter()
            .filter(|(i, _)| i == name)
            .map(|(_, args)| args.as_str())
            .collect()
    };
    match find("USER").last() {
        Some(user) if !matches!(user.split(':').next(), Some("root" | "0")) => {}
        other => problems.push(format!(
            "the runtime stage should end as a non-root USER, has {other:?}"
        )),
    }
    match find("HEALTHCHECK").last() {
        Some(check) if check.contains("/healthz") && check.contains(&METRICS_PORT.to_string()) => {
            let tool = ["curl", "wget"].into_iter().find(|tool| check.contains(tool));
            let installed = tool.is_some_and(|tool| {
                find("RUN")
                    .iter()
                    .any(|run| run.contains("install") && run.contains(tool))
                    || runtime[0].1.contains("busybox")
            });
            if !installed {
                problems.push(format!(
                    "the HEALTHCHECK's client ({tool:?}) is not installed in the runtime stage"
                ));
            }
        }
        other => problems.push(format!("no HEALTHCHECK on /healthz:{METRICS_PORT}, found {other:?}")),
    }
    if !find("EXPOSE")
        .iter()
        .any(|ports| ports.split_whitespace().any(|p| p == "9464"))
    {
        problems.push("no EXPOSE 9464".to_owned());
    }
    if !find("VOLUME").iter().any(|volume| volume.contains(STATE_DIR)) {
        problems.push(format!("no VOLUME for {STATE_DIR}"));
    }
    if !find("COPY")
        .iter()
        .any(|copy| copy.split_whitespace().collect::<Vec<_>>() == ["deploy/bridge.toml", IMAGE_CONFIG_PATH])
    {
        problems.push(format!("deploy/bridge.toml is not copied to {IMAGE_CONFIG_PATH}"));
    }
    problems
}

#[test]
fn the_dockerfile_builds_a_non_root_image_with_a_healthcheck() {
    let text = read("deploy/Dockerfile");
    let problems = dockerfile_problems(&text);
    assert!(problems.is_empty(), "{problems:#?}");
    for (from, to, expected) in [
        ("USER 10001:10001", "USER root", "non-root"),
        ("HEALTHCHECK --interval", "# HEALTHCHECK --interval", "HEALTHCHECK"),
        ("ca-certificates curl", "ca-certificates", "not installed"),
        ("EXPOSE 9464", "EXPOSE 8080", "EXPOSE"),
        ("--release --locked", "--release", "--locked"),
    ] {
        assert!(text.contains(from), "mutation anchor {from:?}");
        let problems = dockerfile_problems(&text.replacen(from, to, 1));
        assert!(problems.iter().any(|p| p.contains(expected)), "{from:?}: {problems:#?}");
    }

    let ignore = read(".dockerignore");
    for entry in ["target", ".git", ".env"] {
        assert!(
            ignore.lines().any(|line| line.trim().trim_end_matches('/') == entry),
            ".dockerignore should leave out {entry}"
        );
    }
}

#[test]
fn the_images_config_is_accepted_by_the_binary() {
    // The image's environment (ENV lines of the runtime stage) applies on top of the file.
    let stages = dockerfile_stages(&read("deploy/Dockerfile"));
    let mut env = BTreeMap::new();
    for (_, arguments) in stages.last().unwrap().iter().filter(|(i, _)| i == "ENV") {
        for pair in arguments.split_whitespace() {
            let (name, value) = pair.split_once('=').expect("ENV NAME=value");
            env.insert(name.to_owned(), value.to_owned());
        }
    }
    assert_eq!(
        env.get("TRIGGER_OTEL_BRIDGE_CONFIG").map(String::as_str),
        Some(IMAGE_CONFIG_PATH)
    );
    env.remove("TRIGGER_OTEL_BRIDGE_CONFIG"); // names the path inside the image
    let problems = env_name_problems(env.keys().cloned(), &schema_keys());
    assert!(problems.is_empty(), "{problems:?}");

    let effective = check_config(&repo().join("deploy/bridge.toml"), &env).unwrap();
    assert!(
        effective.contains(&format!("path = \"{STATE_DIR}/state.db\"")),
        "{effective}"
    );
    assert!(effective.contains("listen = \"0.0.0.0:9464\""), "{effective}");
    assert!(effective.contains("[discovery]\nenabled = true"), "{effective}");

    // And the same check fails on a bad file.
    let error = check_config_text("[runs]\nshard = \"3/3\"\n", &env).expect_err("bad shard");
    assert!(error.contains("exited with Some(2)"), "{error}");
}
