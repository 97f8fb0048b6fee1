//! Login throttling: too many failed logins for one account, or from one client address,
//! within a window answer "too many requests" until the window ends.
//!
//! Counted in this process's memory: with several API processes each keeps its own count, so
//! the effective limit is per process (documented in the README).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::ServiceError;

/// Above this many tracked keys, expired ones are pruned on the next failure.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    started: Instant,
}

pub struct LoginThrottle {
    per_account: u32,
    per_address: u32,
    window: Duration,
    windows: Mutex<HashMap<String, Window>>,
}

impl LoginThrottle {
    pub fn new(per_account: u32, per_address: u32, window: Duration) -> Self {
        LoginThrottle {
            per_account,
            per_address,
            window,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn keys(account: &str, address: Option<&str>) -> (String, Option<String>) {
        (
            format!("account:{}", account.trim().to_lowercase()),
            address.map(|address| format!("address:{address}")),
        )
    }

    /// Counts an attempt up front (so parallel guesses cannot all pass before the first
    /// failure is recorded) and refuses with `TooManyRequests` while the account or the
    /// address is over its limit. A successful login calls [`Self::record_success`].
    pub fn attempt(&self, account: &str, address: Option<&str>) -> Result<(), ServiceError> {
        self.check(account, address)?;
        self.record_failure(account, address);
        Ok(())
    }

    /// Refuses with `TooManyRequests` while the account or the address is over its limit.
    pub fn check(&self, account: &str, address: Option<&str>) -> Result<(), ServiceError> {
        let (account_key, address_key) = Self::keys(account, address);
        let windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        for (key, limit) in [
            (Some(account_key), self.per_account),
            (address_key, self.per_address),
        ] {
            if let Some(window) = key.and_then(|key| windows.get(&key).copied())
                && window.failures >= limit
            {
                let ends = window.started + self.window;
                if ends > now {
                    wait = wait.max(ends - now);
                }
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(ServiceError::TooManyRequests {
                retry_after_secs: wait.as_secs().max(1),
            })
        }
    }

    pub fn record_failure(&self, account: &str, address: Option<&str>) {
        let (account_key, address_key) = Self::keys(account, address);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        if windows.len() > PRUNE_ABOVE {
            let length = self.window;
            windows.retain(|_, window| window.started + length > now);
        }
        for key in [Some(account_key), address_key].into_iter().flatten() {
            let window = windows.entry(key).or_insert(Window {
                failures: 0,
                started: now,
            });
            if window.started + self.window <= now {
                *window = Window {
                    failures: 0,
                    started: now,
                };
            }
            window.failures += 1;
        }
    }

    /// A successful login clears the account's count and takes back the address's count
    /// for this attempt.
    pub fn record_success(&self, account: &str, address: Option<&str>) {
        let (account_key, address_key) = Self::keys(account, address);
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        windows.remove(&account_key);
        if let Some(window) = address_key.and_then(|key| windows.get_mut(&key)) {
            window.failures = window.failures.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_account_and_per_address() {
        let throttle = LoginThrottle::new(2, 3, Duration::from_secs(60));
        throttle.check("Ann", Some("1.2.3.4")).unwrap();
        throttle.record_failure("Ann", Some("1.2.3.4"));
        throttle.record_failure("ann", Some("1.2.3.4"));
        match throttle.check("ANN", Some("5.6.7.8")) {
            Err(ServiceError::TooManyRequests { retry_after_secs }) => {
                assert!((1..=60).contains(&retry_after_secs))
            }
            other => panic!("expected 429, got {other:?}"),
        }
        // Another account from the same address still has one attempt left there.
        throttle.check("bob", Some("1.2.3.4")).unwrap();
        throttle.record_failure("bob", Some("1.2.3.4"));
        assert!(throttle.check("carol", Some("1.2.3.4")).is_err());
        assert!(throttle.check("carol", Some("9.9.9.9")).is_ok());
    }

    #[test]
    fn the_window_ends() {
        let throttle = LoginThrottle::new(1, 100, Duration::from_millis(30));
        throttle.record_failure("ann", None);
        assert!(throttle.check("ann", None).is_err());
        std::thread::sleep(Duration::from_millis(40));
        assert!(throttle.check("ann", None).is_ok());
    }
}

#[cfg(test)]
mod attempt_tests {
    use super::*;

    #[test]
    fn attempts_are_counted_before_the_outcome_is_known() {
        let throttle = LoginThrottle::new(3, 100, Duration::from_secs(60));
        // Three guesses in flight at once: the fourth is refused before any of them finish.
        for _ in 0..3 {
            throttle.attempt("ann", Some("1.1.1.1")).unwrap();
        }
        assert!(throttle.attempt("ann", Some("1.1.1.1")).is_err());
        throttle.record_success("ann", Some("1.1.1.1"));
        assert!(throttle.attempt("ann", Some("1.1.1.1")).is_ok());
    }
}
