//! The subcommands' work, callable from tests: each takes parsed options and writers and
//! returns a result; `src/main.rs` only parses the command line and maps errors to exit codes.

pub mod check_config;
pub mod convert;
pub mod demo;
pub mod export;
pub mod inspect;
pub mod waterfall;

/// Exit codes of the binary (DESIGN.md): 0 success, 1 runtime failure, 2 bad usage or config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success = 0,
    Failure = 1,
    Usage = 2,
}
