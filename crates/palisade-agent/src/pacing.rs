//! How often the agent syncs: kube-proxy's `BoundedFrequencyRunner` shape, a token bucket.
//! A change arriving after a quiet spell is synced at once; a sustained stream of changes is
//! synced at most once per `min_interval`, each sync taking every change that arrived
//! meanwhile. The bucket holds `burst` tokens (kube-proxy uses 2): without the second one,
//! a change arriving just after a sync would wait out the interval although nothing else
//! was queued.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Pacer {
    min_interval: Duration,
    burst: u32,
    tokens: f64,
    refilled_at: Option<Instant>,
}

impl Pacer {
    pub fn new(min_interval: Duration, burst: u32) -> Self {
        Self { min_interval, burst: burst.max(1), tokens: f64::from(burst.max(1)), refilled_at: None }
    }

    fn refill(&mut self, now: Instant) {
        if let Some(at) = self.refilled_at
            && !self.min_interval.is_zero()
        {
            let earned = now.saturating_duration_since(at).as_secs_f64() / self.min_interval.as_secs_f64();
            self.tokens = (self.tokens + earned).min(f64::from(self.burst));
        } else {
            self.tokens = f64::from(self.burst);
        }
        self.refilled_at = Some(now);
    }

    /// How long to wait, from `now`, before the next sync may start (zero: at once).
    pub fn delay(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 { Duration::ZERO } else { self.min_interval.mul_f64(1.0 - self.tokens) }
    }

    /// A sync starts at `now` (after waiting out `delay`).
    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_change_after_a_quiet_spell_goes_at_once() {
        let mut pacer = Pacer::new(10 * MS, 2);
        let t = Instant::now();
        assert_eq!(pacer.delay(t), Duration::ZERO);
        pacer.take(t);
        // Right after a sync, the second token: no wait.
        assert_eq!(pacer.delay(t + 2 * MS), Duration::ZERO);
        pacer.take(t + 2 * MS);
        // Less than a token left (0.2 after the second sync, 0.2 earned since): wait for the
        // rest of one.
        let wait = pacer.delay(t + 4 * MS);
        assert!(wait.abs_diff(6 * MS) < Duration::from_micros(1), "{wait:?}");
        pacer.take(t + 12 * MS);
        // A quiet spell refills it.
        assert_eq!(pacer.delay(t + 100 * MS), Duration::ZERO);
    }

    #[test]
    fn a_stream_of_changes_is_synced_at_most_once_per_interval() {
        let mut pacer = Pacer::new(10 * MS, 2);
        let mut now = Instant::now();
        let start = now;
        let mut syncs = 0;
        // Changes arriving every millisecond for a second; each sync waits as told.
        while now < start + Duration::from_secs(1) {
            now += pacer.delay(now);
            pacer.take(now);
            syncs += 1;
            now += MS;
        }
        // 100 per second plus the burst.
        assert!((100..=103).contains(&syncs), "{syncs} syncs");
    }

    #[test]
    fn no_interval_means_no_wait() {
        let mut pacer = Pacer::new(Duration::ZERO, 2);
        let t = Instant::now();
        for _ in 0..10 {
            assert_eq!(pacer.delay(t), Duration::ZERO);
            pacer.take(t);
        }
    }
}
