//! PostgreSQL: a row per item, `UPDATE items SET reserved = reserved + $n
//! WHERE id = $item AND on_hand - reserved [- safety] >= $n`, reservations in
//! a table, each operation one PL/pgSQL function called through a prepared
//! statement (one round trip). A throwaway cluster (initdb + postgres) on a
//! free 127.0.0.1 port, run as an ordinary user (`postgres` when we are
//! root: PostgreSQL refuses to run as root), 64 connections, trust auth on
//! loopback. Without `--durability`, durability is off (`fsync`,
//! `synchronous_commit`, `full_page_writes`), as Redis runs without
//! persistence: both peers get their fastest in-memory-like setting. With
//! `--durability` it matches omnistock's journal, on the same disk (the
//! system temp dir): `sync`, every commit's WAL flushed before it answers
//! (PostgreSQL's defaults: `fsync`, `synchronous_commit` and
//! `full_page_writes` on; concurrent commits share a flush); `batch`,
//! asynchronous commit with the WAL writer flushing every 5 ms
//! (`synchronous_commit=off`, `wal_writer_delay=5ms`); `none`, `fsync` off. Clients are the `postgres` crate's
//! synchronous ones; each connection lives on a thread of its own that runs
//! the calls its shopper hands it, so one load thread keeps a call in flight
//! on each of its connections, as with redis.
//!
//! Multi-line carts lock their items in item order (the client sorts lines),
//! the reaper locks due reservations with `SKIP LOCKED` and then their items
//! in item order, so the engine does not deadlock; a deadlock or
//! serialization failure would be retried anyway.

use super::server::{
    euid, find_program, free_port, run_to_end, scratch_dir, user_ids, Server, Unavailable,
};
use super::{sorted_lines, Answer, Client, Engine, Op, Stock};
use crate::workload::ItemSpec;
use omnistock::durability::Durability;
use omnistock::{Channel, Clock, ManualClock};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{NoTls, Row, Statement};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const SCHEMA: &str = r"
CREATE TABLE items (
  id int PRIMARY KEY,
  on_hand int NOT NULL,
  reserved int NOT NULL DEFAULT 0,
  safety int NOT NULL DEFAULT 0,
  CHECK (reserved >= 0 AND reserved <= on_hand)
) WITH (fillfactor = 50);

CREATE TABLE reservations (
  id bigint PRIMARY KEY,
  channel smallint NOT NULL,
  state smallint NOT NULL,          -- 0 pending, 1 committed, 2 released, 3 expired
  expires_at bigint NOT NULL,
  done_at bigint,
  items int[] NOT NULL,             -- sorted by item
  qtys int[] NOT NULL
);
CREATE INDEX reservations_due ON reservations (expires_at) WHERE state = 0;
CREATE INDEX reservations_done ON reservations (done_at) WHERE state <> 0;

