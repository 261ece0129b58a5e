//! Sharding runs between replicas: replica `i` of `n` takes the runs whose stable hash is `i`
//! modulo `n`. The hash is the first 8 bytes (big-endian) of SHA-256 of the run id's UTF-8
//! bytes: the same on every machine, architecture and release, unlike Rust's `Hash`.

use crate::config::Shard;
use sha2::{Digest, Sha256};

pub fn run_hash(run_id: &str) -> u64 {
    let digest = Sha256::digest(run_id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
}

/// Whether this replica (`shard` resolved, i.e. not `auto`) takes `run_id`.
pub fn owns(shard: &Shard, run_id: &str) -> bool {
    let count = u64::from(shard.count().max(1));
    let index = u64::from(shard.index().unwrap_or(0));
    run_hash(run_id) % count == index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pinned() {
        // printf 'run_abc' | sha256sum → e88daa467351dbf1… (first 8 bytes).
        assert_eq!(run_hash("run_abc"), 0xe88daa467351dbf1);
    }

    #[test]
    fn shards_partition_runs_without_overlap_or_gap() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut per_shard = [0usize; 3];
        for n in 0..3000 {
            let id = format!("run_{n:06}");
            let owners: Vec<usize> = (0..3).filter(|&i| owns(&shards[i], &id)).collect();
            assert_eq!(owners.len(), 1, "{id} owned by {owners:?}");
            per_shard[owners[0]] += 1;
        }
        assert!(per_shard.iter().all(|&c| c > 900), "{per_shard:?}");
        assert!(owns(&Shard::SINGLE, "anything"));
    }
}
