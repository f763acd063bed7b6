//! A small map by node name, for the few nodes the live view follows: a
//! vector of pairs, since a `BTreeMap`'s code is compiled into the page once
//! per value type (BENCHMARKS.md, Web, Size).

use std::ops::Index;

/// Values by node name, in the order they were first inserted.
#[derive(Clone, Debug, PartialEq)]
pub struct NameMap<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap {
            entries: Vec::new(),
        }
    }
}

impl<V> NameMap<V> {
    /// The value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.position(name).map(|index| &self.entries[index].1)
    }

    /// Whether `name` has a value.
    pub fn contains_key(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    /// Whether no name has a value.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets the value of `name`.
    pub fn insert(&mut self, name: String, value: V) {
        match self.position(&name) {
            Some(index) => self.entries[index].1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Removes the value of `name`, if any.
    pub fn remove(&mut self, name: &str) {
        if let Some(index) = self.position(name) {
            self.entries.remove(index);
        }
    }

    /// The value of `name`, a default one inserted first if it had none.
    pub fn get_or_default(&mut self, name: String) -> &mut V
    where
        V: Default,
    {
        let index = match self.position(&name) {
            Some(index) => index,
            None => {
                self.entries.push((name, V::default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[index].1
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|(key, _)| key == name)
    }
}

impl<V, Q: AsRef<str> + ?Sized> Index<&Q> for NameMap<V> {
    type Output = V;

    /// The value of `name`; panics when there is none, as a map's index does.
    fn index(&self, name: &Q) -> &V {
        self.get(name.as_ref())
            .expect("no value for this node name")
    }
}

#[cfg(test)]
mod tests {
    use super::NameMap;

    #[test]
    fn a_name_holds_one_value_until_removed() {
        let mut map = NameMap::default();
        assert!(map.is_empty());
        map.insert("standby-1".to_string(), 1);
        map.insert("c2/standby-1".to_string(), 2);
        map.insert("standby-1".to_string(), 3);
        *map.get_or_default("c2/standby-1".to_string()) += 10;
        *map.get_or_default("standby-2".to_string()) += 5;
        assert_eq!(
            (map["standby-1"], map["c2/standby-1"], map["standby-2"]),
            (3, 12, 5)
        );
        map.remove("standby-1");
        assert_eq!(map.get("standby-1"), None);
        assert!(map.contains_key("c2/standby-1"));
    }
}
