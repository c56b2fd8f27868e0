//! PostgreSQL: a row per item, `UPDATE items SET reserved = reserved + $n
//! WHERE id = $item AND on_hand - reserved [- safety] >= $n`, reservations in
//! a table, each operation one PL/pgSQL function called through a prepared
//! statement (one round trip). A throwaway cluster (initdb + postgres) on a
//! free 127.0.0.1 port, run as an ordinary user (`postgres` when we are
//! root: PostgreSQL refuses to run as root), 64 connections, trust auth on
//! loopback. Durability is off (`fsync`, `synchronous_commit`,
//! `full_page_writes`), as Redis runs without persistence: both peers get
//! their fastest in-memory-like setting. A minimal client of the v3 wire
//! protocol over `TcpStream` (no dependency).
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
use omnistock::{Channel, Clock, ManualClock};
use std::fmt::Write as _;
use std::io::{self, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::sync::Arc;
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

/// Prepared statements every connection makes, by name.
const STATEMENTS: [(&str, &str); 7] = [
    (
        "reserve",
        "SELECT os_reserve($1::bigint, $2::int, $3::int[], $4::int[], $5::bigint, $6::bigint)",
    ),
    ("finish", "SELECT os_finish($1::bigint, $2::int, $3::bigint)"),
    ("sell", "SELECT os_sell($1::int, $2::int, $3::int)"),
    (
        "restock",
        "UPDATE items SET on_hand = on_hand + $2::int WHERE id = $1::int",
    ),
    (
        "level",
        "SELECT on_hand, reserved, safety FROM items WHERE id = $1::int",
    ),
    ("expire", "SELECT os_expire($1::bigint, $2::bigint, $3::int)"),
    (
        "stock",
        "INSERT INTO items (id, on_hand, safety) SELECT * FROM unnest($1::int[], $2::int[], $3::int[])",
    ),
];

const EXPIRE_BATCH: i64 = 1000;

/// A server error: SQLSTATE and message.
#[derive(Debug)]
struct PgError {
    code: String,
    message: String,
}

type Rows = Vec<Vec<Option<String>>>;

/// One connection speaking the v3 protocol: startup with trust auth, the
/// simple query protocol for setup, and Bind/Execute/Sync on prepared
/// statements for the operations.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    out: Vec<u8>,
}

