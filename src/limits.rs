//! The contract's limits and defaults: how many lines a reservation may
//! have, and how long reservations live and are remembered unless the
//! builder says otherwise.

/// Default time to live of a reservation: 15 minutes.
pub const DEFAULT_TTL_MS: u64 = 900_000;
/// Default time a terminal reservation is remembered for idempotency: 24 hours.
pub const DEFAULT_RETENTION_MS: u64 = 86_400_000;
/// The most lines one reservation may have.
pub const MAX_LINES: usize = 256;
