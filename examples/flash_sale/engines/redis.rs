//! Redis, the usual flash-sale answer: every operation is one Lua script
//! (EVALSHA), atomic on the server, on a throwaway `redis-server` started on
//! a free 127.0.0.1 port without persistence (`--save "" --appendonly no`;
//! with `--durability`, an append-only file on the same disk as omnistock's
//! journal, `appendfsync` `always` for `sync`, `everysec` for `batch`,
//! Redis's shortest interval, and `no` for `none`),
//! driven over 64 connections through the `redis` crate's synchronous
//! connections (a command packed and sent, its answer read later, so one
//! thread keeps a call in flight on each of its connections).
//!
//! Keys: item `i` is the hash `i:<i>` with fields `h` (on hand), `r`
//! (reserved), `s` (safety stock). Reservation `id` is the hash `r:<id>` with
//! `st` (0 pending, 1 committed, 2 released, 3 expired), `c` (channel), `e`
//! (deadline, ms) and `l` (lines `item:qty,...` sorted by item, which is
//! also the idempotency signature). The sorted set `pending` holds pending
//! ids by deadline and `done` terminal ids by the time they ended (for
//! retention).

use super::server::{find_program, free_port, scratch_dir, Server, Unavailable};
use super::{sorted_lines, Answer, Client, Engine, Op, Stock};
use crate::workload::ItemSpec;
use omnistock::durability::Durability;
use omnistock::{Channel, Clock, ManualClock};
use redis::{Cmd, Connection, FromRedisValue, Value};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

/// Shared by every script: move pending reservation `rk` (id `id`) to state
/// `to` at `now`, returning its units or (commit) taking them out of stock.
const FINISH: &str = r"
local function finish(rk, id, to, now)
  local l = redis.call('HGET', rk, 'l')
  for item, q in string.gmatch(l, '(%d+):(%d+)') do
    local ik = 'i:' .. item
    redis.call('HINCRBY', ik, 'r', -tonumber(q))
    if to == '1' then redis.call('HINCRBY', ik, 'h', -tonumber(q)) end
  end
  redis.call('HSET', rk, 'st', to)
  redis.call('ZREM', 'pending', id)
  redis.call('ZADD', 'done', now, id)
end
";

/// KEYS: r:<id>, i:<item>...; ARGV: id, channel (0 online), now, ttl,
/// signature, qty... Answers 0 held, 1 replayed, 2 insufficient, 3 unknown
/// item, 5 id conflict, 6 already released, 7 expired.
const RESERVE: &str = r"
local rk = KEYS[1]
local now = tonumber(ARGV[3])
local st = redis.call('HGET', rk, 'st')
if st then
  if st == '0' and tonumber(redis.call('HGET', rk, 'e')) <= now then
    finish(rk, ARGV[1], '3', now)
    st = '3'
  end
  if redis.call('HGET', rk, 'c') ~= ARGV[2] or redis.call('HGET', rk, 'l') ~= ARGV[5] then
    return 5
  end
  if st == '0' or st == '1' then return 1 end
  if st == '2' then return 6 end
  return 7
end
local online = ARGV[2] == '0'
for i = 2, #KEYS do
  local v = redis.call('HMGET', KEYS[i], 'h', 'r', 's')
  if not v[1] then return 3 end
  local available = tonumber(v[1]) - tonumber(v[2])
  if online then available = available - tonumber(v[3]) end
  if available < tonumber(ARGV[4 + i]) then return 2 end
end
for i = 2, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'r', ARGV[4 + i])
end
local e = now + tonumber(ARGV[4])
redis.call('HSET', rk, 'st', '0', 'c', ARGV[2], 'e', e, 'l', ARGV[5])
redis.call('ZADD', 'pending', e, ARGV[1])
return 0
";

/// KEYS: r:<id>; ARGV: id, now, to (1 commit, 2 release). Answers 0 done,
/// 1 replayed, 4 unknown, 6 already released, 7 expired now, 8 already
/// committed, 9 expired before.
const FINISH_CALL: &str = r"
local rk = KEYS[1]
local now = tonumber(ARGV[2])
local st = redis.call('HGET', rk, 'st')
if not st then return 4 end
if st == '0' then
  if tonumber(redis.call('HGET', rk, 'e')) <= now then
    finish(rk, ARGV[1], '3', now)
    return 7
  end
  finish(rk, ARGV[1], ARGV[3], now)
  return 0
