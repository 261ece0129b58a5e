//! Discover: which runs exist. The list endpoint's rounds (`list`), the choice between them and
//! Trigger.dev's realtime stream (`source`), and the split of runs between replicas (`shard`).

pub mod list;
pub mod shard;
pub mod source;

pub use list::{Discovery, Listed, Via};
