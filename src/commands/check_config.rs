//! `check-config`: load the configuration as `run` would and print it, secrets redacted, with the
//! export settings as the exporter will use them (after the `OTEL_EXPORTER_OTLP_*` variables).

use crate::config::{load, resolve_path, ConfigError};
use crate::export::ExportSettings;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// Load from `flag`/`env` and write the effective config to `out`, preceded by a comment
/// naming where it came from.
pub fn check_config(
    flag: Option<PathBuf>,
    env: &HashMap<String, String>,
    out: &mut dyn Write,
) -> Result<(), ConfigError> {
    let path = resolve_path(flag, env);
    let config = load(path.as_deref(), env)?;
    let source = match &path {
        Some(path) => format!("# effective configuration from {} and the environment", path.display()),
        None => "# effective configuration: built-in defaults and the environment (no config file found)".to_owned(),
    };
    // `run` would refuse what the standard variables hold as it builds the exporter; say so now.
    let export = ExportSettings::resolve(&config.export, env).map_err(|error| ConfigError::Load {
        message: error.to_string(),
    })?;
    // A closed stdout (`| head`) is not a configuration error; ignore write failures.
    let _ = writeln!(
        out,
        "{source}\n{}\n{}",
        config.to_redacted_toml(),
        export_comment(&export)
    );
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
