//! GeoIP answers cached by network prefix are the databases' own answers: the real MMDB files
//! `scripts/geoip.sh` fetches into `WEBSTATS_TEST_GEOIP_DIR` (default `.work/geoip`), looked up
//! address by address in a cold `GeoDb` and, after a neighbour, in a warm one.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    sync::Arc,
};

use beacon::GeoDb;

fn open() -> GeoDb {
    let dir = std::env::var_os("WEBSTATS_TEST_GEOIP_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.work/geoip"));
    let (country, asn) = (dir.join("country.mmdb"), dir.join("asn.mmdb"));
    GeoDb::open(Some(&country), Some(&asn)).unwrap_or_else(|e| panic!("{e}; run scripts/geoip.sh"))
}

/// IPv4 /24s spread over the whole space.
fn networks() -> Vec<[u8; 3]> {
    (0..6_000u32).map(|k| [(k % 223 + 1) as u8, (k * 37 + 11) as u8, (k / 7 * 101 + 3) as u8]).collect()
}

const HOSTS: [u8; 5] = [1, 63, 128, 200, 255];

#[test]
fn a_cached_answer_is_the_one_the_databases_give_for_that_address() {
    let warm = open();
    // One cold database per host position: each address there is its network's first lookup.
    let cold: Vec<GeoDb> = HOSTS.iter().map(|_| open()).collect();
    let (mut cached, mut located) = (0, 0);
    for [a, b, c] in networks() {
        let first = warm.lookup(Ipv4Addr::new(a, b, c, HOSTS[0]).into());
        for (host, cold) in HOSTS.iter().zip(&cold) {
            let ip = IpAddr::from(Ipv4Addr::new(a, b, c, *host));
            let answer = warm.lookup(ip);
            assert_eq!(*answer, *cold.lookup(ip), "{ip}");
            if *host != HOSTS[0] && Arc::ptr_eq(&answer, &first) {
                cached += 1;
            }
        }
        located += usize::from(!first.country.is_empty());
    }
    let lookups = networks().len() * (HOSTS.len() - 1);
    assert!(located > networks().len() / 2, "the databases know most networks: {located}");
    assert!(cached > lookups / 2, "most answers come from the cache: {cached} of {lookups}");
}

#[test]
fn ipv6_and_mapped_addresses_get_the_databases_answers() {
    let warm = open();
    // One cold database per lookup position, as above.
    let cold = [open(), open(), open()];
    for k in 0..2_000u16 {
        for (host, cold) in [1u16, 0xbeef].into_iter().zip(&cold) {
            let ip = IpAddr::from(Ipv6Addr::new(0x2a00 | (k & 0xf), k.wrapping_mul(7919), k, 0x1234, 0, 0, 0, host));
            assert_eq!(*warm.lookup(ip), *cold.lookup(ip), "{ip}");
        }
        // A mapped address after a plain one of its network: the same cached answer.
        warm.lookup(Ipv4Addr::new(95, (k % 256) as u8, (k / 256) as u8, 1).into());
        let v4 = Ipv4Addr::new(95, (k % 256) as u8, (k / 256) as u8, 7);
        assert_eq!(*warm.lookup(v4.to_ipv6_mapped().into()), *cold[2].lookup(v4.into()), "{v4} mapped");
    }
    let russia = warm.lookup("2a00:1fa0::1".parse().unwrap());
    assert!(!russia.country.is_empty(), "an allocated IPv6 network is located: {russia:?}");
}

/// With `privacy.ipv4_prefix_len = 16`, the cache is keyed by /16s: fewer networks are held
/// whole, and the answers stay the databases' own.
#[test]
fn a_shorter_privacy_prefix_keys_the_cache_by_it() {
    let warm = open().keyed_by(16, 32);
    let cold: Vec<GeoDb> = HOSTS.iter().map(|_| open()).collect();
    // Several /24s of each /16, each address its position's first lookup in `cold`.
    for [a, b, _] in networks().into_iter().take(1_000) {
        for (c, cold) in [3u8, 77, 150, 222].into_iter().zip(&cold) {
            let ip = IpAddr::from(Ipv4Addr::new(a, b, c, 9));
            assert_eq!(*warm.lookup(ip), *cold.lookup(ip), "{ip}");
        }
    }
}
