//! A process's CPU time as Linux counts it, for the benchmarks' figures per message.

use std::time::Duration;

/// The user and system CPU time of process `pid` (a number, or `self`) so far, from
/// `/proc/<pid>/stat`: all its threads, as the kernel counts them. `None` where there is no
/// such file (not Linux, or the process is gone).
pub fn cpu_time(pid: &str) -> Option<Duration> {
    cpu_time_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `utime + stime` of a `/proc/<pid>/stat` text. Field 2, the command name, is in parentheses
/// and may hold spaces, so the fields are counted from its closing parenthesis.
fn cpu_time_of(stat: &str) -> Option<Duration> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // After the name: state (3) … utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    let ticks_per_second = ticks_per_second()?;
    Some(Duration::from_micros(
        (utime + stime) * 1_000_000 / ticks_per_second,
    ))
}

fn ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_adds_user_and_system_ticks_whatever_the_command_name() {
        let ticks = ticks_per_second().unwrap();
        let stat = "4242 (auth check) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0";
        assert_eq!(
            cpu_time_of(stat),
            Some(Duration::from_micros(300 * 1_000_000 / ticks))
        );
        assert_eq!(cpu_time_of("garbage"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(cpu_time("self").is_some());
    }
}
