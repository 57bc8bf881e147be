//! What `/proc` says about a process (Linux): CPU time and resident memory,
//! for the benches' per-record CPU and per-connection memory figures.

use anyhow::{Context as _, bail};

/// Clock ticks per second in `/proc/PID/stat` (`USER_HZ`, fixed at 100 in
/// Linux's user-space ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds (user + system) a process has used: `None` for this one.
pub(crate) fn cpu_seconds(pid: Option<u32>) -> anyhow::Result<f64> {
    let path = stat_path(pid, "stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // The command name (field 2) may hold spaces; the fields after it are
    // counted from its closing parenthesis. utime and stime are fields 14
    // and 15, the 12th and 13th after it.
    let Some((_, after)) = stat.rsplit_once(')') else {
        bail!("unexpected format of {path}");
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("unexpected format of {path}"))
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / TICKS_PER_SECOND)
}

/// A process's resident memory (`VmRSS`), in bytes.
pub(crate) fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = stat_path(Some(pid), "status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .with_context(|| format!("no VmRSS line in {path}"))
}

fn stat_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(pid) => format!("/proc/{pid}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

/// CPU used by this process and, if given, the broker, since `start`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuClock {
    client: f64,
    broker: Option<(u32, f64)>,
}

/// CPU seconds used since a [`CpuClock`] started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuUsed {
    pub(crate) client: f64,
    pub(crate) broker: Option<f64>,
}

impl CpuClock {
    pub(crate) fn start(broker_pid: Option<u32>) -> anyhow::Result<Self> {
        Ok(Self {
            client: cpu_seconds(None)?,
            broker: broker_pid
                .map(|pid| cpu_seconds(Some(pid)).map(|s| (pid, s)))
                .transpose()?,
        })
    }

    pub(crate) fn used(&self) -> anyhow::Result<CpuUsed> {
        Ok(CpuUsed {
            client: cpu_seconds(None)? - self.client,
            broker: self
                .broker
                .map(|(pid, start)| cpu_seconds(Some(pid)).map(|s| s - start))
                .transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        assert!(cpu_seconds(None).unwrap() >= 0.0);
        assert!(resident_bytes(std::process::id()).unwrap() > 1024 * 1024);
        assert!(cpu_seconds(Some(u32::MAX)).is_err());
    }
}
