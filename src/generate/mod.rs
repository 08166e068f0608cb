//! A seeded generator of synthetic signals for a city like Dongducheon-si:
//! the input of `sagak demo`, `sagak generate` and the benchmarks.
//!
//! Most households never appear. Some fall behind on a utility bill or the
//! health-insurance premium for a while and pay off; a few lose a job. A
//! configurable share of households is pushed into a multi-signal crisis at a
//! random time (job loss, then growing health-insurance and power arrears,
//! sometimes a cut-off): the generator remembers them, so a run can report
//! how many the engine found, at which priority and how fast. A trickle of
//! malformed, late, future and duplicate messages, and households that move
//! between dongs, test the paths real data takes.
//!
//! The same seed always gives the same messages.
//!
//! ```
//! use sagak::generate::{generate, GeneratorConfig};
//! let cfg = GeneratorConfig { households: 500, days: 60, ..GeneratorConfig::default() };
//! let a = generate(&cfg);
//! assert_eq!(a.messages.len(), generate(&cfg).messages.len());
//! assert!(a.messages.windows(2).all(|w| w[0].arrival_ms <= w[1].arrival_ms));
//! ```

pub mod publish;
pub(crate) mod rng;

use std::fmt::Write;

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};

use std::sync::Arc;

use crate::definition::DAY_MS;
use crate::stages::decode::RejectClass;
use rng::SplitMix64;

/// The dongs of Dongducheon-si with a rough share of households each.
pub(crate) const DONGDUCHEON: [(&str, u32); 8] = [
    ("4125051000", 10),
    ("4125052000", 14),
    ("4125053500", 9),
    ("4125055000", 5),
    ("4125056500", 25),
    ("4125056600", 22),
    ("4125058000", 9),
    ("4125060000", 6),
];

/// Valid dong codes of a neighbouring city, not served by the deployment:
/// households registered there end up on the "unassigned" list.
pub(crate) const UNSERVED: [&str; 2] = ["4163051000", "4163052000"];

/// What the generator produces and how much of it.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Seed; the same seed gives the same messages.
    pub seed: u64,
    /// Households in the city.
    pub households: usize,
    /// Days of event time.
    pub days: u32,
    /// First day (local date).
    pub start: NaiveDate,
    /// Share of households pushed into a multi-signal crisis.
    pub crisis_share: f64,
    /// Share of households that move to another dong during the span.
    pub move_share: f64,
    /// Share of households registered in a dong the deployment does not serve.
    pub unserved_share: f64,
    /// Extra malformed messages per valid message.
    pub malformed_share: f64,
    /// Extra late messages per valid message.
    pub late_share: f64,
    /// Re-sent copies per valid message.
    pub duplicate_share: f64,
    /// Dongs the households live in: 0 for Dongducheon-si's eight (with
    /// their shares), N for N dongs of equal size coded by
    /// [`national_dong_code`] (a national deployment has about 3,500).
    pub dongs: usize,
    /// The city's clock, as its pipeline declares it
    /// (`lists.utc_offset_hours`; Korea's, 9, by default): signals are
    /// dated in it.
    pub utc_offset_hours: i32,
}

/// The code of dong `i` of a generated national deployment.
pub fn national_dong_code(i: usize) -> String {
    format!("{:010}", 1_100_000_000 + i * 100)
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 2022,
            households: 45_000,
            days: 180,
            start: NaiveDate::from_ymd_opt(2026, 5, 1).unwrap_or_default(),
            crisis_share: 0.03,
            move_share: 0.02,
            unserved_share: 0.005,
            malformed_share: 0.003,
            late_share: 0.002,
            duplicate_share: 0.01,
            dongs: 0,
            utc_offset_hours: 9,
        }
    }
}

impl GeneratedMessage {
    /// The message as the engine receives it at `offset` of a topic named
    /// after its feed with `partitions` partitions, keyed messages spread by
    /// a hash of the key (co-partitioned, as the input contract requires).
    pub fn into_input(
        self,
        spec: &crate::definition::PipelineSpec,
        offset: i64,
        partitions: u64,
    ) -> crate::base::message::InputMessage {
        let partition = self.key.as_deref().map_or(0, |k| {
            (crate::base::hash::fnv1a64(&[k]) % partitions.max(1)) as i32
        });
        crate::base::message::InputMessage {
            feed: spec.feed_index(self.feed).map(|f| f as u16),
            topic: std::sync::Arc::from(self.feed),
            partition,
            offset,
            key: self.key,
            payload: Some(self.payload),
            timestamp_ms: Some(self.arrival_ms),
            source_file: None,
        }
    }
}

/// What the engine should do with a generated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A valid signal.
    Valid,
    /// A re-sent copy of an earlier valid signal.
    Duplicate,
    /// Bad input of this class.
    Reject(RejectClass),
}

