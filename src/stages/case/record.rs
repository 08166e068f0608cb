//! One household's case state as a compact record, and what its outcomes
//! add up to ([`crate::stages::case::rules::fold`]).
//!
//! The record keeps facts, not conclusions (what they add up to is
//! [`crate::stages::case::rules::fold`]): the alerts sent (the last ones
//! within the repeat span, and every one still waiting for a first reach)
//! and the outcomes recorded. Status, holds and unreachability are folded
//! from them on each look, so a `withdrawn` outcome undoes exactly what the
//! mistaken one did, and a re-sent outcome (same id) changes nothing.

use smallvec::SmallVec;

use crate::base::keyed::varint;
use crate::definition::DAY_MS;
use crate::stages::case::outcome::{Channel, OutcomeKind};
use crate::stages::score::Priority;

/// An alert kept in a household's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptAlert {
    /// The hash its alert id spells.
    pub(crate) id: u128,
    /// Day (since the epoch) its window ended.
    pub(crate) day: i32,
    /// Priority sent.
    pub(crate) priority: Priority,
    /// Its categories as a bit set over the pipeline's categories.
    pub(crate) categories: u8,
    /// Its dong, when not the household's current one.
    pub(crate) dong: Option<u64>,
    /// `emitted_at` (driver's clock, to the second) while no contact has
    /// answered it.
    pub open_since: Option<i64>,
    /// Whether its `overdue` escalation was sent.
    pub(crate) overdue_sent: bool,
}

/// An outcome kept in a household's history: what its effects need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldOutcome {
    /// 32 bits of the hash of its `outcome_id`.
    pub(crate) id: u32,
    /// Its kind.
    pub(crate) kind: OutcomeKind,
    /// Its value's code (result, reason or track; 0 where none).
    pub(crate) detail: u8,
    /// Priority of the household's last alert when it was recorded (what a
    /// hold holds back).
    pub(crate) priority: Priority,
    /// Categories of that alert (a new category still alerts).
    pub(crate) categories: u8,
    /// `recorded_at`, ms.
    pub(crate) recorded_at: i64,
    /// For `withdrawn`: the id of the outcome it withdraws.
    pub(crate) target: u32,
    /// For a contact attempt: how.
    pub(crate) channel: Option<Channel>,
    /// For `support_linked`: the services, a bit set over
    /// [`crate::stages::case::outcome::Service::ALL`] by code.
    pub(crate) services: u16,
    /// Recorded by the city team.
    pub(crate) by_city: bool,
}

/// What a `case_plan` or `case_reviewed` outcome decided, kept beside it
/// (by its id) so a withdrawal undoes it with the outcome. The goals'
/// texts are not here: they are the office's words, kept with the notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseNote {
    /// 32 bits of the hash of the outcome's `outcome_id`.
    pub(crate) id: u32,
    /// The plan's needs (bit set over `Need::ALL` by code); 0 for a review.
    pub(crate) needs: u16,
    /// Plan: each goal's target day; review: each goal's result's code.
    pub(crate) goals: SmallVec<[i32; 4]>,
    /// Review: services found fitting and not (bit sets by code).
    pub(crate) fits: u16,
    pub(crate) unfit: u16,
    /// Review: the next review's day.
    pub(crate) next_review: Option<i32>,
}

/// One household's case state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaseRecord {
    /// State shard: the input partition of the household.
    pub(crate) shard: i32,
    /// Dong code of the household now (of its newest alert, or of the
    /// office that recorded its first outcome).
    pub(crate) dong: u64,
    /// Alerts sent for it so far.
    pub flagged: u32,
    /// Day (since the epoch) of the newest alert when its last
    /// `repeatedly_flagged` escalation went.
    pub(crate) repeat_day: Option<i32>,
    /// Id of the first failed attempt of the unreachable spell that was
    /// escalated (0: none).
    pub(crate) unreachable_sent: u32,
    /// The dong it moved out of, whose alerts are held until a signal
    /// shows another dong (0: none).
    pub(crate) moved_from: u64,
    /// While in case management: the priority and categories the office
    /// last heard of (a change sends a case update).
    pub(crate) baseline: Option<(Priority, u8)>,
    /// The priority and categories when the case opened.
    pub(crate) opened_with: Option<(Priority, u8)>,
    /// Alerts kept, oldest first.
    pub alerts: Vec<KeptAlert>,
    /// Outcomes kept, in the order they arrived.
    pub outcomes: Vec<HeldOutcome>,
    /// What the plans and reviews among them decided.
    pub notes: Vec<CaseNote>,
    /// While in case management: the newest day (of a window's end) its
    /// signals still qualified (a case ready to close has none for a while).
    pub(crate) signal_day: Option<i32>,
}

