//! The privacy scan: looks for forbidden byte strings in every file under a folder, both as
//! stored and inside ClickHouse's compressed column blocks (LZ4), where a plain byte search
//! would see nothing. A positive control (a value known to be stored) proves the scan can see
//! into the files at all.

use std::path::{Path, PathBuf};

/// A byte string that must not be found, with a description for the failure message.
pub struct Needle {
    pub what: String,
    pub bytes: Vec<u8>,
}

/// The text and binary forms of an IP address: text, 4-byte big- and little-endian (IPv4),
/// 16-byte (IPv6, and IPv4 mapped into IPv6).
pub fn ip_needles(ip: std::net::IpAddr) -> Vec<Needle> {
    let mut needles = vec![Needle { what: format!("{ip} as text"), bytes: ip.to_string().into_bytes() }];
    match ip {
        std::net::IpAddr::V4(v4) => {
            let be = v4.octets();
            let mut le = be;
            le.reverse();
            needles.push(Needle { what: format!("{ip} as 4 bytes, big-endian"), bytes: be.to_vec() });
            needles.push(Needle { what: format!("{ip} as 4 bytes, little-endian"), bytes: le.to_vec() });
            needles.push(Needle { what: format!("{ip} as 16 bytes"), bytes: v4.to_ipv6_mapped().octets().to_vec() });
        }
        std::net::IpAddr::V6(v6) => {
            needles.push(Needle { what: format!("{ip} as 16 bytes"), bytes: v6.octets().to_vec() });
        }
    }
    needles
}

pub fn text_needle(what: &str, value: &str) -> Needle {
    Needle { what: format!("{what} {value:?}"), bytes: value.as_bytes().to_vec() }
}

/// Every readable file below `root`.
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

/// The file's bytes followed by the decompressed contents of any ClickHouse compressed blocks.
pub fn readable_contents(path: &Path) -> Vec<u8> {
    let Ok(raw) = std::fs::read(path) else { return Vec::new() };
    let mut out = decompress_blocks(&raw);
    out.extend_from_slice(&raw);
    out
}

/// ClickHouse's compressed file format: blocks of 16-byte checksum, 1-byte method, 4-byte
/// compressed size (with the 9-byte header), 4-byte decompressed size, payload. Stops at the
/// first thing that is not such a block.
fn decompress_blocks(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    while raw.len() >= pos + 25 {
        let header = &raw[pos + 16..pos + 25];
        let method = header[0];
        let compressed = u32::from_le_bytes(header[1..5].try_into().unwrap()) as usize;
        let decompressed = u32::from_le_bytes(header[5..9].try_into().unwrap()) as usize;
        if compressed < 9 || pos + 16 + compressed > raw.len() || decompressed > 256 << 20 {
            break;
        }
        let payload = &raw[pos + 25..pos + 16 + compressed];
        match method {
            0x82 => match lz4_flex::block::decompress(payload, decompressed) {
                Ok(data) => out.extend_from_slice(&data),
                Err(_) => break,
            },
            0x02 => out.extend_from_slice(payload),
            _ => break,
        }
        pos += 16 + compressed;
    }
    out
}

/// Where each needle was found: `(needle description, file)`.
pub fn find(files: &[PathBuf], needles: &[Needle]) -> Vec<(String, PathBuf)> {
    let mut hits = Vec::new();
    for file in files {
        let contents = readable_contents(file);
        for needle in needles {
            if contains(&contents, &needle.bytes) {
                hits.push((needle.what.clone(), file.clone()));
            }
        }
    }
    hits
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_into_lz4_blocks() {
        let data = b"path=/secret/needle-value-123 and more text to compress compress compress".repeat(20);
        let compressed = lz4_flex::block::compress(&data);
        let mut file = vec![0u8; 16];
        file.push(0x82);
        file.extend_from_slice(&((compressed.len() + 9) as u32).to_le_bytes());
        file.extend_from_slice(&(data.len() as u32).to_le_bytes());
        file.extend_from_slice(&compressed);
        assert!(contains(&decompress_blocks(&file), b"needle-value-123"));
    }

    #[test]
    fn ip_needles_cover_binary_forms() {
        let needles = ip_needles("192.0.2.1".parse().unwrap());
        assert!(needles.iter().any(|n| n.bytes == [192, 0, 2, 1]));
        assert!(needles.iter().any(|n| n.bytes == [1, 2, 0, 192]));
        assert!(needles.iter().any(|n| n.bytes.len() == 16));
    }
}
