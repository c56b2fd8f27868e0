//! Applying decoded records to an inventory being recovered. Cells take
//! the records' post-values (so a record applied over a snapshot that saw
//! it already changes nothing); reservation changes are applied only where
//! the snapshot had not seen them (`fresh` says which).

use super::record::{Change, Record};
use crate::engine::{Inventory, Joins};
use crate::types::ReservationId;

/// Applies `record`. `fresh(id)`: whether reservation changes of `id` in
/// this record are newer than the snapshot under it; `campaigns_fresh`:
/// whether its campaign definitions and ends are.
pub(crate) fn apply(
    inventory: &Inventory,
    record: &Record,
    fresh: &dyn Fn(ReservationId) -> bool,
    campaigns_fresh: bool,
) -> Result<(), &'static str> {
    for change in &record.changes {
        match change {
            Change::Item {
                item,
                on_hand,
                reserved,
            } => {
                if reserved > on_hand {
                    return Err("a cell with more reserved than on hand");
                }
                inventory.restore_item(*item, *on_hand, *reserved);
            }
            Change::SafetyStock { item, safety_stock } => {
                inventory.restore_safety(*item, *safety_stock);
            }
            Change::Reserved {
                id,
                channel,
                lines,
                expires_at_ms,
                overdue_at_once,
                campaign,
            } => {
                if fresh(*id) {
                    inventory.restore_reserved(
                        *id,
                        *channel,
                        lines,
                        (*expires_at_ms, *overdue_at_once),
                        campaign.map(|(campaign, customer)| (campaign, customer, Joins::CountIn)),
                    )?;
                }
            }
            Change::Finished {
                id,
                state,
                at_ms,
                parts,
            } => {
                if fresh(*id) {
                    inventory.restore_finished(*id, *state, *at_ms, parts, true)?;
                }
            }
            Change::Extended {
                id,
                expires_at_ms,
                overdue_at_once,
            } => {
                if fresh(*id) {
                    inventory.restore_extended(*id, (*expires_at_ms, *overdue_at_once))?;
                }
            }
            Change::Forgotten { id } => {
                if fresh(*id) {
                    inventory.restore_forgotten(*id)?;
                }
            }
            Change::Clock { now_ms } => inventory.restore_clock(*now_ms),
            Change::ReorderPoint {
                item,
                reorder_point,
            } => inventory.restore_reorder_point(*item, *reorder_point),
            Change::CampaignDefined {
                campaign,
                item,
                quota,
                per_customer,
            } => {
                if campaigns_fresh {
                    inventory.restore_campaign_defined(*campaign, *item, *quota, *per_customer)?;
                }
            }
            Change::CampaignEnded { campaign } => {
                if campaigns_fresh {
                    inventory.restore_campaign_ended(*campaign)?;
                }
            }
        }
    }
    inventory.restore_clock(record.at_ms);
    Ok(())
}
