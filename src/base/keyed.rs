//! Household-keyed state held compactly: one allocation per household.
//!
//! The national case is 23M households on one modest machine, so what a
//! stage keeps per household is one byte string: the household id followed
//! by the stage's own encoding of its state (varints, see [`varint`]). The
//! set is keyed by the id inside the record, so the id is stored once, with
//! no key allocation of its own and no padding.
//!
//! ```
//! use sagak::base::keyed::{Record, Records};
//!
//! let mut set = Records::default();
//! set.put(Record::new("hh-1", &[7, 8]));
//! let held = set.get("hh-1").map(|r| r.payload());
//! assert_eq!(held, Some(&[7u8, 8][..]));
//! ```

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::ptr::NonNull;

use hashbrown::HashTable;

use crate::base::hash::FastState;

/// One household's state: `[id length][id][payload]`.
///
/// Held through a thin pointer: the table slot is 8 bytes where a
/// `Box<[u8]>` takes 16, which at 23M households and two stages is about
/// 20 bytes per household. The length of what follows leads the allocation
/// as a varint (one byte for records under 128 bytes).
pub struct Record(NonNull<u8>);

// SAFETY: a record owns its bytes exclusively, like the `Box<[u8]>` it is
// made from, and never mutates them after construction.
unsafe impl Send for Record {}
// SAFETY: shared access only reads.
unsafe impl Sync for Record {}

impl Record {
    /// A record for household `id` holding `payload`. Ids are at most 64
    /// bytes (the decoder's limit); a longer one is cut to 255 at a
    /// character boundary.
    pub fn new(id: &str, payload: &[u8]) -> Self {
        let mut end = id.len().min(usize::from(u8::MAX));
        while !id.is_char_boundary(end) {
            end -= 1;
        }
        let id = &id.as_bytes()[..end];
        let body = 1 + id.len() + payload.len();
        let mut bytes = Vec::with_capacity(varint::len_u64(body as u64) + body);
        varint::put_u64(&mut bytes, body as u64);
        bytes.push(id.len() as u8);
        bytes.extend_from_slice(id);
        bytes.extend_from_slice(payload);
        let raw = Box::into_raw(bytes.into_boxed_slice());
        // a `Box` pointer is never null
        Record(NonNull::new(raw.cast::<u8>()).unwrap_or_else(NonNull::dangling))
    }

    /// (length of the varint, length of what follows it).
    fn lengths(&self) -> (usize, usize) {
        let ptr = self.0.as_ptr();
        let (mut len, mut i) = (0usize, 0usize);
        loop {
            // SAFETY: `new` wrote a complete varint at the start of the
            // allocation, so every byte read up to its last is in bounds.
            let b = unsafe { *ptr.add(i) };
            len |= usize::from(b & 0x7f) << (7 * i);
            i += 1;
            if b < 0x80 {
                return (i, len);
            }
        }
    }

    /// `[id length][id][payload]`.
    fn body(&self) -> &[u8] {
        let (head, len) = self.lengths();
        // SAFETY: the allocation holds `head + len` initialised bytes,
        // owned by this record for as long as the borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(head), len) }
    }

    fn id_bytes(&self) -> &[u8] {
        let body = self.body();
        &body[1..1 + usize::from(body[0])]
    }

    /// The household id.
    pub(crate) fn id(&self) -> &str {
        // Only `new` writes the id, from a `&str` cut at a character
        // boundary, so this cannot fail.
        std::str::from_utf8(self.id_bytes()).unwrap_or_default()
    }

    /// The stage's encoding of the household's state.
    pub fn payload(&self) -> &[u8] {
        let body = self.body();
        &body[1 + usize::from(body[0])..]
    }

