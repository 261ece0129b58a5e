//! Discover: which runs exist. The list endpoint's rounds (`list`) and the split of runs between
//! replicas (`shard`).

pub mod list;
pub mod shard;

pub use list::{Discovery, Listed};
