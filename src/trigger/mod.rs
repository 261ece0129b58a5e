//! The Trigger.dev REST API: the shapes of its responses (`model`).
//!
//! The HTTP client arrives with the API-client issue; the converter only needs the model.

pub mod model;
