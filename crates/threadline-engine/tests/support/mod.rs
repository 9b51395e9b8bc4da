//! A model of what a process table does with the engine's changes, for tests: business keys
//! by process, following processes folded into another (keys reported for a folded process,
//! even late, belong to the process it joined).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use threadline_core::id::TraceId;
use threadline_engine::engine::Changes;

#[derive(Debug, Default)]
pub struct KeyBook {
    keys: BTreeMap<TraceId, BTreeSet<(String, String)>>,
    folded_into: HashMap<TraceId, TraceId>,
}

impl KeyBook {
    fn resolve(&self, mut id: TraceId) -> TraceId {
        while let Some(next) = self.folded_into.get(&id) {
            id = *next;
        }
        id
    }

    pub fn apply(&mut self, changes: &Changes) {
        for (from, into) in &changes.removed {
            self.folded_into.insert(*from, *into);
            let into = self.resolve(*into);
            if let Some(moved) = self.keys.remove(from) {
                self.keys.entry(into).or_default().extend(moved);
            }
        }
        for (id, key, value) in &changes.keys {
            let id = self.resolve(*id);
            self.keys.entry(id).or_default().insert((key.clone(), value.clone()));
        }
    }

    pub fn keys(&self, id: TraceId) -> Vec<(String, String)> {
        self.keys.get(&id).map(|k| k.iter().cloned().collect()).unwrap_or_default()
    }

    #[allow(dead_code, reason = "not every test file looks keys up")]
    pub fn find(&self, key: &str, value: &str) -> Vec<TraceId> {
        let wanted = (key.to_owned(), value.to_owned());
        self.keys.iter().filter(|(_, k)| k.contains(&wanted)).map(|(id, _)| *id).collect()
    }
}