fn io_error(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Conn {
    fn connect(port: u16) -> Result<Conn, String> {
        let stream =
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut conn = Conn {
            writer: stream.try_clone().map_err(|e| e.to_string())?,
            reader: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::with_capacity(512),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&196_608u32.to_be_bytes());
        for s in [
            "user",
            "postgres",
            "database",
            "postgres",
            "application_name",
            "flash_sale",
        ] {
            body.extend_from_slice(s.as_bytes());
            body.push(0);
        }
        body.push(0);
        conn.out
            .extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        conn.out.extend_from_slice(&body);
        conn.flush().map_err(|e| e.to_string())?;
        loop {
            let (kind, body) = conn.message().map_err(|e| e.to_string())?;
            match kind {
                b'R' if body.get(..4) == Some(&[0, 0, 0, 0]) => {}
                b'R' => return Err("the server asks for a password (trust auth expected)".into()),
                b'E' => return Err(parse_error(&body).message),
                b'Z' => return Ok(conn),
                _ => {}
            }
        }
    }

    fn message(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut header = [0u8; 5];
        self.reader.read_exact(&mut header)?;
        let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if len < 4 {
            return Err(io_error(format!("bad message length {len}")));
        }
        let mut body = vec![0; len - 4];
        self.reader.read_exact(&mut body)?;
        Ok((header[0], body))
    }

    fn put(&mut self, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
        self.out.push(kind);
        let at = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        body(&mut self.out);
        let len = (self.out.len() - at) as u32;
        self.out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.writer.write_all(&self.out);
        self.out.clear();
        result
    }

    /// Reads until ReadyForQuery: the rows, or the first error.
    fn results(&mut self) -> io::Result<Result<Rows, PgError>> {
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let (kind, body) = self.message()?;
            match kind {
                b'D' => rows.push(parse_row(&body)?),
                b'E' => error = error.or(Some(parse_error(&body))),
                b'Z' => return Ok(error.map_or(Ok(rows), Err)),
                _ => {}
            }
        }
    }

    fn simple(&mut self, sql: &str) -> Result<Rows, String> {
        self.put(b'Q', |b| {
            b.extend_from_slice(sql.as_bytes());
            b.push(0);
        });
        self.flush().map_err(|e| e.to_string())?;
        self.results()
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("{} ({})", e.message, e.code))
    }

    fn prepare(&mut self, name: &str, sql: &str) -> Result<(), String> {
        self.put(b'P', |b| {
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(sql.as_bytes());
            b.push(0);
            b.extend_from_slice(&0u16.to_be_bytes());
        });
        self.put(b'S', |_| {});
        self.flush().map_err(|e| e.to_string())?;
        self.results()
            .map_err(|e| e.to_string())?
            .map(|_| ())
            .map_err(|e| format!("prepare {name}: {}", e.message))
    }

    /// Queues Bind + Execute + Sync of a prepared statement, text parameters.
    fn execute(&mut self, name: &str, params: &[&str]) {
        self.put(b'B', |b| {
            b.push(0);
            b.extend_from_slice(name.as_bytes());
            b.push(0);
            b.extend_from_slice(&0u16.to_be_bytes());
            b.extend_from_slice(&(params.len() as u16).to_be_bytes());
            for p in params {
                b.extend_from_slice(&(p.len() as u32).to_be_bytes());
                b.extend_from_slice(p.as_bytes());
            }
            b.extend_from_slice(&0u16.to_be_bytes());
        });
        self.put(b'E', |b| {
            b.push(0);
            b.extend_from_slice(&0u32.to_be_bytes());
        });
        self.put(b'S', |_| {});
    }

    /// Runs a prepared statement to the end, retrying deadlocks and
    /// serialization failures.
    fn run(&mut self, name: &str, params: &[&str]) -> Result<Rows, String> {
        for _ in 0..100 {
            self.execute(name, params);
            self.flush().map_err(|e| e.to_string())?;
            match self.results().map_err(|e| e.to_string())? {
                Ok(rows) => return Ok(rows),
                Err(e) if retryable(&e) => continue,
                Err(e) => return Err(format!("{name}: {} ({})", e.message, e.code)),
            }
        }
        Err(format!("{name}: still deadlocked after 100 tries"))
    }
}

fn retryable(e: &PgError) -> bool {
    e.code == "40P01" || e.code == "40001"
}

fn parse_row(body: &[u8]) -> io::Result<Vec<Option<String>>> {
    let short = || io_error("short DataRow".into());
    let n = u16::from_be_bytes([
        *body.first().ok_or_else(short)?,
        *body.get(1).ok_or_else(short)?,
    ]);
    let mut at = 2;
    let mut row = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len_bytes = body.get(at..at + 4).ok_or_else(short)?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        at += 4;
        if len < 0 {
            row.push(None);
        } else {
            let value = body.get(at..at + len as usize).ok_or_else(short)?;
            row.push(Some(String::from_utf8_lossy(value).into_owned()));
            at += len as usize;
        }
    }
    Ok(row)
}

fn parse_error(body: &[u8]) -> PgError {
    let mut error = PgError {
        code: String::new(),
        message: String::new(),
    };
    for field in body.split(|&b| b == 0) {
        if let Some((&kind, value)) = field.split_first() {
            let value = String::from_utf8_lossy(value).into_owned();
            match kind {
                b'C' => error.code = value,
                b'M' => error.message = value,
                _ => {}
            }
        }
    }
    error
}

fn first_int(rows: &Rows) -> Option<i64> {
    rows.first()?.first()?.as_deref()?.parse().ok()
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
        for setting in [
            "listen_addresses=127.0.0.1".to_string(),
            format!("unix_socket_directories={}", dir.to_string_lossy()),
            format!("max_connections={}", connections + 20),
            "shared_buffers=512MB".into(),
            "fsync=off".into(),
            "synchronous_commit=off".into(),
            "full_page_writes=off".into(),
            "max_wal_size=4GB".into(),
            "log_min_messages=warning".into(),
        ] {
            args.push("-c".into());
            args.push(setting);
        }
        let mut server = Server::spawn("postgres", &postgres, &args, port, dir, user, limit)?;
        let mut conn = server.wait_ready(Duration::from_secs(60), || Conn::connect(port))?;
        conn.simple(SCHEMA)?;
        Ok(Postgres {
            server,
            clock,
            retention_ms,
            connections,
        })
    }

    fn conn(&self) -> Result<Conn, String> {
        let mut conn = Conn::connect(self.server.port).map_err(|e| format!("postgres: {e}"))?;
        for (name, sql) in STATEMENTS {
            conn.prepare(name, sql)?;
        }
        Ok(conn)
    }
}

