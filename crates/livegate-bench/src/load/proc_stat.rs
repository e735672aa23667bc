//! CPU time and resident memory of a process from `/proc` (proc(5)): how a load run charges
//! the gateway (and itself) per viewer without instrumenting it.

use std::time::Instant;

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct ProcSample {
    /// utime + stime, in seconds.
    pub cpu_secs: f64,
    /// VmRSS in KiB.
    pub rss_kib: u64,
    pub at: Instant,
}

/// Why a process could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read /proc/{pid}: {source}")]
    Read {
        pid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("/proc/{pid}/{file} has an unexpected format")]
    Format { pid: u32, file: &'static str },
}

/// Reads `/proc/PID/stat` and `/proc/PID/status` now; `None` for the PID means this process.
pub fn sample(pid: Option<u32>) -> Result<ProcSample, ProcError> {
    let dir = pid.map_or_else(|| "self".to_owned(), |p| p.to_string());
    let shown = pid.unwrap_or_else(std::process::id);
    let read = |file: &str| {
        std::fs::read_to_string(format!("/proc/{dir}/{file}"))
            .map_err(|source| ProcError::Read { pid: shown, source })
    };
    let at = Instant::now();
    let ticks = cpu_ticks(&read("stat")?).ok_or(ProcError::Format {
        pid: shown,
        file: "stat",
    })?;
    let rss_kib = vm_rss_kib(&read("status")?).ok_or(ProcError::Format {
        pid: shown,
        file: "status",
    })?;
    Ok(ProcSample {
        cpu_secs: ticks as f64 / clock_ticks_per_sec(),
        rss_kib,
        at,
    })
}

/// utime + stime (fields 14 and 15 of proc(5) `stat`), in clock ticks. The command name
/// (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted after its last `)`.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_comm.split_ascii_whitespace();
    // After the command name comes field 3 (state); utime is field 14: skip 11.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `VmRSS:   12345 kB` of proc(5) `status`.
fn vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0 // USER_HZ on every Linux architecture we run on
    }
}

/// What a process used between two readings, charged per viewer.
#[derive(Debug, Clone, Serialize)]
pub struct ProcUsage {
    pub pid: u32,
    /// CPU time over wall time of the window, in percent of one core.
    pub cpu_percent_of_core: f64,
    pub cpu_percent_per_viewer: Option<f64>,
    /// Resident memory before the first session was requested.
    pub rss_before_kib: u64,
    /// Resident memory at the end of the steady-state window.
    pub rss_after_kib: u64,
    pub rss_delta_kib: i64,
    pub rss_kib_per_viewer: Option<f64>,
}

impl ProcUsage {
    /// `baseline`: before any session; `window_start`/`window_end`: the steady state;
    /// `viewers`: sessions connected through the window.
    pub fn between(
        pid: u32,
        baseline: &ProcSample,
        window_start: &ProcSample,
        window_end: &ProcSample,
        viewers: usize,
    ) -> ProcUsage {
        let wall = window_end.at.duration_since(window_start.at).as_secs_f64();
        let cpu_percent_of_core = if wall > 0.0 {
            (window_end.cpu_secs - window_start.cpu_secs) / wall * 100.0
        } else {
            0.0
        };
        let rss_delta_kib = window_end.rss_kib as i64 - baseline.rss_kib as i64;
        let per_viewer = |value: f64| (viewers > 0).then(|| value / viewers as f64);
        ProcUsage {
            pid,
            cpu_percent_of_core,
            cpu_percent_per_viewer: per_viewer(cpu_percent_of_core),
            rss_before_kib: baseline.rss_kib,
            rss_after_kib: window_end.rss_kib,
            rss_delta_kib,
            rss_kib_per_viewer: per_viewer(rss_delta_kib as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn cpu_ticks_count_fields_after_the_last_parenthesis() {
        // proc(5) layout; the command name holds a space and a parenthesis.
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    1234 567 0 0 20 0 9 0 100 2000000 3000 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(cpu_ticks("no parenthesis"), None);
    }

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tlivegate\nVmPeak:\t  900 kB\nVmRSS:\t   81234 kB\nThreads: 9\n";
        assert_eq!(vm_rss_kib(status), Some(81_234));
        assert_eq!(vm_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_can_be_sampled_and_its_cpu_only_grows() {
        let first = sample(None).unwrap();
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let second = sample(Some(std::process::id())).unwrap();
        assert!(first.rss_kib > 0);
        assert!(second.cpu_secs >= first.cpu_secs);
    }

    #[test]
    fn usage_is_cpu_over_the_window_and_memory_since_the_baseline() {
        let t0 = Instant::now();
        let sample = |cpu_secs, rss_kib, after_ms| ProcSample {
            cpu_secs,
            rss_kib,
            at: t0 + Duration::from_millis(after_ms),
        };
        let baseline = sample(1.0, 10_000, 0);
        let start = sample(3.0, 30_000, 2_000);
        let end = sample(8.0, 32_000, 12_000);
        let usage = ProcUsage::between(7, &baseline, &start, &end, 100);
        assert!((usage.cpu_percent_of_core - 50.0).abs() < 1e-9);
        assert!((usage.cpu_percent_per_viewer.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(usage.rss_delta_kib, 22_000);
        assert!((usage.rss_kib_per_viewer.unwrap() - 220.0).abs() < 1e-9);
        assert_eq!(
            ProcUsage::between(7, &baseline, &start, &end, 0).rss_kib_per_viewer,
            None
        );
    }
}
