//! Discover: which runs exist. The list endpoint's rounds (`list`), the run changes Trigger.dev
//! pushes over its Realtime API (`realtime`), the choice between the two (`source`) and the
//! discovery filters applied in the bridge to the stream's rows (`filters`), and the split of runs
//! between replicas (`shard`).

pub mod filters;
pub mod list;
pub mod realtime;
pub mod shard;
pub mod source;

pub use list::{Discovery, Listed, Via};
