//! Turning what a run wrote into outbox rows, inside the run's transactions.
//!
//! Referral events are `held` until their run ends ([`Enqueuer::finish`]), so the end of
//! the run can count them per destination and send one digest instead of a flood. The
//! first import of an empty table enqueues no `referral_new` at all but one summary.
//! Dedupe keys make every enqueue idempotent: a batch re-read by an overlapping
//! incremental run, or an expiry seen by every run inside its window, is enqueued once.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool};

use crate::config::{Config, Destination, EventKind};
use crate::store::StoreError;
use crate::store::notifications::{self, NewNotification, Snapshot};
use crate::store::referrals::{StatusChange, UpsertOutcome};

/// A run's notification bookkeeping.
pub(crate) struct Enqueuer {
    destinations: Vec<Destination>,
    run_id: i64,
    /// The table was empty when the run started: new referrals are summed up, not listed.
    import: bool,
    expiring_within: Duration,
    digest_over: u32,
}

impl Enqueuer {
    /// Reads whether this run is the first import; nothing at all when no destination is set.
    pub(crate) async fn for_run(
        pool: &PgPool,
        config: &Config,
        run_id: i64,
    ) -> Result<Self, StoreError> {
        let import = !config.notify.is_empty() && notifications::table_is_empty(pool).await?;
        Ok(Self {
            destinations: config.notify.clone(),
            run_id,
            import,
            expiring_within: config.notify_expiring_within,
            digest_over: config.notify_digest_over,
        })
    }

    fn active(&self) -> bool {
        !self.destinations.is_empty()
    }

    /// New referrals and status changes of one batch.
    pub(crate) async fn batch(
        &self,
        conn: &mut PgConnection,
        outcome: &UpsertOutcome,
    ) -> Result<(), StoreError> {
        if !self.active() {
            return Ok(());
        }
        let mut ids: Vec<String> = outcome
            .status_changes
            .iter()
            .map(|c| c.id.clone())
            .collect();
        if !self.import {
            ids.extend(outcome.created.iter().cloned());
        }
        if ids.is_empty() {
            return Ok(());
        }
        let snapshots: HashMap<String, Snapshot> = notifications::snapshots(conn, &ids)
            .await?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        let mut items = Vec::new();
        if !self.import {
            for id in &outcome.created {
                if let Some(s) = snapshots.get(id) {
                    items.extend(self.referral(
                        EventKind::ReferralNew,
                        s,
                        json!({}),
                        format!("new:{id}"),
                    ));
                }
            }
        }
        for change in &outcome.status_changes {
            if let Some(s) = snapshots.get(&change.id) {
                let key = format!(
                    "status:{}:{}:{}->{}",
                    change.id,
                    self.run_id,
                    shown_status(&change.old_status, &change.old_substatus),
                    shown_status(&change.new_status, &change.new_substatus)
                );
                items.extend(self.referral(
                    EventKind::ReferralStatusChanged,
                    s,
                    change_json(change),
                    key,
                ));
            }
        }
        notifications::enqueue(conn, &items).await?;
        Ok(())
    }

    /// Referrals a full pass marked missing.
    pub(crate) async fn missing(
        &self,
        conn: &mut PgConnection,
        ids: &[String],
    ) -> Result<(), StoreError> {
        if !self.active() || ids.is_empty() {
            return Ok(());
        }
        let items: Vec<NewNotification> = notifications::snapshots(conn, ids)
            .await?
            .iter()
            .flat_map(|s| {
                self.referral(
                    EventKind::ReferralMissing,
                    s,
                    json!({}),
                    format!("missing:{}:{}", s.id, self.run_id),
                )
            })
            .collect();
        notifications::enqueue(conn, &items).await?;
        Ok(())
    }

    /// At the end of the run, in its last transaction: expiring referrals, the import
    /// summary (`created` referrals were written this run), then the release of every row
    /// the run held.
    pub(crate) async fn finish(
        &self,
        conn: &mut PgConnection,
        created: u64,
    ) -> Result<(), StoreError> {
        if !self.active() {
            return Ok(());
        }
        let window = self.expiring_within.as_secs();
        let mut items = Vec::new();
        for s in notifications::expiring(conn, self.expiring_within).await? {
            let expires = s.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default();
            let key = format!("expiring:{}:{expires}:{window}", s.id);
            items.extend(self.referral(
                EventKind::ReferralExpiring,
                &s,
                json!({"window_seconds": window}),
                key,
            ));
        }
        if self.import && created > 0 {
            for d in self
                .destinations
                .iter()
                .filter(|d| d.wants(EventKind::ReferralNew))
            {
                items.push(NewNotification {
                    destination: d.name.clone(),
                    event: "import_summary".into(),
                    referral_id: None,
                    run_id: Some(self.run_id),
                    dedupe_key: format!("import:{}", self.run_id),
                    data: json!({"imported": created}),
                    // Not held: a summary is never folded into a digest.
                    held: false,
                });
            }
        }
        notifications::enqueue(conn, &items).await?;
        notifications::release(conn, Some(self.run_id), self.digest_over).await
    }

