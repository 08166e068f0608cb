//! How the window stage holds one household: a compact [`Record`] between
//! batches, [`Slot`]s while a batch works on it.
//!
//! Record payload: `[shard][oldest observed_at]` then per live signal
//! `[feed][flags][observed_at - oldest][event key, 8 bytes][dong - previous
//! dong][amount][months][subject][kind][occurred_on]`, all varints except
//! the flags and the event key; absent measures take no bytes. Two typical
//! signals take about 50 bytes where two structs took 160. The oldest time
//! comes first so eviction can skip a household without decoding it.

use std::collections::HashMap;

use super::{LiveSignal, RecordDictionary, NONE_I32, NONE_I64, NONE_U8};
use crate::base::hash::FastState;
use crate::base::keyed::varint::{get_bytes, get_i64, get_u64, put_i64, put_u64};
use crate::base::keyed::Record;
use crate::definition::{FieldType, PipelineSpec};
use crate::stages::signal::Measures;

/// The subject and kind values a pipeline enumerates (enum fields and
/// constant subjects), numbered, so a record holds a small number instead
/// of the text. Free text (person ids) is held as text.
#[derive(Debug, Default)]
pub(crate) struct Symbols {
    ids: HashMap<Box<str>, u32, FastState>,
    values: Vec<Box<str>>,
}

impl Symbols {
    pub(crate) fn of(spec: &PipelineSpec) -> Self {
        let mut symbols = Symbols::default();
        for feed in &spec.feeds {
            let values = feed
                .fields
                .values()
                .filter(|f| f.ty == FieldType::Enum)
                .flat_map(|f| f.values.iter())
                .chain(feed.subject.iter());
            for v in values {
                if !symbols.ids.contains_key(v.as_str()) {
                    symbols
                        .ids
                        .insert(v.as_str().into(), symbols.values.len() as u32);
                    symbols.values.push(v.as_str().into());
                }
            }
        }
        symbols
    }

    /// The values, by symbol number.
    pub(crate) fn values(&self) -> &[Box<str>] {
        &self.values
    }

    /// The symbols of another pipeline definition, from its values.
    pub(crate) fn from_values(values: &[String]) -> Self {
        let mut symbols = Symbols::default();
        for v in values {
            symbols
                .ids
                .entry(v.as_str().into())
                .or_insert(symbols.values.len() as u32);
            symbols.values.push(v.as_str().into());
        }
        symbols
    }
}

/// How to read records written under another pipeline definition: its
/// symbols, and where each of its feeds is now (`None`: removed).
#[derive(Debug)]
pub(crate) struct Translation {
    pub(crate) symbols: Symbols,
    pub(crate) feeds: Vec<Option<u16>>,
}

/// A slot's text: an enumerated value, or free text in the batch's scratch
/// string (see [`Texts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Text {
    Symbol(u32),
    Scratch { start: u32, len: u32 },
}

/// Where slot texts live: the pipeline's symbols and a scratch string that
/// the window stage empties before each batch (so free text costs no
/// allocation of its own).
#[derive(Debug)]
pub(crate) struct Texts<'a> {
    pub(crate) symbols: &'a Symbols,
    pub(crate) scratch: &'a mut String,
}

impl Texts<'_> {
    /// `value` as a slot text.
    pub(crate) fn text(&mut self, value: &str) -> Text {
        match self.symbols.ids.get(value) {
            Some(&id) => Text::Symbol(id),
            None => {
                let start = self.scratch.len() as u32;
                self.scratch.push_str(value);
                Text::Scratch {
                    start,
                    len: value.len() as u32,
                }
            }
        }
    }

    /// The text a slot refers to.
    pub(crate) fn get(&self, text: Text) -> &str {
        match text {
            Text::Symbol(id) => self.symbols.values.get(id as usize).map_or("", |v| v),
            Text::Scratch { start, len } => self
                .scratch
                .get(start as usize..(start + len) as usize)
                .unwrap_or_default(),
        }
    }
}

/// One live signal while a batch works on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    pub(crate) observed_at: i64,
    pub(crate) event_key: u64,
    pub(crate) dong: u64,
    pub(crate) amount_krw: i64,
    pub(crate) months_overdue: i64,
    pub(crate) subject: Text,
    pub(crate) kind: Option<Text>,
    pub(crate) occurred_on: i32,
    pub(crate) feed: u16,
    pub(crate) disconnected: u8,
}

