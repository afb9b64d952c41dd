//! A fuzz harness for every parser of the MQTT storage backends that reads
//! outside input, on stable Rust.
//!
//! Each [`Target`] turns bytes into one parser's input: the EMQX `.conf`
//! reader, `${var}` templates, topic names and filters, server addresses,
//! the Redis subscribe/unsubscribe channel, and the rows, hashes, replies
//! and documents the backends read back from a database that another tool
//! may have written. [`fuzz`] runs a target on mutants of its seed corpus
//! (see [`mod@mutate`]) and catches every panic; some targets also check an
//! invariant (the topic trie agrees with `matches`, a MongoDB payload
//! decodes to the bytes it was encoded from).
//!
//! `cargo run --release -p fuzz -- all --runs 10000000` is the long run;
//! `cargo test -p fuzz` runs a short pass of every target and replays the
//! inputs kept in `fuzz/regressions/<target>/`.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

pub mod mutate;
pub mod targets;

pub use targets::targets;

use mutate::{mutate, Rng};

/// One parser under test.
pub struct Target {
    /// Short name, used on the command line and for regression folders.
    pub name: &'static str,
    /// What it feeds and checks.
    pub about: &'static str,
    /// The inputs mutation starts from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens worth inserting (keys, delimiters, type names).
    pub dict: &'static [&'static [u8]],
    /// The largest input tried.
    pub max_len: usize,
    /// Runs the parser on one input; panics on a bug.
    pub run: fn(&[u8]),
}

/// An input that made a target panic.
#[derive(Debug, Clone)]
pub struct Crash {
    /// The input.
    pub input: Vec<u8>,
    /// The panic message with its location.
    pub message: String,
}

/// What one fuzzing run did.
#[derive(Debug)]
pub struct Report {
    /// The target's name.
    pub target: &'static str,
    /// Inputs run.
    pub execs: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Distinct panics (one input per panic location).
    pub crashes: Vec<Crash>,
}

impl Report {
    /// Executions per second.
    pub fn rate(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the panic hook, once, with one that records the message (and
/// its location) for [`run_one`] instead of printing it: millions of
/// expected-to-be-caught panics would flood the terminal.
fn quiet_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let caught = LAST_PANIC.with(|p| {
                let mut p = p.borrow_mut();
                if p.is_some() {
                    *p = Some(info.to_string());
                    true
                } else {
                    false
                }
            });
            if !caught {
                default(info);
            }
        }));
    });
}

fn payload_text(e: &(dyn Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".into())
}

/// Runs `target` on `input`; `Err` holds the panic message and location.
pub fn run_one(target: &Target, input: &[u8]) -> Result<(), String> {
    quiet_panics();
    LAST_PANIC.with(|p| *p.borrow_mut() = Some(String::new()));
    let r = panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let recorded = LAST_PANIC.with(|p| p.borrow_mut().take());
    r.map_err(|e| match recorded {
        Some(m) if !m.is_empty() => m,
        _ => payload_text(&*e),
    })
}

/// Runs `target` on its seeds, then on `execs` mutants of its corpus,
/// with the generator seeded by `seed`. Mutants are sometimes kept in the
/// corpus (a bounded pool), so mutations stack over the run.
pub fn fuzz(target: &Target, execs: u64, seed: u64) -> Report {
    const POOL: usize = 4096;
    let start = Instant::now();
    let mut rng = Rng::new(seed ^ fnv(target.name.as_bytes()));
    let seeds = (target.seeds)();
    let mut crashes: Vec<Crash> = Vec::new();
    let record = |input: &[u8], message: String, crashes: &mut Vec<Crash>| {
        let place = location(&message);
        if !crashes.iter().any(|c| location(&c.message) == place) {
            crashes.push(Crash {
                input: input.to_vec(),
                message,
            });
        }
    };
    let mut done = 0;
    for s in &seeds {
        if let Err(m) = run_one(target, s) {
            record(s, m, &mut crashes);
        }
        done += 1;
    }
    let mut pool: Vec<Vec<u8>> = seeds.clone();
    if pool.is_empty() {
        pool.push(Vec::new());
    }
    let mut input = Vec::with_capacity(target.max_len);
    while done < execs {
        input.clear();
        // Mostly a seed (keeps inputs near valid), sometimes a kept mutant.
        let from = if rng.one_in(3) || pool.len() == seeds.len() {
            &pool[rng.below(seeds.len().max(1).min(pool.len()))]
        } else {
            &pool[seeds.len() + rng.below(pool.len() - seeds.len())]
        };
        input.extend_from_slice(from);
        mutate(&mut rng, &mut input, target.dict, &seeds, target.max_len);
        if let Err(m) = run_one(target, &input) {
            record(&input, m, &mut crashes);
        }
        if rng.one_in(16) {
            if pool.len() < seeds.len() + POOL {
                pool.push(input.clone());
            } else {
                let i = seeds.len() + rng.below(POOL);
                pool[i].clone_from(&input);
            }
        }
        done += 1;
    }
    Report {
        target: target.name,
        execs: done,
        elapsed: start.elapsed(),
        crashes,
    }
}

/// The `file:line:col` of a panic message, to tell panics apart.
fn location(message: &str) -> &str {
    // The hook's text is "panicked at FILE:LINE:COL:\nMESSAGE".
    let rest = message.strip_prefix("panicked at ").unwrap_or(message);
    rest.split_once(":\n").map_or(rest, |(place, _)| place)
}

/// Writes a panicking input to `fuzz/regressions/<target>/`, named by its
/// hash, where the short pass replays it from then on.
pub fn save_regression(target: &str, input: &[u8]) -> std::io::Result<std::path::PathBuf> {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target);
    std::fs::create_dir_all(&folder)?;
    let file = folder.join(format!("{:016x}.bin", fnv(input)));
    std::fs::write(&file, input)?;
    Ok(file)
}

/// FNV-1a, to name regression files and to vary the seed per target.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
