//! Process slots in fixed-size chunks: growing never copies existing processes and never
//! leaves more than one chunk unused, unlike a doubling `Vec`, whose spare capacity would cost
//! every process up to as much again.

use std::ops::{Index, IndexMut};

use crate::process::Process;

const CHUNK: usize = 1024;

#[derive(Debug, Default)]
pub struct Slab {
    chunks: Vec<Box<[Option<Process>]>>,
    len: usize,
}

impl Slab {
    /// Number of slots (used or free).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Adds an empty slot at the end.
    pub fn push_empty(&mut self) {
        if self.len == self.chunks.len() * CHUNK {
            self.chunks.push((0..CHUNK).map(|_| None).collect());
        }
        self.len += 1;
    }

    pub fn get(&self, slot: usize) -> Option<&Option<Process>> {
        (slot < self.len).then(|| &self.chunks[slot / CHUNK][slot % CHUNK])
    }

    pub fn get_mut(&mut self, slot: usize) -> Option<&mut Option<Process>> {
        (slot < self.len).then(|| &mut self.chunks[slot / CHUNK][slot % CHUNK])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Option<Process>> {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.len)
    }
}

impl Index<usize> for Slab {
    type Output = Option<Process>;

    fn index(&self, slot: usize) -> &Option<Process> {
        &self.chunks[slot / CHUNK][slot % CHUNK]
    }
}

impl IndexMut<usize> for Slab {
    fn index_mut(&mut self, slot: usize) -> &mut Option<Process> {
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }
}