impl Slot {
    /// True when this signal is newer than `other` on the same subject
    /// (event time, then event key, so every replay decides the same).
    pub(crate) fn supersedes(&self, other: &Slot) -> bool {
        (self.observed_at, self.event_key) > (other.observed_at, other.event_key)
    }

    /// The optional measures, as the signal table holds them.
    pub(crate) fn measures<'a>(&self, texts: &'a Texts<'_>) -> Measures<'a> {
        Measures {
            kind: self.kind.map(|k| texts.get(k)),
            months_overdue: (self.months_overdue != NONE_I64).then_some(self.months_overdue),
            amount_krw: (self.amount_krw != NONE_I64).then_some(self.amount_krw),
            disconnected: (self.disconnected != NONE_U8).then_some(self.disconnected == 1),
            occurred_on: (self.occurred_on != NONE_I32).then_some(self.occurred_on),
        }
    }

    fn from_live(s: &LiveSignal, texts: &mut Texts<'_>) -> Slot {
        Slot {
            observed_at: s.observed_at,
            event_key: s.event_key,
            dong: s.dong,
            amount_krw: s.amount_krw,
            months_overdue: s.months_overdue,
            subject: texts.text(&s.subject),
            kind: s.kind.as_deref().map(|k| texts.text(k)),
            occurred_on: s.occurred_on,
            feed: s.feed,
            disconnected: s.disconnected,
        }
    }

    fn to_live(self, texts: &Texts<'_>) -> LiveSignal {
        LiveSignal {
            observed_at: self.observed_at,
            event_key: self.event_key,
            dong: self.dong,
            amount_krw: self.amount_krw,
            months_overdue: self.months_overdue,
            subject: texts.get(self.subject).to_owned(),
            kind: self.kind.map(|k| texts.get(k).to_owned()),
            occurred_on: self.occurred_on,
            feed: self.feed,
            disconnected: self.disconnected,
        }
    }
}

const HAS_AMOUNT: u8 = 1;
const HAS_MONTHS: u8 = 2;
const HAS_KIND: u8 = 4;
const HAS_OCCURRED_ON: u8 = 8;
const HAS_DISCONNECTED: u8 = 16;
const DISCONNECTED: u8 = 32;

fn put_text(out: &mut Vec<u8>, text: Text, texts: &Texts<'_>) {
    match text {
        Text::Symbol(id) => put_u64(out, u64::from(id) + 1),
        Text::Scratch { .. } => {
            let value = texts.get(text);
            put_u64(out, 0);
            put_u64(out, value.len() as u64);
            out.extend_from_slice(value.as_bytes());
        }
    }
}

fn get_text(input: &mut &[u8], texts: &mut Texts<'_>) -> Option<Text> {
    match get_u64(input)? {
        0 => {
            let len = get_u64(input)? as usize;
            let value = std::str::from_utf8(get_bytes(input, len)?).ok()?;
            Some(texts.text(value))
        }
        id => Some(Text::Symbol((id - 1) as u32)),
    }
}

/// Writes the payload of a household on `shard` holding `slots` into `out`.
pub(crate) fn encode(shard: i32, slots: &[Slot], texts: &Texts<'_>, out: &mut Vec<u8>) {
    out.clear();
    put_i64(out, i64::from(shard));
    let oldest = slots.iter().map(|s| s.observed_at).min().unwrap_or(0);
    put_i64(out, oldest);
    let mut dong = 0u64;
    for s in slots {
        put_u64(out, u64::from(s.feed));
        let mut flags = 0;
        for (present, flag) in [
            (s.amount_krw != NONE_I64, HAS_AMOUNT),
            (s.months_overdue != NONE_I64, HAS_MONTHS),
            (s.kind.is_some(), HAS_KIND),
            (s.occurred_on != NONE_I32, HAS_OCCURRED_ON),
            (s.disconnected != NONE_U8, HAS_DISCONNECTED),
            (s.disconnected == 1, DISCONNECTED),
        ] {
            if present {
                flags |= flag;
            }
        }
        out.push(flags);
        put_u64(out, s.observed_at.wrapping_sub(oldest) as u64);
        out.extend_from_slice(&s.event_key.to_le_bytes());
        // signals of one household nearly always share a dong: one byte
        put_i64(out, s.dong.wrapping_sub(dong) as i64);
        dong = s.dong;
        if s.amount_krw != NONE_I64 {
            put_i64(out, s.amount_krw);
        }
        if s.months_overdue != NONE_I64 {
            put_i64(out, s.months_overdue);
        }
        put_text(out, s.subject, texts);
        if let Some(kind) = s.kind {
            put_text(out, kind, texts);
        }
        if s.occurred_on != NONE_I32 {
            put_i64(out, i64::from(s.occurred_on));
        }
    }
}

