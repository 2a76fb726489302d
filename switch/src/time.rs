//! Time as a value. The switch core never reads a clock: callers pass `now`
//! in, real mode from the monotonic clock, the simulator from virtual time
//! (docs/ARCHITECTURE.md, "One clock, one RNG, injected").

use core::time::Duration;
use serde::{Deserialize, Serialize};

/// A point in time, in nanoseconds since an arbitrary epoch chosen by the
/// caller (process start in real mode, zero in the simulator).
///
/// It only ever moves forward; subtracting a later instant saturates to zero
/// rather than panicking, so a clock hiccup can never crash the data plane.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Instant(u64);

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant(0);

    /// An instant `nanos` nanoseconds after the epoch.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// An instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000_000))
    }

    /// An instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(1_000_000_000))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

impl core::fmt::Display for Instant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let secs = self.0 / 1_000_000_000;
        let nanos = self.0 % 1_000_000_000;
        write!(f, "{secs}.{nanos:09}s")
    }
}

/// A source of time, so code above the core (controller, drivers, DNS
/// forwarding) can be handed the system clock or the simulator's.
pub trait Clock {
    /// The current instant. Must never go backwards.
    fn now(&self) -> Instant;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtraction_saturates_instead_of_panicking() {
        let a = Instant::from_secs(1);
        let b = Instant::from_secs(2);
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert_eq!(b.saturating_duration_since(a), Duration::from_secs(1));
    }

    #[test]
    fn display_shows_seconds_with_nanosecond_precision() {
        assert_eq!(
            Instant::from_nanos(1_500_000_000).to_string(),
            "1.500000000s"
        );
    }
}
