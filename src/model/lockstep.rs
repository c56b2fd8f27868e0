//! The engine checked against the model, request by request: [`Oracle`]
//! holds a [`ReferenceModel`] and compares an engine's answers, clock and
//! state with it; [`Lockstep`] owns an [`Inventory`] on a manual clock and
//! an oracle, and runs each request on both. The first difference is a
//! [`Disagreement`] naming the request and both sides.

use super::conservation::level_ok;
use super::reference::{same_answer, ReferenceModel};
use crate::clock::ManualClock;
use crate::command::{Command, Outcome};
use crate::engine::{Inventory, InventoryBuilder};
use crate::error::Error;
use crate::types::{ItemKey, Level};
use std::fmt;
use std::sync::Arc;

/// An answer of the engine or of the model.
pub type Answer = Result<Outcome, Error>;

/// Where an engine and the model part ways.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disagreement {
    /// The answers to `command` differ (as [`same_answer`] sees them).
    /// Boxed: a disagreement is rare, a `Result` of it common.
    Answer {
        /// The request.
        command: Box<Command>,
        /// The engine's answer.
        engine: Box<Answer>,
        /// The model's answer.
        model: Box<Answer>,
    },
    /// After the same advance, the clocks read differently.
    Clock {
        /// The engine's time.
        engine: u64,
        /// The model's time.
        model: u64,
    },
    /// An item's level breaks `reserved <= on_hand` or does not add up.
    Invariant {
        /// The item.
        item: ItemKey,
        /// Its level as the engine reported it.
        level: Level,
    },
    /// Item levels differ: each item that differs, with the engine's and
    /// the model's level (`None`: unknown to that side).
    Levels(Vec<(ItemKey, Option<Level>, Option<Level>)>),
    /// The numbers of remembered reservations differ.
    Reservations {
        /// The engine's count.
        engine: usize,
        /// The model's count.
        model: usize,
    },
    /// The numbers of pending reservations differ.
    Pending {
        /// The engine's count.
        engine: usize,
        /// The model's count.
        model: usize,
    },
}

impl fmt::Display for Disagreement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disagreement::Answer {
                command,
                engine,
                model,
            } => write!(
                f,
                "answers differ on {command:?}\n  engine: {engine:?}\n  model:  {model:?}"
            ),
            Disagreement::Clock { engine, model } => {
                write!(f, "clock at {engine}, model at {model}")
            }
            Disagreement::Invariant { item, level } => {
                let why = level_ok(level).err().unwrap_or_default();
                write!(f, "invariant broken at {item}: {why}")
            }
            Disagreement::Levels(diff) => {
                write!(f, "levels differ:")?;
                for (item, engine, model) in diff {
                    write!(f, "\n  {item}: engine {engine:?}, model {model:?}")?;
                }
                Ok(())
            }
            Disagreement::Reservations { engine, model } => {
                write!(f, "engine remembers {engine} reservations, model {model}")
            }
            Disagreement::Pending { engine, model } => {
                write!(f, "engine has {engine} pending reservations, model {model}")
            }
        }
    }
}

impl std::error::Error for Disagreement {}

/// The model's half of a lockstep run, for the answers and states of any
/// engine (a live one, or a recorded history).
#[derive(Clone, Debug, Default)]
pub struct Oracle {
    model: ReferenceModel,
}

impl Oracle {
    /// An oracle on `model` (as [`ReferenceModel::with_limits`] makes it for
    /// an engine with other than the default ttl and retention).
    pub fn new(model: ReferenceModel) -> Oracle {
        Oracle { model }
    }

    /// The model.
    pub fn model(&self) -> &ReferenceModel {
        &self.model
    }

    /// Has the model answer `command` and compares with the engine's
    /// answer; the model's answer, or how they differ.
    pub fn answer(&mut self, command: &Command, engine: &Answer) -> Result<Answer, Disagreement> {
        let model = self.model.apply(command);
        if same_answer(engine, &model) {
            Ok(model)
        } else {
            Err(Disagreement::Answer {
                command: Box::new(command.clone()),
                engine: Box::new(engine.clone()),
                model: Box::new(model),
            })
        }
    }

    /// Moves the model's time by `ms` and compares with the engine's time
    /// after the same move.
    pub fn advance(&mut self, ms: u64, engine_now: u64) -> Result<(), Disagreement> {
        let model = self.model.advance(ms);
        if engine_now == model {
            Ok(())
        } else {
            Err(Disagreement::Clock {
                engine: engine_now,
                model,
            })
        }
    }

