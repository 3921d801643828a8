//! Activity: a tenant that lives in the present, for the demo and for tests of what a client
//! does when referrals move on by themselves.
//!
//! At start the open incoming referrals (`New`) are re-dated as recent arrivals: created in the
//! last 14 days, so they expire (14 days after creation, as generated) days ahead, about one in
//! five within 48 hours. Then each round changes a few referrals the way a sales team and its
//! customers do: New ones are accepted or declined, Active ones are won or lost, a deal value is
//! revised, a new referral arrives, and a New one whose expiry has passed is closed as expired.
//!
//! Which referrals move and how comes from a stream seeded by the dataset seed, so the same seed
//! and the same number of rounds give the same changes; only the timestamps follow the clock.

use std::fmt;
use std::time::Duration;

use rand::Rng;

use crate::dataset::rng_for;
use crate::rng::SeededRng;
use crate::store::{ReferralStore, Transition};
use crate::timefmt::TICKS_PER_SEC;

const SALT_ACTIVITY: u64 = 0x6163_7469_7669;
const DAY: i64 = 86_400 * TICKS_PER_SEC;
const HOUR: i64 = 3_600 * TICKS_PER_SEC;
/// How long an incoming referral stays New before Partner Center expires it (as generated).
const EXPIRES_AFTER: i64 = 14 * DAY;

/// [`crate::EmulatorConfig::activity`]: how often, and how much, the tenant changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    /// Time between rounds; `None` runs rounds only on [`crate::Emulator::activity_round`] or
    /// `POST /_emulator/activity`.
    pub every: Option<Duration>,
    /// Changes drawn per round (besides expiring what is due).
    pub changes: usize,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            every: Some(Duration::from_secs(20)),
            changes: 3,
        }
    }
}

/// What one change of a round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// New → Active/Accepted.
    Accepted,
    /// New/Pending → New/Received.
    Received,
    /// New → Closed/Declined.
    Declined,
    /// New → Closed/Expired: its expiry passed without an answer.
    Expired,
    /// Active → Closed/Won.
    Won,
    /// Active → Closed/Lost.
    Lost,
    /// `details.dealValue` revised.
    ValueChanged,
    /// A referral created now (incoming New/Pending or outgoing Active/Accepted).
    Added,
}

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChangeKind::Accepted => "accepted",
            ChangeKind::Received => "received",
            ChangeKind::Declined => "declined",
            ChangeKind::Expired => "expired",
            ChangeKind::Won => "won",
            ChangeKind::Lost => "lost",
            ChangeKind::ValueChanged => "value_changed",
            ChangeKind::Added => "added",
        })
    }
}

/// One referral changed by a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityChange {
    pub id: String,
    pub kind: ChangeKind,
}

/// The seeded stream rounds draw from.
pub(crate) struct ActivityEngine {
    rng: SeededRng,
}

impl ActivityEngine {
    pub fn new(seed: u64) -> ActivityEngine {
        ActivityEngine {
            rng: rng_for(seed, SALT_ACTIVITY, 0),
        }
    }

    /// Re-dates the New referrals as arrivals of the last 14 days, as seen at `now`.
    pub fn go_live(&mut self, store: &mut ReferralStore, now: i64) {
        for position in store.visible_where(|k| k.status == "New") {
            let age = if self.rng.random_bool(0.2) {
                // Expires within the next 48 hours (but not within the first hour).
                self.rng
                    .random_range(EXPIRES_AFTER - 48 * HOUR..EXPIRES_AFTER - HOUR)
            } else {
                self.rng.random_range(6 * HOUR..EXPIRES_AFTER - 48 * HOUR)
            };
            let shift = now - age - store.record(position).keys.created;
            store.redate(position, shift, now);
        }
        store.redated();
    }

    /// One round at `now`: what is due expires, then `changes` changes are drawn.
    pub fn round(
        &mut self,
        store: &mut ReferralStore,
        changes: usize,
        now: i64,
    ) -> Vec<ActivityChange> {
        let mut done = Vec::new();
        for position in store.visible_where(|k| k.status == "New") {
            if expiration(store, position).is_some_and(|at| at <= now) {
                store.apply(position, ("Closed", "Expired"), now);
                done.push(change(store, position, ChangeKind::Expired));
            }
        }
        for _ in 0..changes {
            let kind = self.draw();
            if let Some(change) = self.make(store, kind, now) {
                done.push(change);
            }
        }
        store.changed(true);
        done
    }

    fn draw(&mut self) -> ChangeKind {
        const WEIGHTS: &[(ChangeKind, u32)] = &[
            (ChangeKind::Accepted, 30),
            (ChangeKind::Received, 8),
            (ChangeKind::Declined, 5),
            (ChangeKind::Won, 12),
            (ChangeKind::Lost, 8),
            (ChangeKind::ValueChanged, 17),
            (ChangeKind::Added, 20),
        ];
        let total: u32 = WEIGHTS.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.random_range(0..total);
        for &(kind, weight) in WEIGHTS {
            if roll < weight {
                return kind;
            }
            roll -= weight;
        }
        ChangeKind::Added
    }

    /// Makes one change of `kind`; `None` when no referral can take it.
    fn make(
        &mut self,
        store: &mut ReferralStore,
        kind: ChangeKind,
        now: i64,
    ) -> Option<ActivityChange> {
        let (from, to): (fn(&str, &str) -> bool, Transition) = match kind {
            ChangeKind::Added => {
                let id = store.add(1, now).pop()?;
                return Some(ActivityChange { id, kind });
            }
            ChangeKind::ValueChanged => {
                let position = self.pick(store, |s, _| matches!(s, "New" | "Active"))?;
                let old = store.deal_value(position).unwrap_or(10_000.0);
                // Revised by 5 to 40 percent either way, rounded to hundreds as people do.
                let factor = 1.0 + self.rng.random_range(5..=40) as f64 / 100.0 * self.sign();
                let new = ((old * factor / 100.0).round() * 100.0).max(100.0) as u64;
                store.set_deal_value(position, new, now);
                return Some(change(store, position, kind));
            }
            ChangeKind::Accepted => (|s, _| s == "New", ("Active", "Accepted")),
            ChangeKind::Received => (|s, ss| s == "New" && ss == "Pending", ("New", "Received")),
            ChangeKind::Declined => (|s, _| s == "New", ("Closed", "Declined")),
            ChangeKind::Won => (|s, _| s == "Active", ("Closed", "Won")),
            ChangeKind::Lost => (|s, _| s == "Active", ("Closed", "Lost")),
            ChangeKind::Expired => return None,
        };
        let position = self.pick(store, from)?;
        store.apply(position, to, now);
        Some(change(store, position, kind))
    }

    fn sign(&mut self) -> f64 {
        if self.rng.random_bool(0.6) { 1.0 } else { -1.0 }
    }

    /// One visible referral whose (status, substatus) passes `pred`, drawn from the stream.
    fn pick(&mut self, store: &mut ReferralStore, pred: fn(&str, &str) -> bool) -> Option<u32> {
        let candidates = store.visible_where(|k| pred(k.status, k.substatus));
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.random_range(0..candidates.len())])
    }
}

fn change(store: &ReferralStore, position: u32, kind: ChangeKind) -> ActivityChange {
    ActivityChange {
        id: store.record(position).keys.id.to_string(),
        kind,
    }
}

/// A record's `expirationDateTime`, when it has one.
fn expiration(store: &ReferralStore, position: u32) -> Option<i64> {
    let json = &store.record(position).json;
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    crate::timefmt::parse(value["expirationDateTime"].as_str()?)
}
