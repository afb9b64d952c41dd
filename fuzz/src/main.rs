//! `fuzz`: runs the harness's targets and prints what it did.
//!
//! ```text
//! cargo run --release -p fuzz -- all --runs 10000000          # every target
//! cargo run --release -p fuzz -- conf topic --runs 1000000    # some
//! cargo run --release -p fuzz -- list
//! ```
//!
//! Options: `--runs N` inputs per target (default 1,000,000), `--seed S`
//! (default: the clock), `--jobs J` targets at once (default: the cores).
//! Every input that panics is written to `fuzz/regressions/<target>/`,
//! where `cargo test -p fuzz` replays it; the exit status is 1 then.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use fuzz::{fuzz, save_regression, targets, Report};

fn usage() -> ExitCode {
    eprintln!("usage: fuzz <all|list|TARGET...> [--runs N] [--seed S] [--jobs J]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut names = Vec::new();
    let mut runs: u64 = 1_000_000;
    let mut seed: u64 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> Option<u64> {
            let v = args.next().and_then(|v| v.replace('_', "").parse().ok());
            if v.is_none() {
                eprintln!("{what} needs a number");
            }
            v
        };
        match a.as_str() {
            "--runs" => match num("--runs") {
                Some(v) => runs = v,
                None => return usage(),
            },
            "--seed" => match num("--seed") {
                Some(v) => seed = v,
                None => return usage(),
            },
            "--jobs" => match num("--jobs") {
                Some(v) => jobs = usize::try_from(v.max(1)).unwrap_or(1),
                None => return usage(),
            },
            "-h" | "--help" => return usage(),
            other => names.push(other.to_owned()),
        }
    }
    let all = targets();
    if names.is_empty() {
        return usage();
    }
    if names == ["list"] {
        for t in &all {
            println!("{:<16} {}", t.name, t.about);
        }
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<_> = if names == ["all"] {
        all.iter().collect()
    } else {
        let mut v = Vec::new();
        for n in &names {
            match all.iter().find(|t| t.name == n) {
                Some(t) => v.push(t),
                None => {
                    eprintln!("unknown target `{n}` (try `list`)");
                    return ExitCode::from(2);
                }
            }
        }
        v
    };
    println!("seed {seed}, {runs} runs per target, {jobs} at once");
    let next = AtomicUsize::new(0);
    let reports: Mutex<Vec<Report>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..jobs.min(chosen.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(t) = chosen.get(i) else { break };
                let r = fuzz(t, runs, seed);
                println!(
                    "{:<16} {:>12} runs {:>8.1} s {:>10.0} runs/s  {} panic(s)",
                    r.target,
                    r.execs,
                    r.elapsed.as_secs_f64(),
                    r.rate(),
                    r.crashes.len()
                );
                if let Ok(mut v) = reports.lock() {
                    v.push(r);
                }
            });
        }
    });
    let reports = reports.into_inner().unwrap_or_default();
    let mut failed = false;
    for r in &reports {
        for c in &r.crashes {
            failed = true;
            println!(
                "\nPANIC in {}: {}\n  input {:?}\n  saved: {}",
                r.target,
                c.message,
                String::from_utf8_lossy(&c.input),
                match save_regression(r.target, &c.input) {
                    Ok(file) => file.display().to_string(),
                    Err(e) => format!("not saved ({e})"),
                }
            );
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
