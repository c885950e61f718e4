//! Keyed BLAKE3 pseudonyms (docs/privacy-model.md section 2). Pure functions: the collector
//! computes them on ingest, the aggregator recomputes them for data-subject requests.
//!
//! Each kind of pseudonym has its own key, derived with its own `blake3::derive_key` context,
//! so a pseudonym of one kind can never be matched with one of another kind. Messages are
//! length-prefixed so that no two different inputs share an encoding.

use std::net::IpAddr;

const VISITOR_CONTEXT: &str = "webstats 2026-11-24 visitor id (site, ip, user-agent) v1";
const IP_CONTEXT: &str = "webstats 2026-11-24 ip pseudonym v1";
const COOKIE_CONTEXT: &str = "webstats 2026-11-24 cookie pseudonym (site, cookie) v1";

/// The keys derived from one rotation period's salt. Dropping them forgets the period.
#[derive(Clone)]
pub struct SaltKeys {
    visitor: [u8; 32],
    ip: [u8; 32],
}

impl SaltKeys {
    pub fn derive(salt: &[u8; 32]) -> Self {
        Self { visitor: blake3::derive_key(VISITOR_CONTEXT, salt), ip: blake3::derive_key(IP_CONTEXT, salt) }
    }

    /// Cookieless visitor id: the same (site, IP, User-Agent) within one period.
    pub fn visitor_id(&self, site: &str, ip: IpAddr, user_agent: &str) -> u64 {
        let mut hasher = blake3::Hasher::new_keyed(&self.visitor);
        put_field(&mut hasher, site.as_bytes());
        put_field(&mut hasher, &ip_bytes(ip));
        put_field(&mut hasher, user_agent.as_bytes());
        truncate(hasher.finalize())
    }

    /// IP pseudonym for troubleshooting: counts distinct addresses without showing them.
    pub fn ip_id(&self, ip: IpAddr) -> u64 {
        truncate(blake3::keyed_hash(&self.ip, &ip_bytes(ip)))
    }
}

impl std::fmt::Debug for SaltKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaltKeys(<redacted>)")
    }
}

/// The long-lived key behind cookie pseudonyms.
#[derive(Clone)]
pub struct CookieKey([u8; 32]);

/// Secret material shorter than this is refused: it could be guessed.
pub const MIN_COOKIE_KEY_BYTES: usize = 32;

impl CookieKey {
    /// Derives the key from secret material (a file's or a variable's contents).
    pub fn from_material(material: &[u8]) -> Option<Self> {
        (material.len() >= MIN_COOKIE_KEY_BYTES).then(|| Self(blake3::derive_key(COOKIE_CONTEXT, material)))
    }

    /// Links one browser's visits to one site across days; what data-subject requests find.
    pub fn cookie_id(&self, site: &str, cookie: &str) -> u64 {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        put_field(&mut hasher, site.as_bytes());
        put_field(&mut hasher, cookie.as_bytes());
        truncate(hasher.finalize())
    }
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey(<redacted>)")
    }
}

/// Longest User-Agent the collector parses, stores and hashes; real ones are far shorter.
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// The part of a User-Agent that is used: the first [`MAX_USER_AGENT_BYTES`], cut on a
/// character boundary. The collector hashes this and the aggregator recomputes visitor ids
/// from it, so both must cut the same way.
pub fn user_agent_prefix(user_agent: &str) -> &str {
    &user_agent[..user_agent.floor_char_boundary(MAX_USER_AGENT_BYTES)]
}

/// The network an address belongs to, e.g. `203.0.113.0/24`: kept instead of the address.
pub fn network_prefix(ip: IpAddr, ipv4_len: u8, ipv6_len: u8) -> String {
    network(ip, ipv4_len, ipv6_len).to_string()
}

/// The network of `ip` (IPv4-mapped addresses as IPv4) with the given prefix lengths, which
/// are clamped to the address family's.
pub fn network(ip: IpAddr, ipv4_len: u8, ipv6_len: u8) -> ipnet::IpNet {
    let ip = canonical(ip);
    let len = match ip {
        IpAddr::V4(_) => ipv4_len.min(32),
        IpAddr::V6(_) => ipv6_len.min(128),
    };
    ipnet::IpNet::new(ip, len).expect("a clamped prefix length is valid").trunc()
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`, seen on dual-stack sockets) are IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn put_field(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

fn truncate(hash: blake3::Hash) -> u64 {
    let bytes = hash.as_bytes();
    u64::from_le_bytes(bytes[..8].try_into().expect("a BLAKE3 hash has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn visitor_id_is_stable_within_a_salt_and_changes_across_salts() {
        let today = SaltKeys::derive(&[1; 32]);
        let tomorrow = SaltKeys::derive(&[2; 32]);
        let a = today.visitor_id("s", ip("192.0.2.1"), "UA");
        assert_eq!(a, today.visitor_id("s", ip("192.0.2.1"), "UA"));
        assert_ne!(a, tomorrow.visitor_id("s", ip("192.0.2.1"), "UA"));
        assert_ne!(a, today.visitor_id("t", ip("192.0.2.1"), "UA"));
        assert_ne!(a, today.visitor_id("s", ip("192.0.2.2"), "UA"));
    }

    #[test]
    fn kinds_of_pseudonym_are_domain_separated() {
        let keys = SaltKeys::derive(&[7; 32]);
        let cookie = CookieKey::from_material(&[7; 32]).unwrap();
        let addr = ip("192.0.2.1");
        assert_ne!(keys.ip_id(addr), keys.visitor_id("", addr, ""));
        assert_ne!(cookie.cookie_id("s", "x"), keys.visitor_id("s", addr, "x"));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let keys = SaltKeys::derive(&[3; 32]);
        let addr = ip("192.0.2.1");
        assert_ne!(keys.visitor_id("ab", addr, "c"), keys.visitor_id("a", addr, "bc"));
    }

    #[test]
    fn mapped_ipv4_is_the_same_address() {
        let keys = SaltKeys::derive(&[5; 32]);
        assert_eq!(keys.ip_id(ip("::ffff:192.0.2.1")), keys.ip_id(ip("192.0.2.1")));
        assert_eq!(network_prefix(ip("::ffff:192.0.2.77"), 24, 48), "192.0.2.0/24");
    }

    #[test]
    fn network_prefix_masks_host_bits() {
        assert_eq!(network_prefix(ip("203.0.113.200"), 24, 48), "203.0.113.0/24");
        assert_eq!(network_prefix(ip("2001:db8:abcd:12::1"), 24, 48), "2001:db8:abcd::/48");
        assert_eq!(network_prefix(ip("203.0.113.200"), 0, 0), "0.0.0.0/0");
    }

    #[test]
    fn user_agents_are_cut_on_a_character_boundary() {
        assert_eq!(user_agent_prefix("short"), "short");
        let long = "я".repeat(300); // 600 bytes
        let cut = user_agent_prefix(&long);
        assert_eq!(cut.len(), 512);
        assert!(cut.chars().all(|c| c == 'я'));
    }

    #[test]
    fn short_cookie_key_material_is_refused() {
        assert!(CookieKey::from_material(b"short").is_none());
    }
}
