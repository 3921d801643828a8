//! The referral table: records with their serialised JSON, order indexes, a small cache of
//! ordered and filtered results, and the mutations tests use to make the tenant change.
//!
//! Serving a page copies `$top` pre-serialised strings; only the first page of a new
//! (filter, order) pair after a change walks the table. Mutations re-serialise just the changed
//! records, through `serde_json::Value` so the field order stays as generated.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use rand::Rng;
use rand::seq::index;
use serde_json::Value;
use uuid::Uuid;

use crate::dataset::{self, Context, Keys, Origin};
use crate::odata::{Filter, OrderBy, OrderField};
use crate::rng::SeededRng;
use crate::timefmt;

/// One referral.
pub(crate) struct Record {
    pub keys: Keys,
    /// Hidden records are neither listed nor found by id (a user losing access, say).
    pub visible: bool,
    pub json: Arc<str>,
}

/// An ordered, filtered list of record positions, valid for one store generation.
struct Cached {
    generation: u64,
    filter: Filter,
    order: OrderBy,
    list: Arc<Vec<u32>>,
}

/// How many (filter, order) results to keep.
const CACHE_SLOTS: usize = 8;

pub(crate) struct ReferralStore {
    ctx: Context,
    records: Vec<Record>,
    by_id: HashMap<Uuid, u32>,
    /// Positions sorted by (createdDateTime, id).
    by_created: Vec<u32>,
    /// Positions sorted by (updatedDateTime, id); re-sorted after each mutation.
    by_updated: Vec<u32>,
    /// Bumped by every change; cached lists of older generations are stale.
    generation: u64,
    /// The seeded stream mutations draw from.
    rng: SeededRng,
    cache: Mutex<Vec<Cached>>,
}

/// A status change along the documented transitions (`New` → `New`/`Active`/`Closed`,
/// `Active` → `Active`/`Closed`, `Closed` terminal).
pub(crate) type Transition = (&'static str, &'static str);

