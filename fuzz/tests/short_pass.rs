//! The short pass CI runs: every target on a fixed seed for a few
//! thousand inputs, and every kept regression input replayed. The long,
//! random-seeded runs are `cargo run --release -p fuzz -- all`.

use std::path::PathBuf;

use backend_core::config::ProblemKind;
use fuzz::{fuzz, run_one, targets};

/// Inputs per target in CI (debug build): seconds, not minutes.
const RUNS: u64 = 20_000;

#[test]
fn every_target_survives_a_short_pass() {
    let mut failures = Vec::new();
    for t in targets() {
        let r = fuzz(&t, RUNS, 0x5eed);
        assert!(r.execs >= RUNS, "{}: ran {} of {RUNS}", t.name, r.execs);
        for c in r.crashes {
            // Kept like proptest's regression files: commit it with the fix.
            let saved = fuzz::save_regression(t.name, &c.input)
                .map_or_else(|e| format!("not saved: {e}"), |p| p.display().to_string());
            failures.push(format!(
                "{}: {} on {:?} ({saved})",
                t.name,
                c.message,
                String::from_utf8_lossy(&c.input)
            ));
        }
    }
    assert!(failures.is_empty(), "panics:\n{}", failures.join("\n"));
}

#[test]
fn kept_regressions_no_longer_panic() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let all = targets();
    let mut replayed = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let folder = entry.expect("readable").path();
        if !folder.is_dir() {
            continue;
        }
        let name = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let target = all
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("regressions/{name}: no such target"));
        for file in std::fs::read_dir(&folder).expect("readable") {
            let path = file.expect("readable").path();
            let input = std::fs::read(&path).expect("readable");
            replayed += 1;
            if let Err(m) = run_one(target, &input) {
                failures.push(format!("{}: {m}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        replayed > 0,
        "no regression inputs found under {}",
        dir.display()
    );
}

#[test]
fn a_panicking_target_is_caught_and_reported() {
    // The harness itself: a panic is caught with its location, not lost.
    let t = fuzz::Target {
        name: "self-test",
        about: "",
        seeds: || vec![b"ok".to_vec()],
        dict: &[],
        max_len: 8,
        run: |d| assert!(!d.contains(&b'!'), "found a bang"),
    };
    assert!(run_one(&t, b"ok").is_ok());
    let m = run_one(&t, b"!").unwrap_err();
    assert!(
        m.contains("found a bang") && m.contains("short_pass.rs"),
        "{m}"
    );
    let r = fuzz(&t, 5_000, 1);
    assert_eq!(r.crashes.len(), 1, "one panic location, reported once");
}

/// Every backend kind the conf target's seeds name is linked into the
/// harness, so mutants reach the keys' checks and the rules instead of
/// stopping at an unknown backend. (The seed's own Cassandra block has a
/// duplicate key; the project's files parse whole.)
#[test]
fn every_conf_seed_names_a_linked_backend() {
    let conf = targets()
        .into_iter()
        .find(|t| t.name == "conf")
        .expect("the conf target");
    let seeds = (conf.seeds)();
    assert!(seeds.len() >= 6, "{} seeds", seeds.len());
    let mut parsed = 0;
    for seed in seeds {
        let text = String::from_utf8(seed).expect("UTF-8 seed");
        match backend_core::Config::parse(&text) {
            Ok(_) => parsed += 1,
            Err(e) => assert!(
                !e.problems()
                    .iter()
                    .any(|p| matches!(p.kind, ProblemKind::UnknownBackend { .. })),
                "a seed names a backend the harness does not link: {e}"
            ),
        }
    }
    assert!(parsed >= 6, "only {parsed} seeds parse");
}