#[derive(Clone, Copy, Debug)]
enum Sent {
    Reserve,
    Finish,
    Sell,
    Restock,
    Level,
    Nothing,
}

pub struct PostgresClient {
    conn: Conn,
    clock: Arc<ManualClock>,
    retention_ms: u64,
    sorted: Vec<(u32, u32)>,
    params: [String; 6],
    sent: Sent,
    /// The statement in flight and its parameters count, to retry it.
    statement: &'static str,
    answer: Option<Answer>,
}

fn channel_code(channel: Channel) -> &'static str {
    match channel {
        Channel::Online => "0",
        Channel::InStore => "1",
    }
}

impl PostgresClient {
    fn set(&mut self, values: &[&dyn std::fmt::Display]) {
        for (slot, value) in self.params.iter_mut().zip(values) {
            slot.clear();
            let _ = write!(slot, "{value}");
        }
    }

    fn queue(&mut self, statement: &'static str, n: usize) {
        self.statement = statement;
        let params: Vec<&str> = self.params[..n].iter().map(String::as_str).collect();
        self.conn.execute(statement, &params);
    }

    fn param_count(sent: Sent) -> usize {
        match sent {
            Sent::Reserve => 6,
            Sent::Finish | Sent::Sell => 3,
            Sent::Restock => 2,
            Sent::Level => 1,
            Sent::Nothing => 0,
        }
    }
}

impl Client for PostgresClient {
    fn send(&mut self, op: Op<'_>) {
        self.answer = None;
        let now = self.clock.now_ms();
        self.sent = match op {
            Op::Reserve {
                id,
                channel,
                lines,
                ttl_ms,
            } => {
                sorted_lines(lines, &mut self.sorted);
                let mut items = String::from("{");
                let mut qtys = String::from("{");
                for (k, &(item, qty)) in self.sorted.iter().enumerate() {
                    if k > 0 {
                        items.push(',');
                        qtys.push(',');
                    }
                    let _ = write!(items, "{item}");
                    let _ = write!(qtys, "{qty}");
                }
                items.push('}');
                qtys.push('}');
                self.set(&[&id, &channel_code(channel), &items, &qtys, &now, &ttl_ms]);
                self.queue("reserve", 6);
                Sent::Reserve
            }
            Op::Commit { id, .. } => {
                self.set(&[&id, &1, &now]);
                self.queue("finish", 3);
                Sent::Finish
            }
            Op::Release { id, .. } => {
                self.set(&[&id, &2, &now]);
                self.queue("finish", 3);
                Sent::Finish
            }
            Op::Sell { item, qty, channel } => {
                self.set(&[&item, &qty, &channel_code(channel)]);
                self.queue("sell", 3);
                Sent::Sell
            }
            Op::Restock { item, qty } => {
                self.set(&[&item, &qty]);
                self.queue("restock", 2);
                Sent::Restock
            }
            Op::Level { item } => {
                self.set(&[&item]);
                self.queue("level", 1);
                Sent::Level
            }
            Op::Expire => {
                let mut expired = 0;
                let retention = self.retention_ms.to_string();
                let (now, batch) = (now.to_string(), EXPIRE_BATCH.to_string());
                let refs = [now.as_str(), retention.as_str(), batch.as_str()];
                let answer = loop {
                    match self.conn.run("expire", &refs) {
                        Ok(rows) => {
                            let text = rows
                                .first()
                                .and_then(|r| r.first().cloned().flatten())
                                .unwrap_or_default();
                            let counts: Vec<i64> = text
                                .trim_matches(['{', '}'])
                                .split(',')
                                .filter_map(|n| n.parse().ok())
                                .collect();
                            match counts[..] {
                                [n, d] => {
                                    expired += n as u64;
                                    if n < EXPIRE_BATCH && d < EXPIRE_BATCH {
                                        break Answer::Count(expired);
                                    }
                                }
                                _ => break Answer::Unexpected(format!("expire answered {text}")),
                            }
                        }
                        Err(e) => break Answer::Unexpected(format!("postgres {e}")),
                    }
                };
                self.answer = Some(answer);
                return;
            }
        };
        if let Err(e) = self.conn.flush() {
            self.answer = Some(Answer::Unexpected(format!("postgres: {e}")));
        }
    }

