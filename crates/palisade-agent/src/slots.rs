//! Keys for the items of a `Vec`: the agent keeps the cluster in the very `Vec`s the engine
//! reads (`Cluster::endpoints`, `Cluster::policies`), so a sync renders from the live state
//! without copying 10,000 pods first, and still finds an object by key in O(1) per event.
//! Order in the `Vec` is not meaningful (a removal moves the last item into the gap); the
//! renderer and the engine never depend on it.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

#[derive(Debug)]
pub struct Slots<K> {
    /// The key of each item, by position.
    keys: Vec<K>,
    index: HashMap<K, usize>,
}

impl<K> Default for Slots<K> {
    fn default() -> Self {
        Self { keys: Vec::new(), index: HashMap::new() }
    }
}

impl<K: Hash + Eq + Clone> Slots<K> {
    pub fn get<'v, V>(&self, items: &'v [V], key: &K) -> Option<&'v V> {
        self.index.get(key).map(|&i| &items[i])
    }

    /// Inserts or replaces the item of `key`; whether anything changed.
    pub fn put<V: PartialEq>(&mut self, items: &mut Vec<V>, key: K, value: V) -> bool {
        match self.index.get(&key) {
            Some(&i) if items[i] == value => false,
            Some(&i) => {
                items[i] = value;
                true
            }
            None => {
                self.index.insert(key.clone(), items.len());
                self.keys.push(key);
                items.push(value);
                true
            }
        }
    }

    /// Removes the item of `key`; whether there was one.
    pub fn remove<V>(&mut self, items: &mut Vec<V>, key: &K) -> bool {
        let Some(i) = self.index.remove(key) else { return false };
        items.swap_remove(i);
        self.keys.swap_remove(i);
        if let Some(moved) = self.keys.get(i) {
            self.index.insert(moved.clone(), i);
        }
        true
    }

    /// Keeps the items whose keys are in `keep`; whether any went.
    pub fn retain<V>(&mut self, items: &mut Vec<V>, keep: &HashSet<K>) -> bool {
        let gone: Vec<K> = self.keys.iter().filter(|k| !keep.contains(*k)).cloned().collect();
        for key in &gone {
            self.remove(items, key);
        }
        !gone.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_stay_findable_by_key_through_removals() {
        let mut slots = Slots::default();
        let mut items = Vec::new();
        for n in 0..5 {
            assert!(slots.put(&mut items, n, n * 10));
        }
        assert!(!slots.put(&mut items, 2, 20), "the same value is no change");
        assert!(slots.put(&mut items, 2, 21));
        assert!(slots.remove(&mut items, &0));
        assert!(!slots.remove(&mut items, &0));
        assert!(slots.retain(&mut items, &HashSet::from([2, 3])));
        assert_eq!((slots.len(), items.len()), (2, 2));
        assert_eq!(slots.get(&items, &2), Some(&21));
        assert_eq!(slots.get(&items, &3), Some(&30));
        assert_eq!(slots.get(&items, &4), None);
        let mut sorted = items.clone();
        sorted.sort();
        assert_eq!(sorted, vec![21, 30]);
    }
}
