//! Discover: which runs exist. The list endpoint's rounds (`list`), the run changes Trigger.dev
//! pushes over its Realtime API (`realtime`) and the split of runs between replicas (`shard`).

pub mod list;
pub mod realtime;
pub mod shard;

pub use list::{Discovery, Listed};