impl CaseRecord {
    /// A new record for a household of `dong` on `shard`.
    pub fn new(shard: i32, dong: u64) -> Self {
        CaseRecord {
            shard,
            dong,
            ..Default::default()
        }
    }

    /// Whether an outcome of id `id` is held.
    pub(crate) fn has_outcome(&self, id: u32) -> bool {
        self.outcomes.iter().any(|o| o.id == id)
    }

    /// The newest alert.
    pub(crate) fn last_alert(&self) -> Option<&KeptAlert> {
        self.alerts.last()
    }

    /// Whether `dong` served the household: now or for a kept alert.
    pub(crate) fn served_by(&self, dong: u64) -> bool {
        self.dong == dong || self.alerts.iter().any(|a| a.dong == Some(dong))
    }

    /// What the plan or review of outcome `id` decided.
    pub(crate) fn note_of(&self, id: u32) -> Option<&CaseNote> {
        self.notes.iter().find(|n| n.id == id)
    }

    /// The outcomes that count, in `recorded_at` order (then arrival):
    /// withdrawn ones and their withdrawals left out.
    pub(crate) fn live_outcomes(&self) -> SmallVec<[&HeldOutcome; 6]> {
        let withdrawn: SmallVec<[u32; 2]> = self
            .outcomes
            .iter()
            .filter(|o| o.kind == OutcomeKind::Withdrawn)
            .map(|o| o.target)
            .collect();
        let mut live: SmallVec<[&HeldOutcome; 6]> = self
            .outcomes
            .iter()
            .filter(|o| o.kind != OutcomeKind::Withdrawn && !withdrawn.contains(&o.id))
            .collect();
        // recorded in the same second, they count in the order they
        // arrived (a household's outcomes share a partition, so a replay
        // reads them in that order too): a case opened and planned at one
        // meeting keeps its plan
        live.sort_by_key(|o| o.recorded_at);
        live
    }

