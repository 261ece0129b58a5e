//! Shared test support: real servers on loopback.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_api;
pub mod generate;
pub mod otlp_receiver;
pub mod process;
