//! A slab: records named by a `u32` position, stored in fixed-size chunks
//! that never move, with freed positions handed out again. The reservation
//! shards keep their records here so that an index entry (id table,
//! deadline index) costs a `u32` instead of a copy of the id, and growing
//! never copies what is already stored (a doubling `Vec` would copy every
//! record under the shard lock). A slab never shrinks by itself: the
//! reservation shard replaces a sparse one with a compact copy (see
//! `ReservationShard::compact_if_sparse`).
//!
//! Freed positions are handed out again in position order, by a cursor
//! that sweeps a bitmap of the positions in use, rather than last freed
//! first. Reservations end, and are forgotten, roughly in the order they
//! were made; so the cursor finds the oldest positions freed just ahead of
//! it, a shard writes its new records into consecutive positions (two to a
//! cache line), and the reaper reads the records it forgets in the same
//! order. A stack of freed positions (last freed first) lets the order of
//! positions drift away from the order of time, until each record written
//! and each record forgotten is a cache miss of its own.
//!
//! Against the `slab` crate (a `Vec` with a free list) it is slower on
//! insert/remove churn that stays in cache, and wins where it grows: its
//! slowest single insert while filling is several times shorter than the
//! crate's, whose `Vec` reallocates (`slab_growth` in
//! benches/structures.rs; see docs/PERFORMANCE.md 'Structures').

/// Records per chunk: 256 reservation records are 8 KiB, so an almost empty
/// shard wastes little and a full one allocates rarely.
const CHUNK_BITS: u32 = 8;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Positions per bitmap word.
const WORD_BITS: u32 = 64;

/// Bitmap words an insert looks through for a freed position before it
/// hands out a new one (a slab with no position free looks at none). The
/// cursor moves on past the words it looked at, so freed positions
/// anywhere are found within one sweep of the slab, while an insert with
/// nothing freed near the cursor costs at most two word reads.
const WORDS_SEARCHED: usize = 2;

/// Records of type `T` by position.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    /// Fixed-size arrays, so that a position's offset (masked below
    /// `CHUNK`) needs no bounds check.
    chunks: Vec<Box<[T; CHUNK]>>,
    /// Positions ever handed out: `0..handed_out` are stored or free.
    handed_out: u32,
    /// Positions stored now.
    len: u32,
    /// A bit per position, set where a record is stored, and (in the last
    /// word) for the positions not handed out yet, so that the search for
    /// a freed position never takes one of those.
    in_use: Vec<u64>,
    /// Where the search for a freed position goes on: below
    /// `in_use.len() * WORD_BITS`.
    cursor: u32,
    /// What a position holds before it is first used.
    vacant: T,
}

fn locate(position: u32) -> (usize, usize) {
    (
        (position >> CHUNK_BITS) as usize,
        position as usize & (CHUNK - 1),
    )
}

/// The bitmap word and bit of a position.
fn bit_of(position: u32) -> (usize, u64) {
    ((position / WORD_BITS) as usize, 1 << (position % WORD_BITS))
}

impl<T: Clone> Slab<T> {
    /// An empty slab whose positions not yet used hold `vacant`.
    pub(crate) fn new(vacant: T) -> Self {
        Slab {
            chunks: Vec::new(),
            handed_out: 0,
            len: 0,
            in_use: Vec::new(),
            cursor: 0,
            vacant,
        }
    }

    /// Stores `value` and returns its position: the first freed position
    /// at or after the cursor, within `WORDS_SEARCHED` bitmap words, or
    /// else a new one.
    ///
    /// # Panics
    /// When `u32::MAX` records are stored at once (about 4 billion in one
    /// shard: far past any memory this runs in).
    pub(crate) fn insert(&mut self, value: T) -> u32 {
        let position = match self.take_freed() {
            Some(position) => position,
            None => self.hand_out_new(),
        };
        self.len += 1;
        *self.get_mut(position) = value;
        position
    }

    /// Marks in use, and returns, the first free position the cursor
    /// reaches within `WORDS_SEARCHED` words; moves the cursor past it, or
    /// past the words searched.
    fn take_freed(&mut self) -> Option<u32> {
        match self.search_freed()? {
            Ok(position) => {
                let (word, bit) = bit_of(position);
                self.in_use[word] |= bit;
                self.cursor = match position + 1 {
                    next if next as usize == self.in_use.len() * WORD_BITS as usize => 0,
                    next => next,
                };
                Some(position)
            }
            Err(cursor) => {
                self.cursor = cursor;
                None
            }
        }
    }