/// The shard and the oldest signal's time of an encoded household, read
/// without decoding its signals.
pub(crate) fn header(payload: &[u8]) -> Option<(i32, i64)> {
    let mut input = payload;
    let shard = get_i64(&mut input)? as i32;
    let oldest = get_i64(&mut input)?;
    Some((shard, oldest))
}

/// Appends the signals of an encoded household to `slots` (their free text
/// to `texts`) and returns its shard. A record is only ever written by
/// [`encode`]; should one end early, the signals read so far are kept.
pub(crate) fn decode(payload: &[u8], texts: &mut Texts<'_>, slots: &mut Vec<Slot>) -> i32 {
    let mut input = payload;
    let Some(shard) = get_i64(&mut input) else {
        return 0;
    };
    let Some(oldest) = get_i64(&mut input) else {
        return shard as i32;
    };
    let mut dong = 0u64;
    while !input.is_empty() {
        let Some(slot) = decode_slot(&mut input, oldest, &mut dong, texts) else {
            debug_assert!(false, "a window record ended inside a signal");
            break;
        };
        slots.push(slot);
    }
    shard as i32
}

fn decode_slot(
    input: &mut &[u8],
    oldest: i64,
    dong: &mut u64,
    texts: &mut Texts<'_>,
) -> Option<Slot> {
    let feed = get_u64(input)? as u16;
    let flags = *get_bytes(input, 1)?.first()?;
    let observed_at = oldest.wrapping_add(get_u64(input)? as i64);
    let event_key = u64::from_le_bytes(get_bytes(input, 8)?.try_into().ok()?);
    *dong = dong.wrapping_add(get_i64(input)? as u64);
    let has = |flag| flags & flag != 0;
    let amount_krw = if has(HAS_AMOUNT) {
        get_i64(input)?
    } else {
        NONE_I64
    };
    let months_overdue = if has(HAS_MONTHS) {
        get_i64(input)?
    } else {
        NONE_I64
    };
    let subject = get_text(input, texts)?;
    let kind = if has(HAS_KIND) {
        Some(get_text(input, texts)?)
    } else {
        None
    };
    let occurred_on = if has(HAS_OCCURRED_ON) {
        get_i64(input)? as i32
    } else {
        NONE_I32
    };
    Some(Slot {
        observed_at,
        event_key,
        dong: *dong,
        amount_krw,
        months_overdue,
        subject,
        kind,
        occurred_on,
        feed,
        disconnected: if has(HAS_DISCONNECTED) {
            u8::from(has(DISCONNECTED))
        } else {
            NONE_U8
        },
    })
}

/// The record of household `id` in `shard` holding `signals`.
pub(crate) fn from_signals(
    id: &str,
    shard: i32,
    signals: &[LiveSignal],
    texts: &mut Texts<'_>,
    out: &mut Vec<u8>,
) -> Record {
    texts.scratch.clear();
    let slots: Vec<Slot> = signals.iter().map(|s| Slot::from_live(s, texts)).collect();
    encode(shard, &slots, texts, out);
    Record::new(id, out)
}

/// Writes household records outside the stream (old snapshots converted
/// as they are loaded), with no symbols of its own: every text is written
/// as text, so the records read under any pipeline definition through a
/// [`Translation`] of [`RecordWriter::dictionary`].
#[derive(Debug, Default)]
pub(crate) struct RecordWriter {
    symbols: Symbols,
    scratch: String,
    encoded: Vec<u8>,
}