    /// Encodes the record: `[shard][dong][flagged][presence]` then the
    /// optional fields the presence bits name, the alerts and the
    /// outcomes; varints throughout.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        varint::put_i64(out, i64::from(self.shard));
        varint::put_u64(out, self.dong);
        varint::put_u64(out, u64::from(self.flagged));
        // bit 0 was a count of alerts at the last repeat escalation
        // (before episodes were counted); bit 6 is its day now
        let presence = u8::from(self.repeat_day.is_some()) << 6
            | u8::from(self.unreachable_sent != 0) << 1
            | u8::from(self.moved_from != 0) << 2
            | u8::from(self.baseline.is_some()) << 3
            | u8::from(self.opened_with.is_some()) << 4
            | u8::from(!self.outcomes.is_empty()) << 5
            | u8::from(!self.notes.is_empty() || self.signal_day.is_some()) << 7;
        out.push(presence);
        if self.unreachable_sent != 0 {
            out.extend_from_slice(&self.unreachable_sent.to_le_bytes());
        }
        if self.moved_from != 0 {
            varint::put_u64(out, self.moved_from);
        }
        for (p, c) in [self.baseline, self.opened_with].into_iter().flatten() {
            out.push(p as u8);
            out.push(c);
        }
        if let Some(d) = self.repeat_day {
            varint::put_i64(out, i64::from(d));
        }
        varint::put_u64(out, self.alerts.len() as u64);
        for a in &self.alerts {
            out.extend_from_slice(&a.id.to_le_bytes());
            varint::put_i64(out, i64::from(a.day));
            let flags = a.priority as u8
                | u8::from(a.dong.is_some()) << 2
                | u8::from(a.open_since.is_some()) << 3
                | u8::from(a.overdue_sent) << 4;
            out.push(flags);
            out.push(a.categories);
            if let Some(d) = a.dong {
                varint::put_u64(out, d);
            }
            if let Some(t) = a.open_since {
                // seconds after the start of its window's last day: a few
                // bytes, where the time itself takes six
                varint::put_i64(out, t.div_euclid(1000) - i64::from(a.day) * 86_400);
            }
        }
        varint::put_u64(out, self.outcomes.len() as u64);
        for o in &self.outcomes {
            out.extend_from_slice(&o.id.to_le_bytes());
            out.push(o.kind.code() << 4 | (o.detail & 0xf));
            // bit 6: by the city; bit 7: channel and services follow
            let more = o.channel.is_some() || o.services != 0;
            out.push(o.priority as u8 | u8::from(o.by_city) << 6 | u8::from(more) << 7);
            out.push(o.categories);
            // to the second: a record counts offices' clicks, not events
            varint::put_i64(out, o.recorded_at.div_euclid(1000));
            if o.kind == OutcomeKind::Withdrawn {
                out.extend_from_slice(&o.target.to_le_bytes());
            }
            if more {
                out.push(o.channel.map_or(0, |c| c.code() + 1));
                varint::put_u64(out, u64::from(o.services));
            }
        }
        if presence & 0x80 != 0 {
            self.encode_case_management(out);
        }
    }

    /// The plans' and reviews' facts and the signal day (presence bit 7).
    fn encode_case_management(&self, out: &mut Vec<u8>) {
        match self.signal_day {
            Some(d) => varint::put_i64(out, i64::from(d) + 1),
            None => varint::put_i64(out, 0),
        }
        varint::put_u64(out, self.notes.len() as u64);
        for n in &self.notes {
            out.extend_from_slice(&n.id.to_le_bytes());
            varint::put_u64(out, u64::from(n.needs));
            varint::put_u64(out, u64::from(n.fits));
            varint::put_u64(out, u64::from(n.unfit));
            varint::put_i64(out, n.next_review.map_or(0, |d| i64::from(d) + 1));
            varint::put_u64(out, n.goals.len() as u64);
            for g in &n.goals {
                varint::put_i64(out, i64::from(*g));
            }
        }
    }

    fn decode_case_management(&mut self, i: &mut &[u8]) -> Option<()> {
        let day = |v: i64| (v != 0).then(|| (v - 1) as i32);
        self.signal_day = day(varint::get_i64(i)?);
        let n = varint::get_u64(i)? as usize;
        for _ in 0..n.min(1024) {
            let id = u32::from_le_bytes(take(i, 4)?.try_into().ok()?);
            let needs = varint::get_u64(i)? as u16;
            let fits = varint::get_u64(i)? as u16;
            let unfit = varint::get_u64(i)? as u16;
            let next_review = day(varint::get_i64(i)?);
            let goals = varint::get_u64(i)? as usize;
            let mut g = SmallVec::new();
            for _ in 0..goals.min(64) {
                g.push(varint::get_i64(i)? as i32);
            }
            self.notes.push(CaseNote {
                id,
                needs,
                goals: g,
                fits,
                unfit,
                next_review,
            });
        }
        Some(())
    }

    /// Reads a record [`CaseRecord::encode`] wrote; `None` if it is not one.
    pub(crate) fn decode(payload: &[u8]) -> Option<CaseRecord> {
        let mut input = payload;
        let i = &mut input;
        let mut r = CaseRecord {
            shard: varint::get_i64(i)? as i32,
            dong: varint::get_u64(i)?,
            flagged: varint::get_u64(i)? as u32,
            ..Default::default()
        };
        let presence = take(i, 1)?[0];
        // a record written before episodes: the count is read and the
        // escalation taken as of its newest alert (below)
        let old_repeat = presence & 1 != 0;
        if old_repeat {
            varint::get_u64(i)?;
        }
        if presence & 2 != 0 {
            r.unreachable_sent = u32::from_le_bytes(take(i, 4)?.try_into().ok()?);
        }
        if presence & 4 != 0 {
            r.moved_from = varint::get_u64(i)?;
        }
        if presence & 8 != 0 {
            let b = take(i, 2)?;
            r.baseline = Some((Priority::from_code(b[0])?, b[1]));
        }
        if presence & 16 != 0 {
            let b = take(i, 2)?;
            r.opened_with = Some((Priority::from_code(b[0])?, b[1]));
        }
        if presence & 64 != 0 {
            r.repeat_day = Some(varint::get_i64(i)? as i32);
        }
        let alerts = varint::get_u64(i)? as usize;
        r.alerts.reserve(alerts.min(64));
        for _ in 0..alerts {
            let id = u128::from_le_bytes(take(i, 16)?.try_into().ok()?);
            let day = varint::get_i64(i)? as i32;
            let b = take(i, 2)?;
            let (flags, categories) = (b[0], b[1]);
            let dong = if flags & 4 != 0 {
                Some(varint::get_u64(i)?)
            } else {
                None
            };
            let open_since = if flags & 8 != 0 {
                let after = varint::get_i64(i)?;
                Some((i64::from(day) * 86_400 + after).checked_mul(1000)?)
            } else {
                None
            };
            r.alerts.push(KeptAlert {
                id,
                day,
                priority: Priority::from_code(flags & 3)?,
                categories,
                dong,
                open_since,
                overdue_sent: flags & 16 != 0,
            });
        }
        let outcomes = varint::get_u64(i)? as usize;
        r.outcomes.reserve(outcomes.min(64));
        for _ in 0..outcomes {
            let id = u32::from_le_bytes(take(i, 4)?.try_into().ok()?);
            let b = take(i, 3)?;
            let kind = OutcomeKind::from_code(b[0] >> 4)?;
            let recorded_at = varint::get_i64(i)?.checked_mul(1000)?;
            let target = if kind == OutcomeKind::Withdrawn {
                u32::from_le_bytes(take(i, 4)?.try_into().ok()?)
            } else {
                0
            };
            let (channel, services) = if b[1] & 0x80 != 0 {
                let c = take(i, 1)?[0];
                let channel = match c {
                    0 => None,
                    c => Some(Channel::from_code(c - 1)?),
                };
                (channel, varint::get_u64(i)? as u16)
            } else {
                (None, 0)
            };
            r.outcomes.push(HeldOutcome {
                id,
                kind,
                detail: b[0] & 0xf,
                priority: Priority::from_code(b[1] & 3)?,
                categories: b[2],
                recorded_at,
                target,
                channel,
                services,
                by_city: b[1] & 0x40 != 0,
            });
        }
        if presence & 0x80 != 0 {
            r.decode_case_management(i)?;
        }
        if old_repeat {
            r.repeat_day = r.alerts.last().map(|a| a.day);
        }
        input.is_empty().then_some(r)
    }

    /// The newest time anything happened to the household: an alert's
    /// window end or an outcome, ms.
    pub(crate) fn last_activity(&self) -> i64 {
        let alerts = self.alerts.iter().map(|a| i64::from(a.day) * DAY_MS);
        let outcomes = self.outcomes.iter().map(|o| o.recorded_at);
        alerts.chain(outcomes).max().unwrap_or(i64::MIN)
    }
}

