//! CPU time and memory of a process, read from Linux's `/proc`, so a report can show how the
//! machine's cores were split between the generator and each service and what each one's
//! resident memory came to. Elsewhere every reading is `None`.

use serde::Serialize;

/// Clock ticks per second of `utime` and `stime` in `/proc/<pid>/stat`: `USER_HZ`, 100 on every
/// mainstream Linux build.
const TICKS_PER_S: f64 = 100.0;

/// The pseudo process id of the whole machine.
const MACHINE: &str = "machine";

/// CPU seconds all cores spent busy (not idle, not waiting for I/O), from `/proc/stat`.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
    let busy: f64 = ticks
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, t)| t)
        .sum();
    Some(busy / TICKS_PER_S)
}

/// A process to measure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    /// Its name in reports.
    pub name: String,
    /// `self` or a process id.
    pub pid: String,
}

impl Process {
    /// The running program itself.
    pub fn current(name: &str) -> Process {
        Process {
            name: name.to_owned(),
            pid: "self".to_owned(),
        }
    }

    /// Another process.
    pub fn other(name: &str, pid: u32) -> Process {
        Process {
            name: name.to_owned(),
            pid: pid.to_string(),
        }
    }

    /// The whole machine: every process, the kernel and interrupts together.
    pub fn machine(name: &str) -> Process {
        Process {
            name: name.to_owned(),
            pid: MACHINE.to_owned(),
        }
    }

    /// User plus system CPU seconds used so far (for the machine: by everything).
    pub fn cpu_seconds(&self) -> Option<f64> {
        if self.pid == MACHINE {
            return machine_busy_seconds();
        }
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // The command name (field 2) may contain spaces; the fields after its `)` are fixed.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After `)`: state is field 3, so utime (14) and stime (15) are at 11 and 12.
        let user: f64 = fields.get(11)?.parse().ok()?;
        let system: f64 = fields.get(12)?.parse().ok()?;
        Some((user + system) / TICKS_PER_S)
    }

    /// Resident and peak resident memory (none for the machine).
    pub fn memory(&self) -> Option<Memory> {
        if self.pid == MACHINE {
            return None;
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let kib = |key: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        };
        Some(Memory {
            rss_mib: kib("VmRSS:")? as f64 / 1024.0,
            peak_rss_mib: kib("VmHWM:")? as f64 / 1024.0,
        })
    }
}

/// A process's memory, in MiB.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Memory {
    /// Resident set size now.
    pub rss_mib: f64,
    /// The largest resident set size so far.
    pub peak_rss_mib: f64,
}

/// What a process used over the transfer phase.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProcessUsage {
    /// Its name.
    pub name: String,
    /// CPU seconds used during the phase.
    pub cpu_seconds: f64,
    /// Mean cores busy during the phase.
    pub cpu_cores: f64,
    /// CPU seconds per thousand finished transfers.
    pub cpu_ms_per_transfer: f64,
    /// Memory when the last transfer finished, before the ledger check.
    pub memory_after_transfers: Option<Memory>,
    /// Memory at the end of the run, after the ledger check (whose `GetLedgerTotals` calls
    /// scan every account and posting).
    pub memory: Option<Memory>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_test_can_read_itself() {
        let me = Process::current("test");
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(me.cpu_seconds().is_some());
            let memory = me.memory().expect("status");
            assert!(memory.rss_mib > 0.0 && memory.peak_rss_mib >= memory.rss_mib);
        }
        assert!(Process::other("none", u32::MAX).cpu_seconds().is_none());
        if std::path::Path::new("/proc/stat").exists() {
            assert!(
                Process::machine("all")
                    .cpu_seconds()
                    .is_some_and(|s| s > 0.0)
            );
            assert!(Process::machine("all").memory().is_none());
        }
    }
}
