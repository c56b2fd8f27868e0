//! Recovery's core, independent of where the bytes come from: builds an
//! inventory from a snapshot image and the records after it, checking
//! that the records are dense and apply.

use super::apply::apply;
use super::record::decode;
use super::snapshot::{self, Cover};
use super::RecoveryError;
use crate::engine::{Inventory, InventoryBuilder};

/// Applies `image` (if any) and then `records` (in sequence order; those
/// the image covers are skipped) to `inventory`, fresh and unshared.
/// Returns the last sequence number applied (or covered).
pub(crate) fn replay(
    inventory: &Inventory,
    image: Option<&[u8]>,
    records: impl IntoIterator<Item = Result<(u64, Vec<u8>), RecoveryError>>,
) -> Result<u64, RecoveryError> {
    let cover = match image {
        Some(bytes) => {
            snapshot::load(inventory, bytes).map_err(|error| RecoveryError::Snapshot {
                reason: error.to_string(),
            })?
        }
        None => Cover::none(),
    };
    let mut last = cover.covers;
    for next in records {
        let (seq, payload) = next?;
        if seq <= cover.covers {
            continue;
        }
        if seq != last + 1 {
            return Err(RecoveryError::Gap {
                expected: last + 1,
                found: seq,
            });
        }
        let record = decode(seq, &payload).map_err(|error| RecoveryError::Record {
            seq,
            reason: error.to_string(),
        })?;
        apply(
            inventory,
            &record,
            &|id| cover.fresh(seq, id),
            cover.campaigns_fresh(seq),
        )
        .map_err(|reason| RecoveryError::Record {
            seq,
            reason: reason.to_owned(),
        })?;
        last = seq;
    }
    inventory.restore_alert_marks();
    Ok(last)
}

/// The builder for an inventory recovered from `image`: with the image's
/// id placement, so that reservation shards are what they were.
pub(crate) fn builder_for(
    builder: InventoryBuilder,
    image: Option<&[u8]>,
) -> Result<InventoryBuilder, RecoveryError> {
    match image {
        None => Ok(builder),
        Some(bytes) => {
            let key = snapshot::id_key(bytes).map_err(|error| RecoveryError::Snapshot {
                reason: error.to_string(),
            })?;
            Ok(builder.id_key(key))
        }
    }
}

impl InventoryBuilder {
    /// Rebuilds an inventory from a snapshot image
    /// ([`Inventory::image`]) and the records a [`RecordSink`](super::RecordSink) received
    /// after it, in sequence order (those the image covers are skipped),
    /// with this builder's settings. A sink given to this builder gets the
    /// records of the recovered inventory, numbered on from the last one.
    /// Returns the inventory and the last sequence number applied.
    ///
    /// # Errors
    ///
    /// A [`RecoveryError`] naming the damaged snapshot, the record that
    /// does not decode or apply, or the first missing number.
    pub fn recover(
        self,
        image: Option<&[u8]>,
        records: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> Result<(Inventory, u64), RecoveryError> {
        let builder = builder_for(self, image)?;
        let inventory = builder.try_build().map_err(RecoveryError::Build)?;
        let last = replay(&inventory, image, records.into_iter().map(Ok))?;
        if let Some(durable) = inventory.durability_state() {
            durable.seqs.set(last + 1);
        }
        Ok((inventory, last))
    }
}
