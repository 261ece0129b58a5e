//! Shared test support: real servers on loopback.
#![allow(dead_code)]

pub mod otlp_receiver;
