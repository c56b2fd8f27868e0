//! Redis, the usual flash-sale answer: every operation is one Lua script
//! (EVALSHA), atomic on the server, on a throwaway `redis-server` started on
//! a free 127.0.0.1 port without persistence (`--save "" --appendonly no`),
//! driven over 64 connections. A minimal RESP client over `TcpStream` (no
//! dependency).
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
use omnistock::{Channel, Clock, ManualClock};
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
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
const PIPELINE: u32 = 10_000;

#[derive(Debug)]
enum Value {
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Status,
    Error(String),
    Array(Vec<Value>),
}

/// One RESP connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
}

impl Conn {
    fn connect(port: u16) -> io::Result<Conn> {
        let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::with_capacity(512),
        })
    }

    fn begin(&mut self, args: usize) {
        let _ = write!(self.out, "*{args}\r\n");
    }

    fn arg(&mut self, bytes: &[u8]) {
        let _ = write!(self.out, "${}\r\n", bytes.len());
        self.out.extend_from_slice(bytes);
        self.out.extend_from_slice(b"\r\n");
    }

    fn arg_fmt(&mut self, value: impl std::fmt::Display) {
        let mut text = String::new();
        let _ = write!(text, "{value}");
        self.arg(text.as_bytes());
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.writer.write_all(&self.out);
        self.out.clear();
        result
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "redis closed the connection",
            ));
        }
        line.truncate(line.trim_end_matches(['\r', '\n']).len());
        Ok(line)
    }

    fn read(&mut self) -> io::Result<Value> {
        let line = self.line()?;
        let bad = || io::Error::new(io::ErrorKind::InvalidData, format!("bad reply `{line}`"));
        let (kind, rest) = line.split_at(1.min(line.len()));
        let number = || rest.parse::<i64>().map_err(|_| bad());
        Ok(match kind {
            "+" => Value::Status,
            "-" => Value::Error(rest.to_string()),
            ":" => Value::Int(number()?),
            "$" => {
                let len = number()?;
                if len < 0 {
                    Value::Bulk(None)
                } else {
                    let mut bytes = vec![0; len as usize + 2];
                    self.reader.read_exact(&mut bytes)?;
                    bytes.truncate(len as usize);
                    Value::Bulk(Some(bytes))
                }
            }
            "*" => {
                let len = number()?;
                let mut items = Vec::with_capacity(len.max(0) as usize);
                for _ in 0..len.max(0) {
                    items.push(self.read()?);
                }
                Value::Array(items)
            }
            _ => return Err(bad()),
        })
    }

    fn command(&mut self, args: &[&[u8]]) -> Result<Value, String> {
        self.begin(args.len());
        for arg in args {
            self.arg(arg);
        }
        self.flush().map_err(|e| e.to_string())?;
        match self.read().map_err(|e| e.to_string())? {
            Value::Error(e) => Err(e),
            value => Ok(value),
        }
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        Value::Bulk(Some(bytes)) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        _ => None,
    }
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
            "no",
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
            let mut conn = Conn::connect(port).map_err(|e| e.to_string())?;
            conn.command(&[b"PING"])?;
            Ok(conn)
        })?;
        let mut load = |body: &str| -> Result<String, String> {
            match conn.command(&[b"SCRIPT", b"LOAD", format!("{FINISH}{body}").as_bytes()])? {
                Value::Bulk(Some(sha)) => Ok(String::from_utf8_lossy(&sha).into_owned()),
                other => Err(format!("SCRIPT LOAD answered {other:?}")),
            }
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

    fn conn(&self) -> Result<Conn, String> {
        Conn::connect(self.server.port).map_err(|e| format!("redis: {e}"))
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
    conn: Conn,
    scripts: Arc<Scripts>,
    clock: Arc<ManualClock>,
    retention_ms: u64,
    sorted: Vec<(u32, u32)>,
    text: String,
    sent: Sent,
    /// An error while sending, answered by the next `recv`.
    failed: Option<String>,
}

impl RedisClient {
    fn evalsha_reserve(&mut self, id: u64, channel: Channel, lines: &[(u32, u32)], ttl: u64) {
        sorted_lines(lines, &mut self.sorted);
        let n = self.sorted.len();
        self.text.clear();
        for (k, &(item, qty)) in self.sorted.iter().enumerate() {
            if k > 0 {
                self.text.push(',');
            }
            let _ = write!(self.text, "{item}:{qty}");
        }
        let c = &mut self.conn;
        c.begin(3 + 1 + n + 5 + n);
        c.arg(b"EVALSHA");
        c.arg(self.scripts.reserve.as_bytes());
        c.arg_fmt(1 + n);
        c.arg_fmt(format_args!("r:{id}"));
        for &(item, _) in &self.sorted {
            c.arg_fmt(format_args!("i:{item}"));
        }
        c.arg_fmt(id);
        c.arg(channel_arg(channel));
        c.arg_fmt(self.clock.now_ms());
        c.arg_fmt(ttl);
        c.arg(self.text.as_bytes());
        for &(_, qty) in &self.sorted {
            c.arg_fmt(qty);
        }
    }

    fn expire_all(&mut self) -> Result<u64, String> {
        let now = self.clock.now_ms().to_string();
        let retention = self.retention_ms.to_string();
        let batch = EXPIRE_BATCH.to_string();
        let mut expired = 0;
        loop {
            let answer = self.conn.command(&[
                b"EVALSHA",
                self.scripts.expire.as_bytes(),
                b"0",
                now.as_bytes(),
                retention.as_bytes(),
                batch.as_bytes(),
            ])?;
            let Value::Array(counts) = answer else {
                return Err(format!("expire answered {answer:?}"));
            };
            let (n, forgotten) = match (counts.first().and_then(int), counts.get(1).and_then(int)) {
                (Some(n), Some(f)) => (n as u64, f as u64),
                _ => return Err(format!("expire answered {counts:?}")),
            };
            expired += n;
            if n < EXPIRE_BATCH && forgotten < EXPIRE_BATCH {
                return Ok(expired);
            }
        }
    }
}

fn channel_arg(channel: Channel) -> &'static [u8] {
    match channel {
        Channel::Online => b"0",
        Channel::InStore => b"1",
    }
}

