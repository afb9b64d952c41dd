//! CPU time read from `/proc` (Linux), for the whole-stack benchmark's
//! cost per stored message: the broker's (a child process the benchmark
//! waited for) and the database server's (its process, its descendants
//! and the children they waited for, such as PostgreSQL's backends). Off
//! Linux every figure is 0.

use std::path::Path;

/// Clock ticks per second of `/proc`'s times (asked once).
fn ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: &str) -> Option<(u32, Vec<u64>)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    // utime, stime, cutime, cstime: fields 14 to 17 of the file.
    let times = fields
        .get(11..15)?
        .iter()
        .filter_map(|f| f.parse().ok())
        .collect();
    Some((ppid, times))
}

/// Seconds of CPU (user + system) used by the children this process
/// waited for.
pub fn children() -> f64 {
    let ticks = stat_fields("self")
        .and_then(|(_, v)| v.get(2..4).map(|s| s.iter().sum::<u64>()))
        .unwrap_or(0);
    ticks as f64 / ticks_per_second()
}

/// Seconds of CPU (user + system) used by this process itself.
pub fn own() -> f64 {
    let ticks = stat_fields("self")
        .and_then(|(_, v)| v.get(0..2).map(|s| s.iter().sum::<u64>()))
        .unwrap_or(0);
    ticks as f64 / ticks_per_second()
}

/// Seconds of CPU used by process `root` and its descendants, with the
/// children they waited for (a PostgreSQL backend that exited).
pub fn tree(root: u32) -> f64 {
    let mut all = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, times)) = stat_fields(&pid.to_string()) {
                all.push((pid, ppid, times.iter().sum::<u64>()));
            }
        }
    }
    let mut inside = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for (pid, ppid, _) in &all {
            if inside.contains(ppid) && !inside.contains(pid) {
                inside.push(*pid);
                grew = true;
            }
        }
    }
    let ticks: u64 = all
        .iter()
        .filter(|(pid, _, _)| inside.contains(pid))
        .map(|(_, _, t)| t)
        .sum();
    ticks as f64 / ticks_per_second()
}

/// The pid in the first line of `file`.
pub fn pid_file(file: &Path) -> Option<u32> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}