    /// Replaces the payload when `payload` has the current one's length;
    /// false (nothing changed) otherwise.
    fn overwrite(&mut self, payload: &[u8]) -> bool {
        let (head, len) = self.lengths();
        let id_len = 1 + usize::from(self.body()[0]);
        if len != id_len + payload.len() {
            return false;
        }
        // SAFETY: the allocation holds `head + len` bytes, this record owns
        // it exclusively (`&mut self`), and the range written lies within.
        let at = unsafe { self.0.as_ptr().add(head + id_len) };
        unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), at, payload.len()) };
        true
    }

    /// The whole record, `[length][id length][id][payload]`: what a
    /// snapshot stores, and what [`Record::read`] reads back.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        // SAFETY: the allocation holds exactly `len()` initialised bytes,
        // owned by this record for as long as the borrow of `self`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), self.len()) }
    }

    /// Reads the record at the front of `input` (as written by
    /// [`Record::as_bytes`]) and advances past it; `None` when `input` does
    /// not start with a whole record whose id is text.
    ///
    /// ```
    /// use sagak::base::keyed::Record;
    ///
    /// let mut bytes = Record::new("hh-1", &[7]).as_bytes().to_vec();
    /// bytes.extend_from_slice(Record::new("hh-2", &[]).as_bytes());
    /// let mut input = &bytes[..];
    /// assert_eq!(Record::read(&mut input).map(|r| r.id().to_string()).as_deref(), Some("hh-1"));
    /// assert_eq!(Record::read(&mut input).map(|r| r.payload().len()), Some(0));
    /// assert!(input.is_empty() && Record::read(&mut input).is_none());
    /// ```
    #[cfg(test)]
    pub(crate) fn read(input: &mut &[u8]) -> Option<Record> {
        let (id, payload) = Record::parse(input)?;
        Some(Record::new(id, payload))
    }

    /// [`Record::read`] without making the record: the id and payload at
    /// the front of `input`, borrowed.
    pub(crate) fn parse<'a>(input: &mut &'a [u8]) -> Option<(&'a str, &'a [u8])> {
        let len = usize::try_from(varint::get_u64(input)?).ok()?;
        let (&id_len, rest) = varint::get_bytes(input, len)?.split_first()?;
        let (id, payload) = rest.split_at_checked(usize::from(id_len))?;
        Some((std::str::from_utf8(id).ok()?, payload))
    }

    /// Bytes held on the heap for this record.
    pub(crate) fn len(&self) -> usize {
        let (head, len) = self.lengths();
        head + len
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        let len = self.len();
        let slice = std::ptr::slice_from_raw_parts_mut(self.0.as_ptr(), len);
        // SAFETY: made by `Box::into_raw` of a boxed slice of exactly `len`
        // bytes in `new`, and dropped once.
        drop(unsafe { Box::from_raw(slice) });
    }
}

impl Clone for Record {
    fn clone(&self) -> Self {
        Record::new(self.id(), self.payload())
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

/// The records of one stage, one per household id.
///
/// A lookup hashes the id's bytes once ([`Records::hash`]); a stage that
/// reads a household and writes it back in one batch passes that hash to
/// both calls.
#[derive(Default)]
pub struct Records {
    table: HashTable<Record>,
    hasher: FastState,
}

impl Records {
    /// The hash under which household `id` is held.
    pub(crate) fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id.as_bytes())
    }

    /// The record of household `id`.
    pub fn get(&self, id: &str) -> Option<&Record> {
        self.get_hashed(self.hash(id), id)
    }

    /// The record of household `id`, whose [`Records::hash`] is `hash`.
    pub(crate) fn get_hashed(&self, hash: u64, id: &str) -> Option<&Record> {
        self.table.find(hash, |r| r.id_bytes() == id.as_bytes())
    }