impl Client for RedisClient {
    fn send(&mut self, op: Op<'_>) {
        self.sent = match op {
            Op::Reserve {
                id,
                channel,
                lines,
                ttl_ms,
            } => {
                self.evalsha_reserve(id, channel, lines, ttl_ms);
                Sent::Reserve
            }
            Op::Commit { id, .. } | Op::Release { id, .. } => {
                let to: &[u8] = if matches!(op, Op::Commit { .. }) {
                    b"1"
                } else {
                    b"2"
                };
                let now = self.clock.now_ms();
                let c = &mut self.conn;
                c.begin(7);
                c.arg(b"EVALSHA");
                c.arg(self.scripts.finish.as_bytes());
                c.arg(b"1");
                c.arg_fmt(format_args!("r:{id}"));
                c.arg_fmt(id);
                c.arg_fmt(now);
                c.arg(to);
                Sent::Finish
            }
            Op::Sell { item, qty, channel } => {
                let c = &mut self.conn;
                c.begin(6);
                c.arg(b"EVALSHA");
                c.arg(self.scripts.sell.as_bytes());
                c.arg(b"1");
                c.arg_fmt(format_args!("i:{item}"));
                c.arg_fmt(qty);
                c.arg(channel_arg(channel));
                Sent::Sell
            }
            Op::Restock { item, qty } => {
                let c = &mut self.conn;
                c.begin(4);
                c.arg(b"HINCRBY");
                c.arg_fmt(format_args!("i:{item}"));
                c.arg(b"h");
                c.arg_fmt(qty);
                Sent::Restock
            }
            Op::Level { item } => {
                let c = &mut self.conn;
                c.begin(5);
                c.arg(b"HMGET");
                c.arg_fmt(format_args!("i:{item}"));
                c.arg(b"h");
                c.arg(b"r");
                c.arg(b"s");
                Sent::Level
            }
            Op::Expire => {
                // A loop of script calls: done here, answered by recv.
                match self.expire_all() {
                    Ok(n) => Sent::Expire(n),
                    Err(e) => {
                        self.failed = Some(format!("redis expire: {e}"));
                        Sent::Nothing
                    }
                }
            }
        };
        if let Err(e) = self.conn.flush() {
            self.failed = Some(format!("redis: {e}"));
        }
    }

