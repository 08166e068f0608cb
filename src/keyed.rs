//! Household-keyed state held compactly: one allocation per household.
//!
//! The national case is 23M households on one modest machine, so what a
//! stage keeps per household is one byte string: the household id followed
//! by the stage's own encoding of its state (varints, see [`varint`]). The
//! set is keyed by the id inside the record, so the id is stored once, with
//! no key allocation of its own and no padding.
//!
//! ```
//! use sagak::keyed::{Record, Records};
//!
//! let mut set = Records::default();
//! set.insert(Record::new("hh-1", &[7, 8]));
//! let held = set.get("hh-1").map(|r| r.payload());
//! assert_eq!(held, Some(&[7u8, 8][..]));
//! ```

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use crate::hash::FastState;

/// One household's state: `[id length][id][payload]`. Two records are
/// equal when their ids are (a set holds one per household).
#[derive(Clone)]
pub struct Record(Box<[u8]>);

/// The records of one stage, looked up by household id (`set.get(id)`).
pub type Records = HashSet<Record, FastState>;

impl Record {
    /// A record for household `id` (at most 255 bytes; the decoder allows
    /// 64) holding `payload`.
    pub fn new(id: &str, payload: &[u8]) -> Self {
        let id = &id.as_bytes()[..id.len().min(usize::from(u8::MAX))];
        let mut bytes = Vec::with_capacity(1 + id.len() + payload.len());
        bytes.push(id.len() as u8);
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(payload);
        Record(bytes.into_boxed_slice())
    }

    /// The household id.
    pub fn id(&self) -> &str {
        let end = 1 + usize::from(self.0[0]);
        // Built only from a `&str` cut at a length the decoder guarantees
        // is a character boundary (ids are ASCII); checked, not assumed.
        std::str::from_utf8(&self.0[1..end]).unwrap_or_default()
    }

    /// The stage's encoding of the household's state.
    pub fn payload(&self) -> &[u8] {
        &self.0[1 + usize::from(self.0[0])..]
    }

    /// Bytes held on the heap for this record.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true: a record holds at least its id's length.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("id", &self.id())
            .field("payload", &self.payload())
            .finish()
    }
}

// Hash and equality are the id's, so a `&str` finds its record.
impl PartialEq for Record {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl Eq for Record {}

impl Hash for Record {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state)
    }
}

impl Borrow<str> for Record {
    fn borrow(&self) -> &str {
        self.id()
    }
}

/// LEB128 varints: small numbers (counts, deltas, symbol ids) take one
/// byte, a millisecond timestamp six.
pub mod varint {
    /// Appends `v`, 7 bits a byte, low bits first.
    pub fn put_u64(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Appends `v` zigzag-coded, so small negative numbers stay short.
    pub fn put_i64(out: &mut Vec<u8>, v: i64) {
        put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
    }

    /// Reads a value written by [`put_u64`] and advances `input`; `None`
    /// when the bytes end first.
    pub fn get_u64(input: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for (i, &b) in input.iter().enumerate().take(10) {
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                *input = &input[i + 1..];
                return Some(v);
            }
        }
        None
    }

    /// Reads a value written by [`put_i64`].
    pub fn get_i64(input: &mut &[u8]) -> Option<i64> {
        get_u64(input).map(|u| ((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads `n` raw bytes.
    pub fn get_bytes<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (input.get(..n)?, input.get(n..)?);
        *input = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::varint::*;
    use super::*;

    #[test]
    fn varints_read_back_what_was_written_at_every_width() {
        let values = [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            1 << 20,
            -(1 << 40),
            i64::MAX,
            i64::MIN,
        ];
        let mut buf = Vec::new();
        for v in values {
            put_i64(&mut buf, v);
            put_u64(&mut buf, v as u64);
        }
        let mut input = &buf[..];
        for v in values {
            assert_eq!(get_i64(&mut input), Some(v));
            assert_eq!(get_u64(&mut input), Some(v as u64));
        }
        assert!(input.is_empty());
        // a truncated value is reported, not misread
        assert_eq!(get_u64(&mut &[0x80u8, 0x80][..]), None);
    }

    #[test]
    fn records_are_found_by_id_and_keep_their_payload() {
        let mut set = Records::default();
        set.insert(Record::new("hh-1", b"one"));
        set.insert(Record::new("hh-2", b""));
        // replacing a household's state keeps one record per id
        set.replace(Record::new("hh-1", b"uno"));
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("hh-1").map(Record::payload), Some(&b"uno"[..]));
        assert_eq!(set.get("hh-2").map(Record::id), Some("hh-2"));
        assert!(!set.contains("hh-3"));
    }
}
