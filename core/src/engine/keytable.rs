//! An open-addressing hash table (linear probing, backward-shift deletion) for the
//! idempotency keys: every entry lives in one 40-byte slot of one flat array, so a
//! lookup is one random memory access — which `prefetch` can start ahead of time. A
//! general-purpose map keeps control bytes and entries apart (two misses per lookup) and
//! offers no way to prefetch.

use crate::prefetch::prefetch;

/// The key: an idempotency key (two words) within an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) key: [u64; 2],
    pub(crate) account: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Value {
    pub(crate) fingerprint: u64,
    pub(crate) outcome: u64,
}

#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    key: [u64; 2],
    account: u32,
    used: bool,
    fingerprint: u64,
    outcome: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct KeyTable {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
}

impl Default for KeyTable {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

const SLOTS_MIN: usize = 64;

impl KeyTable {
    /// Room for `capacity` entries at a load factor of at most one half.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let slots = (capacity * 2).next_power_of_two().max(SLOTS_MIN);
        Self { slots: vec![Slot::default(); slots], mask: slots - 1, len: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A strong mix of the key (client keys may be sequential), then the slot it starts at.
    fn home(&self, key: &Key) -> usize {
        let mut hash = key.key[0] ^ key.key[1].rotate_left(29) ^ (u64::from(key.account) << 17);
        hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^= hash >> 31;
        (hash as usize) & self.mask
    }

    fn matches(slot: &Slot, key: &Key) -> bool {
        slot.used && slot.key == key.key && slot.account == key.account
    }

    fn position(&self, key: &Key) -> Result<usize, usize> {
        let mut index = self.home(key);
        loop {
            let slot = &self.slots[index];
            if !slot.used {
                return Err(index);
            }
            if Self::matches(slot, key) {
                return Ok(index);
            }
            index = (index + 1) & self.mask;
        }
    }

    /// Starts loading the slot where `key` would be.
    #[inline]
    pub(crate) fn prefetch(&self, key: &Key) {
        prefetch(&self.slots[self.home(key)]);
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Value> {
        self.position(key).ok().map(|index| {
            let slot = &self.slots[index];
            Value { fingerprint: slot.fingerprint, outcome: slot.outcome }
        })
    }

    /// Inserts a key that is not in the table.
    pub(crate) fn insert(&mut self, key: Key, value: Value) {
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let index = self.position(&key).expect_err("a key is inserted once");
        self.slots[index] = Slot {
            key: key.key,
            account: key.account,
            used: true,
            fingerprint: value.fingerprint,
            outcome: value.outcome,
        };
        self.len += 1;
    }

    /// Removes a key that is in the table, shifting back the entries that probed past it.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut hole = self.position(key).ok()?;
        let removed = self.slots[hole];
        let mut next = hole;
        loop {
            next = (next + 1) & self.mask;
            let slot = self.slots[next];
            if !slot.used {
                break;
            }
            let home = self.home(&Key { key: slot.key, account: slot.account });
            // `slot` may move into the hole unless its home lies cyclically in (hole, next].
            let stays = if hole <= next { hole < home && home <= next } else { hole < home || home <= next };
            if !stays {
                self.slots[hole] = slot;
                hole = next;
            }
        }
        self.slots[hole] = Slot::default();
        self.len -= 1;
        Some(Value { fingerprint: removed.fingerprint, outcome: removed.outcome })
    }

    fn grow(&mut self) {
        let doubled = vec![Slot::default(); self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, doubled);
        self.mask = self.slots.len() - 1;
        self.len = 0;
        for slot in old.into_iter().filter(|slot| slot.used) {
            let value = Value { fingerprint: slot.fingerprint, outcome: slot.outcome };
            self.insert(Key { key: slot.key, account: slot.account }, value);
        }
    }

    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.position(key).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Against a `HashMap`, over inserts and removals in a small table that wraps around
    /// and grows: every lookup agrees.
    #[test]
    fn agrees_with_a_hash_map() {
        let mut table = KeyTable::with_capacity(4);
        let mut model = HashMap::new();
        let mut state = 0x1234_5678_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for step in 0..20_000 {
            let key = Key { key: [next() % 64, 0], account: (next() % 3) as u32 };
            if next() % 3 == 0 {
                assert_eq!(table.remove(&key), model.remove(&key), "step {step}");
            } else if let std::collections::hash_map::Entry::Vacant(vacant) = model.entry(key) {
                let value = Value { fingerprint: step, outcome: step * 2 };
                table.insert(key, value);
                vacant.insert(value);
            }
            assert_eq!(table.len(), model.len());
            for probe in 0..64 {
                let key = Key { key: [probe, 0], account: (step % 3) as u32 };
                assert_eq!(table.get(&key), model.get(&key).copied(), "step {step} key {probe}");
            }
        }
    }
}