/// What the record keeps of a plan or review (`None` for other kinds).
pub(crate) fn case_note(id: u32, said: &crate::stages::case::outcome::Said) -> Option<CaseNote> {
    use crate::stages::case::outcome::Said;
    let note = match said {
        Said::CasePlan(p) => CaseNote {
            id,
            needs: p.needs,
            goals: p.targets.iter().copied().collect(),
            fits: 0,
            unfit: 0,
            next_review: None,
        },
        Said::CaseReviewed(v) => CaseNote {
            id,
            needs: 0,
            goals: v.results.iter().map(|g| i32::from(g.code())).collect(),
            fits: v.fits,
            unfit: v.unfit,
            next_review: v.next_review,
        },
        _ => return None,
    };
    Some(note)
}

/// Whether an encoded record holds nothing but alerts: no outcome, no
/// move, no case (read from its header; most alerted households).
pub(crate) fn only_alerts(payload: &[u8]) -> bool {
    let mut input = payload;
    let header = varint::get_i64(&mut input)
        .and(varint::get_u64(&mut input))
        .and(varint::get_u64(&mut input));
    header.is_some() && input.first() == Some(&0)
}

/// The shard of an encoded record, read without decoding the rest.
pub(crate) fn shard(payload: &[u8]) -> Option<i32> {
    let mut input = payload;
    varint::get_i64(&mut input).map(|s| s as i32)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    varint::get_bytes(input, n)
}