    /// The first free position the cursor reaches within `WORDS_SEARCHED`
    /// words (`Ok`), or where the cursor goes on if there is none there
    /// (`Err`); `None` when no position is free.
    fn search_freed(&self) -> Option<Result<u32, u32>> {
        if self.len == self.handed_out {
            return None;
        }
        let words = self.in_use.len();
        let mut word = (self.cursor / WORD_BITS) as usize;
        // The first word from the cursor on, the next ones whole.
        let mut from_cursor = u64::MAX << (self.cursor % WORD_BITS);
        for _ in 0..WORDS_SEARCHED {
            let free = !self.in_use[word] & from_cursor;
            if free != 0 {
                return Some(Ok(word as u32 * WORD_BITS + free.trailing_zeros()));
            }
            word = if word + 1 == words { 0 } else { word + 1 };
            from_cursor = u64::MAX;
        }
        Some(Err(word as u32 * WORD_BITS))
    }

    /// The position the next [`insert`](Self::insert) writes, if it
    /// reuses a freed one or fills a chunk already made.
    pub(crate) fn next_position(&self) -> Option<u32> {
        match self.search_freed() {
            Some(Ok(position)) => Some(position),
            _ => (locate(self.handed_out).0 < self.chunks.len()).then_some(self.handed_out),
        }
    }

    /// The next position never handed out, with its chunk and bitmap word
    /// made if it starts one.
    fn hand_out_new(&mut self) -> u32 {
        let position = self.handed_out;
        self.handed_out = position
            .checked_add(1)
            .expect("a slab holds fewer than u32::MAX records");
        if position % WORD_BITS == 0 {
            // Every bit set: the positions not handed out yet look taken.
            self.in_use.push(u64::MAX);
        }
        if locate(position).0 == self.chunks.len() {
            let chunk: Box<[T]> = vec![self.vacant.clone(); CHUNK].into_boxed_slice();
            match chunk.try_into() {
                Ok(chunk) => self.chunks.push(chunk),
                Err(_) => unreachable!("a chunk of CHUNK records"),
            }
        }
        position
    }

    /// Frees `position`; the cursor hands it out again when it gets there.
    /// The position keeps its last value until then, unread: freeing
    /// touches only the bitmap, not a record that may have left the cache
    /// long ago.
    pub(crate) fn remove(&mut self, position: u32) {
        debug_assert!(position < self.handed_out);
        let (word, bit) = bit_of(position);
        debug_assert!(
            self.in_use[word] & bit != 0,
            "position {position} is stored"
        );
        self.in_use[word] &= !bit;
        self.len -= 1;
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
        self.len as usize
    }
}