end
if st == '3' then return 9 end
if st == ARGV[3] then return 1 end
if st == '1' then return 8 end
return 6
";

/// ARGV: now, retention, batch. Expires up to `batch` due reservations, then
/// forgets up to `batch` terminal ones past retention; answers both counts.
const EXPIRE: &str = r"
local now = tonumber(ARGV[1])
local batch = tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYSCORE', 'pending', '-inf', now, 'LIMIT', 0, batch)
for _, id in ipairs(ids) do finish('r:' .. id, id, '3', now) end
local old = redis.call('ZRANGEBYSCORE', 'done', '-inf', now - tonumber(ARGV[2]), 'LIMIT', 0, batch)
for _, id in ipairs(old) do redis.call('DEL', 'r:' .. id) end
if #old > 0 then redis.call('ZREM', 'done', unpack(old)) end
return {#ids, #old}
";

/// KEYS: i:<item>; ARGV: qty, channel. Answers 0 sold, 2 insufficient, 3
/// unknown item.
const SELL: &str = r"
local v = redis.call('HMGET', KEYS[1], 'h', 'r', 's')
if not v[1] then return 3 end
local available = tonumber(v[1]) - tonumber(v[2])
if ARGV[2] == '0' then available = available - tonumber(v[3]) end
if available < tonumber(ARGV[1]) then return 2 end
redis.call('HINCRBY', KEYS[1], 'h', -tonumber(ARGV[1]))
return 0
";

const EXPIRE_BATCH: u64 = 1000;
const PIPELINE: usize = 10_000;

fn connect(port: u16) -> Result<Connection, String> {
    redis::Client::open(("127.0.0.1", port))
        .and_then(|client| client.get_connection())
        .map_err(|e| format!("redis: {e}"))
}

struct Scripts {
    reserve: String,
    finish: String,
    expire: String,
    sell: String,
}

pub struct Redis {
    server: Server,
    scripts: Arc<Scripts>,
    clock: Arc<ManualClock>,
    retention_ms: u64,
    connections: usize,
}

impl Redis {
    /// Starts a throwaway redis-server and loads the scripts.
    pub fn start(
        clock: Arc<ManualClock>,
        retention_ms: u64,
        connections: usize,
        limit: Duration,
        durability: Option<Durability>,
    ) -> Result<Redis, Unavailable> {
        let Some(program) = find_program("redis-server", &[]) else {
            return Err(Unavailable::Missing(
                "redis-server is not installed; install it with `apt-get install -y redis-server` (Debian/Ubuntu) to run the redis engine".into(),
            ));
        };
        let port = free_port()?;
        eprintln!("flash_sale: starting a throwaway redis-server on 127.0.0.1:{port}");
        let dir = scratch_dir("redis", None)?;
        let args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "yes",
            "--save",
            "",
            "--appendonly",
            if durability.is_some() { "yes" } else { "no" },
            "--appendfsync",
            match durability {
                Some(Durability::Sync) => "always",
                Some(Durability::Batch { .. }) => "everysec",
                Some(Durability::None) | None => "no",
            },
            "--daemonize",
            "no",
            "--maxclients",
            "1000",
            "--dir",
            &dir.to_string_lossy(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut server = Server::spawn("redis-server", &program, &args, port, dir, None, limit)?;
        let mut conn = server.wait_ready(Duration::from_secs(30), || {
            let mut conn = connect(port)?;
            redis::cmd("PING")
                .query::<String>(&mut conn)
                .map_err(|e| e.to_string())?;
            Ok(conn)
        })?;
        let mut load = |body: &str| -> Result<String, String> {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(format!("{FINISH}{body}"))
                .query(&mut conn)
                .map_err(|e| format!("SCRIPT LOAD: {e}"))
        };
        let scripts = Scripts {
            reserve: load(RESERVE)?,
            finish: load(FINISH_CALL)?,
            expire: load(EXPIRE)?,
            sell: load(SELL)?,
        };
        Ok(Redis {
            server,
            scripts: Arc::new(scripts),
            clock,
            retention_ms,
            connections,
        })
    }
}

/// What a connection has in flight, to read its answer right.
#[derive(Clone, Copy, Debug)]
enum Sent {
    Reserve,
    Finish,
    Sell,
    Restock,
    Level,
    Expire(u64),
    Nothing,
}

pub struct RedisClient {
    conn: Connection,
    scripts: Arc<Scripts>,
    clock: Arc<ManualClock>,
    retention_ms: u64,
    sorted: Vec<(u32, u32)>,
    text: String,
    sent: Sent,
    /// An error while sending, answered by the next `recv`.
    failed: Option<String>,
}

fn channel_arg(channel: Channel) -> u8 {
    match channel {
        Channel::Online => 0,
        Channel::InStore => 1,
    }
}

fn evalsha(sha: &str, keys: usize) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(sha).arg(keys);
    cmd
}

fn level_cmd(item: u32) -> Cmd {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(format!("i:{item}")).arg("h").arg("r").arg("s");
    cmd
}

/// An HMGET answer: an item's counters.
fn level(value: &Value) -> Result<Stock, String> {
    let (on_hand, reserved, safety) = <(u64, u64, u64)>::from_redis_value(value)
        .map_err(|e| format!("redis level answered {value:?}: {e}"))?;
    Ok(Stock {
        on_hand,
        reserved,
        safety,
    })
}

impl RedisClient {
    fn reserve_cmd(&mut self, id: u64, channel: Channel, lines: &[(u32, u32)], ttl: u64) -> Cmd {
        sorted_lines(lines, &mut self.sorted);
        self.text.clear();
        for (k, &(item, qty)) in self.sorted.iter().enumerate() {
            if k > 0 {
                self.text.push(',');
            }
            let _ = write!(self.text, "{item}:{qty}");
        }
        let mut cmd = evalsha(&self.scripts.reserve, 1 + self.sorted.len());
        cmd.arg(format!("r:{id}"));
        for &(item, _) in &self.sorted {
            cmd.arg(format!("i:{item}"));
        }
        cmd.arg(id)
            .arg(channel_arg(channel))
            .arg(self.clock.now_ms())
            .arg(ttl)
            .arg(&self.text);
        for &(_, qty) in &self.sorted {
            cmd.arg(qty);
        }
        cmd
    }

    fn expire_all(&mut self) -> Result<u64, String> {
        let now = self.clock.now_ms();
        let mut expired = 0;
        loop {
            let (n, forgotten): (u64, u64) = evalsha(&self.scripts.expire, 0)
                .arg(now)
                .arg(self.retention_ms)
                .arg(EXPIRE_BATCH)
                .query(&mut self.conn)
                .map_err(|e| e.to_string())?;
            expired += n;
            if n < EXPIRE_BATCH && forgotten < EXPIRE_BATCH {
                return Ok(expired);
            }
        }
    }
}

impl Client for RedisClient {
    fn send(&mut self, op: Op<'_>) {
        let cmd = match op {
            Op::Reserve {
                id,
                channel,
                lines,
                ttl_ms,
            } => {
                self.sent = Sent::Reserve;
                self.reserve_cmd(id, channel, lines, ttl_ms)
            }
            Op::Commit { id, .. } | Op::Release { id, .. } => {
                let to = if matches!(op, Op::Commit { .. }) {
                    1
                } else {
                    2
                };
                self.sent = Sent::Finish;
                let mut cmd = evalsha(&self.scripts.finish, 1);
                cmd.arg(format!("r:{id}"))
                    .arg(id)
                    .arg(self.clock.now_ms())
                    .arg(to);
                cmd
            }
            Op::Sell { item, qty, channel } => {
                self.sent = Sent::Sell;
                let mut cmd = evalsha(&self.scripts.sell, 1);
                cmd.arg(format!("i:{item}"))
                    .arg(qty)
                    .arg(channel_arg(channel));
                cmd
            }
            Op::Restock { item, qty } => {
                self.sent = Sent::Restock;
                let mut cmd = redis::cmd("HINCRBY");
                cmd.arg(format!("i:{item}")).arg("h").arg(qty);
                cmd
            }
            Op::Level { item } => {
                self.sent = Sent::Level;
                level_cmd(item)
            }
            Op::Expire => {
                // A loop of script calls: done here, answered by recv.
                self.sent = match self.expire_all() {
                    Ok(n) => Sent::Expire(n),
                    Err(e) => {
                        self.failed = Some(format!("redis expire: {e}"));
                        Sent::Nothing
                    }
                };
                return;
            }
        };
        if let Err(e) = self.conn.send_packed_command(&cmd.get_packed_command()) {
            self.failed = Some(format!("redis: {e}"));
        }
    }

    fn recv(&mut self) -> Answer {
        let sent = std::mem::replace(&mut self.sent, Sent::Nothing);
        if let Some(e) = self.failed.take() {
            return Answer::Unexpected(e);
        }
        let value = match sent {
            Sent::Expire(n) => return Answer::Count(n),
            Sent::Nothing => return Answer::Unexpected("recv without send".into()),
            _ => match self.conn.recv_response() {
                Ok(value) => value,
                Err(e) => return Answer::Unexpected(format!("redis {sent:?}: {e}")),
            },
        };
        let code = i64::from_redis_value(&value).ok();
        match sent {
            Sent::Reserve | Sent::Sell => match code {
                Some(0) => Answer::Ok,
                Some(2) => Answer::Insufficient,
                _ => Answer::Unexpected(format!("redis {sent:?} answered {value:?}")),
            },
            Sent::Finish => match code {
                Some(0) => Answer::Ok,
                Some(7 | 9) => Answer::Expired,
                _ => Answer::Unexpected(format!("redis commit/release answered {value:?}")),
            },
            Sent::Restock => match value {
                Value::Int(_) => Answer::Ok,
                other => Answer::Unexpected(format!("redis restock answered {other:?}")),
            },
            Sent::Level => match level(&value) {
                Ok(stock) => Answer::Level(stock),
                Err(e) => Answer::Unexpected(e),
            },
            Sent::Expire(_) | Sent::Nothing => unreachable!("answered above"),
        }
    }
}

impl Engine for Redis {
    type Client = RedisClient;
    const NAME: &'static str = "redis";

    fn slots(&self, threads: usize, thread: usize) -> usize {
        super::share(self.connections, threads, thread)
    }

    fn connections(&self) -> usize {
        self.connections
    }

    fn client(&self) -> Result<RedisClient, String> {
        Ok(RedisClient {
            conn: connect(self.server.port)?,
            scripts: Arc::clone(&self.scripts),
            clock: Arc::clone(&self.clock),
            retention_ms: self.retention_ms,
            sorted: Vec::with_capacity(4),
            text: String::with_capacity(64),
            sent: Sent::Nothing,
            failed: None,
        })
    }

    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String> {
        let mut conn = connect(self.server.port)?;
        for (chunk_no, chunk) in specs.chunks(PIPELINE).enumerate() {
            let mut pipe = redis::pipe();
            for (k, spec) in chunk.iter().enumerate() {
                pipe.hset_multiple(
                    format!("i:{}", chunk_no * PIPELINE + k),
                    &[("h", spec.stock), ("r", 0), ("s", spec.safety)],
                )
                .ignore();
            }
            pipe.query::<()>(&mut conn)
                .map_err(|e| format!("redis HSET: {e}"))?;
        }
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        let mut conn = connect(self.server.port)?;
        let mut levels = Vec::with_capacity(n as usize);
        let mut start = 0;
        while start < n {
            let end = n.min(start + PIPELINE as u32);
            let mut pipe = redis::pipe();
            for item in start..end {
                pipe.add_command(level_cmd(item));
            }
            let values: Vec<Value> = pipe.query(&mut conn).map_err(|e| format!("redis: {e}"))?;
            for (item, value) in (start..).zip(&values) {
                levels.push(level(value).map_err(|e| format!("level {item}: {e}"))?);
            }
            start = end;
        }
        Ok(levels)
    }

    fn remembered(&self) -> Result<u64, String> {
        let mut conn = connect(self.server.port)?;
        let mut total = 0;
        for set in ["pending", "done"] {
            total += redis::cmd("ZCARD")
                .arg(set)
                .query::<u64>(&mut conn)
                .map_err(|e| format!("ZCARD: {e}"))?;
        }
        Ok(total)
    }
}
