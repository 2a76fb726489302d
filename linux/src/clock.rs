//! The real-mode clock: one monotonic time base for the whole process, so
//! the data plane, its port backends and their deadlines agree on what
//! "now" is (a backend that keeps its own clock would ask to be woken at
//! a time the loop reads differently).

use std::sync::OnceLock;
use switchyard_switch::time::Instant;

static START: OnceLock<std::time::Instant> = OnceLock::new();

/// Nanoseconds since this process first asked, as the core's [`Instant`].
#[allow(clippy::disallowed_methods)] // real mode: the system's monotonic clock is the time base
pub fn now() -> Instant {
    let start = START.get_or_init(std::time::Instant::now);
    Instant::from_nanos(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX))
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
