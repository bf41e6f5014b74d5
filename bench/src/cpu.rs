//! The CPU time a system under test spends: user + system time of its whole
//! process (every thread) from `/proc/<pid>/stat`, Linux only.
//!
//! The kernel reports it in clock ticks (`USER_HZ`, 100 on every mainstream
//! Linux), read once from `getconf CLK_TCK` — the bench forbids `unsafe`, so
//! no `libc::sysconf`. One sample is therefore exact to one tick (10 ms);
//! over a measured window of thousands of requests that is well under a
//! microsecond per request (see [`Sample::resolution_per_request`]).

use std::{process::Command, sync::OnceLock, time::Duration};

/// `USER_HZ` when `getconf` cannot tell: the value of the Linux user ABI.
const DEFAULT_TICKS_PER_SECOND: u64 = 100;

/// One process's accumulated CPU time, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// `utime` + `stime`.
    pub ticks: u64,
}

impl Sample {
    /// Reads `/proc/<pid>/stat` now.
    ///
    /// # Errors
    ///
    /// Not on Linux, the process is gone, or the file is not as documented.
    pub fn read(pid: u32) -> Result<Self, String> {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        parse_stat(&stat).map(|ticks| Self { ticks })
    }

    /// The CPU time spent between `earlier` and `self`.
    pub fn since(self, earlier: Self) -> Duration {
        ticks_to_duration(self.ticks.saturating_sub(earlier.ticks))
    }

    /// How far a difference of two samples spread over `requests` can be
    /// off, per request: one tick (each sample is truncated to whole ticks).
    pub fn resolution_per_request(requests: u64) -> Duration {
        ticks_to_duration(1) / u32::try_from(requests.max(1)).unwrap_or(u32::MAX)
    }
}

/// `utime` + `stime` (fields 14 and 15, in ticks) of a `/proc/<pid>/stat`
/// line. Field 2 is the command name in parentheses, which may itself hold
/// spaces and parentheses, so the fields are counted from its last `)`.
///
/// # Errors
///
/// The line does not have that shape.
pub fn parse_stat(stat: &str) -> Result<u64, String> {
    let after_name = stat
        .rfind(')')
        .map(|end| &stat[end + 1..])
        .ok_or("no command name in /proc/<pid>/stat")?;
    // After the name: field 3 (state) is index 0, so field n is index n - 3.
    let mut fields = after_name.split_whitespace().skip(14 - 3);
    let mut next = |name: &str| {
        fields
            .next()
            .ok_or_else(|| format!("/proc/<pid>/stat has no {name}"))?
            .parse::<u64>()
            .map_err(|e| format!("/proc/<pid>/stat {name}: {e}"))
    };
    let utime = next("utime")?;
    let stime = next("stime")?;
    Ok(utime + stime)
}

/// Clock ticks per second of `/proc`'s CPU times (`getconf CLK_TCK`).
pub fn ticks_per_second() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(DEFAULT_TICKS_PER_SECOND)
    })
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let per_second = ticks_per_second();
    Duration::from_secs(ticks / per_second)
        + Duration::from_nanos((ticks % per_second) * 1_000_000_000 / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line (`cat /proc/self/stat`) whose command name was renamed
    /// to hold spaces and parentheses, as `prctl(PR_SET_NAME)` allows.
    const LINE: &str = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                        1234 567 0 0 20 0 9 0 100 1000000 200 18446744073709551615 \
                        1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";

    #[test]
    fn utime_and_stime_are_counted_after_the_last_parenthesis() {
        assert_eq!(parse_stat(LINE), Ok(1234 + 567));
        let plain = LINE.replace("(a) b (c))", "(bench-target)");
        assert_eq!(parse_stat(&plain), Ok(1234 + 567));
    }

    #[test]
    fn a_truncated_or_nameless_line_is_an_error() {
        assert!(parse_stat("4242 (node) S 1 2 3").is_err());
        assert!(parse_stat("4242 node S 1 2 3 4 5 6 7 8 9 10 11 12 13").is_err());
        let garbled = LINE.replace(" 1234 ", " x ");
        assert!(parse_stat(&garbled).is_err());
    }

    #[test]
    fn this_process_reads_and_its_cpu_time_grows_while_it_works() {
        let pid = std::process::id();
        let before = Sample::read(pid).expect("/proc/self/stat");
        let give_up = std::time::Instant::now() + Duration::from_secs(20);
        let mut spin = 0_u64;
        // Busy until the kernel has charged two ticks, however loaded the
        // machine is: no wall-clock bound on CPU time.
        loop {
            for _ in 0..100_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
            let now = Sample::read(pid).expect("/proc/self/stat");
            if now.ticks >= before.ticks + 2 {
                assert!(now.since(before) >= ticks_to_duration(2));
                return;
            }
            assert!(std::time::Instant::now() < give_up, "no CPU time charged");
        }
    }

    #[test]
    fn ticks_convert_at_the_reported_rate() {
        let per_second = ticks_per_second();
        assert_eq!(ticks_to_duration(per_second), Duration::from_secs(1));
        assert_eq!(
            Sample::resolution_per_request(10_000),
            Duration::from_secs(1) / u32::try_from(per_second * 10_000).unwrap()
        );
    }
}