/// One generated message.
#[derive(Debug, Clone)]
pub struct GeneratedMessage {
    /// Feed name (`utility-arrears`, `job-loss`, `health-insurance`).
    pub feed: &'static str,
    /// Message key.
    pub key: Option<Vec<u8>>,
    /// Message value.
    pub payload: Vec<u8>,
    /// When it reaches the broker (simulated wall clock, ms).
    pub arrival_ms: i64,
    /// What the engine should make of it.
    pub expect: Expect,
}

/// A household the generator pushed into crisis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlantedCrisis {
    /// Its id.
    pub(crate) household_id: String,
    /// Event time of its first crisis signal.
    pub(crate) first_signal_ms: i64,
}

/// The generator's output.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// Messages in arrival order.
    pub messages: Vec<GeneratedMessage>,
    /// Households pushed into crisis.
    pub planted: Vec<PlantedCrisis>,
}

const UTILITIES: [&str; 5] = ["electricity", "water", "gas", "telecom", "maintenance_fee"];
const JOB_KINDS: [&str; 3] = ["job_loss", "insurance_lapse", "business_closure"];

struct Household {
    id: String,
    dong: Arc<str>,
    moved_to: Option<(Arc<str>, i64)>,
}

impl Household {
    fn dong_at(&self, t: i64) -> &str {
        match &self.moved_to {
            Some((d, at)) if t >= *at => d,
            _ => &self.dong,
        }
    }
}

/// The dongs households are spread over, with their weights.
struct Dongs(Vec<(Arc<str>, u32)>);

impl Dongs {
    fn of(cfg: &GeneratorConfig) -> Dongs {
        if cfg.dongs == 0 {
            Dongs(
                DONGDUCHEON
                    .iter()
                    .map(|(c, w)| (Arc::from(*c), *w))
                    .collect(),
            )
        } else {
            Dongs(
                (0..cfg.dongs)
                    .map(|i| (Arc::from(national_dong_code(i)), 1))
                    .collect(),
            )
        }
    }

    fn pick(&self, rng: &mut SplitMix64) -> Arc<str> {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut x = rng.below(u64::from(total)) as u32;
        for (code, w) in &self.0 {
            if x < *w {
                return code.clone();
            }
            x -= w;
        }
        self.0[0].0.clone()
    }

    /// Another dong than `dong`: the next one.
    fn other(&self, dong: &str) -> Arc<str> {
        let at = self.0.iter().position(|(c, _)| &**c == dong).unwrap_or(0);
        self.0[(at + 1) % self.0.len()].0.clone()
    }
}

struct Builder<'a> {
    cfg: &'a GeneratorConfig,
    rng: SplitMix64,
    out: Vec<GeneratedMessage>,
    kst: FixedOffset,
    seq: u64,
}