    /// Compares the engine's state with the model's: every item keeps the
    /// invariant, the levels (`items` sorted by item) and the numbers of
    /// remembered and of pending reservations are the model's.
    pub fn state(
        &self,
        items: &[(ItemKey, Level)],
        reservations: usize,
        pending: usize,
    ) -> Result<(), Disagreement> {
        for (item, level) in items {
            if level_ok(level).is_err() {
                return Err(Disagreement::Invariant {
                    item: *item,
                    level: *level,
                });
            }
        }
        let expected = self.model.items();
        if items != expected {
            let mut diff = Vec::new();
            for (item, level) in items {
                let model = expected.iter().find(|(k, _)| k == item).map(|(_, l)| *l);
                if model != Some(*level) {
                    diff.push((*item, Some(*level), model));
                }
            }
            for (item, level) in &expected {
                if !items.iter().any(|(k, _)| k == item) {
                    diff.push((*item, None, Some(*level)));
                }
            }
            return Err(Disagreement::Levels(diff));
        }
        let model = self.model.reservation_count();
        if reservations != model {
            return Err(Disagreement::Reservations {
                engine: reservations,
                model,
            });
        }
        let model = self.model.pending_count();
        if pending != model {
            return Err(Disagreement::Pending {
                engine: pending,
                model,
            });
        }
        Ok(())
    }
}

/// An [`Inventory`] and the [`ReferenceModel`] run side by side on one
/// manual clock.
///
/// ```
/// use omnistock::model::Lockstep;
/// use omnistock::{Command, Sku, StoreId, DEFAULT_RETENTION_MS, DEFAULT_TTL_MS};
///
/// let mut run = Lockstep::new(DEFAULT_TTL_MS, DEFAULT_RETENTION_MS, |b| b.expected_items(16));
/// run.apply(&Command::Restock { sku: Sku(1), store: StoreId(1), qty: 3 })?;
/// run.advance(1_000)?;
/// run.check_state()?;
/// # Ok::<(), omnistock::model::Disagreement>(())
/// ```
#[derive(Debug)]
pub struct Lockstep {
    clock: Arc<ManualClock>,
    engine: Inventory,
    oracle: Oracle,
}

impl Lockstep {
    /// An engine with this default ttl and retention on a manual clock at
    /// 0, with whatever else `configure` sets on its builder (not another
    /// clock, ttl or retention: the model would not follow), and the model
    /// with the same limits.
    pub fn new(
        default_ttl_ms: u64,
        retention_ms: u64,
        configure: impl FnOnce(InventoryBuilder) -> InventoryBuilder,
    ) -> Lockstep {
        let clock = Arc::new(ManualClock::new());
        let builder = Inventory::builder()
            .clock(clock.clone())
            .default_ttl_ms(default_ttl_ms)
            .retention_ms(retention_ms);
        Lockstep {
            clock,
            engine: configure(builder).build(),
            oracle: Oracle::new(ReferenceModel::with_limits(default_ttl_ms, retention_ms)),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Inventory {
        &self.engine
    }

    /// The model.
    pub fn model(&self) -> &ReferenceModel {
        self.oracle.model()
    }

    /// The engine's clock.
    pub fn clock(&self) -> &Arc<ManualClock> {
        &self.clock
    }

    /// Runs `command` on both through [`Inventory::apply`]; the engine's
    /// answer, or how the two differ.
    pub fn apply(&mut self, command: &Command) -> Result<Answer, Disagreement> {
        self.apply_with(command, Inventory::apply)
    }

    /// [`apply`](Self::apply), the engine answering through `engine` (its
    /// typed methods, say).
    pub fn apply_with(
        &mut self,
        command: &Command,
        engine: impl FnOnce(&Inventory, &Command) -> Answer,
    ) -> Result<Answer, Disagreement> {
        let answer = engine(&self.engine, command);
        self.oracle.answer(command, &answer).map(|_model| answer)
    }

    /// Moves both clocks by `ms`; the new time, or how they differ.
    pub fn advance(&mut self, ms: u64) -> Result<u64, Disagreement> {
        let now = self.clock.advance(ms);
        self.oracle.advance(ms, now)?;
        Ok(now)
    }

    /// The engine's items, sorted by item.
    pub fn engine_items(&self) -> Vec<(ItemKey, Level)> {
        let mut items = self.engine.items();
        items.sort_unstable_by_key(|(key, _)| *key);
        items
    }

    /// Compares the whole state (see [`Oracle::state`]).
    pub fn check_state(&self) -> Result<(), Disagreement> {
        self.oracle.state(
            &self.engine_items(),
            self.engine.reservation_count(),
            self.engine.pending_count(),
        )
    }
}
