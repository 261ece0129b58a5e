//! `check-config`: load the configuration as `run` would and print it, secrets redacted, with the
//! export settings as the exporter will use them (after the `OTEL_EXPORTER_OTLP_*` variables).

use crate::config::{load_report, resolve_path, ConfigError, LoadReport};
use crate::export::ExportSettings;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// The commands that call the Trigger.dev API, for `check-config --for`: each refuses to start
/// without a secret key (`convert` and `demo` read no configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckFor {
    Run,
    Export,
    Inspect,
}

impl CheckFor {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckFor::Run => "run",
            CheckFor::Export => "export",
            CheckFor::Inspect => "inspect",
        }
    }
}

/// Load from `flag`/`env` and write the effective config to `out`, preceded by a comment
/// naming where it came from. Every error is reported at once (as [`ConfigError::Several`] when
/// there is more than one), nothing printed then; with `for_command`, also what that command
/// would refuse at its start (no secret key, a `runs.shard = "auto/n"` without an ordinal).
pub fn check_config(
    flag: Option<PathBuf>,
    for_command: Option<CheckFor>,
    env: &HashMap<String, String>,
    out: &mut dyn Write,
) -> Result<(), ConfigError> {
    let path = resolve_path(flag, env);
    let LoadReport { config, mut errors } = load_report(path.as_deref(), env);
    // Nothing could be read (the file is missing or not TOML): there is nothing more to check.
    let Some(config) = config else {
        return ConfigError::from_all(errors);
    };
    // `run` would refuse what the standard variables hold as it builds the exporter; say so now.
    let export = ExportSettings::resolve(&config.export, env)
        .map_err(|error| {
            errors.push(ConfigError::Load {
                message: error.to_string(),
            })
        })
        .ok();
    if let Some(command) = for_command {
        let needed_by = |error| ConfigError::NeededBy {
            command: command.as_str(),
            source: Box::new(error),
        };
        // A key already reported (a placeholder, a wrong type) is not "not set" as well.
        let reported = |errors: &[ConfigError], key: &str| errors.iter().any(|error| error.key() == Some(key));
        if !reported(&errors, "trigger.secret_key") && !reported(&errors, "trigger.preview_branch") {
            if let Err(error) = config.trigger.require_secret_key() {
                errors.push(needed_by(error));
            }
        }
        if command == CheckFor::Run && config.runs.shard.is_auto() && !reported(&errors, "runs.shard") {
            let hostname = env.get("HOSTNAME").map(String::as_str).unwrap_or_default();
            if let Err(error) = config.runs.shard.resolve_ordinal(hostname) {
                errors.push(needed_by(error));
            }
        }
    }
    ConfigError::from_all(errors)?;
    let source = match &path {
        Some(path) => format!("# effective configuration from {} and the environment", path.display()),
        None => "# effective configuration: built-in defaults and the environment (no config file found)".to_owned(),
    };
    let export = export.map(|export| export_comment(&export)).unwrap_or_default();
    // A closed stdout (`| head`) is not a configuration error; ignore write failures.
    let _ = writeln!(out, "{source}\n{}\n{export}", config.to_redacted_toml());
    Ok(())
}

/// The export settings as sent, as TOML comments (the output stays a loadable config): the
/// `OTEL_EXPORTER_OTLP_*` variables fill what `[export]` leaves at its defaults. Header names
/// only: their values are secrets.
fn export_comment(export: &ExportSettings) -> String {
    let mut lines = vec![
        "# [export] as the exporter uses it, after the OTEL_EXPORTER_OTLP_* variables:".to_owned(),
        format!("#   protocol = {:?}", export.protocol.as_str()),
        format!("#   endpoint = {:?}", export.endpoint),
        format!("#   compression = {:?}", export.compression.as_str()),
        format!(
            "#   timeout = {:?}",
            humantime::format_duration(export.timeout).to_string()
        ),
        format!(
            "#   headers = {:?} (values not shown)",
            export.headers.keys().collect::<Vec<_>>()
        ),
    ];
    if let Some(logs) = &export.logs_endpoint {
        lines.push(format!("#   logs_endpoint = {logs:?}"));
    }
    lines.join("\n")
}