-- Returns (or, committing, takes out of stock) a reservation's units.
CREATE FUNCTION os_return(p_items int[], p_qtys int[], p_commit boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1 .. array_length(p_items, 1) LOOP
    IF p_commit THEN
      UPDATE items SET on_hand = on_hand - p_qtys[i], reserved = reserved - p_qtys[i]
        WHERE id = p_items[i];
    ELSE
      UPDATE items SET reserved = reserved - p_qtys[i] WHERE id = p_items[i];
    END IF;
  END LOOP;
END $$;

-- 0 held, 1 replayed, 2 insufficient, 3 unknown item, 5 id conflict,
-- 6 already released, 7 expired.
CREATE FUNCTION os_reserve(p_id bigint, p_channel int, p_items int[], p_qtys int[],
                           p_now bigint, p_ttl bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE r reservations%ROWTYPE;
BEGIN
  SELECT * INTO r FROM reservations WHERE id = p_id FOR UPDATE;
  IF FOUND THEN
    IF r.state = 0 AND r.expires_at <= p_now THEN
      UPDATE reservations SET state = 3, done_at = p_now WHERE id = p_id;
      PERFORM os_return(r.items, r.qtys, false);
      r.state := 3;
    END IF;
    IF r.channel <> p_channel OR r.items <> p_items OR r.qtys <> p_qtys THEN RETURN 5; END IF;
    RETURN CASE r.state WHEN 0 THEN 1 WHEN 1 THEN 1 WHEN 2 THEN 6 ELSE 7 END;
  END IF;
  FOR i IN 1 .. array_length(p_items, 1) LOOP
    UPDATE items SET reserved = reserved + p_qtys[i]
      WHERE id = p_items[i]
        AND on_hand - reserved - CASE WHEN p_channel = 0 THEN safety ELSE 0 END >= p_qtys[i];
    IF NOT FOUND THEN
      FOR j IN 1 .. i - 1 LOOP
        UPDATE items SET reserved = reserved - p_qtys[j] WHERE id = p_items[j];
      END LOOP;
      IF NOT EXISTS (SELECT 1 FROM items WHERE id = p_items[i]) THEN RETURN 3; END IF;
      RETURN 2;
    END IF;
  END LOOP;
  INSERT INTO reservations (id, channel, state, expires_at, items, qtys)
    VALUES (p_id, p_channel, 0, p_now + p_ttl, p_items, p_qtys);
  RETURN 0;
END $$;

-- p_to: 1 commit, 2 release. 0 done, 1 replayed, 4 unknown, 6 already
-- released, 7 expired now, 8 already committed, 9 expired before.
CREATE FUNCTION os_finish(p_id bigint, p_to int, p_now bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE r reservations%ROWTYPE;
BEGIN
  SELECT * INTO r FROM reservations WHERE id = p_id FOR UPDATE;
  IF NOT FOUND THEN RETURN 4; END IF;
  IF r.state = 0 THEN
    IF r.expires_at <= p_now THEN
      UPDATE reservations SET state = 3, done_at = p_now WHERE id = p_id;
      PERFORM os_return(r.items, r.qtys, false);
      RETURN 7;
    END IF;
    UPDATE reservations SET state = p_to, done_at = p_now WHERE id = p_id;
    PERFORM os_return(r.items, r.qtys, p_to = 1);
    RETURN 0;
  END IF;
  IF r.state = 3 THEN RETURN 9; END IF;
  IF r.state = p_to THEN RETURN 1; END IF;
  IF r.state = 1 THEN RETURN 8; END IF;
  RETURN 6;
END $$;

-- 0 sold, 2 insufficient, 3 unknown item.
CREATE FUNCTION os_sell(p_item int, p_qty int, p_channel int) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE items SET on_hand = on_hand - p_qty
    WHERE id = p_item
      AND on_hand - reserved - CASE WHEN p_channel = 0 THEN safety ELSE 0 END >= p_qty;
  IF FOUND THEN RETURN 0; END IF;
  IF EXISTS (SELECT 1 FROM items WHERE id = p_item) THEN RETURN 2; END IF;
  RETURN 3;
END $$;

-- Expires up to p_batch due reservations (skipping those a shopper holds),
-- then forgets up to p_batch terminal ones past retention: {expired, forgotten}.
CREATE FUNCTION os_expire(p_now bigint, p_retention bigint, p_batch int) RETURNS int[]
LANGUAGE plpgsql AS $$
DECLARE ids bigint[]; rec record; n int := 0; d int := 0;
BEGIN
  SELECT array_agg(id) INTO ids FROM (
    SELECT id FROM reservations WHERE state = 0 AND expires_at <= p_now
      ORDER BY expires_at LIMIT p_batch FOR UPDATE SKIP LOCKED) due;
  IF ids IS NOT NULL THEN
    n := array_length(ids, 1);
    FOR rec IN
      SELECT u.item, sum(u.qty)::int AS qty
        FROM reservations r, unnest(r.items, r.qtys) AS u(item, qty)
        WHERE r.id = ANY(ids) GROUP BY u.item ORDER BY u.item
    LOOP
      UPDATE items SET reserved = reserved - rec.qty WHERE id = rec.item;
    END LOOP;
    UPDATE reservations SET state = 3, done_at = p_now WHERE id = ANY(ids);
  END IF;
  DELETE FROM reservations WHERE id IN (
    SELECT id FROM reservations WHERE state <> 0 AND done_at <= p_now - p_retention
      LIMIT p_batch FOR UPDATE SKIP LOCKED);
  GET DIAGNOSTICS d = ROW_COUNT;
  RETURN ARRAY[n, d];
END $$;
";

/// The statements every connection prepares.
const RESERVE: &str =
    "SELECT os_reserve($1::bigint, $2::int, $3::int[], $4::int[], $5::bigint, $6::bigint)";
const FINISH: &str = "SELECT os_finish($1::bigint, $2::int, $3::bigint)";
const SELL: &str = "SELECT os_sell($1::int, $2::int, $3::int)";
const RESTOCK: &str = "UPDATE items SET on_hand = on_hand + $2::int WHERE id = $1::int";
const LEVEL: &str = "SELECT on_hand, reserved, safety FROM items WHERE id = $1::int";
const EXPIRE: &str = "SELECT os_expire($1::bigint, $2::bigint, $3::int)";
const STOCK: &str =
    "INSERT INTO items (id, on_hand, safety) SELECT * FROM unnest($1::int[], $2::int[], $3::int[])";

const EXPIRE_BATCH: i32 = 1000;

fn connect(port: u16) -> Result<postgres::Client, String> {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user("postgres")
        .dbname("postgres")
        .application_name("flash_sale")
        .connect(NoTls)
        .map_err(|e| format!("postgres: {e}"))
}

/// A deadlock victim or serialization failure: its transaction rolled
/// back, run it again.
fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED | &SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

fn level_of(row: &Row) -> Result<Stock, postgres::Error> {
    let count = |k: usize| -> Result<u64, postgres::Error> {
        Ok(u64::try_from(row.try_get::<_, i32>(k)?).unwrap_or(u64::MAX))
    };
    Ok(Stock {
        on_hand: count(0)?,
        reserved: count(1)?,
        safety: count(2)?,
    })
}

fn channel_code(channel: Channel) -> i32 {
    match channel {
        Channel::Online => 0,
        Channel::InStore => 1,
    }
}

/// One call, owned, handed to a connection's thread. Items and quantities
/// as PostgreSQL `int`.
#[derive(Debug)]
enum Call {
    Reserve {
        id: i64,
        channel: i32,
        items: Vec<i32>,
        qtys: Vec<i32>,
        now: i64,
        ttl: i64,
    },
    Finish {
        id: i64,
        to: i32,
        now: i64,
    },
    Sell {
        item: i32,
        qty: i32,
        channel: i32,
    },
    Restock {
        item: i32,
        qty: i32,
    },
    Level {
        item: i32,
    },
    Expire {
        now: i64,
        retention: i64,
    },
}

/// A connection and its prepared statements, owned by its thread.
struct Conn {
    client: postgres::Client,
    reserve: Statement,
    finish: Statement,
    sell: Statement,
    restock: Statement,
    level: Statement,
    expire: Statement,
}

impl Conn {
    fn open(port: u16) -> Result<Conn, String> {
        let mut client = connect(port)?;
        let mut prepare = |sql: &str| {
            client
                .prepare(sql)
                .map_err(|e| format!("postgres prepare `{sql}`: {e}"))
        };
        Ok(Conn {
            reserve: prepare(RESERVE)?,
            finish: prepare(FINISH)?,
            sell: prepare(SELL)?,
            restock: prepare(RESTOCK)?,
            level: prepare(LEVEL)?,
            expire: prepare(EXPIRE)?,
            client,
        })
    }

    /// Runs a statement to its one row (or none), retrying deadlocks and
    /// serialization failures.
    fn run(
        &mut self,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let mut tries = 0;
        loop {
            match self.client.query_opt(statement, params) {
                Err(e) if retryable(&e) && tries < 100 => tries += 1,
                result => return result,
            }
        }
    }

    /// The first column of the one row, as an `int` code.
    fn code(
        &mut self,
        statement: &Statement,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<i32>, postgres::Error> {
        self.run(statement, params)?
            .map(|row| row.try_get(0))
            .transpose()
    }

    fn answer(&mut self, call: Call) -> Answer {
        let statement = match &call {
            Call::Reserve { .. } => self.reserve.clone(),
            Call::Finish { .. } => self.finish.clone(),
            Call::Sell { .. } => self.sell.clone(),
            Call::Restock { .. } => self.restock.clone(),
            Call::Level { .. } => self.level.clone(),
            Call::Expire { .. } => self.expire.clone(),
        };
        let result = match &call {
            Call::Reserve {
                id,
                channel,
                items,
                qtys,
                now,
                ttl,
            } => self
                .code(&statement, &[id, channel, items, qtys, now, ttl])
                .map(|code| match code {
                    Some(0) => Answer::Ok,
                    Some(2) => Answer::Insufficient,
                    other => Answer::Unexpected(format!("postgres reserve answered {other:?}")),
                }),
            Call::Finish { id, to, now } => {
                self.code(&statement, &[id, to, now])
                    .map(|code| match code {
                        Some(0) => Answer::Ok,
                        Some(7 | 9) => Answer::Expired,
                        other => Answer::Unexpected(format!(
                            "postgres commit/release answered {other:?}"
                        )),
                    })
            }
            Call::Sell { item, qty, channel } => {
                self.code(&statement, &[item, qty, channel])
                    .map(|code| match code {
                        Some(0) => Answer::Ok,
                        Some(2) => Answer::Insufficient,
                        other => Answer::Unexpected(format!("postgres sell answered {other:?}")),
                    })
            }
            Call::Restock { item, qty } => self.run(&statement, &[item, qty]).map(|_| Answer::Ok),
            Call::Level { item } => self.run(&statement, &[item]).and_then(|row| match row {
                Some(row) => level_of(&row).map(Answer::Level),
                None => Ok(Answer::Unexpected(format!("postgres level {item}: no row"))),
            }),
            Call::Expire { now, retention } => {
                let mut expired = 0u64;
                loop {
                    let counts = self
                        .run(&statement, &[now, retention, &EXPIRE_BATCH])
                        .and_then(|row| row.map(|row| row.try_get::<_, Vec<i32>>(0)).transpose());
                    match counts {
                        Ok(Some(counts)) => match counts[..] {
                            [n, d] => {
                                expired += u64::try_from(n).unwrap_or(0);
                                if n < EXPIRE_BATCH && d < EXPIRE_BATCH {
                                    break Ok(Answer::Count(expired));
                                }
                            }
                            _ => {
                                break Ok(Answer::Unexpected(format!(
                                    "postgres expire answered {counts:?}"
                                )))
                            }
                        },
                        Ok(None) => break Ok(Answer::Unexpected("expire answered nothing".into())),
                        Err(e) => break Err(e),
                    }
                }
            }
        };
        result.unwrap_or_else(|e| Answer::Unexpected(format!("postgres {call:?}: {e}")))
    }
}

pub struct Postgres {
    server: Server,
    clock: Arc<ManualClock>,
    retention_ms: u64,
    connections: usize,
}

impl Postgres {
    /// Creates and starts a throwaway cluster with the schema.
    pub fn start(
        clock: Arc<ManualClock>,
        retention_ms: u64,
        connections: usize,
        limit: Duration,
        durability: Option<Durability>,
    ) -> Result<Postgres, Unavailable> {
        let dirs = ["/usr/lib/postgresql/*/bin"];
        let (Some(initdb), Some(postgres)) = (
            find_program("initdb", &dirs),
            find_program("postgres", &dirs),
        ) else {
            return Err(Unavailable::Missing(
                "PostgreSQL's initdb and postgres are not installed; install them with `apt-get install -y postgresql` (Debian/Ubuntu) to run the postgres engine".into(),
            ));
        };
        // PostgreSQL refuses to run as root: use the `postgres` user then.
        let user = if euid() == Some(0) {
            match user_ids("postgres") {
                Some(ids) => Some(ids),
                None => return Err(Unavailable::Missing(
                    "running as root and there is no `postgres` user to run PostgreSQL as; `apt-get install -y postgresql` creates it (or run as an ordinary user)".into(),
                )),
            }
        } else {
            None
        };
        let port = free_port()?;
        eprintln!("flash_sale: starting a throwaway postgres on 127.0.0.1:{port}");
        let dir = scratch_dir("postgres", user)?;
        let data = dir.join("data");
        let initdb_args: Vec<String> = vec![
            "-D".into(),
            data.to_string_lossy().into_owned(),
            "-U".into(),
            "postgres".into(),
            "--auth=trust".into(),
            "-E".into(),
            "UTF8".into(),
            "--no-sync".into(),
        ];
        if let Err(e) = run_to_end(&initdb, &initdb_args, user, &dir.join("initdb.log")) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(Unavailable::Failed(e));
        }
        let mut args: Vec<String> = vec![
            "-D".into(),
            data.to_string_lossy().into_owned(),
            "-p".into(),
            port.to_string(),
        ];
        let durable: &[&str] = match durability {
            Some(Durability::Sync) => &["fsync=on", "synchronous_commit=on", "full_page_writes=on"],
            Some(Durability::Batch { .. }) => &[
                "fsync=on",
                "synchronous_commit=off",
                "wal_writer_delay=5ms",
                "full_page_writes=on",
            ],
            Some(Durability::None) | None => &[
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ],
        };
        let settings = [
            "listen_addresses=127.0.0.1".to_string(),
            format!("unix_socket_directories={}", dir.to_string_lossy()),
            format!("max_connections={}", connections + 20),
            "shared_buffers=512MB".into(),
            "max_wal_size=4GB".into(),
            "log_min_messages=warning".into(),
        ];
        let settings = settings
            .into_iter()
            .chain(durable.iter().map(|s| s.to_string()));
        for setting in settings {
            args.push("-c".into());
            args.push(setting);
        }
        let mut server = Server::spawn("postgres", &postgres, &args, port, dir, user, limit)?;
        let mut conn = server.wait_ready(Duration::from_secs(60), || connect(port))?;
        conn.batch_execute(SCHEMA)
            .map_err(|e| format!("postgres schema: {e}"))?;
        Ok(Postgres {
            server,
            clock,
            retention_ms,
            connections,
        })
    }

    /// A fresh connection with its own thread.
    fn conn(&self) -> Result<(SyncSender<Call>, Receiver<Answer>), String> {
        let mut conn = Conn::open(self.server.port)?;
        let (calls, calls_in) = sync_channel::<Call>(1);
        let (answers_out, answers) = sync_channel(1);
        thread::Builder::new()
            .name("postgres-conn".into())
            .spawn(move || {
                // Ends when the shopper drops its client.
                for call in calls_in {
                    if answers_out.send(conn.answer(call)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("postgres connection thread: {e}"))?;
        Ok((calls, answers))
    }
}

pub struct PostgresClient {
    calls: SyncSender<Call>,
    answers: Receiver<Answer>,
    clock: Arc<ManualClock>,
    retention_ms: u64,
    sorted: Vec<(u32, u32)>,
    /// An answer known without the server (a failed hand-over).
    answer: Option<Answer>,
}

/// A count or item number as PostgreSQL `int`.
fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Client for PostgresClient {
    fn send(&mut self, op: Op<'_>) {
        let now = bigint(self.clock.now_ms());
        let call = match op {
            Op::Reserve {
                id,
                channel,
                lines,
                ttl_ms,
            } => {
                sorted_lines(lines, &mut self.sorted);
                Call::Reserve {
                    id: bigint(id),
                    channel: channel_code(channel),
                    items: self.sorted.iter().map(|&(item, _)| int(item)).collect(),
                    qtys: self.sorted.iter().map(|&(_, qty)| int(qty)).collect(),
                    now,
                    ttl: bigint(ttl_ms),
                }
            }
            Op::Commit { id, .. } => Call::Finish {
                id: bigint(id),
                to: 1,
                now,
            },
            Op::Release { id, .. } => Call::Finish {
                id: bigint(id),
                to: 2,
                now,
            },
            Op::Sell { item, qty, channel } => Call::Sell {
                item: int(item),
                qty: int(qty),
                channel: channel_code(channel),
            },
            Op::Restock { item, qty } => Call::Restock {
                item: int(item),
                qty: int(qty),
            },
            Op::Level { item } => Call::Level { item: int(item) },
            Op::Expire => Call::Expire {
                now,
                retention: bigint(self.retention_ms),
            },
        };
        self.answer = None;
        if self.calls.send(call).is_err() {
            self.answer = Some(Answer::Unexpected(
                "postgres: the connection's thread ended".into(),
            ));
        }
    }

    fn recv(&mut self) -> Answer {
        if let Some(answer) = self.answer.take() {
            return answer;
        }
        self.answers.recv().unwrap_or_else(|_| {
            Answer::Unexpected("postgres: the connection's thread ended".into())
        })
    }
}

impl Engine for Postgres {
    type Client = PostgresClient;
    const NAME: &'static str = "postgres";

    fn slots(&self, threads: usize, thread: usize) -> usize {
        super::share(self.connections, threads, thread)
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn client(&self) -> Result<PostgresClient, String> {
        let (calls, answers) = self.conn()?;
        Ok(PostgresClient {
            calls,
            answers,
            clock: Arc::clone(&self.clock),
            retention_ms: self.retention_ms,
            sorted: Vec::with_capacity(4),
            answer: None,
        })
    }

    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String> {
        let mut conn = connect(self.server.port)?;
        let stock = conn
            .prepare(STOCK)
            .map_err(|e| format!("postgres prepare: {e}"))?;
        for (chunk_no, chunk) in specs.chunks(100_000).enumerate() {
            let base = chunk_no * 100_000;
            let ids: Vec<i32> = (base..base + chunk.len()).map(|i| int(i as u32)).collect();
            let on_hand: Vec<i32> = chunk.iter().map(|spec| int(spec.stock)).collect();
            let safety: Vec<i32> = chunk.iter().map(|spec| int(spec.safety)).collect();
            conn.execute(&stock, &[&ids, &on_hand, &safety])
                .map_err(|e| format!("postgres stock: {e}"))?;
        }
        conn.batch_execute("VACUUM ANALYZE items")
            .map_err(|e| format!("postgres: {e}"))?;
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        let mut conn = connect(self.server.port)?;
        let rows = conn
            .query(
                "SELECT on_hand, reserved, safety FROM items WHERE id < $1::int ORDER BY id",
                &[&int(n)],
            )
            .map_err(|e| format!("postgres levels: {e}"))?;
        if rows.len() != n as usize {
            return Err(format!("postgres has {} of {n} items", rows.len()));
        }
        rows.iter()
            .map(|row| level_of(row).map_err(|e| format!("postgres levels: {e}")))
            .collect()
    }

    fn remembered(&self) -> Result<u64, String> {
        let mut conn = connect(self.server.port)?;
        let count: i64 = conn
            .query_one("SELECT count(*) FROM reservations", &[])
            .and_then(|row| row.try_get(0))
            .map_err(|e| format!("postgres count: {e}"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
