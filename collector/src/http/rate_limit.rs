//! Beacons per second per network prefix (GCRA, from `governor`): one noisy network cannot
//! crowd out the others. Keys are the same prefixes the troubleshooting store keeps (a /24 or
//! a /48), held in memory only and forgotten once idle.

use std::{net::IpAddr, num::NonZeroU32};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use store::pseudonym::network;

use crate::config::RateLimitConfig;

pub struct RateLimit {
    /// `None` when the limit is off.
    limiter: Option<DefaultKeyedRateLimiter<u128>>,
    ipv4_prefix_len: u8,
    ipv6_prefix_len: u8,
}

impl RateLimit {
    pub fn new(config: &RateLimitConfig, ipv4_prefix_len: u8, ipv6_prefix_len: u8) -> Self {
        let limiter = NonZeroU32::new(config.beacons_per_second).map(|rate| {
            let burst = NonZeroU32::new(config.burst).unwrap_or(rate);
            RateLimiter::dashmap(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter, ipv4_prefix_len, ipv6_prefix_len }
    }

    /// Whether a beacon from `ip` is within its prefix's rate; counts it if so.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.limiter.as_ref().is_none_or(|limiter| limiter.check_key(&self.key(ip)).is_ok())
    }

    /// Drops prefixes whose budget is full again: they behave as if never seen.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// The prefix as a number; IPv4 networks live in the IPv4-mapped range.
    fn key(&self, ip: IpAddr) -> u128 {
        match network(ip, self.ipv4_prefix_len, self.ipv6_prefix_len).network() {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: u32, burst: u32) -> RateLimit {
        RateLimit::new(&RateLimitConfig { beacons_per_second: rate, burst }, 24, 48)
    }

    #[test]
    fn limits_a_prefix_not_its_neighbours() {
        let l = limit(1, 3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!((0..3).all(|i| l.admits(ip(&format!("203.0.113.{i}")))));
        assert!(!l.admits(ip("203.0.113.200")), "the /24 has spent its burst");
        assert!(l.admits(ip("203.0.114.1")), "another /24 has its own budget");
        assert!(l.admits(ip("2001:db8:1::1")));
        assert!(l.admits(ip("::ffff:198.51.100.1")));
    }

    #[test]
    fn zero_turns_it_off() {
        let l = limit(0, 0);
        assert!((0..10_000).all(|_| l.admits("203.0.113.1".parse().unwrap())));
    }

    #[test]
    fn mapped_and_plain_ipv4_share_a_budget() {
        let l = limit(1, 1);
        assert!(l.admits("203.0.113.1".parse().unwrap()));
        assert!(!l.admits("::ffff:203.0.113.9".parse().unwrap()));
    }
}