impl Builder<'_> {
    fn observed(&self, t: i64) -> String {
        DateTime::from_timestamp_millis(t)
            .unwrap_or_default()
            .with_timezone(&self.kst)
            .format("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    }

    fn common(&mut self, h: &Household, t: i64, source: &str) -> String {
        self.seq += 1;
        format!(
            r#""event_id":"{source}-{:08x}-{}","household_id":"{}","dong_code":"{}","observed_at":"{}","source":"{source}""#,
            self.cfg.seed as u32,
            self.seq,
            h.id,
            h.dong_at(t),
            self.observed(t)
        )
    }

    fn push(&mut self, feed: &'static str, h: &Household, t: i64, body: String, max_delay_h: u64) {
        let delay = self.rng.below(max_delay_h * 3_600_000 + 1) as i64;
        let msg = GeneratedMessage {
            feed,
            key: Some(h.id.as_bytes().to_vec()),
            payload: body.into_bytes(),
            arrival_ms: t + delay,
            expect: Expect::Valid,
        };
        if self.rng.chance(self.cfg.duplicate_share) {
            let mut dup = msg.clone();
            dup.arrival_ms += 60_000 + self.rng.below(24 * 3_600_000) as i64;
            dup.expect = Expect::Duplicate;
            self.out.push(dup);
        }
        if self.rng.chance(self.cfg.malformed_share) {
            let bad = self.malformed(&msg);
            self.out.push(bad);
        }
        if self.rng.chance(self.cfg.late_share) {
            self.late(h, &msg);
        }
        self.out.push(msg);
    }

    fn utility(&mut self, h: &Household, t: i64, utility: &str, months: i64, disconnected: bool) {
        let common = self.common(h, t, "kepco");
        let amount = months * (40_000 + self.rng.below(60_000) as i64);
        let body = format!(
            r#"{{{common},"utility":"{utility}","months_overdue":{months},"amount_krw":{amount},"disconnected":{disconnected}}}"#
        );
        self.push("utility-arrears", h, t, body, 48);
    }

    fn health(&mut self, h: &Household, t: i64, months: i64) {
        let common = self.common(h, t, "nhis");
        let amount = months * (90_000 + self.rng.below(200_000) as i64);
        let body = format!(r#"{{{common},"months_overdue":{months},"amount_krw":{amount}}}"#);
        self.push("health-insurance", h, t, body, 72);
    }

    fn job_loss(&mut self, h: &Household, t: i64) {
        let common = self.common(h, t, "moel");
        let kind = JOB_KINDS[self.rng.below(3) as usize];
        let person = self.rng.below(4) + 1;
        let date = DateTime::from_timestamp_millis(t - DAY_MS)
            .unwrap_or_default()
            .with_timezone(&self.kst)
            .format("%Y-%m-%d");
        let body = format!(
            r#"{{{common},"person_id":"{}-m{person}","kind":"{kind}","occurred_on":"{date}"}}"#,
            h.id
        );
        self.push("job-loss", h, t, body, 48);
    }

    /// A broken copy of a valid message, as an agency's system might send.
    fn malformed(&mut self, msg: &GeneratedMessage) -> GeneratedMessage {
        let text = String::from_utf8_lossy(&msg.payload).into_owned();
        let household = msg.key.clone().unwrap_or_default();
        let (key, payload, class) = match self.rng.below(6) {
            0 => (
                Some(household),
                text.as_bytes()[..text.len() / 2].to_vec(),
                RejectClass::NotJson,
            ),
            1 => (
                Some(household),
                text.replacen(r#""source":"#, r#""src":"#, 1).into_bytes(),
                RejectClass::MissingField,
            ),
            2 => (
                Some(household),
                text.replacen(r#""dong_code":""#, r#""dong_code":"41"#, 1)
                    .into_bytes(),
                RejectClass::BadDongCode,
            ),
            3 => {
                let rrn = format!(
                    "{:06}-{:07}",
                    700101 + self.rng.below(300000),
                    1_000_000 + self.rng.below(999_999)
                );
                let hh = String::from_utf8_lossy(&household).into_owned();
                (
                    Some(rrn.as_bytes().to_vec()),
                    text.replacen(
                        &format!(r#""household_id":"{hh}""#),
                        &format!(r#""household_id":"{rrn}""#),
                        1,
                    )
                    .into_bytes(),
                    RejectClass::ResidentRegistrationNumber,
                )
            }
            4 => (
                Some(b"hh-unknown".to_vec()),
                text.into_bytes(),
                RejectClass::KeyMismatch,
            ),
            _ => (
                Some(household),
                vec![0xc3, 0x28, b'{', b'}'],
                RejectClass::NotUtf8,
            ),
        };
        GeneratedMessage {
            feed: msg.feed,
            key,
            payload,
            arrival_ms: msg.arrival_ms + 1,
            expect: Expect::Reject(class),
        }
    }

    /// A premium notice sent far too late, or, early in the span (before
    /// the watermark can make anything late), dated in the future: a clock
    /// error at the agency.
    fn late(&mut self, h: &Household, msg: &GeneratedMessage) {
        let (t, class) = if msg.arrival_ms - self.start_ms() < 140 * DAY_MS {
            (msg.arrival_ms + 3 * DAY_MS, RejectClass::FutureEvent)
        } else {
            (msg.arrival_ms - 130 * DAY_MS, RejectClass::LateEvent)
        };
        let common = self.common(h, t, "nhis");
        let body = format!(r#"{{{common},"months_overdue":2,"amount_krw":300000}}"#);
        self.out.push(GeneratedMessage {
            feed: "health-insurance",
            key: msg.key.clone(),
            payload: body.into_bytes(),
            arrival_ms: msg.arrival_ms,
            expect: Expect::Reject(class),
        });
    }

    fn start_ms(&self) -> i64 {
        self.kst
            .from_local_datetime(&self.cfg.start.and_hms_opt(0, 0, 0).unwrap_or_default())
            .single()
            .map(|t| t.timestamp_millis())
            .unwrap_or_default()
    }
}

/// Generates the messages of `cfg`, in arrival order.
pub fn generate(cfg: &GeneratorConfig) -> Generated {
    let mut messages = Vec::new();
    let planted = generate_each(cfg, |household| messages.append(household));
    // stable: a household's messages keep the order they were made in
    messages.sort_by_key(|m| m.arrival_ms);
    Generated { messages, planted }
}

impl Builder<'_> {
    /// A household's background over `months`: arrears that come and go,
    /// the odd job loss.
    fn background(&mut self, h: &Household, start: i64, months: u32) {
        let mut utility: Option<(usize, i64)> = None;
        let mut health: Option<i64> = None;
        for m in 0..months {
            let month_start = start + i64::from(m) * 30 * DAY_MS;
            match utility {
                Some((u, k)) if self.rng.chance(0.6) => {
                    let cut = k + 1 >= 4 && u < 3 && self.rng.chance(0.3);
                    self.utility(
                        h,
                        month_start + (5 + u as i64) * DAY_MS,
                        UTILITIES[u],
                        k + 1,
                        cut,
                    );
                    utility = Some((u, k + 1));
                }
                Some((u, _)) => {
                    self.utility(
                        h,
                        month_start + (5 + u as i64) * DAY_MS,
                        UTILITIES[u],
                        0,
                        false,
                    );
                    utility = None;
                }
                None if self.rng.chance(0.05) => {
                    let u = self.rng.below(5) as usize;
                    self.utility(
                        h,
                        month_start + (5 + u as i64) * DAY_MS,
                        UTILITIES[u],
                        1,
                        false,
                    );
                    utility = Some((u, 1));
                }
                None => {}
            }
            match health {
                Some(k) if self.rng.chance(0.7) => {
                    self.health(h, month_start + 12 * DAY_MS, k + 1);
                    health = Some(k + 1);
                }
                Some(_) => {
                    self.health(h, month_start + 12 * DAY_MS, 0);
                    health = None;
                }
                None if self.rng.chance(0.02) => {
                    self.health(h, month_start + 12 * DAY_MS, 1);
                    health = Some(1);
                }
                None => {}
            }
            if self.rng.chance(0.003) {
                let day = self.rng.below(28) as i64;
                self.job_loss(h, month_start + day * DAY_MS);
            }
        }
    }

    /// A planted crisis, for a share of the households: job loss, then
    /// growing premium and power arrears.
    fn crisis(&mut self, h: &Household, start: i64, span: i64) -> Option<PlantedCrisis> {
        if self.cfg.days < 75 || !self.rng.chance(self.cfg.crisis_share) {
            return None;
        }
        let t0 = start
            + self.rng
                .below((i64::from(self.cfg.days) - 75) as u64 * DAY_MS as u64)
                as i64
            // at nine in the morning, local time (start is local midnight)
            + 9 * 3_600_000;
        self.job_loss(h, t0);
        let mut t = t0 + 5 * DAY_MS;
        let mut months = 2;
        while t < start + span {
            self.health(h, t, months);
            months += 1;
            t += 30 * DAY_MS;
        }
        let mut t = t0 + 12 * DAY_MS;
        let mut months = 2;
        while t < start + span {
            let cut = months >= 4 && self.rng.chance(0.5);
            self.utility(h, t, "electricity", months, cut);
            months += 1;
            t += 30 * DAY_MS;
        }
        Some(PlantedCrisis {
            household_id: h.id.clone(),
            first_signal_ms: t0,
        })
    }
}

/// Generates the messages of `cfg` household by household, handing each
/// household's messages (not in arrival order) to `each`, so a caller can
/// write them out without holding the whole history; returns the planted
/// crises. [`generate`] is this, collected and sorted by arrival.
pub(crate) fn generate_each(
    cfg: &GeneratorConfig,
    mut each: impl FnMut(&mut Vec<GeneratedMessage>),
) -> Vec<PlantedCrisis> {
    let kst = crate::base::civil::LocalClock::from_hours(cfg.utc_offset_hours).fixed_offset();
    let mut b = Builder {
        cfg,
        rng: SplitMix64::new(cfg.seed),
        out: Vec::new(),
        kst,
        seq: 0,
    };
    let start = b.start_ms();
    let span = i64::from(cfg.days) * DAY_MS;
    let months = (cfg.days / 30).max(1);
    let mut planted = Vec::new();
    let mut id = String::new();
    let dongs = Dongs::of(cfg);
    for n in 0..cfg.households {
        id.clear();
        let _ = write!(id, "dd-{n:06}");
        let dong: Arc<str> = if b.rng.chance(cfg.unserved_share) {
            Arc::from(UNSERVED[b.rng.below(UNSERVED.len() as u64) as usize])
        } else {
            dongs.pick(&mut b.rng)
        };
        let moved_to = b.rng.chance(cfg.move_share).then(|| {
            let mut to = dongs.pick(&mut b.rng);
            if to == dong {
                to = dongs.other(&to);
            }
            (to, start + b.rng.below(span as u64) as i64)
        });
        let h = Household {
            id: id.clone(),
            dong,
            moved_to,
        };
        b.background(&h, start, months);
        if let Some(p) = b.crisis(&h, start, span) {
            planted.push(p);
        }
        b.out.retain(|m| m.arrival_ms < start + span);
        each(&mut b.out);
        b.out.clear();
    }
    planted
}

#[cfg(test)]
mod tests;
