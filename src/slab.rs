//! A slab: records named by a `u32` position, stored in fixed-size chunks
//! that never move, with freed positions handed out again (last freed,
//! first reused). The reservation shards keep their records here so that an
//! index entry (id table, deadline index) costs a `u32` instead of a copy of
//! the id, records made close in time sit close in memory, and growing never
//! copies what is already stored (a doubling `Vec` would copy every record
//! under the shard lock). A slab never shrinks by itself: the reservation
//! shard replaces a sparse one with a compact copy (see
//! `ReservationShard::compact_if_sparse`).

/// Records per chunk: 256 reservation records are 8 KiB, so an almost empty
/// shard wastes little and a full one allocates rarely.
const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Records of type `T` by position.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    chunks: Vec<Box<[T]>>,
    /// Positions ever handed out: `0..handed_out` are stored or free.
    handed_out: u32,
    /// Freed positions, reused last-freed first (the most recently touched
    /// memory).
    free: Vec<u32>,
    /// What a free position holds.
    vacant: T,
}

fn locate(position: u32) -> (usize, usize) {
    (
        (position >> CHUNK_BITS) as usize,
        position as usize & (CHUNK - 1),
    )
}

impl<T: Clone> Slab<T> {
    /// An empty slab whose free positions hold `vacant`.
    pub(crate) fn new(vacant: T) -> Self {
        Slab {
            chunks: Vec::new(),
            handed_out: 0,
            free: Vec::new(),
            vacant,
        }
    }

    /// Stores `value` and returns its position.
    ///
    /// # Panics
    /// When `u32::MAX` records are stored at once (about 4 billion in one
    /// shard: far past any memory this runs in).
    pub(crate) fn insert(&mut self, value: T) -> u32 {
        let position = match self.free.pop() {
            Some(position) => position,
            None => {
                let position = self.handed_out;
                self.handed_out = position
                    .checked_add(1)
                    .expect("a slab holds fewer than u32::MAX records");
                if locate(position).0 == self.chunks.len() {
                    self.chunks
                        .push(vec![self.vacant.clone(); CHUNK].into_boxed_slice());
                }
                position
            }
        };
        *self.get_mut(position) = value;
        position
    }

    /// Frees `position`; it may be handed out again by the next `insert`.
    pub(crate) fn remove(&mut self, position: u32) {
        debug_assert!(position < self.handed_out);
        *self.get_mut(position) = self.vacant.clone();
        self.free.push(position);
    }

    /// The record at a position `insert` returned and `remove` has not freed.
    pub(crate) fn get(&self, position: u32) -> &T {
        let (chunk, offset) = locate(position);
        &self.chunks[chunk][offset]
    }

    /// The record at `position`, to change it.
    pub(crate) fn get_mut(&mut self, position: u32) -> &mut T {
        let (chunk, offset) = locate(position);
        &mut self.chunks[chunk][offset]
    }

    /// Positions handed out so far, stored or free: what the slab's
    /// memory follows.
    pub(crate) fn handed_out(&self) -> usize {
        self.handed_out as usize
    }

    /// Records stored now.
    pub(crate) fn len(&self) -> usize {
        self.handed_out as usize - self.free.len()
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;

    #[test]
    fn positions_stay_valid_across_chunks_and_are_reused() {
        let mut slab = Slab::new(0u64);
        let positions: Vec<u32> = (0..3 * CHUNK as u64 + 5)
            .map(|v| slab.insert(v + 1))
            .collect();
        assert_eq!(slab.len(), positions.len());
        for (v, &position) in positions.iter().enumerate() {
            assert_eq!(*slab.get(position), v as u64 + 1);
        }
        slab.remove(positions[7]);
        slab.remove(positions[300]);
        assert_eq!(*slab.get(positions[7]), 0, "a freed position holds vacant");
        assert_eq!(slab.len(), positions.len() - 2);
        assert_eq!(slab.insert(99), positions[300], "last freed, first reused");
        assert_eq!(slab.insert(98), positions[7]);
        let fresh = slab.insert(97);
        assert_eq!(fresh as usize, positions.len(), "then new positions");
        assert_eq!(*slab.get(positions[300]), 99);
        *slab.get_mut(fresh) += 1;
        assert_eq!(*slab.get(fresh), 98);
        assert_eq!(slab.len(), positions.len() + 1);
    }
}