    fn recv(&mut self) -> Answer {
        if let Some(answer) = self.answer.take() {
            return answer;
        }
        let sent = std::mem::replace(&mut self.sent, Sent::Nothing);
        let rows = loop {
            match self.conn.results() {
                Err(e) => return Answer::Unexpected(format!("postgres: {e}")),
                Ok(Ok(rows)) => break rows,
                Ok(Err(e)) if retryable(&e) => {
                    // Deadlock victim: its transaction rolled back; run again.
                    self.queue(self.statement, Self::param_count(sent));
                    if let Err(e) = self.conn.flush() {
                        return Answer::Unexpected(format!("postgres: {e}"));
                    }
                }
                Ok(Err(e)) => {
                    return Answer::Unexpected(format!(
                        "postgres {sent:?}: {} ({})",
                        e.message, e.code
                    ))
                }
            }
        };
        match sent {
            Sent::Reserve | Sent::Sell => match first_int(&rows) {
                Some(0) => Answer::Ok,
                Some(2) => Answer::Insufficient,
                other => Answer::Unexpected(format!("postgres {sent:?} answered {other:?}")),
            },
            Sent::Finish => match first_int(&rows) {
                Some(0) => Answer::Ok,
                Some(7 | 9) => Answer::Expired,
                other => Answer::Unexpected(format!("postgres commit/release answered {other:?}")),
            },
            Sent::Restock => Answer::Ok,
            Sent::Level => match rows.first().map(|r| r.as_slice()) {
                Some([Some(h), Some(r), Some(s)]) => match (h.parse(), r.parse(), s.parse()) {
                    (Ok(on_hand), Ok(reserved), Ok(safety)) => Answer::Level(Stock {
                        on_hand,
                        reserved,
                        safety,
                    }),
                    _ => Answer::Unexpected(format!("postgres level answered {rows:?}")),
                },
                _ => Answer::Unexpected(format!("postgres level answered {rows:?}")),
            },
            Sent::Nothing => Answer::Unexpected("recv without send".into()),
        }
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
        Ok(PostgresClient {
            conn: self.conn()?,
            clock: Arc::clone(&self.clock),
            retention_ms: self.retention_ms,
            sorted: Vec::with_capacity(4),
            params: Default::default(),
            sent: Sent::Nothing,
            statement: "",
            answer: None,
        })
    }

    fn stock(&self, specs: &[ItemSpec]) -> Result<(), String> {
        let mut conn = self.conn()?;
        for (chunk_no, chunk) in specs.chunks(100_000).enumerate() {
            let base = chunk_no * 100_000;
            let mut ids = String::from("{");
            let mut stock = String::from("{");
            let mut safety = String::from("{");
            for (k, spec) in chunk.iter().enumerate() {
                if k > 0 {
                    ids.push(',');
                    stock.push(',');
                    safety.push(',');
                }
                let _ = write!(ids, "{}", base + k);
                let _ = write!(stock, "{}", spec.stock);
                let _ = write!(safety, "{}", spec.safety);
            }
            ids.push('}');
            stock.push('}');
            safety.push('}');
            conn.run("stock", &[&ids, &stock, &safety])?;
        }
        conn.simple("VACUUM ANALYZE items")?;
        Ok(())
    }

    fn levels(&self, n: u32) -> Result<Vec<Stock>, String> {
        let mut conn = self.conn()?;
        let rows = conn.simple(&format!(
            "SELECT on_hand, reserved, safety FROM items WHERE id < {n} ORDER BY id"
        ))?;
        if rows.len() != n as usize {
            return Err(format!("postgres has {} of {n} items", rows.len()));
        }
        rows.iter()
            .map(|row| {
                let get = |k: usize| -> Result<u64, String> {
                    row.get(k)
                        .cloned()
                        .flatten()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| format!("bad row {row:?}"))
                };
                Ok(Stock {
                    on_hand: get(0)?,
                    reserved: get(1)?,
                    safety: get(2)?,
                })
            })
            .collect()
    }

    fn remembered(&self) -> Result<u64, String> {
        let mut conn = self.conn()?;
        let rows = conn.simple("SELECT count(*) FROM reservations")?;
        first_int(&rows)
            .map(|n| n as u64)
            .ok_or_else(|| "count answered nothing".into())
    }
}