    /// The records whose id has the [`Records::hash`] `hash` (almost always
    /// one or none): for a stage that remembers households by their hash.
    pub(crate) fn with_hash(&self, hash: u64) -> impl Iterator<Item = &Record> + '_ {
        self.table
            .iter_hash(hash)
            .filter(move |r| self.hash(r.id()) == hash)
    }

    /// For a stage working through a batch whose households hash to
    /// `hashes` ([`Records::hash`]), called before position `at`: at every
    /// [`PREFETCH_CHUNK`]-th position, asks the memory for the table slots
    /// and records of the next chunk's households in one tight loop, so
    /// their cache misses overlap. With millions of households every lookup
    /// otherwise waits on memory twice (slot, then record), one household
    /// after the other.
    pub(crate) fn prefetch_chunk(&self, hashes: &[u64], at: usize) {
        if at.is_multiple_of(PREFETCH_CHUNK) {
            for &hash in hashes.iter().skip(at).take(PREFETCH_CHUNK) {
                self.prefetch(hash);
            }
        }
    }

    /// Asks the memory for what a lookup of the household whose hash is
    /// `hash` will read.
    fn prefetch(&self, hash: u64) {
        // The probe reads the slots, so it waits for them: probed several
        // households in a row, those waits overlap. The records
        // are only hinted, and every candidate is refused so the probe
        // touches nothing else.
        let _ = self.table.find(hash, |r| {
            prefetch(r.0.as_ptr());
            prefetch(r.0.as_ptr().wrapping_add(64));
            false
        });
    }

    /// Holds `record`, replacing the household's previous one.
    pub fn put(&mut self, record: Record) {
        let hash = self.hasher.hash_one(record.id_bytes());
        self.put_hashed(hash, record);
    }

    /// Holds `payload` for household `id` (whose [`Records::hash`] is
    /// `hash`). When the household's record has the same size it is
    /// overwritten in place: most updates (a newer notice on the same
    /// subject, a repeated alert) keep the size, and skipping the
    /// allocator keeps the heap from churning under steady input.
    pub(crate) fn put_payload(&mut self, hash: u64, id: &str, payload: &[u8]) {
        if let Some(held) = self.table.find_mut(hash, |r| r.id_bytes() == id.as_bytes()) {
            if held.overwrite(payload) {
                return;
            }
        }
        self.put_hashed(hash, Record::new(id, payload));
    }

    /// [`Records::put`] for a record whose id's hash is known.
    pub(crate) fn put_hashed(&mut self, hash: u64, record: Record) {
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |r| r.id_bytes() == record.id_bytes(),
            |r| hasher.hash_one(r.id_bytes()),
        ) {
            hashbrown::hash_table::Entry::Occupied(mut held) => *held.get_mut() = record,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert(record);
            }
        }
    }

    /// Removes and returns the record of household `id`.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Record> {
        let hash = self.hash(id);
        let held = self
            .table
            .find_entry(hash, |r| r.id_bytes() == id.as_bytes())
            .ok()?;
        Some(held.remove().0)
    }

    /// Number of households held.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every record, in no particular order.
    ///
    /// Each record is its own allocation, so a pass over millions of them
    /// would wait on memory once per record; the pass asks for the records
    /// 16 places ahead early (`AHEAD`), so that those waits overlap.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Record> {
        let mut table = self.table.iter();
        let mut ahead: VecDeque<&Record> = VecDeque::with_capacity(AHEAD);
        std::iter::from_fn(move || {
            while ahead.len() < AHEAD {
                let Some(r) = table.next() else { break };
                prefetch(r.0.as_ptr());
                ahead.push_back(r);
            }
            ahead.pop_front()
        })
    }

    /// Keeps only the records `keep` accepts.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Record) -> bool) {
        drop(self.take_if(|r| !keep(r)));
    }

    /// Removes and returns the records `take` accepts (one pass over all
    /// records as [`Records::iter`], then a lookup per record taken).
    pub(crate) fn take_if(&mut self, mut take: impl FnMut(&Record) -> bool) -> Vec<Record> {
        let hits: Vec<(u64, NonNull<u8>)> = self
            .iter()
            .filter(|r| take(r))
            .map(|r| (self.hasher.hash_one(r.id_bytes()), r.0))
            .collect();
        hits.into_iter()
            .filter_map(|(hash, at)| {
                let held = self.table.find_entry(hash, |r| r.0 == at).ok()?;
                Some(held.remove().0)
            })
            .collect()
    }

    /// Makes room for `more` households.
    pub(crate) fn reserve(&mut self, more: usize) {
        let hasher = &self.hasher;
        self.table.reserve(more, |r| hasher.hash_one(r.id_bytes()));
    }
}

/// How many households [`Records::prefetch_chunk`] asks the memory for at
/// once: enough misses to overlap, few enough that the lines are still
/// cached when the stage reaches them.
pub(crate) const PREFETCH_CHUNK: usize = 32;

/// How many records ahead a pass over all of them asks the memory for.
const AHEAD: usize = 16;

