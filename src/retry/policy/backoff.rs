//! Full-jitter exponential backoff.

use std::time::Duration;

/// The cap of retry `n`'s random delay: `min(max_delay, base·2ⁿ)`, computed without overflow.
///
/// `2ⁿ` saturates at `u32::MAX` and the product saturates at `max_delay`, so any `n`, however
/// large, gives `max_delay` rather than a panic.
pub(crate) fn cap(base: Duration, max_delay: Duration, n: u32) -> Duration {
    base.checked_mul(2u32.saturating_pow(n))
        .map_or(max_delay, |d| d.min(max_delay))
}

/// A uniformly random duration in `[0, cap]` ("full jitter"), with nanosecond resolution.
/// Caps beyond `u64::MAX` nanoseconds (584 years) are treated as that.
pub(crate) fn full_jitter(rng: &mut fastrand::Rng, cap: Duration) -> Duration {
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.u64(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_doubles_then_saturates() {
        let b = Duration::from_millis(500);
        let m = Duration::from_secs(8);
        let caps: Vec<_> = (0..7).map(|n| cap(b, m, n).as_millis()).collect();
        assert_eq!(caps, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(cap(b, m, u32::MAX), m);
        assert_eq!(cap(Duration::MAX, Duration::MAX, 40), Duration::MAX);
        assert_eq!(cap(Duration::ZERO, m, 3), Duration::ZERO);
        assert_eq!(
            cap(b, Duration::from_millis(100), 0),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn jitter_stays_in_range() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..1000 {
            assert!(full_jitter(&mut rng, Duration::from_millis(3)) <= Duration::from_millis(3));
        }
        assert_eq!(full_jitter(&mut rng, Duration::ZERO), Duration::ZERO);
        let _ = full_jitter(&mut rng, Duration::MAX);
    }
}
