//! The real-mode clock: one monotonic time base for the whole process, so
//! the data plane, its port backends and their deadlines agree on what
//! "now" is (a backend that keeps its own clock would ask to be woken at
//! a time the loop reads differently).

use std::sync::OnceLock;
use switchyard_switch::time::Instant;

/// The process's time base: when it first asked, and the system's
/// monotonic clock (time since boot) at that moment, in ns.
static START: OnceLock<(std::time::Instant, u64)> = OnceLock::new();

#[allow(clippy::disallowed_methods)] // real mode: the system's monotonic clock is the time base
fn start() -> &'static (std::time::Instant, u64) {
    START.get_or_init(|| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        let boot_ns = (ts.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(ts.tv_nsec as u64);
        (std::time::Instant::now(), boot_ns)
    })
}

/// Nanoseconds since this process first asked, as the core's [`Instant`].
pub fn now() -> Instant {
    Instant::from_nanos(u64::try_from(start().0.elapsed().as_nanos()).unwrap_or(u64::MAX))
}

/// Milliseconds since boot at the time [`now`] counts from, truncated to
/// 32 bits: a base for values that must keep growing across restarts of
/// the daemon (TCP timestamps), which [`now`] alone restarts at zero.
pub fn boot_millis_at_start() -> u32 {
    (start().1 / 1_000_000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_never_goes_backwards() {
        let a = now();
        let b = now();
        assert!(b >= a);
    }
}
