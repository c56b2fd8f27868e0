//! The durability methods of [`Inventory`] that need no journal: notes
//! and snapshot images.

use super::record::{Note, Op};
use super::snapshot;
use super::steps;
use crate::engine::Inventory;

impl Inventory {
    /// Runs `f` with `note` (a reason code and an external reference)
    /// attached to the journal record of every operation `f` makes on this
    /// thread; `history` reads it back. Costs nothing without a journal
    /// and one thread-local read per operation with one.
    ///
    /// ```
    /// use omnistock::durability::Note;
    /// use omnistock::{Inventory, Sku, StoreId};
    ///
    /// let inventory = Inventory::new();
    /// let delivery = Note::reason(1).with_reference("ASN-2024-118");
    /// inventory.with_note(&delivery, |inventory| inventory.restock(Sku(1), StoreId(1), 12))?;
    /// # Ok::<(), omnistock::Error>(())
    /// ```
    pub fn with_note<R>(&self, note: &Note, f: impl FnOnce(&Inventory) -> R) -> R {
        steps::with_note(note, || f(self))
    }

    /// A snapshot image of the inventory: items, remembered reservations
    /// (pending and terminal), the clock's time, and how reservation ids
    /// are placed, taken without stopping traffic. `covers` must be a
    /// sequence number every record up to which had been handed to the
    /// record sink before this call (the journal uses its written
    /// watermark; 0 without records); the image then holds every
    /// operation up to it, maybe some after, and
    /// [`InventoryBuilder::recover`](crate::InventoryBuilder::recover)
    /// rebuilds the inventory from it and the records after `covers`.
    pub fn image(&self, covers: u64) -> Vec<u8> {
        snapshot::image(self, covers)
    }

    /// Journals the clock's time now (a record of its own), so that
    /// recovery brings a hand-driven clock back to it even if no operation
    /// ran since it moved. The replay tool calls it after every `advance`.
    /// Nothing without a journal.
    ///
    /// # Errors
    ///
    /// [`Error::NotDurable`](crate::Error::NotDurable) when the journal
    /// failed.
    pub fn record_clock(&self) -> Result<(), crate::Error> {
        let mut effects = self.effects(Op::Clock);
        if let Some(seqs) = effects.seqs() {
            let seq = seqs.take();
            let now = self.now_ms();
            effects.journal(|steps| {
                steps.begin(seq, None, Some(now));
                steps.current().clock(now);
            });
        }
        self.publish(&mut effects)
    }

    /// The sequence number the next journal record will get (1 more than
    /// the last one handed out); 0 without a journal or record sink.
    pub fn next_seq(&self) -> u64 {
        self.durability_state()
            .map_or(0, |durable| durable.seqs.peek())
    }
}
