//! The subcommands' work, callable from tests: each takes parsed options and writers and
//! returns a result; `src/main.rs` only parses the command line and maps errors to exit codes.

pub mod check_config;
pub mod convert;
pub mod demo;
pub mod entry;
pub mod export;
pub mod inspect;
pub mod outcome;
pub mod state;
pub mod waterfall;

pub use outcome::{CommandError, ExitStatus};
