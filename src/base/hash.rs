//! Stable FNV-1a hashes for ids and checksums that must not change between
//! Rust versions or runs (std's hashers give no such promise).

/// FNV-1a over `parts` separated by the unit separator 0x1f, for one width.
macro_rules! fnv1a {
    ($parts:expr, $ty:ty, $offset:expr, $prime:expr) => {{
        let mut h: $ty = $offset;
        for (i, part) in $parts.iter().enumerate() {
            if i > 0 {
                h ^= 0x1f;
                h = h.wrapping_mul($prime);
            }
            for &b in part.iter() {
                h ^= <$ty>::from(b);
                h = h.wrapping_mul($prime);
            }
        }
        h
    }};
}

/// FNV-1a, 128 bit, over `parts` separated by the unit separator 0x1f.
///
/// ```
/// let a = sagak::base::hash::fnv1a128(&[b"hh-1", b"P1"]);
/// assert_eq!(a, sagak::base::hash::fnv1a128(&[b"hh-1", b"P1"]));
/// assert_ne!(a, sagak::base::hash::fnv1a128(&[b"hh-1P1"]));
/// ```
pub fn fnv1a128(parts: &[&[u8]]) -> u128 {
    fnv1a!(
        parts,
        u128,
        0x6c62272e07bb014262b821756295c58d,
        0x0000000001000000000000000000013B
    )
}

/// FNV-1a, 128 bit, fed piece by piece: `Fnv128::new().part(a).part(b)`
/// equals [`fnv1a128`] of `[a, b]`, for values read one at a time.
///
/// ```
/// use sagak::base::hash::{fnv1a128, Fnv128};
/// assert_eq!(Fnv128::new().part(b"a").part(b"bc").finish(), fnv1a128(&[b"a", b"bc"]));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Fnv128 {
    h: u128,
    parts: usize,
}

impl Default for Fnv128 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv128 {
    const PRIME: u128 = 0x0000000001000000000000000000013B;

    /// The hash of nothing yet.
    pub fn new() -> Self {
        Fnv128 {
            h: 0x6c62272e07bb014262b821756295c58d,
            parts: 0,
        }
    }

    /// Adds one part (after a unit separator when it is not the first).
    pub fn part(mut self, bytes: &[u8]) -> Self {
        if self.parts > 0 {
            self.h ^= 0x1f;
            self.h = self.h.wrapping_mul(Self::PRIME);
        }
        for &b in bytes {
            self.h ^= u128::from(b);
            self.h = self.h.wrapping_mul(Self::PRIME);
        }
        self.parts += 1;
        self
    }

    /// The hash.
    pub fn finish(self) -> u128 {
        self.h
    }
}

/// FNV-1a, 64 bit, over `parts` separated by the unit separator 0x1f. Used
/// where a stored hash stands in for a long id (a signal's event id).
///
/// ```
/// assert_ne!(sagak::base::hash::fnv1a64(&[b"u-1"]), sagak::base::hash::fnv1a64(&[b"u-2"]));
/// ```
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    fnv1a!(parts, u64, 0xcbf29ce484222325, 0x100000001b3)
}

/// Hasher for the in-memory maps keyed by household id: foldhash, seeded
/// per process (so crafted ids cannot aim at one bucket), several times
/// faster than std's SipHash on short keys. Only for maps, never for
/// anything persisted.
pub type FastState = foldhash::fast::RandomState;

/// Kafka's murmur2 (32 bit, seed 0x9747b28c), as the Java client's default
/// partitioner and librdkafka's `murmur2_random` hash a message key: the
/// partition of a key is `(murmur2(key) & 0x7fffffff) % partitions`.
///
/// ```
/// // a case of Kafka's own tests
/// assert_eq!(sagak::base::hash::murmur2(b"21") as i32, -973932308);
/// ```
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod murmur_tests {
    use super::murmur2;

    /// The cases of Kafka's `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_kafka() {
        for (key, want) in [
            (&b"21"[..], -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"a-little-bit-longer-string", -1486304829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58897971,
            ),
            (b"abc", 479470107),
        ] {
            assert_eq!(
                murmur2(key) as i32,
                want,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }
}