#[cfg(all(test, not(omnistock_loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, VecDeque};

    #[test]
    fn positions_stay_valid_across_chunks_and_freed_ones_are_reused() {
        let mut slab = Slab::new(0u64);
        let positions: Vec<u32> = (0..3 * CHUNK as u64 + 5)
            .map(|v| slab.insert(v + 1))
            .collect();
        assert_eq!(positions, (0..3 * CHUNK as u32 + 5).collect::<Vec<_>>());
        assert_eq!(slab.len(), positions.len());
        for (v, &position) in positions.iter().enumerate() {
            assert_eq!(*slab.get(position), v as u64 + 1);
        }
        slab.remove(7);
        slab.remove(9);
        assert_eq!(slab.len(), positions.len() - 2);
        assert_eq!(slab.insert(99), 7, "freed positions, in order");
        assert_eq!(slab.insert(98), 9);
        let fresh = slab.insert(97);
        assert_eq!(fresh as usize, positions.len(), "then new positions");
        assert_eq!(*slab.get(9), 98);
        *slab.get_mut(fresh) += 1;
        assert_eq!(*slab.get(fresh), 98);
        assert_eq!(slab.len(), positions.len() + 1);
        assert_eq!(slab.handed_out(), positions.len() + 1);
    }

    #[test]
    fn the_oldest_freed_positions_are_written_in_order() {
        // Records that end in the order they were made, as reservations
        // mostly do, freed in batches as the reaper frees them: the new
        // ones take the freed positions in ascending order (a stack of
        // freed positions would hand each batch out reversed), and the
        // slab does not grow.
        let mut slab = Slab::new(0u32);
        let mut live: VecDeque<u32> = (0..1000).map(|n| slab.insert(n)).collect();
        let mut expected = (0..1000u32).cycle();
        for batch in 0..100u32 {
            for _ in 0..50 {
                slab.remove(live.pop_front().unwrap());
            }
            for n in 0..50 {
                let position = slab.insert(batch * 50 + n);
                assert_eq!(Some(position), expected.next(), "batch {batch}, insert {n}");
                live.push_back(position);
            }
        }
        assert_eq!(slab.handed_out(), 1000);
    }

    #[test]
    fn a_freed_position_far_from_the_cursor_is_found_within_a_sweep() {
        let mut slab = Slab::new(0u32);
        let n = 10_000u32;
        for v in 0..n {
            slab.insert(v);
        }
        slab.remove(n - 100);
        let sweep = n / (WORD_BITS * WORDS_SEARCHED as u32) + 1;
        let found = (0..sweep)
            .map(|v| slab.insert(v))
            .position(|p| p == n - 100);
        let inserts = found.expect("found within one sweep") as u32 + 1;
        assert_eq!(slab.handed_out(), (n + inserts - 1) as usize);
    }

    #[test]
    fn a_churn_with_stragglers_stays_near_its_size_and_in_order() {
        // 50 records a tick, freed in batches at the start of each tick:
        // most after 80 ticks, one in seven (stragglers) after 240.
        let mut slab = Slab::new(0u32);
        let mut ending: VecDeque<(u32, u32)> = VecDeque::new(); // (end, position)
        let mut stragglers: VecDeque<(u32, u32)> = VecDeque::new();
        let (life, long_life) = (80u32, 240u32);
        let (ticks, per_tick) = (2_000u32, 50u32);
        let mut ascending = 0;
        for now in 0..ticks {
            for queue in [&mut ending, &mut stragglers] {
                while queue.front().is_some_and(|&(end, _)| end <= now) {
                    slab.remove(queue.pop_front().unwrap().1);
                }
            }
            let mut previous = None;
            for n in 0..per_tick {
                let position = slab.insert(now);
                if previous.is_some_and(|p: u32| position > p && position - p <= 2) {
                    ascending += 1;
                }
                previous = Some(position);
                if n % 7 == 0 {
                    stragglers.push_back((now + long_life, position));
                } else {
                    ending.push_back((now + life, position));
                }
            }
        }
        let live = slab.len();
        assert!(
            slab.handed_out() <= live + live / 2,
            "{} positions for {live} records",
            slab.handed_out()
        );
        // Of the 49 pairs of inserts in a tick, over half land at most one
        // position apart, going up.
        let pairs = ticks * (per_tick - 1);
        assert!(
            ascending > pairs / 2,
            "{ascending} of {pairs} inserts followed the one before, at most one position on"
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert,
        /// Removes the stored record this far into the list of them.
        Remove(usize),
    }

    proptest! {
        #[test]
        fn stores_what_it_is_given_like_a_map(
            ops in proptest::collection::vec(
                prop_oneof![Just(Op::Insert), (0usize..1000).prop_map(Op::Remove)],
                0..600,
            ),
        ) {
            let mut slab = Slab::new(u32::MAX);
            let mut model: HashMap<u32, u32> = HashMap::new();
            for (n, op) in ops.into_iter().enumerate() {
                let n = n as u32;
                match op {
                    Op::Insert => {
                        let predicted = slab.next_position();
                        let handed_out = slab.handed_out();
                        let position = slab.insert(n);
                        // Only a new position that opens a chunk goes unpredicted.
                        let new_chunk = position as usize == handed_out
                            && position as usize % CHUNK == 0;
                        prop_assert_eq!(predicted, (!new_chunk).then_some(position));
                        prop_assert!(model.insert(position, n).is_none(), "{position} handed out twice");
                        prop_assert!(position < slab.handed_out() as u32);
                    }
                    Op::Remove(k) if !model.is_empty() => {
                        let mut stored: Vec<u32> = model.keys().copied().collect();
                        stored.sort_unstable();
                        let position = stored[k % stored.len()];
                        model.remove(&position);
                        slab.remove(position);
                    }
                    Op::Remove(_) => {}
                }
                prop_assert_eq!(slab.len(), model.len());
                for (&position, &value) in &model {
                    prop_assert_eq!(*slab.get(position), value);
                }
            }
        }
    }
}
