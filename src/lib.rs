//! trigger-otel-bridge: Trigger.dev run events → OTLP traces.
//!
//! Data flows one way: discover → schedule → fetch → convert → export → commit.
//! Each stage is one module; the binary (`src/main.rs`) only parses the command line.

pub mod commands;
pub mod config;
pub mod convert;
pub mod daemon;
pub mod demo;
pub mod export;
pub mod fetch;
pub mod logging;
pub mod secret;
pub mod serving;
pub mod state;
pub mod telemetry;
pub mod tls;
pub mod trigger;