impl RecordWriter {
    /// The record of household `id` in `shard` with `signals`.
    pub(crate) fn write(&mut self, id: &str, shard: i32, signals: &[LiveSignal]) -> Record {
        let mut texts = Texts {
            symbols: &self.symbols,
            scratch: &mut self.scratch,
        };
        from_signals(id, shard, signals, &mut texts, &mut self.encoded)
    }

    /// What the written records' numbers stand for, given the feeds their
    /// feed numbers index.
    pub(crate) fn dictionary(feeds: Vec<String>) -> RecordDictionary {
        RecordDictionary {
            feeds,
            symbols: Vec::new(),
        }
    }
}

/// One held household, readable: its id, shard and live signals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeldHousehold<'a> {
    pub(crate) record: &'a Record,
    pub(crate) symbols: &'a Symbols,
}

impl<'a> HeldHousehold<'a> {
    /// The household id.
    #[cfg(test)]
    pub(crate) fn id(&self) -> &'a str {
        self.record.id()
    }

    /// The state shard that owns the household.
    pub(crate) fn shard(&self) -> i32 {
        header(self.record.payload()).map_or(0, |(shard, _)| shard)
    }

    /// Its live signals, decoded.
    pub(crate) fn signals(&self) -> Vec<LiveSignal> {
        let mut scratch = String::new();
        let mut texts = Texts {
            symbols: self.symbols,
            scratch: &mut scratch,
        };
        let mut slots = Vec::new();
        decode(self.record.payload(), &mut texts, &mut slots);
        slots.into_iter().map(|s| s.to_live(&texts)).collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::default_spec;

    fn text() -> impl Strategy<Value = String> {
        // enumerated values (held as symbols) and free text (held as text)
        prop_oneof![
            Just("gas".to_string()),
            Just("nhis".to_string()),
            Just("job_loss".to_string()),
            "[a-z0-9가-힣-]{0,20}",
        ]
    }

    fn measure<T: std::fmt::Debug + Clone + 'static>(
        none: T,
        values: impl Strategy<Value = T> + 'static,
    ) -> impl Strategy<Value = T> {
        prop_oneof![Just(none), values]
    }

    fn signal() -> impl Strategy<Value = LiveSignal> {
        (
            (any::<i64>(), any::<u64>(), 0u64..10_000_000_000, 0u16..3),
            (
                measure(NONE_I64, any::<i64>()),
                measure(NONE_I64, -5i64..700),
                measure(NONE_I32, any::<i32>()),
                prop_oneof![Just(NONE_U8), Just(0u8), Just(1u8)],
            ),
            (text(), proptest::option::of(text())),
        )
            .prop_map(
                |(
                    (observed_at, event_key, dong, feed),
                    (amount_krw, months_overdue, occurred_on, disconnected),
                    (subject, kind),
                )| LiveSignal {
                    observed_at,
                    event_key,
                    dong,
                    amount_krw,
                    months_overdue,
                    subject,
                    kind,
                    occurred_on,
                    feed,
                    disconnected,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Whatever a household holds comes back from its record exactly:
        /// extreme times and amounts, absent measures, changing dongs,
        /// enumerated and free text.
        #[test]
        fn a_household_reads_back_from_its_record(
            shard in any::<i32>(),
            signals in proptest::collection::vec(signal(), 1..6),
        ) {
            let symbols = Symbols::of(&default_spec());
            let mut scratch = String::new();
            let mut texts = Texts { symbols: &symbols, scratch: &mut scratch };
            let record = from_signals("hh-1", shard, &signals, &mut texts, &mut Vec::new());
            let held = HeldHousehold { record: &record, symbols: &symbols };
            prop_assert_eq!(held.id(), "hh-1");
            prop_assert_eq!(held.shard(), shard);
            prop_assert_eq!(held.signals(), signals.clone());
            // written without symbols (an old snapshot converted), read
            // through the translation of its dictionary
            let mut writer = RecordWriter::default();
            let plain = writer.write("hh-1", shard, &signals);
            let none = Symbols::from_values(&[]);
            let held = HeldHousehold { record: &plain, symbols: &none };
            prop_assert_eq!(held.signals(), signals);
        }
    }
}
