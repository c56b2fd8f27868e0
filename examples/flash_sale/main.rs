//! The flash sale: the crate's main job, and the load run that compares it
//! with what an order service would otherwise use.
//!
//! ```text
//! cargo run --release --example flash_sale -- [--workload hot|spread|mixed|zipf|memory]
//!     [--engine omnistock|mutex|dashmap|atomic-limit|redis|postgres|all|a,b,...]
//!     [--threads N] [--duration SECS] [--ops N] [--seed N] [--items N] ...
//! ```
//!
//! Shopper threads fill carts; every cart is a real reservation with its own
//! id that is then committed, abandoned (released) or left to expire. POS
//! terminals sell in store without reservations, a supplier restocks, a
//! reaper drives the shared manual clock and calls expire, and a monitor
//! reads levels throughout. Each engine's run ends with a proof by counting
//! that nothing was oversold (see `driver.rs`) and one JSON line on stdout;
//! a failed check makes the exit status 1. With several engines, a last
//! JSON line gives omnistock's throughput divided by each other engine's.
//!
//! `--workload memory` instead measures the resident memory of items and of
//! pending reservations (see `memory.rs`), and `--campaign QUOTA,LIMIT,
//! CUSTOMERS` runs a flash-sale campaign beside the plain hot run (see
//! `campaign.rs`).

mod campaign;
mod driver;
mod engines;
mod memory;
mod workload;

use driver::{Ids, Report, Settings};
use engines::atomic::AtomicLimit;
use engines::dashmap::DashMapEngine;
use engines::mutex::MutexEngine;
use engines::omnistock::Omnistock;
#[cfg(feature = "peers")]
use engines::postgres::Postgres;
#[cfg(feature = "peers")]
use engines::redis::Redis;
#[cfg(feature = "peers")]
use engines::server::Unavailable;
use omnistock::ManualClock;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use workload::Workload;

