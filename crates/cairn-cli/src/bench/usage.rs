//! CPU, memory and writes of this process: as a whole (`getrusage`) and per thread role
//! (`/proc/self/task/*/{stat,io}`).
//!
//! The load generator runs in the same process as the server, so the process's CPU includes the
//! clients'. The split by role comes from thread names: the engine's log writer (`cairn-log`), its
//! applier (`cairn-apply`), the SQLite WAL checkpoint threads (`cairn-wal`), the HTTP server's
//! threads and the clients'. What the store wrote is the `wchar` of the log writer (WAL frames of the
//! log), the applier (WAL frames of the state checkpoints) and the WAL threads (copies into the
//! database files).

use std::collections::BTreeMap;
use std::time::Instant;

/// Name prefix of the HTTP server's runtime threads.
pub const SERVER_THREADS: &str = "cairn-http";
/// Name prefix of the load generator's runtime threads.
pub const CLIENT_THREADS: &str = "bench-client";
/// Names of the engine's and the store's threads (set by `cairn_engine` and `cairn_store_sqlite`),
/// with the role each is counted under.
const ENGINE_THREADS: &[(&str, &str)] = &[
    ("cairn-log", "log"),
    ("cairn-apply", "apply"),
    ("cairn-wal", "wal"),
];
/// Roles whose writes are the store's.
pub const STORE_ROLES: &[&str] = &["log", "apply", "wal"];

/// What the threads of one role used.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleUse {
    pub cpu_s: f64,
    /// Bytes passed to `write`-family system calls (`wchar`).
    pub written_bytes: u64,
}

/// Process CPU time and per-role use at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    at: Instant,
    cpu_s: f64,
    roles: BTreeMap<&'static str, RoleUse>,
}

/// What was used over one or more intervals.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub wall_s: f64,
    pub cpu_s: f64,
    /// By thread role: `log`, `apply`, `wal`, `http`, `clients`, `other`.
    pub roles: BTreeMap<&'static str, RoleUse>,
}

impl Snapshot {
    pub fn take() -> Snapshot {
        Snapshot {
            at: Instant::now(),
            cpu_s: rusage().0,
            roles: role_use(),
        }
    }

    /// What was used between `self` and `later`.
    pub fn until(&self, later: &Snapshot) -> Usage {
        let roles = later
            .roles
            .iter()
            .map(|(role, now)| {
                let then = self.roles.get(role).copied().unwrap_or_default();
                let used = RoleUse {
                    cpu_s: (now.cpu_s - then.cpu_s).max(0.0),
                    written_bytes: now.written_bytes.saturating_sub(then.written_bytes),
                };
                (*role, used)
            })
            .collect();
        Usage {
            wall_s: (later.at - self.at).as_secs_f64(),
            cpu_s: later.cpu_s - self.cpu_s,
            roles,
        }
    }
}

impl Usage {
    /// Cores busy on average: CPU seconds per wall second.
    pub fn cores(&self) -> f64 {
        ratio(self.cpu_s, self.wall_s)
    }

    /// Cores busy on average in one thread role.
    pub fn role_cores(&self, role: &str) -> f64 {
        ratio(self.role(role).cpu_s, self.wall_s)
    }

    pub fn role(&self, role: &str) -> RoleUse {
        self.roles.get(role).copied().unwrap_or_default()
    }

    /// Bytes the store wrote (its threads' `wchar`).
    pub fn store_written_bytes(&self) -> u64 {
        STORE_ROLES
            .iter()
            .map(|role| self.role(role).written_bytes)
            .sum()
    }

    /// Adds another interval (for phases timed in several pieces).
    pub fn add(&mut self, other: &Usage) {
        self.wall_s += other.wall_s;
        self.cpu_s += other.cpu_s;
        for (role, used) in &other.roles {
            let total = self.roles.entry(role).or_default();
            total.cpu_s += used.cpu_s;
            total.written_bytes += used.written_bytes;
        }
    }
}

fn ratio(numerator: f64, denominator: f64) -> f64 {
    if denominator > 0.0 {
        numerator / denominator
    } else {
        0.0
    }
}

/// Peak resident set size of the process so far, in MiB.
pub fn peak_rss_mib() -> f64 {
    rusage().1 as f64 / 1024.0
}

/// User + system CPU seconds and peak RSS (KiB) of the whole process.
fn rusage() -> (f64, i64) {
    // SAFETY: `getrusage` only writes into the struct we pass; all-zero is a valid `rusage`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return (0.0, 0);
        }
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    (
        seconds(usage.ru_utime) + seconds(usage.ru_stime),
        usage.ru_maxrss,
    )
}

fn role_of(thread_name: &str) -> &'static str {
    if let Some((_, role)) = ENGINE_THREADS
        .iter()
        .find(|(prefix, _)| thread_name.starts_with(prefix))
    {
        role
    } else if thread_name.starts_with(SERVER_THREADS) {
        "http"
    } else if thread_name.starts_with(CLIENT_THREADS) {
        "clients"
    } else {
        "other"
    }
}

/// CPU seconds and bytes written of the live threads, summed by role. Empty without `/proc`.
fn role_use() -> BTreeMap<&'static str, RoleUse> {
    let mut roles = BTreeMap::new();
    // SAFETY: `sysconf` has no preconditions.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks_per_s <= 0 {
        return roles;
    }
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return roles;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((name, ticks)) = parse_stat(&stat) else {
            continue;
        };
        let io = std::fs::read_to_string(task.path().join("io")).unwrap_or_default();
        let total: &mut RoleUse = roles.entry(role_of(name)).or_default();
        total.cpu_s += ticks as f64 / ticks_per_s as f64;
        total.written_bytes += parse_wchar(&io).unwrap_or(0);
    }
    roles
}

/// The thread name and utime + stime (clock ticks) from a `/proc/<pid>/task/<tid>/stat` line.
fn parse_stat(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    // After the name: state is field 3, utime field 14 and stime field 15.
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((name, user + system))
}

/// `wchar` from a `/proc/<pid>/task/<tid>/io` file.
fn parse_wchar(io: &str) -> Option<u64> {
    io.lines()
        .find_map(|line| line.strip_prefix("wchar:"))
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_are_parsed_even_with_spaces_in_the_thread_name() {
        let line = "4242 (cairn http) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("cairn http", 300)));
        assert_eq!(
            parse_wchar("rchar: 10\nwchar: 2048\nsyscr: 1\n"),
            Some(2048)
        );
        assert_eq!(role_of("cairn-log"), "log");
        assert_eq!(role_of("cairn-apply"), "apply");
        assert_eq!(role_of("cairn-wal"), "wal");
        assert_eq!(role_of("bench-client-3"), "clients");
    }

    #[test]
    fn this_process_has_cpu_and_memory() {
        let before = Snapshot::take();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let used = before.until(&Snapshot::take());
        assert!(used.wall_s > 0.0 && used.cpu_s >= 0.0);
        assert!(peak_rss_mib() > 0.0);
    }
}
