//! `check-config`: load the configuration as `run` would and print it, secrets redacted.

use crate::config::{load, resolve_path, ConfigError};
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
    // A closed stdout (`| head`) is not a configuration error; ignore write failures.
    let _ = writeln!(out, "{source}\n{}", config.to_redacted_toml());
    Ok(())
}
