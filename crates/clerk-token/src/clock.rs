//! Time as the token code sees it: unix seconds from a [`Clock`].
//! Tests use a [`FixedClock`] so `iat`/`nbf`/`exp` and expiry checks are exact, not racy.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of "now" in whole unix seconds (JWT NumericDate precision).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Seconds since the unix epoch; negative before 1970.
    fn now(&self) -> i64;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> i64 {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> i64 {
        (**self).now()
    }
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        // A clock set before 1970 is a broken machine, but it must not panic a verifier.
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
        }
    }
}

/// A clock that only moves when told to.
///
/// Clones share the same time, so a test can hand one clone to a [`crate::ClerkTemplate`] and a
/// [`crate::Verifier`] and move both with [`FixedClock::advance`].
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<AtomicI64>);

impl FixedClock {
    /// A clock stopped at `unix_secs`.
    pub fn new(unix_secs: i64) -> Self {
        Self(Arc::new(AtomicI64::new(unix_secs)))
    }

    /// A clock stopped at the current system time.
    pub fn at_system_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Sets the time (for every clone).
    pub fn set(&self, unix_secs: i64) {
        self.0.store(unix_secs, Ordering::SeqCst);
    }

    /// Moves the time by `secs` (negative goes back) and returns the new time.
    pub fn advance(&self, secs: i64) -> i64 {
        // fetch_add wraps; saturate instead so an absurd advance cannot flip the sign.
        let mut current = self.0.load(Ordering::SeqCst);
        loop {
            let next = current.saturating_add(secs);
            match self
                .0
                .compare_exchange(current, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(actual) => current = actual,
            }
        }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a panic is how a test reports failure
mod tests {
    use super::*;

    #[test]
    fn fixed_clock_clones_share_time() {
        let a = FixedClock::new(100);
        let b = a.clone();
        assert_eq!(a.advance(5), 105);
        assert_eq!(b.now(), 105);
        b.set(7);
        assert_eq!(a.now(), 7);
        assert_eq!(a.advance(-10), -3);
    }

    #[test]
    fn advance_saturates() {
        let c = FixedClock::new(i64::MAX - 1);
        assert_eq!(c.advance(10), i64::MAX);
    }

    #[test]
    fn system_clock_is_after_2024() {
        assert!(SystemClock.now() > 1_700_000_000);
        let shared: Arc<dyn Clock> = Arc::new(SystemClock);
        assert!(shared.now() > 1_700_000_000);
    }
}