    fn recv(&mut self) -> Answer {
        if let Some(e) = self.failed.take() {
            return Answer::Unexpected(e);
        }
        let sent = std::mem::replace(&mut self.sent, Sent::Nothing);
        let value = match sent {
            Sent::Expire(n) => return Answer::Count(n),
            Sent::Nothing => return Answer::Unexpected("recv without send".into()),
            _ => match self.conn.read() {
                Ok(value) => value,
                Err(e) => return Answer::Unexpected(format!("redis: {e}")),
            },
        };
        if let Value::Error(e) = &value {
            return Answer::Unexpected(format!("redis {sent:?}: {e}"));
        }
        match sent {
            Sent::Reserve | Sent::Sell => match int(&value) {
                Some(0) => Answer::Ok,
                Some(2) => Answer::Insufficient,
                _ => Answer::Unexpected(format!("redis {sent:?} answered {value:?}")),
            },
            Sent::Finish => match int(&value) {
                Some(0) => Answer::Ok,
                Some(7 | 9) => Answer::Expired,
                _ => Answer::Unexpected(format!("redis commit/release answered {value:?}")),
            },
            Sent::Restock => match value {
                Value::Int(_) => Answer::Ok,
                other => Answer::Unexpected(format!("redis restock answered {other:?}")),
            },
            Sent::Level => match &value {
                Value::Array(fields) if fields.len() == 3 => {
                    match (int(&fields[0]), int(&fields[1]), int(&fields[2])) {
                        (Some(h), Some(r), Some(s)) => Answer::Level(Stock {
                            on_hand: h as u64,
                            reserved: r as u64,
                            safety: s as u64,
                        }),
                        _ => Answer::Unexpected(format!("redis level answered {value:?}")),
                    }
                }
                _ => Answer::Unexpected(format!("redis level answered {value:?}")),
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
            conn: self.conn()?,
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
        let mut conn = self.conn()?;
        for chunk in (0..specs.len() as u32)
            .collect::<Vec<_>>()
            .chunks(PIPELINE as usize)
        {
            for &i in chunk {
                let spec = specs[i as usize];
                conn.begin(8);
                conn.arg(b"HSET");
                conn.arg_fmt(format_args!("i:{i}"));
                conn.arg(b"h");
                conn.arg_fmt(spec.stock);
                conn.arg(b"r");
                conn.arg(b"0");
                conn.arg(b"s");
                conn.arg_fmt(spec.safety);
            }
            conn.flush().map_err(|e| e.to_string())?;
            for _ in chunk {
                if let Value::Error(e) = conn.read().map_err(|e| e.to_string())? {
                    return Err(format!("redis HSET: {e}"));
                }
            }
        }
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        let mut client = self.client()?;
        let mut levels = Vec::with_capacity(n as usize);
        let mut start = 0;
        while start < n {
            let end = n.min(start + PIPELINE);
            for item in start..end {
                let c = &mut client.conn;
                c.begin(5);
                c.arg(b"HMGET");
                c.arg_fmt(format_args!("i:{item}"));
                c.arg(b"h");
                c.arg(b"r");
                c.arg(b"s");
            }
            client.conn.flush().map_err(|e| e.to_string())?;
            for item in start..end {
                client.sent = Sent::Level;
                match client.recv() {
                    Answer::Level(stock) => levels.push(stock),
                    other => return Err(format!("level {item}: {other:?}")),
                }
            }
            start = end;
        }
        Ok(levels)
    }

    fn remembered(&self) -> Result<u64, String> {
        let mut conn = self.conn()?;
        let mut total = 0;
        for set in [&b"pending"[..], b"done"] {
            match conn.command(&[b"ZCARD", set])? {
                Value::Int(n) => total += n as u64,
                other => return Err(format!("ZCARD answered {other:?}")),
            }
        }
        Ok(total)
    }
}