const USAGE: &str = "\
usage: flash_sale [options]
  --workload NAME     hot (default: one SKU at one store, sells out, then rejects),
                      spread (uniformly random single-line carts over --items),
                      mixed (spread with 1-4 line carts, both channels, POS sales
                      and restocks interleaved), zipf (spread, Zipf s=0.99
                      popularity), memory (resident bytes per item and per
                      pending reservation)
  --engine LIST       omnistock (default), mutex, dashmap, atomic-limit, redis,
                      postgres, a comma-separated list, or all
  --threads N         shopper (load) threads (default: CPUs, at least 2)
  --duration SECS     stop after this long (default 10; 300 when --ops is given)
  --ops N             stop after N operations in total (carts, and in mixed POS
                      sales and restocks)
  --seed N            random seed (default 42)
  --ids KIND          sequential (each shopper numbers its carts, like order
                      numbers; the default), random (scrambled ids) or shared
                      (one sequence for all shoppers, like a database's)
  --items N           items of spread/mixed/zipf (default 1000000) and of
                      memory (default 10000000)
  --pending N         memory: pending reservations (default 1000000)
  --stock N           hot: initial units of the hot item (default 1000)
  --ttl-ms MS         cart time to live (default 100)
  --retention-ms MS   how long every engine remembers ended carts (default 1000)
  --connections N     redis/postgres connections, spread over the threads
                      (default 64)
  --pos-threads N     background point-of-sale threads (default 1)
  --latency-every N   in-process engines: time one reserve in N (default 16)
  --campaign Q,L,C    instead of a workload: a flash-sale campaign on omnistock
                      (quota Q units, at most L per customer, C customers
                      drawn at random so they come back), beside the plain
                      hot run of the same stock; reports quota use, refusals
                      by reason, the proof that no limit was passed, the
                      sold-out refusal's cost and bytes per customer
  --durability MODE   omnistock journaled: sync (every answer waits for its
                      fsync, shared by concurrent shoppers), batch (fsync every
                      5 ms) or none (written, not fsync'd); without it, in memory.
                      A last JSON line reports the journal: records, bytes,
                      bytes per cart, fsyncs and their mean latency. The
                      peers match it on the same disk: postgres with its WAL
                      flushed at each commit (sync), every 5 ms (batch) or
                      fsync off (none); redis with an append-only file,
                      appendfsync always, everysec or no
  --journal-dir DIR   where the journal goes (default: a fresh directory under
                      the system's temporary directory, removed after the run)
  --quiet             no progress line (it is shown only on a terminal anyway)
  -h, --help          this text";

#[derive(Clone, Debug)]
struct Config {
    settings: Settings,
    workload: String,
    engines: Vec<String>,
    /// `--engine all`: peers whose server is missing are skipped quietly.
    all: bool,
    items: Option<u32>,
    pending: u64,
    stock: u32,
    retention_ms: u64,
    connections: usize,
    campaign: Option<campaign::Terms>,
    durability: Option<omnistock::durability::Durability>,
    journal_dir: Option<std::path::PathBuf>,
}

fn parse_number<T: std::str::FromStr>(name: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{name}: `{text}` is not a valid number"))
}

impl Config {
    fn from_args(args: impl Iterator<Item = String>) -> Result<Config, String> {
        let cpus = thread::available_parallelism().map_or(2, |n| n.get());
        let mut config = Config {
            settings: Settings {
                threads: cpus.max(2),
                ops: u64::MAX,
                duration: Duration::from_secs(10),
                seed: 42,
                ids: Ids::Sequential,
                ttl_ms: 100,
                pos_threads: 1,
                latency_every: 16,
                progress: true,
            },
            workload: "hot".into(),
            engines: vec!["omnistock".into()],
            all: false,
            items: None,
            pending: 1_000_000,
            stock: 1_000,
            retention_ms: 1_000,
            connections: 64,
            campaign: None,
            durability: None,
            journal_dir: None,
        };
        let mut duration_given = false;
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            // Accept both `--name value` and `--name=value`.
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let mut value = || -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            let s = &mut config.settings;
            match name.as_str() {
                "--threads" => s.threads = parse_number(&name, &value()?)?,
                "--pos-threads" => s.pos_threads = parse_number(&name, &value()?)?,
                "--ops" => s.ops = parse_number(&name, &value()?)?,
                "--duration" => {
                    let text = value()?;
                    let secs: f64 = text
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e6)
                        .ok_or_else(|| {
                            format!("--duration: `{text}` is not a positive number of seconds")
                        })?;
                    s.duration = Duration::from_secs_f64(secs);
                    duration_given = true;
                }
                "--seed" => s.seed = parse_number(&name, &value()?)?,
                "--ids" => {
                    s.ids = match value()?.as_str() {
                        "sequential" => Ids::Sequential,
                        "random" => Ids::Random,
                        "shared" => Ids::Shared,
                        other => {
                            return Err(format!(
                                "--ids: `{other}` is not `sequential`, `random` or `shared`"
                            ))
                        }
                    }
                }
                "--ttl-ms" => s.ttl_ms = parse_number(&name, &value()?)?,
                "--latency-every" => s.latency_every = parse_number(&name, &value()?)?,
                "--quiet" => s.progress = false,
                "--workload" => config.workload = value()?,
                "--engine" => {
                    let list = value()?;
                    config.all = list == "all";
                    config.engines = if config.all {
                        engines::ALL.iter().map(|e| e.to_string()).collect()
                    } else {
                        list.split(',')
                            .map(str::trim)
                            .filter(|e| !e.is_empty())
                            .map(String::from)
                            .collect()
                    };
                }
                "--items" => config.items = Some(parse_number(&name, &value()?)?),
                "--pending" => config.pending = parse_number(&name, &value()?)?,
                "--stock" => config.stock = parse_number(&name, &value()?)?,
                "--retention-ms" => config.retention_ms = parse_number(&name, &value()?)?,
                "--connections" => config.connections = parse_number(&name, &value()?)?,
                "--campaign" => config.campaign = Some(campaign::Terms::parse(&value()?)?),
                "--durability" => {
                    use omnistock::durability::Durability;
                    config.durability = Some(match value()?.as_str() {
                        "sync" => Durability::Sync,
                        "batch" => Durability::Batch { every_ms: 5 },
                        "none" => Durability::None,
                        other => {
                            return Err(format!(
                                "--durability: `{other}` is not `sync`, `batch` or `none`"
                            ))
                        }
                    })
                }
                "--journal-dir" => config.journal_dir = Some(value()?.into()),
                "-h" | "--help" => return Err(String::new()),
                _ => return Err(format!("unknown option `{arg}`")),
            }
        }
        let s = &mut config.settings;
        if s.ops != u64::MAX && !duration_given {
            s.duration = Duration::from_secs(300);
        }
        if s.threads == 0 || s.ops == 0 || s.ttl_ms == 0 || config.stock == 0 {
            return Err("--threads, --ops, --ttl-ms and --stock must be at least 1".into());
        }
        if config.items == Some(0) || config.connections == 0 {
            return Err("--items and --connections must be at least 1".into());
        }
        if config.engines.is_empty() {
            return Err("--engine needs at least one engine".into());
        }
        for engine in &config.engines {
            if !engines::ALL.contains(&engine.as_str()) {
                return Err(format!(
                    "unknown engine `{engine}` (omnistock, mutex, dashmap, atomic-limit, redis, postgres, all)"
                ));
            }
        }
        s.progress &= std::io::stderr().is_terminal();
        Ok(config)
    }
}

/// How one engine's turn went.
enum Outcome {
    Ran(Box<Report>),
    Skipped(String),
    Failed(String),
}

fn outcome(result: Result<Report, String>) -> Outcome {
    match result {
        Ok(report) => Outcome::Ran(Box::new(report)),
        Err(e) => Outcome::Failed(e),
    }
}

fn run_engine(config: &Config, name: &str, workload: &Workload) -> Outcome {
    let clock = Arc::new(ManualClock::new());
    let s = &config.settings;
    let items = workload.items();
    // A hard bound on a server's life: the run plus generous setup time.
    #[cfg(feature = "peers")]
    let limit = s.duration + Duration::from_secs(900);
    match name {
        "omnistock" => match config.durability {
            None => outcome(
                Omnistock::new(Arc::clone(&clock), items, s.ttl_ms, config.retention_ms)
                    .and_then(|engine| driver::run(&engine, workload, s, clock)),
            ),
            Some(durability) => {
                let dir = config.journal_dir.clone().unwrap_or_else(|| {
                    std::env::temp_dir()
                        .join(format!("omnistock-flash-sale-{}", std::process::id()))
                });
                outcome(
                    Omnistock::journaled(
                        Arc::clone(&clock),
                        items,
                        s.ttl_ms,
                        config.retention_ms,
                        dir,
                        durability,
                    )
                    .and_then(|engine| {
                        let report = driver::run(&engine, workload, s, clock)?;
                        journal_line(&engine, durability, &report);
                        Ok(report)
                    }),
                )
            }
        },
        "mutex" => {
            let engine = MutexEngine::new(Arc::clone(&clock), config.retention_ms);
            outcome(driver::run(&engine, workload, s, clock))
        }
        "dashmap" => {
            let engine = DashMapEngine::new(Arc::clone(&clock), config.retention_ms);
            outcome(driver::run(&engine, workload, s, clock))
        }
        "atomic-limit" => outcome(driver::run(&AtomicLimit::new(items), workload, s, clock)),
        #[cfg(not(feature = "peers"))]
        "redis" | "postgres" => Outcome::Skipped(format!(
            "the {name} peer is built only with the `peers` feature: \
             cargo run --release --features peers --example flash_sale -- ..."
        )),
        #[cfg(feature = "peers")]
        "redis" | "postgres" => {
            let started = if name == "redis" {
                Redis::start(
                    Arc::clone(&clock),
                    config.retention_ms,
                    config.connections,
                    limit,
                    config.durability,
                )
                .map(|engine| outcome(driver::run(&engine, workload, s, clock.clone())))
            } else {
                Postgres::start(
                    Arc::clone(&clock),
                    config.retention_ms,
                    config.connections,
                    limit,
                    config.durability,
                )
                .map(|engine| outcome(driver::run(&engine, workload, s, clock.clone())))
            };
            match started {
                Ok(outcome) => outcome,
                Err(Unavailable::Missing(why)) => Outcome::Skipped(why),
                Err(Unavailable::Failed(why)) => Outcome::Failed(why),
            }
        }
        other => Outcome::Failed(format!("unknown engine `{other}`")),
    }
}

/// The journal's figures after a durable omnistock run, as one JSON line.
fn journal_line(
    engine: &Omnistock,
    durability: omnistock::durability::Durability,
    report: &Report,
) {
    let _ = engine.inventory().sync();
    let Some(stats) = engine.inventory().journal_stats() else {
        return;
    };
    let mode = match durability {
        omnistock::durability::Durability::Sync => "sync",
        omnistock::durability::Durability::Batch { .. } => "batch",
        omnistock::durability::Durability::None => "none",
    };
    let fsync_us = stats.fsync_nanos as f64 / stats.fsyncs.max(1) as f64 / 1e3;
    let durable_per_s = report.reserve_ok as f64 / report.elapsed_s.max(1e-9);
    println!(
        "{{\"journal\":{{\"durability\":\"{mode}\",\"records\":{},\"bytes\":{},\"bytes_per_record\":{:.1},\"bytes_per_cart\":{:.1},\"reservations_per_s\":{:.0},\"fsyncs\":{},\"fsync_mean_us\":{:.1},\"records_per_fsync\":{:.1},\"records_per_write\":{:.1}}}}}",
        stats.records,
        stats.bytes,
        stats.bytes as f64 / stats.records.max(1) as f64,
        stats.bytes as f64 / report.carts.max(1) as f64,
        durable_per_s,
        stats.fsyncs,
        fsync_us,
        stats.records as f64 / stats.fsyncs.max(1) as f64,
        stats.records as f64 / stats.writes.max(1) as f64,
    );
}

/// `--workload memory`: each engine in a child process of its own, so one
/// engine's freed memory cannot hide the next one's.
fn memory_workload(config: &Config) -> ExitCode {
    let items = config.items.unwrap_or(10_000_000);
    let mut status = ExitCode::SUCCESS;
    if config.engines.len() > 1 {
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => {
                eprintln!("flash_sale: {e}");
                return ExitCode::FAILURE;
            }
        };
        for engine in &config.engines {
            if matches!(engine.as_str(), "redis" | "postgres") {
                eprintln!(
                    "flash_sale: memory: skipping {engine} (it measures in-process engines only)"
                );
                continue;
            }
            let ok = std::process::Command::new(&exe)
                .args(["--workload", "memory", "--engine", engine])
                .args(["--items", &items.to_string()])
                .args(["--pending", &config.pending.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                status = ExitCode::FAILURE;
            }
        }
        return status;
    }
    let pending = config.pending;
    let clock = Arc::new(ManualClock::new());
    let result = match config.engines[0].as_str() {
        "omnistock" => memory::measure(
            || Omnistock::new(Arc::clone(&clock), items, 3_600_000, memory::RETENTION_MS),
            |e: &Omnistock| Some(e.inventory().pending_count() as u64),
            &clock,
            items,
            pending,
        ),
        "mutex" => memory::measure(
            || Ok(MutexEngine::new(Arc::clone(&clock), memory::RETENTION_MS)),
            |e: &MutexEngine| Some(e.pending() as u64),
            &clock,
            items,
            pending,
        ),
        "dashmap" => memory::measure(
            || Ok(DashMapEngine::new(Arc::clone(&clock), memory::RETENTION_MS)),
            |e: &DashMapEngine| Some(e.pending()),
            &clock,
            items,
            pending,
        ),
        "atomic-limit" => memory::measure(
            || Ok(AtomicLimit::new(items)),
            |_| None,
            &clock,
            items,
            pending,
        ),
        other => Err(format!(
            "memory measures in-process engines only, not {other}"
        )),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("flash_sale: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("flash_sale: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if config.workload == "memory" {
        return memory_workload(&config);
    }
    if let Some(terms) = config.campaign {
        let s = &config.settings;
        return match campaign::run(terms, s.threads, s.ops, s.duration, s.seed) {
            Ok(json) => {
                println!("{json}");
                if json.contains("\"checks_passed\":true") {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("flash_sale: campaign: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let workload = match Workload::new(
        &config.workload,
        config.items.unwrap_or(1_000_000),
        config.stock,
    ) {
        Ok(workload) => workload,
        Err(e) => {
            eprintln!("flash_sale: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    let mut failed = false;
    let mut missing = false;
    let mut reports: Vec<Report> = Vec::new();
    for name in &config.engines {
        match run_engine(&config, name, &workload) {
            Outcome::Ran(report) => {
                failed |= !report.failures.is_empty() || report.oversold != 0;
                println!("{}", report.json());
                reports.push(*report);
            }
            Outcome::Skipped(why) => {
                eprintln!("flash_sale: skipping {name}: {why}");
                missing |= !config.all;
            }
            Outcome::Failed(why) => {
                eprintln!("flash_sale: {name} failed: {why}");
                failed = true;
            }
        }
    }
    if reports.len() > 1 {
        if let Some(ours) = reports.iter().find(|r| r.engine == "omnistock") {
            println!(
                "{:<14} {:>14} {:>12} {:>10} {:>10} {:>10}",
                "engine", "ops/s", "omnistock/x", "p50 ns", "p99 ns", "p99.9 ns"
            );
            let mut ratios = Vec::new();
            for r in &reports {
                let ratio = ours.ops_per_s / r.ops_per_s.max(1e-9);
                println!(
                    "{:<14} {:>14.0} {:>12.2} {:>10} {:>10} {:>10}",
                    r.engine, r.ops_per_s, ratio, r.p50_ns, r.p99_ns, r.p999_ns
                );
                if r.engine != "omnistock" {
                    ratios.push(format!("\"{}\":{ratio:.2}", r.engine));
                }
            }
            println!("{{\"ratios\":{{{}}}}}", ratios.join(","));
        }
    }
    if failed {
        ExitCode::FAILURE
    } else if missing {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}
