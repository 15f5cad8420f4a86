//! Hash maps keyed by values that already are good 64-bit hashes (xxh3 of keys and values): the
//! hasher passes them through instead of hashing them again.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for `u64` keys that are already hashes.
#[derive(Default)]
pub struct PrehashedHasher(u64);

impl Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A map keyed by pre-hashed `u64` values.
pub type PrehashedMap<V> = HashMap<u64, V, BuildHasherDefault<PrehashedHasher>>;