/// Asks the memory for the cache line at `at` ahead of its use: a hint that
/// never faults, whatever the address.
#[inline]
fn prefetch(at: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it reads nothing the program
    // sees and cannot fault. (The intrinsic is safe from Rust 1.87 on.)
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(at.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

/// Asks the memory for every cache line of `bytes` (see [`prefetch`]).
#[inline]
pub(crate) fn prefetch_bytes(bytes: &[u8]) {
    for line in (0..bytes.len()).step_by(64) {
        prefetch(bytes[line..].as_ptr());
    }
    // the steps above miss the last line when `bytes` starts mid-line
    if let Some(last) = bytes.last() {
        prefetch(last);
    }
}

/// LEB128 varints: small numbers (counts, deltas, symbol ids) take one
/// byte, a millisecond timestamp six.
pub(crate) mod varint {
    /// Bytes [`put_u64`] writes for `v`.
    pub(crate) fn len_u64(v: u64) -> usize {
        (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
    }

    /// Appends `v`, 7 bits a byte, low bits first.
    pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Appends `v` zigzag-coded, so small negative numbers stay short.
    pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
        put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
    }

    /// Reads a value written by [`put_u64`] and advances `input`; `None`
    /// when the bytes end first.
    pub(crate) fn get_u64(input: &mut &[u8]) -> Option<u64> {
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
    pub(crate) fn get_i64(input: &mut &[u8]) -> Option<i64> {
        get_u64(input).map(|u| ((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads `n` raw bytes.
    pub(crate) fn get_bytes<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
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
            let before = buf.len();
            put_u64(&mut buf, v as u64);
            assert_eq!(buf.len() - before, len_u64(v as u64), "length of {v}");
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
        set.put(Record::new("hh-1", b"one"));
        set.put(Record::new("hh-2", b""));
        // a household's new state replaces its old one, in place when the
        // size is the same, and anew when not
        let h = set.hash("hh-1");
        set.put_payload(h, "hh-1", b"uno");
        assert_eq!(set.get("hh-1").map(Record::payload), Some(&b"uno"[..]));
        set.put_payload(h, "hh-1", b"eins");
        assert_eq!(set.get("hh-1").map(Record::payload), Some(&b"eins"[..]));
        set.put_payload(h, "hh-1", b"uno");
        assert_eq!(set.len(), 2);
        assert_eq!(set.get("hh-1").map(Record::payload), Some(&b"uno"[..]));
        assert_eq!(set.get("hh-2").map(Record::id), Some("hh-2"));
        assert!(set.get("hh-3").is_none());
        // the id survives whatever the payload holds
        let taken = set.take_if(|r| r.payload() == b"uno");
        assert_eq!(taken.iter().map(Record::id).collect::<Vec<_>>(), ["hh-1"]);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn passes_over_many_records_see_each_once_and_take_exactly_what_they_select() {
        let mut set = Records::default();
        for n in 0..1_000u32 {
            set.put(Record::new(&format!("hh-{n}"), &n.to_le_bytes()));
        }
        let n_of = |r: &Record| u32::from_le_bytes(r.payload().try_into().unwrap());
        let mut seen: Vec<u32> = set.iter().map(n_of).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..1_000).collect::<Vec<_>>());

        let mut taken: Vec<u32> = set.take_if(|r| n_of(r) % 3 == 0).iter().map(n_of).collect();
        taken.sort_unstable();
        assert_eq!(taken, (0..1_000).step_by(3).collect::<Vec<_>>());
        set.retain(|r| n_of(r) % 3 == 1);
        let mut left: Vec<u32> = set.iter().map(n_of).collect();
        left.sort_unstable();
        assert_eq!(left, (1..1_000).step_by(3).collect::<Vec<_>>());
        // what is left is still found by id
        assert!(set.get("hh-4").is_some() && set.get("hh-3").is_none());
    }

    #[test]
    fn damaged_record_bytes_are_refused_not_misread() {
        let long = vec![9u8; 300]; // a two-byte length
        let whole = Record::new("가구-1", &long).as_bytes().to_vec();
        let read = Record::read(&mut &whole[..]).map(|r| (r.id().to_string(), r.len()));
        assert_eq!(read, Some(("가구-1".to_string(), whole.len())));
        for cut in 0..whole.len() {
            assert!(Record::read(&mut &whole[..cut]).is_none(), "cut at {cut}");
        }
        // an id that is not text, and an id longer than the record
        assert!(Record::read(&mut &[3u8, 2, 0xff, 0xfe][..]).is_none());
        assert!(Record::read(&mut &[2u8, 5, b'a'][..]).is_none());
    }

    #[test]
    fn an_overlong_id_is_cut_at_a_character_boundary() {
        let id = format!("a{}", "가".repeat(100)); // 301 bytes
        let r = Record::new(&id, b"x");
        assert_eq!(r.id(), format!("a{}", "가".repeat(84)));
        assert_eq!(r.payload(), b"x");
    }
}
