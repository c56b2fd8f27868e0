//! Sourcing: which stores a `reserve_any` tries, in which order. The
//! request ([`SourceRequest`]) carries the caller's ranking; a [`Sourcing`]
//! strategy ranks for callers who want the engine to, from each candidate
//! store's availability at one reading. A strategy only orders the
//! candidates: the reservation that follows is one all-or-nothing step on
//! the stores as they are then, whatever changed since the reading.

use crate::types::{Sku, StoreId};

/// What a [`reserve_any`](crate::Inventory::reserve_any) asks for: `qty`
/// units of `sku` from the candidate `stores`, most preferred first; with
/// `split`, from several stores in order when no single one has enough.
///
/// ```
/// use omnistock::{SourceRequest, Sku, StoreId};
///
/// let near_first = [StoreId(3), StoreId(1), StoreId(7)];
/// let request = SourceRequest::new(Sku(42), 5, &near_first).split();
/// assert!(request.split);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceRequest<'a> {
    /// The SKU.
    pub sku: Sku,
    /// Units wanted, at least 1.
    pub qty: u32,
    /// The candidate stores, most preferred first; 1 to 256, each once.
    pub stores: &'a [StoreId],
    /// Take from several stores, in order, when no single one suffices.
    pub split: bool,
}

impl<'a> SourceRequest<'a> {
    /// `qty` units of `sku` from the first of `stores` that has them all.
    pub const fn new(sku: Sku, qty: u32, stores: &'a [StoreId]) -> Self {
        SourceRequest {
            sku,
            qty,
            stores,
            split: false,
        }
    }

    /// The same request, allowed to split across stores.
    #[must_use]
    pub const fn split(self) -> Self {
        SourceRequest {
            split: true,
            ..self
        }
    }
}

/// A ranking of candidate stores for
/// [`reserve_ranked`](crate::Inventory::reserve_ranked).
///
/// `rank` gets the candidates in the caller's order with the units each
/// has available to the channel (0 where the item is unknown), and writes
/// into `ranked` the stores to try, most preferred first (each at most
/// once; leaving a store out drops it).
///
/// ```
/// use omnistock::{Sourcing, StoreId};
///
/// /// Stores with an even id first (say, the ones that ship for free).
/// struct EvenFirst;
///
/// impl Sourcing for EvenFirst {
///     fn rank(&self, _qty: u32, candidates: &[(StoreId, u32)], ranked: &mut Vec<StoreId>) {
///         let (even, odd): (Vec<_>, Vec<_>) = candidates.iter().partition(|(s, _)| s.0 % 2 == 0);
///         ranked.extend(even.iter().chain(&odd).map(|(store, _)| *store));
///     }
/// }
///
/// let mut ranked = Vec::new();
/// EvenFirst.rank(1, &[(StoreId(1), 5), (StoreId(2), 5)], &mut ranked);
/// assert_eq!(ranked, [StoreId(2), StoreId(1)]);
/// ```
pub trait Sourcing {
    /// Writes the stores to try, best first, into `ranked` (empty when
    /// called) for a request of `qty` units.
    fn rank(&self, qty: u32, candidates: &[(StoreId, u32)], ranked: &mut Vec<StoreId>);
}

/// The caller's order, unchanged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GivenOrder;

impl Sourcing for GivenOrder {
    fn rank(&self, _qty: u32, candidates: &[(StoreId, u32)], ranked: &mut Vec<StoreId>) {
        ranked.extend(candidates.iter().map(|(store, _)| *store));
    }
}

/// The stores with the most units available first (the caller's order
/// among equals): keeps stock spread evenly across the network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MostAvailableFirst;

impl Sourcing for MostAvailableFirst {
    fn rank(&self, _qty: u32, candidates: &[(StoreId, u32)], ranked: &mut Vec<StoreId>) {
        let mut sorted = candidates.to_vec();
        sorted.sort_by_key(|&(_, available)| std::cmp::Reverse(available)); // stable: ties keep the caller's order
        ranked.extend(sorted.iter().map(|(store, _)| *store));
    }
}

/// As few stores as possible (fewest parcels): the first store, in the
/// caller's order, that has the whole quantity; otherwise the stores with
/// the most available first, so a split takes from as few as it can.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FewestStores;

impl Sourcing for FewestStores {
    fn rank(&self, qty: u32, candidates: &[(StoreId, u32)], ranked: &mut Vec<StoreId>) {
        let whole = candidates.iter().find(|(_, available)| *available >= qty);
        if let Some((store, _)) = whole {
            ranked.push(*store);
        }
        let mut rest: Vec<(StoreId, u32)> = candidates
            .iter()
            .filter(|(store, _)| Some(store) != whole.map(|(first, _)| first))
            .copied()
            .collect();
        rest.sort_by_key(|&(_, available)| std::cmp::Reverse(available));
        ranked.extend(rest.iter().map(|(store, _)| *store));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(strategy: &dyn Sourcing, qty: u32, candidates: &[(u64, u32)]) -> Vec<u64> {
        let candidates: Vec<(StoreId, u32)> =
            candidates.iter().map(|&(s, a)| (StoreId(s), a)).collect();
        let mut out = Vec::new();
        strategy.rank(qty, &candidates, &mut out);
        out.into_iter().map(|store| store.0).collect()
    }

    #[test]
    fn each_strategy_orders_the_candidates() {
        let candidates = [(1, 2), (2, 9), (3, 5), (4, 9)];
        assert_eq!(ranked(&GivenOrder, 4, &candidates), [1, 2, 3, 4]);
        assert_eq!(ranked(&MostAvailableFirst, 4, &candidates), [2, 4, 3, 1]);
        // Store 3 is the first with 4 units; then the rest, most first.
        assert_eq!(ranked(&FewestStores, 4, &candidates[2..]), [3, 4]);
        assert_eq!(ranked(&FewestStores, 4, &candidates), [2, 4, 3, 1]);
        assert_eq!(ranked(&FewestStores, 12, &candidates), [2, 4, 3, 1]);
    }
}