impl ReferralStore {
    /// Generates `size` referrals from `seed`, on every core.
    pub fn build(seed: u64, size: usize) -> anyhow::Result<ReferralStore> {
        let ctx = Context::new(seed, size);
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 8);
        let chunk = size.div_ceil(threads).max(1);
        let records: Vec<Record> = std::thread::scope(|scope| {
            let ctx = &ctx;
            let handles: Vec<_> = (0..size)
                .step_by(chunk)
                .map(|start| {
                    scope.spawn(move || {
                        (start..(start + chunk).min(size))
                            .map(|i| {
                                let (keys, json) =
                                    dataset::generate(ctx, i as u64, Origin::Dataset);
                                Record {
                                    keys,
                                    visible: true,
                                    json: json.into(),
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow!("a dataset generation thread panicked"))
                })
                .collect::<anyhow::Result<Vec<_>>>()
                .map(|parts| parts.into_iter().flatten().collect())
        })?;
        let by_id = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.keys.id, i as u32))
            .collect();
        let mut store = ReferralStore {
            rng: SeededRng::for_item(seed, 0x6d75_7461_7465, 0),
            ctx,
            by_id,
            by_created: (0..records.len() as u32).collect(),
            by_updated: (0..records.len() as u32).collect(),
            records,
            generation: 0,
            cache: Mutex::new(Vec::new()),
        };
        let records = &store.records;
        store.by_created.sort_by_key(|&i| {
            (
                records[i as usize].keys.created,
                records[i as usize].keys.id,
            )
        });
        store.resort_updated();
        Ok(store)
    }

    fn resort_updated(&mut self) {
        let records = &self.records;
        // Stable and adaptive: nearly sorted input after a few updates sorts in linear time.
        self.by_updated.sort_by_key(|&i| {
            (
                records[i as usize].keys.updated,
                records[i as usize].keys.id,
            )
        });
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn record(&self, position: u32) -> &Record {
        &self.records[position as usize]
    }

    /// The visible referral with this id.
    pub fn get(&self, id: &Uuid) -> Option<&Record> {
        let record = &self.records[*self.by_id.get(id)? as usize];
        record.visible.then_some(record)
    }

    /// Positions of the visible records matching `filter`, in `order`, ties broken by id.
    pub fn ordered(&self, filter: &Filter, order: OrderBy) -> Arc<Vec<u32>> {
        {
            let cache = self.cache.lock().expect("list cache lock poisoned");
            if let Some(hit) = cache.iter().find(|c| {
                c.generation == self.generation && c.order == order && c.filter == *filter
            }) {
                return hit.list.clone();
            }
        }
        let index = match order.field {
            OrderField::Created => &self.by_created,
            OrderField::Updated => &self.by_updated,
        };
        let keep = |&&i: &&u32| {
            let record = &self.records[i as usize];
            record.visible && filter.matches(&record.keys)
        };
        let list: Vec<u32> = if order.descending {
            // Descending by key, still ascending by id within equal keys.
            let mut list: Vec<u32> = index.iter().rev().filter(keep).copied().collect();
            let key = |i: u32| {
                let k = &self.records[i as usize].keys;
                match order.field {
                    OrderField::Created => k.created,
                    OrderField::Updated => k.updated,
                }
            };
            list.chunk_by_mut(|a, b| key(*a) == key(*b))
                .for_each(|run| run.reverse());
            list
        } else {
            index.iter().filter(keep).copied().collect()
        };
        let list = Arc::new(list);
        let mut cache = self.cache.lock().expect("list cache lock poisoned");
        cache.retain(|c| c.generation == self.generation);
        if cache.len() >= CACHE_SLOTS {
            cache.remove(0);
        }
        cache.push(Cached {
            generation: self.generation,
            filter: filter.clone(),
            order,
            list: list.clone(),
        });
        list
    }

    /// Every visible referral's JSON, sorted by id.
    pub fn truth(&self) -> Vec<Arc<str>> {
        let mut visible: Vec<&Record> = self.records.iter().filter(|r| r.visible).collect();
        visible.sort_by_key(|r| r.keys.id.to_string());
        visible.into_iter().map(|r| r.json.clone()).collect()
    }

    fn ids(&self, positions: &[u32]) -> Vec<String> {
        positions
            .iter()
            .map(|&i| self.records[i as usize].keys.id.to_string())
            .collect()
    }

    /// Picks `k` distinct positions among `candidates` with the mutation stream, keeping
    /// the candidates' order so results do not depend on hash order.
    fn sample(&mut self, candidates: &[u32], k: usize) -> Vec<u32> {
        let mut picked: Vec<usize> =
            index::sample(&mut self.rng, candidates.len(), k.min(candidates.len())).into_vec();
        picked.sort_unstable();
        picked.into_iter().map(|i| candidates[i]).collect()
    }

    pub(crate) fn visible_where(&self, pred: impl Fn(&Keys) -> bool) -> Vec<u32> {
        (0..self.records.len() as u32)
            .filter(|&i| {
                let r = &self.records[i as usize];
                r.visible && pred(&r.keys)
            })
            .collect()
    }

    /// Updates `k` visible referrals, open ones first: new `updatedDateTime` and eTag, status
    /// moved along the documented transitions (closed ones only get new notes).
    pub fn update(&mut self, k: usize, now: i64) -> Vec<String> {
        let mut chosen = self.sample(&self.visible_where(|k| k.status != "Closed"), k);
        if chosen.len() < k {
            let closed = self.visible_where(|k| k.status == "Closed");
            chosen.extend(self.sample(&closed, k - chosen.len()));
        }
        self.update_positions(&chosen, now)
    }

    /// Updates `k` referrals drawn from the first `upto` entries of `list` (what a client has
    /// already been served), for the `mutate_during_paging` fault.
    pub fn update_within(&mut self, list: &[u32], upto: usize, k: usize, now: i64) -> Vec<String> {
        let served: Vec<u32> = list[..upto.min(list.len())]
            .iter()
            .copied()
            .filter(|&i| self.records[i as usize].visible)
            .collect();
        let chosen = self.sample(&served, k);
        self.update_positions(&chosen, now)
    }

    fn update_positions(&mut self, positions: &[u32], now: i64) -> Vec<String> {
        for &i in positions {
            let keys = &self.records[i as usize].keys;
            let next = next_state(&mut self.rng, keys.status, keys.substatus);
            self.apply(i, next, now);
        }
        self.changed(true);
        self.ids(positions)
    }

    /// Closes `k` open referrals: `New` ones are declined or expire, `Active` ones are won or lost.
    pub fn close(&mut self, k: usize, now: i64) -> Vec<String> {
        let open = self.visible_where(|k| matches!(k.status, "New" | "Active"));
        let chosen = self.sample(&open, k);
        for &i in &chosen {
            let status = self.records[i as usize].keys.status;
            let next = if status == "New" {
                if self.rng.random_bool(0.6) {
                    ("Closed", "Declined")
                } else {
                    ("Closed", "Expired")
                }
            } else if self.rng.random_bool(0.55) {
                ("Closed", "Won")
            } else {
                ("Closed", "Lost")
            };
            self.apply(i, next, now);
        }
        self.changed(true);
        self.ids(&chosen)
    }

    /// Adds `k` new referrals created now (incoming `New/Pending` or outgoing `Active/Accepted`).
    pub fn add(&mut self, k: usize, now: i64) -> Vec<String> {
        let first = self.records.len() as u32;
        for offset in 0..k as u32 {
            let position = first + offset;
            let (keys, json) =
                dataset::generate(&self.ctx, u64::from(position), Origin::Added { now });
            self.by_id.insert(keys.id, position);
            let records = &self.records;
            let at = self.by_created.partition_point(|&i| {
                (
                    records[i as usize].keys.created,
                    records[i as usize].keys.id,
                ) < (keys.created, keys.id)
            });
            self.by_created.insert(at, position);
            self.by_updated.push(position);
            self.records.push(Record {
                keys,
                visible: true,
                json: json.into(),
            });
        }
        self.changed(true);
        self.ids(&(first..first + k as u32).collect::<Vec<_>>())
    }

    /// Rewrites the newest referrals into the cases of `EmulatorConfig::poison_referrals`, one
    /// case each, keeping their sort keys so they stay on the first page.
    pub fn poison(&mut self) {
        const CASES: usize = 6;
        let newest: Vec<u32> = self.by_updated.iter().rev().take(CASES).copied().collect();
        for (case, position) in newest.into_iter().enumerate() {
            let record = &mut self.records[position as usize];
            let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&record.json) else {
                continue;
            };
            let id = map
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            match case {
                0 => {
                    map.insert("name".into(), "Contoso\0 Ltd".into());
                }
                1 => {
                    if let Some(Value::Object(details)) = map.get_mut("details") {
                        details.insert("notes".into(), "Call back\0 on Monday".into());
                        details.insert("region\0code".into(), "EMEA".into());
                    }
                }
                2 => {
                    map.insert("id".into(), format!("{id}\0").into());
                }
                3 => {
                    map.insert("id".into(), random_text(&mut self.rng, 3000).into());
                }
                4 => {
                    map.insert("status".into(), random_text(&mut self.rng, 10_240).into());
                }
                _ => {
                    if let Some(Value::Object(customer)) = map.get_mut("customerProfile") {
                        customer.insert("name".into(), random_text(&mut self.rng, 10_240).into());
                    }
                }
            }
            record.json = Value::Object(map).to_string().into();
        }
        self.changed(false);
    }

    /// Hides `k` visible referrals from the API, timestamps untouched.
    pub fn hide(&mut self, k: usize) -> Vec<String> {
        let chosen = self.sample(&self.visible_where(|_| true), k);
        for &i in &chosen {
            self.records[i as usize].visible = false;
        }
        self.changed(false);
        self.ids(&chosen)
    }

    /// Makes every hidden referral visible again, with its old `updatedDateTime`.
    pub fn unhide_all(&mut self) -> Vec<String> {
        let hidden: Vec<u32> = (0..self.records.len() as u32)
            .filter(|&i| !self.records[i as usize].visible)
            .collect();
        for &i in &hidden {
            self.records[i as usize].visible = true;
        }
        self.changed(false);
        self.ids(&hidden)
    }

    pub(crate) fn changed(&mut self, timestamps_moved: bool) {
        if timestamps_moved {
            self.resort_updated();
        }
        self.generation += 1;
    }

    /// After [`Self::redate`] moved creation times: both order indexes are re-sorted.
    pub(crate) fn redated(&mut self) {
        let records = &self.records;
        self.by_created.sort_by_key(|&i| {
            (
                records[i as usize].keys.created,
                records[i as usize].keys.id,
            )
        });
        self.changed(true);
    }

    /// Moves one record's every timestamp by `shift` ticks, so its dates keep their distances
    /// (expiry 14 days after creation, expected close months ahead), with `updatedDateTime`
    /// capped at `latest`. [`Self::redated`] re-sorts after a batch.
    pub(crate) fn redate(&mut self, position: u32, shift: i64, latest: i64) {
        let record = &mut self.records[position as usize];
        let Ok(mut value) = serde_json::from_str::<Value>(&record.json) else {
            return;
        };
        let moved = |v: &mut Value, cap: i64| {
            if let Some(t) = v.as_str().and_then(timefmt::parse) {
                *v = timefmt::format((t + shift).min(cap)).into();
            }
        };
        let fields = [
            ("/createdDateTime", i64::MAX),
            ("/expirationDateTime", i64::MAX),
            ("/acceptedDateTime", i64::MAX),
            ("/details/closingDateTime", i64::MAX),
            ("/updatedDateTime", latest),
        ];
        for (pointer, cap) in fields {
            if let Some(v) = value.pointer_mut(pointer) {
                moved(v, cap);
            }
        }
        record.keys.created += shift;
        record.keys.updated = (record.keys.updated + shift).min(latest);
        record.json = value.to_string().into();
    }

    /// A new `updatedDateTime` at `now` (with the service's random precision), never before
    /// the record's last one, and a new eTag, for a change made at `now`.
    fn touch(&mut self, position: u32, map: &mut serde_json::Map<String, Value>, now: i64) -> i64 {
        let last = self.records[position as usize].keys.updated;
        let mut updated = dataset::with_random_precision(&mut self.rng, now);
        if updated <= last {
            // Never let updatedDateTime go backwards when two changes share a truncated second.
            updated = last + 1;
        }
        map.insert("updatedDateTime".into(), timefmt::format(updated).into());
        map.insert("eTag".into(), dataset::etag(&mut self.rng, updated).into());
        updated
    }

    /// Sets a record's `details.dealValue` to `value` (a whole number, or a string when it
    /// was one) at `now`; [`Self::changed`] after a batch.
    pub(crate) fn set_deal_value(&mut self, position: u32, value: u64, now: i64) {
        let Ok(Value::Object(mut map)) =
            serde_json::from_str::<Value>(&self.records[position as usize].json)
        else {
            return;
        };
        let updated = self.touch(position, &mut map, now);
        if let Some(Value::Object(details)) = map.get_mut("details") {
            let as_text = details.get("dealValue").is_some_and(Value::is_string);
            let value = if as_text {
                Value::from(value.to_string())
            } else {
                Value::from(value)
            };
            details.insert("dealValue".into(), value);
        }
        let record = &mut self.records[position as usize];
        record.keys.updated = updated;
        record.json = Value::Object(map).to_string().into();
    }

    /// A record's deal value as a number, however it is written.
    pub(crate) fn deal_value(&self, position: u32) -> Option<f64> {
        let value: Value = serde_json::from_str(&self.records[position as usize].json).ok()?;
        match &value["details"]["dealValue"] {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Rewrites one record's JSON for a status change at `now`; [`Self::changed`] after a batch.
    pub(crate) fn apply(&mut self, position: u32, (status, substatus): Transition, now: i64) {
        let Ok(Value::Object(mut map)) =
            serde_json::from_str::<Value>(&self.records[position as usize].json)
        else {
            return;
        };
        let updated = self.touch(position, &mut map, now);
        let record = &mut self.records[position as usize];
        let stamp = timefmt::format(updated);
        let was_active = record.keys.status == "Active";
        map.insert("status".into(), status.into());
        map.insert("substatus".into(), substatus.into());
        if status == "Active" && map.get("acceptedDateTime").is_none_or(Value::is_null) {
            map.insert("acceptedDateTime".into(), stamp.clone().into());
        }
        if status != "New" {
            map.insert("expirationDateTime".into(), Value::Null);
        }
        let reason = match substatus {
            "Lost" => Some("Lost to competitor"),
            "Declined" => Some("No capacity"),
            "Expired" => Some("Referral expired without a response"),
            _ => None,
        };
        if status == "Closed" && record.keys.status != "Closed" {
            map.insert("closedDateTime".into(), stamp.clone().into());
            map.insert("statusReason".into(), reason.into());
            map.insert(
                "salesStage".into(),
                (if was_active { Some("Close") } else { None }).into(),
            );
        }
        if status == "Active" {
            map.insert(
                "salesStage".into(),
                (*["Develop", "Propose", "Close"]
                    .get(self.rng.random_range(0..3))
                    .unwrap_or(&"Develop"))
                .into(),
            );
        }
        if let Some(Value::Object(details)) = map.get_mut("details") {
            details.insert(
                "notes".into(),
                format!("Customer call on {stamp}: next steps agreed.").into(),
            );
        }
        record.keys.status = status;
        record.keys.substatus = substatus;
        record.keys.updated = updated;
        record.json = Value::Object(map).to_string().into();
    }
}

/// The next status of an update, along the documented transitions.
/// Letters and digits that do not compress, so an index sees their full length.
fn random_text(rng: &mut SeededRng, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn next_state(rng: &mut SeededRng, status: &'static str, substatus: &'static str) -> Transition {
    let options: &[(Transition, u32)] = match (status, substatus) {
        ("New", "Pending") => &[
            (("New", "Received"), 30),
            (("Active", "Accepted"), 45),
            (("Closed", "Declined"), 15),
            (("Closed", "Expired"), 10),
        ],
        ("New", _) => &[
            (("New", "Received"), 10),
            (("Active", "Accepted"), 55),
            (("Closed", "Declined"), 20),
            (("Closed", "Expired"), 15),
        ],
        ("Active", _) => &[
            (("Active", "Accepted"), 50),
            (("Closed", "Won"), 30),
            (("Closed", "Lost"), 20),
        ],
        _ => return (status, substatus),
    };
    let total: u32 = options.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for (transition, weight) in options {
        if roll < *weight {
            return *transition;
        }
        roll -= weight;
    }
    options[0].0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::ListQuery;

    fn query(text: &str) -> ListQuery {
        ListQuery::parse(Some(text)).expect("valid query")
    }

    #[test]
    fn orders_are_total_and_descending_keeps_id_ties_ascending() {
        let store = ReferralStore::build(3, 2000).expect("builds");
        for q in [
            "$orderby=createdDateTime asc",
            "$orderby=updatedDateTime desc",
        ] {
            let q = query(q);
            let list = store.ordered(&q.filter, q.order);
            assert_eq!(list.len(), 2000);
            for pair in list.windows(2) {
                let (a, b) = (&store.record(pair[0]).keys, &store.record(pair[1]).keys);
                let (ka, kb) = match q.order.field {
                    OrderField::Created => (a.created, b.created),
                    OrderField::Updated => (a.updated, b.updated),
                };
                if ka == kb {
                    assert!(a.id < b.id);
                } else {
                    assert_eq!(ka < kb, !q.order.descending);
                }
            }
        }
    }

    #[test]
    fn mutations_move_along_transitions_and_are_deterministic() {
        let mut a = ReferralStore::build(5, 500).expect("builds");
        let mut b = ReferralStore::build(5, 500).expect("builds");
        let now = timefmt::now_ticks();
        assert_eq!(a.update(20, now), b.update(20, now));
        assert_eq!(a.close(5, now), b.close(5, now));
        assert_eq!(a.add(3, now), b.add(3, now));
        assert_eq!(a.len(), 503);
        let ids = a.hide(4);
        assert_eq!(a.truth().len(), 499);
        assert!(a.get(&ids[0].parse().expect("uuid")).is_none());
        assert_eq!(a.unhide_all(), {
            let mut sorted = ids.clone();
            sorted.sort_by_key(|id| a.by_id[&id.parse::<Uuid>().expect("uuid")]);
            sorted
        });
        for json in a.truth() {
            let v: Value = serde_json::from_str(&json).expect("json");
            let ok = match v["status"].as_str() {
                Some("New") => matches!(v["substatus"].as_str(), Some("Pending" | "Received")),
                Some("Active") => v["substatus"] == "Accepted",
                Some("Closed") => !v["closedDateTime"].is_null(),
                _ => true,
            };
            assert!(ok, "{v}");
        }
    }
}
