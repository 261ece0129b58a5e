//! How a command ends: every way it can fail as one [`CommandError`], and the one place that
//! maps an error to the binary's exit code (DESIGN.md: 0 success, 1 runtime failure, 2 bad
//! usage or configuration).

use super::convert::ConvertError;
use super::demo::DemoError;
use super::export::BackfillError;
use super::inspect::InspectError;
use super::state::StateCommandError;
use crate::config::ConfigError;
use crate::daemon::DaemonError;

/// Exit codes of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    Failure = 1,
    Usage = 2,
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error(transparent)]
    Export(#[from] BackfillError),
    #[error(transparent)]
    Inspect(#[from] InspectError),
    #[error(transparent)]
    Demo(#[from] DemoError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    State(#[from] StateCommandError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// The command ran to its end, but not everything succeeded; its summary said what.
    #[error("{0}")]
    Incomplete(&'static str),
}

impl CommandError {
    /// The exit code: 2 when the fix is in the command line or the configuration, else 1.
    pub fn exit_status(&self) -> ExitStatus {
        let usage = match self {
            CommandError::Usage(_) | CommandError::Config(_) => true,
            CommandError::Convert(error) => matches!(error, ConvertError::BadTraceId(_)),
            CommandError::Export(error) => match error {
                BackfillError::NothingToExport
                | BackfillError::UnknownStatus { .. }
                | BackfillError::Config(_)
                | BackfillError::WrongApiUrl(_) => true,
                BackfillError::Export(error) => error.is_config(),
                BackfillError::Api(_) => false,
            },
            CommandError::Inspect(error) => matches!(error, InspectError::Config(_)),
            CommandError::State(error) => matches!(error, StateCommandError::NoStateFile(_)),
            CommandError::Demo(DemoError::Speed(_) | DemoError::Protocol(_)) => true,
            CommandError::Demo(DemoError::Daemon(error)) | CommandError::Daemon(error) => match error {
                DaemonError::Config(_) => true,
                DaemonError::Export(error) => error.is_config(),
                _ => false,
            },
            CommandError::Demo(DemoError::Io(_))
            | CommandError::Runtime(_)
            | CommandError::Signals(_)
            | CommandError::Incomplete(_) => false,
        };
        match usage {
            true => ExitStatus::Usage,
            false => ExitStatus::Failure,
        }
    }

    /// Whether the error still needs saying on stderr (an incomplete command's summary said it).
    pub fn needs_report(&self) -> bool {
        !matches!(self, CommandError::Incomplete(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_and_configuration_are_2_the_rest_1() {
        let config = || ConfigError::Load { message: "x".into() };
        assert_eq!(CommandError::Usage("x".into()).exit_status(), ExitStatus::Usage);
        assert_eq!(CommandError::Config(config()).exit_status(), ExitStatus::Usage);
        assert_eq!(
            CommandError::Convert(ConvertError::BadTraceId("zz".into())).exit_status(),
            ExitStatus::Usage
        );
        let write = || std::io::Error::other("closed");
        assert_eq!(
            CommandError::Convert(ConvertError::Write(write())).exit_status(),
            ExitStatus::Failure
        );
        assert_eq!(
            CommandError::Export(BackfillError::NothingToExport).exit_status(),
            ExitStatus::Usage
        );
        assert_eq!(
            CommandError::Inspect(InspectError::Config(config())).exit_status(),
            ExitStatus::Usage
        );
        assert_eq!(
            CommandError::Inspect(InspectError::Write(write())).exit_status(),
            ExitStatus::Failure
        );
        assert_eq!(
            CommandError::Demo(DemoError::Speed(0.0)).exit_status(),
            ExitStatus::Usage
        );
        assert_eq!(
            CommandError::Demo(DemoError::Io(write())).exit_status(),
            ExitStatus::Failure
        );
        assert_eq!(
            CommandError::Demo(DemoError::Daemon(DaemonError::Config(config()))).exit_status(),
            ExitStatus::Usage
        );
        assert_eq!(
            CommandError::Daemon(DaemonError::Config(config())).exit_status(),
            ExitStatus::Usage
        );
        assert_eq!(CommandError::Runtime(write()).exit_status(), ExitStatus::Failure);
        let incomplete = CommandError::Incomplete("some runs failed");
        assert_eq!(incomplete.exit_status(), ExitStatus::Failure);
        assert!(!incomplete.needs_report() && CommandError::Usage("x".into()).needs_report());
    }
}