    /// One row per destination that wants `kind` and whose filters let `s` through.
    fn referral(
        &self,
        kind: EventKind,
        s: &Snapshot,
        extra: Value,
        key: String,
    ) -> Vec<NewNotification> {
        let mut data = json!({"referral": s});
        if let (Some(obj), Value::Object(more)) = (data.as_object_mut(), extra) {
            obj.extend(more);
        }
        self.destinations
            .iter()
            .filter(|d| d.wants(kind) && passes(d, s))
            .map(|d| NewNotification {
                destination: d.name.clone(),
                event: kind.as_str().into(),
                referral_id: Some(s.id.clone()),
                run_id: Some(self.run_id),
                dedupe_key: key.clone(),
                data: data.clone(),
                held: true,
            })
            .collect()
    }
}

/// A destination's filters: each list, when set, must hold the referral's value
/// (compared ignoring case); the minimum needs a deal value at least that high.
fn passes(d: &Destination, s: &Snapshot) -> bool {
    let matches = |list: &[String], value: &Option<String>| {
        list.is_empty()
            || value
                .as_deref()
                .is_some_and(|v| list.iter().any(|l| l.eq_ignore_ascii_case(v)))
    };
    let value_ok = d.min_deal_value.is_none_or(|min| {
        s.deal_value
            .as_deref()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v >= min)
    });
    matches(&d.directions, &s.direction)
        && matches(&d.types, &s.kind)
        && matches(&d.statuses, &s.status)
        && value_ok
}

fn shown_status(status: &Option<String>, substatus: &Option<String>) -> String {
    match (status, substatus) {
        (Some(s), Some(sub)) => format!("{s}/{sub}"),
        (Some(s), None) => s.clone(),
        (None, Some(sub)) => format!("/{sub}"),
        (None, None) => String::new(),
    }
}

fn change_json(c: &StatusChange) -> Value {
    json!({"change": {
        "old_status": c.old_status, "old_substatus": c.old_substatus,
        "new_status": c.new_status, "new_substatus": c.new_substatus,
    }})
}

/// Operator events, enqueued at once (not held: there is no run to wait for).
pub(crate) async fn operator(
    pool: &PgPool,
    destinations: &[Destination],
    kind: EventKind,
    dedupe_key: &str,
    data: Value,
) -> Result<u64, StoreError> {
    let items: Vec<NewNotification> = destinations
        .iter()
        .filter(|d| d.wants(kind))
        .map(|d| NewNotification {
            destination: d.name.clone(),
            event: kind.as_str().into(),
            referral_id: None,
            run_id: None,
            dedupe_key: dedupe_key.to_owned(),
            data: data.clone(),
            held: false,
        })
        .collect();
    let mut conn = pool.acquire().await?;
    notifications::enqueue(&mut conn, &items).await
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::config::Format;

    fn dest() -> Destination {
        Destination {
            name: "d".into(),
            format: Format::Json,
            url: SecretString::from("https://hooks.example/x"),
            secret: None,
            events: EventKind::ALL.to_vec(),
            directions: vec!["Incoming".into()],
            types: vec![],
            statuses: vec![],
            min_deal_value: Some(1000.0),
        }
    }

    #[test]
    fn filters_need_every_set_list_to_match_and_the_value_to_reach_the_minimum() {
        let s = Snapshot {
            direction: Some("incoming".into()),
            deal_value: Some("1000.00".into()),
            ..Snapshot::default()
        };
        assert!(passes(&dest(), &s));
        let small = Snapshot {
            deal_value: Some("999.99".into()),
            ..s.clone()
        };
        assert!(!passes(&dest(), &small));
        let none = Snapshot {
            deal_value: None,
            ..s.clone()
        };
        assert!(!passes(&dest(), &none));
        let outgoing = Snapshot {
            direction: Some("Outgoing".into()),
            ..s
        };
        assert!(!passes(&dest(), &outgoing));
    }
}
