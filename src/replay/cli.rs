//! The replay tool: an engine on a manual clock driven line by line
//! ([`Replayer`]), the loop over a whole script ([`run`]) and the tool's
//! command line ([`main`]). Every answer is written and flushed before the
//! next line is read, so a program driving the tool through a pipe sees each
//! answer as soon as it is made.

use super::answer::{format_now, format_outcome, format_parse_error};
use super::request::parse_request;
use super::Request;
use crate::clock::{Clock, ManualClock};
use crate::engine::Inventory;
use crate::error::Error;
use std::ffi::OsString;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

/// The tool's help, printed by `--help` and after a bad argument.
pub const USAGE: &str = "\
replay: runs a script of inventory operations on a fresh in-memory engine

Usage: replay [-h | --help] [--journal DIR [--durability sync|batch|none]]

Reads a script from standard input: one JSON request per line, such as
  {\"op\":\"restock\",\"sku\":1,\"store\":2,\"qty\":10}
  {\"op\":\"reserve\",\"id\":7,\"lines\":[{\"sku\":1,\"store\":2,\"qty\":2}]}
  {\"op\":\"advance\",\"ms\":1000}
Writes to standard output one JSON answer per non-blank line, in order, each
flushed before the next line is read. The engine starts empty, on a manual
clock at 0 ms that only `advance` moves. A line that cannot be read is
answered {\"ok\":false,\"error\":\"parse\",\"message\":...} and the replay
carries on. The ops, their fields and the answers are defined in the
\"Replay format\" section of docs/CONTRACT.md.

Options:
  -h, --help          print this help and exit
  --journal DIR       keep the engine in DIR (feature `journal`): recover it
                      on start (stock, reservations and the clock's time)
                      and journal every change; in `sync` mode an answer is
                      written only once its operation is durable
  --durability MODE   sync (the default), batch (fsync every 5 ms) or none

Exit status: 0 at the end of the input, 1 on a read or write error,
2 on a bad argument.
";

/// Campaigns a replay script may define.
const REPLAY_MAX_CAMPAIGNS: usize = 1 << 14;

/// The builder of a replay engine, in memory or journaled alike: the
/// manual clock, alerts kept for the `alerts` op, room for many campaigns.
fn replay_builder(clock: &Arc<ManualClock>) -> crate::InventoryBuilder {
    Inventory::builder()
        .clock(Arc::clone(clock) as Arc<dyn Clock>)
        .keep_alerts(true)
        .max_campaigns(REPLAY_MAX_CAMPAIGNS)
}

/// An engine driven by a replay script: an [`Inventory`] with the default
/// ttl and retention on a [`ManualClock`] that starts at 0 and moves only on
/// `advance` lines.
#[derive(Debug)]
pub struct Replayer {
    clock: Arc<ManualClock>,
    inventory: Inventory,
}

impl Replayer {
    /// A fresh engine at time 0 with no items and no reservations.
    #[must_use]
    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::new());
        let inventory = replay_builder(&clock).build();
        Replayer { clock, inventory }
    }

    /// The engine the script drives, for inspection after a replay.
    #[must_use]
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Applies one request line and returns its answer line (without the
    /// newline), or `None` for a blank line.
    pub fn handle_line(&mut self, line: &[u8]) -> Option<String> {
        let answer = match parse_request(line) {
            Ok(None) => return None,
            Ok(Some(Request::Command(command))) => format_outcome(&self.inventory.apply(&command)),
            Ok(Some(Request::Advance { ms })) => {
                let now = self.clock.advance(ms);
                // Journaled: the clock's time survives a restart.
                match self.inventory.record_clock() {
                    Ok(()) => format_now(now),
                    Err(error) => format_outcome(&Err(error)),
                }
            }
            Ok(Some(Request::Refused(refused))) => format_outcome(&Err(Error::Invalid {
                reason: refused.reason(),
            })),
            Err(error) => format_parse_error(&error),
        };
        Some(answer)
    }
}

impl Default for Replayer {
    fn default() -> Self {
        Replayer::new()
    }
}

#[cfg(feature = "journal")]
impl Replayer {
    /// An engine kept in the journal directory `dir`: recovered from it
    /// (the manual clock included), journaling every change with
    /// `durability`.
    ///
    /// # Errors
    ///
    /// What [`Inventory::open`] reports.
    pub fn open(
        dir: &std::path::Path,
        durability: crate::journal::Durability,
    ) -> Result<Self, crate::durability::RecoveryError> {
        let clock = Arc::new(ManualClock::new());
        let (inventory, _) = replay_builder(&clock).journal(dir, durability).open()?;
        Ok(Replayer { clock, inventory })
    }
}

/// Replays a whole script on a fresh [`Replayer`]: reads `input` line by line
/// (as bytes, split on `\n`; a trailing `\r` is JSON whitespace), writes one
/// answer line per non-blank input line to `output` and flushes it before
/// reading the next line, so a driver that waits for every answer before
/// sending the next line works. Bad lines get a `parse` answer and never stop
/// the replay.
///
/// # Errors
///
/// The first I/O error of `input` or `output`, which ends the replay early.
pub fn run<R: BufRead, W: Write>(input: R, output: W) -> io::Result<()> {
    run_on(Replayer::new(), input, output)
}

/// [`run`] on a given replayer (a journaled one, say).
///
/// # Errors
///
/// As [`run`].
pub fn run_on<R: BufRead, W: Write>(
    mut replayer: Replayer,
    mut input: R,
    mut output: W,
) -> io::Result<()> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        if let Some(answer) = replayer.handle_line(&line) {
            output.write_all(answer.as_bytes())?;
            output.write_all(b"\n")?;
            output.flush()?;
        }
    }
    output.flush()
}

/// The replay tool's `main`: `args` are the arguments after the program
/// name. With none, replays `input` to `output` ([`run`]); with `-h` or
/// `--help`, writes [`USAGE`] to `output`; anything else is an error written
/// with the usage to `errors`. Returns the exit status: 0 on success, 1 when
/// reading or writing failed, 2 for a bad argument.
///
/// ```
/// use omnistock::replay::main;
///
/// let mut output = Vec::new();
/// let mut errors = Vec::new();
/// let script = &b"{\"op\":\"advance\",\"ms\":5}\n"[..];
/// assert_eq!(main(Vec::<String>::new(), script, &mut output, &mut errors), 0);
/// assert_eq!(output, b"{\"ok\":true,\"now_ms\":5}\n");
/// assert_eq!(main(["--verbose"], &b""[..], &mut output, &mut errors), 2);
/// ```
pub fn main<A, R, W, E>(args: A, input: R, mut output: W, mut errors: E) -> u8
where
    A: IntoIterator,
    A::Item: Into<OsString>,
    R: BufRead,
    W: Write,
    E: Write,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    #[cfg(feature = "journal")]
    if args.first().is_some_and(|arg| arg == "--journal") {
        return journaled(&args, input, output, errors);
    }
    match args.first() {
        None => match run(input, output) {
            Ok(()) => 0,
            Err(error) => {
                // Nothing more can be reported when stderr is gone too.
                let _ = writeln!(errors, "replay: {error}");
                1
            }
        },
        Some(arg) if args.len() == 1 && (arg == "-h" || arg == "--help") => {
            match output
                .write_all(USAGE.as_bytes())
                .and_then(|()| output.flush())
            {
                Ok(()) => 0,
                Err(_) => 1,
            }
        }
        Some(_) => {
            let problem = match args.iter().find(|arg| *arg != "-h" && *arg != "--help") {
                Some(arg) if arg.to_string_lossy().starts_with('-') => {
                    format!("unknown option '{}'", arg.to_string_lossy())
                }
                Some(arg) => format!("unexpected argument '{}'", arg.to_string_lossy()),
                None => "--help takes no other argument".to_string(),
            };
            let _ = write!(errors, "replay: {problem}\n\n{USAGE}");
            let _ = errors.flush();
            2
        }
    }
}

/// `main` with `--journal DIR [--durability MODE]`.
#[cfg(feature = "journal")]
fn journaled<R: BufRead, W: Write, E: Write>(
    args: &[OsString],
    input: R,
    output: W,
    mut errors: E,
) -> u8 {
    use crate::journal::Durability;
    let durability = match (
        args.get(2).and_then(|a| a.to_str()),
        args.get(3).and_then(|a| a.to_str()),
    ) {
        (None, _) => Some(Durability::Sync),
        (Some("--durability"), Some("sync")) => Some(Durability::Sync),
        (Some("--durability"), Some("batch")) => Some(Durability::Batch { every_ms: 5 }),
        (Some("--durability"), Some("none")) => Some(Durability::None),
        _ => None,
    };
    let (Some(dir), Some(durability), true) =
        (args.get(1), durability, args.len() == 2 || args.len() == 4)
    else {
        let _ = write!(errors, "replay: --journal takes a directory, then optionally --durability sync|batch|none\n\n{USAGE}");
        return 2;
    };
    let replayer = match Replayer::open(std::path::Path::new(dir), durability) {
        Ok(replayer) => replayer,
        Err(error) => {
            let _ = writeln!(
                errors,
                "replay: cannot open {}: {error}",
                dir.to_string_lossy()
            );
            return 1;
        }
    };
    match run_on(replayer, input, output) {
        Ok(()) => 0,
        Err(error) => {
            let _ = writeln!(errors, "replay: {error}");
            1
        }
    }
}
