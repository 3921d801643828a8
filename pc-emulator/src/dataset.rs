//! Deterministic, realistic referrals: every field of section 4 of the reference, in realistic
//! proportions and with the awkward cases a client must survive.
//!
//! Referral `i` is a pure function of `(seed, i, customer pool size)`, so datasets of any size are
//! built in parallel and the same seed gives byte-identical JSON. Customers come from a shared
//! pool (many referrals per customer, some customers sharing a domain, some with free-mail or no
//! email at all), names mix Turkish, German, Japanese, emoji and quotes.

use rand::Rng;
use uuid::Uuid;

use crate::rng::SeededRng;
use crate::timefmt::{self, TICKS_PER_SEC};

mod tables;
mod wire;

use tables::{
    ASSISTANCE_CODES, Country, FIRST_NAMES, INDUSTRIES, LAST_NAMES, LOST_REASONS, PARTNER_ORGS,
    PARTNER_USERS, PREFIXES, PRODUCTS, PROJECTS, SIZES,
};
use wire::{
    AdditionalRequirements, Address, Attribute, Consent, ContactPreference, CustomerProfile,
    DealValue, Details, EmptyObject, IdRef, Ids, InviteContext, InvitedBy, Link, Links, Member,
    ProfileId, Referral, Registration, Requirements, Solution, StatusChange, Tag, Target,
    TrackingInfo,
};

/// Every dataset timestamp lies before this instant (2025-11-01T00:00:00Z), so pages do not
/// depend on the clock; mutations use the real clock and so always sort later.
const ANCHOR: i64 = 1_761_955_200 * TICKS_PER_SEC;
const DAY: i64 = 86_400 * TICKS_PER_SEC;

/// One independent stream per purpose, so adding a field to one never shifts another.
const SALT_ORG: u64 = 1;
const SALT_BRAND: u64 = 2;
const SALT_CUSTOMER: u64 = 3;
const SALT_REFERRAL: u64 = 4;
const SALT_ENGAGEMENT: u64 = 5;
const SALT_PARTNER_ORG: u64 = 6;

/// The partner organization that owns the tenant.
pub(crate) struct PartnerOrg {
    pub id: String,
    pub name: &'static str,
    pub mpn_id: String,
}

/// What every referral of one dataset shares.
pub(crate) struct Context {
    pub seed: u64,
    /// Customers referrals are drawn from; fixed at start so added referrals reuse them.
    pub customers: u64,
    pub org: PartnerOrg,
}

impl Context {
    pub fn new(seed: u64, referrals: usize) -> Context {
        let mut rng = rng_for(seed, SALT_ORG, 0);
        Context {
            seed,
            customers: (referrals as u64 / 3).max(1),
            org: PartnerOrg {
                id: guid(&mut rng),
                name: "Adatum Cloud Partners Ltd",
                mpn_id: rng.random_range(4_000_000..7_000_000u32).to_string(),
            },
        }
    }
}

/// The fields the store sorts and filters on, kept beside the serialised JSON.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub created: i64,
    pub updated: i64,
    pub status: &'static str,
    pub substatus: &'static str,
    pub kind: &'static str,
    pub qualification: &'static str,
    pub direction: &'static str,
    pub country: &'static str,
}

/// Where a referral comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    /// Part of the initial dataset: timestamps before [`ANCHOR`].
    Dataset,
    /// Added at runtime at `now` (ticks): a fresh incoming or outgoing referral.
    Added { now: i64 },
}

/// A seeded stream for one purpose (`salt`) and one item.
pub(crate) fn rng_for(seed: u64, salt: u64, item: u64) -> SeededRng {
    SeededRng::for_item(seed, salt, item)
}

/// A lowercase v4 GUID from the stream.
pub(crate) fn guid(rng: &mut impl Rng) -> String {
    uuid_from(rng).to_string()
}

pub(crate) fn uuid_from(rng: &mut impl Rng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

/// A timestamp with a random number (0 to 7) of fractional digits, as the service mixes them.
pub(crate) fn with_random_precision(rng: &mut impl Rng, ticks: i64) -> i64 {
    let digits = if rng.random_bool(0.55) {
        7
    } else {
        rng.random_range(0..=6)
    };
    timefmt::truncate(ticks, digits)
}

/// A quoted eTag like the service's, different on every change.
pub(crate) fn etag(rng: &mut impl Rng, updated: i64) -> String {
    format!(
        "\"{:08x}-0000-{:04x}-0000-{:08x}0000\"",
        rng.random::<u32>(),
        rng.random_range(0x0100..0x0400u16),
        timefmt::unix_secs(updated) as u32
    )
}

fn pick<T: Copy>(rng: &mut impl Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Picks from `(value, weight)` pairs.
fn weighted<T: Copy>(rng: &mut impl Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total);
    for (value, weight) in items {
        if roll < *weight {
            return *value;
        }
        roll -= weight;
    }
    items[items.len() - 1].0
}

/// A customer company, a pure function of `(seed, index)`.
struct Brand {
    country: &'static Country,
    prefix: usize,
    industry: Option<usize>,
}

impl Brand {
    fn of(seed: u64, index: u64) -> Brand {
        let mut rng = rng_for(seed, SALT_BRAND, index);
        let country = &tables::COUNTRIES[rng.random_range(0..tables::COUNTRIES.len())];
        let prefix = rng.random_range(0..PREFIXES.len());
        let industry = rng
            .random_bool(0.65)
            .then(|| rng.random_range(0..INDUSTRIES.len()));
        Brand {
            country,
            prefix,
            industry,
        }
    }

    fn name(&self) -> String {
        let mut name = PREFIXES[self.prefix].0.to_string();
        if let Some(i) = self.industry {
            name.push(' ');
            name.push_str(INDUSTRIES[i].0);
        }
        name
    }

    fn domain(&self) -> String {
        let mut domain = PREFIXES[self.prefix].1.to_string();
        if let Some(i) = self.industry {
            domain.push('-');
            domain.push_str(INDUSTRIES[i].1);
        }
        domain.push_str(self.country.tld);
        domain
    }
}

/// How a customer's contacts can be reached, which decides whether a domain is derivable.
enum Mail {
    Company(String),
    Free,
    Missing,
}

struct Customer {
    name: String,
    /// The brand alone, as referral titles use it ("Contoso - ...").
    short: &'static str,
    country: &'static Country,
    mail: Mail,
}

impl Customer {
    fn of(seed: u64, index: u64) -> Customer {
        let brand = Brand::of(seed, index);
        let mut rng = rng_for(seed, SALT_CUSTOMER, index);
        let suffix = pick(&mut rng, brand.country.suffixes);
        let name = format!("{} {suffix}", brand.name());
        let roll = rng.random_range(0..100);
        let mail = if roll < 7 {
            Mail::Free
        } else if roll < 11 {
            Mail::Missing
        } else if roll < 23 && index > 0 {
            // A subsidiary or a second record of the same company: another name, same domain.
            let owner = index.saturating_sub(rng.random_range(1..=3));
            Mail::Company(Brand::of(seed, owner).domain())
        } else {
            Mail::Company(brand.domain())
        };
        Customer {
            name,
            short: PREFIXES[brand.prefix].0,
            country: brand.country,
            mail,
        }
    }
}

/// Skews customer choice so a few customers own many referrals, as real pipelines do.
fn customer_index(rng: &mut impl Rng, customers: u64) -> u64 {
    let u: f64 = rng.random();
    ((u * u * customers as f64) as u64).min(customers - 1)
}

/// Generates referral `index`; returns its keys and its JSON exactly as the API serves it.
pub(crate) fn generate(ctx: &Context, index: u64, origin: Origin) -> (Keys, String) {
    let mut rng = rng_for(ctx.seed, SALT_REFERRAL, index);
    let customer = Customer::of(ctx.seed, customer_index(&mut rng, ctx.customers));
    let id = uuid_from(&mut rng);
    // About one referral in eight shares its engagement with its neighbour (both sides of a
    // shared co-sell); the pair's flag and id come from the pair's own stream.
    let pair = index & !1;
    let mut pair_rng = rng_for(ctx.seed, SALT_ENGAGEMENT, pair);
    let engagement_id = if pair_rng.random_bool(0.12) {
        uuid_from(&mut pair_rng)
    } else {
        uuid_from(&mut rng)
    };

    let category = weighted(
        &mut rng,
        &[
            (Category::Marketplace, 12),
            (Category::Qualified, 13),
            (Category::CoSell, 75),
        ],
    );
    let direction = match category {
        Category::CoSell if rng.random_bool(0.45) => "Outgoing",
        _ => "Incoming",
    };
    let (kind, qualification) = match category {
        Category::Marketplace => ("Independent", "Direct"),
        Category::Qualified => (
            "Independent",
            pick(&mut rng, &["SalesQualified", "MarketingQualified"]),
        ),
        Category::CoSell => (
            pick(&mut rng, &["Independent", "Shared", "Shared"]),
            pick(&mut rng, &["SalesQualified", "SalesQualified", "None"]),
        ),
    };
    let lifecycle = Lifecycle::generate(&mut rng, direction, origin);

    let first_contact = rng.random_range(0..FIRST_NAMES.len());
    let (project, project_notes) = pick(&mut rng, PROJECTS);
    let name = format!("{} - {project}", customer.short);
    let country = customer.country;

    let customer_team = customer_team(&mut rng, &customer, first_contact);
    let address = Address {
        address_line1: Some(format!(
            "{} {}",
            rng.random_range(1..400),
            pick(&mut rng, country.streets)
        )),
        address_line2: rng
            .random_bool(0.2)
            .then(|| format!("Floor {}", rng.random_range(1..30))),
        city: Some(pick(&mut rng, country.cities).to_string()),
        state: country
            .states
            .map(|states| pick(&mut rng, states).to_string()),
        postal_code: Some(format!("{:05}", rng.random_range(1000..99999))),
        country: (!rng.random_bool(0.02)).then_some(country.code),
        region: Some(country.region),
    };
    let ids = match rng.random_range(0..100) {
        0..=1 => Ids::Empty(EmptyObject {}),
        2..=44 => Ids::List(Vec::new()),
        _ => Ids::List(vec![ProfileId {
            profile_type: if rng.random_bool(0.8) {
                "Duns"
            } else {
                "External"
            },
            id: format!("{:09}", rng.random_range(10_000_000..999_999_999u32)),
        }]),
    };
    let invited_by = match (category, direction) {
        (Category::Marketplace, _) if rng.random_bool(0.5) => InvitedBy {
            organization_id: None,
            organization_name: None,
        },
        (Category::Marketplace | Category::Qualified, _) => microsoft(),
        (Category::CoSell, "Outgoing") => InvitedBy {
            organization_id: Some(ctx.org.id.clone()),
            organization_name: Some(ctx.org.name.to_string()),
        },
        (Category::CoSell, _) if rng.random_bool(0.3) => microsoft(),
        (Category::CoSell, _) => {
            let (org_name, org_salt) = pick(&mut rng, PARTNER_ORGS);
            InvitedBy {
                organization_id: Some(guid(&mut rng_for(ctx.seed, SALT_PARTNER_ORG, org_salt))),
                organization_name: Some(org_name.to_string()),
            }
        }
    };
    let currency = country.currency;
    let deal_value = match rng.random_range(0..100) {
        0..=69 => Some(DealValue::Whole(rng.random_range(2..4000u64) * 500)),
        70..=84 => Some(DealValue::Fraction(
            f64::from(rng.random_range(100_000..50_000_000u32)) / 100.0,
        )),
        85..=91 => Some(DealValue::Text(format!(
            "{}",
            rng.random_range(1..200u32) * 1000
        ))),
        _ => None,
    };
    let solutions = (0..rng.random_range(0..3))
        .map(|_| {
            let (product_name, publisher) = pick(&mut rng, PRODUCTS);
            Solution {
                id: guid(&mut rng),
                name: product_name,
                kind: "Name",
                price: f64::from(rng.random_range(1_000..500_000u32)) / 100.0,
                quantity: rng.random_range(1..500),
                currency,
                publisher_name: publisher,
                solution_type: pick(&mut rng, &["Product", "Service", "Solution"]),
            }
        })
        .collect();
    let registration_roll = rng.random_range(0..100);
    let registrations = (category == Category::CoSell && registration_roll < 6).then(|| {
        let status = pick(&mut rng, &["Approved", "ReviewPending", "Rejected"]);
        vec![Registration {
            id: guid(&mut rng),
            kind: "AzureIPCoSell",
            registration_date_time: timefmt::format(lifecycle.created + DAY),
            status,
            status_reason: (status == "Rejected").then_some("Insufficient deal information"),
            contract: None,
            solution_details: Vec::new(),
            status_history: vec![StatusChange {
                status,
                date_time: timefmt::format(lifecycle.updated),
            }],
        }]
    });
    let registration_status = registrations
        .as_ref()
        .and_then(|r| r.first())
        .map_or("None", |r| r.status);
    let first_seller = rng.random_range(0..PARTNER_USERS.len());
    let partner_team = (0..rng.random_range(1..=2))
        .map(|i| {
            let (first, last, local) = PARTNER_USERS[(first_seller + i) % PARTNER_USERS.len()];
            Member {
                first_name: Some(first.to_string()),
                last_name: Some(last.to_string()),
                email: Some(format!("{local}@adatumpartners.com")),
                phone_number: Some(format!("+44 20 7946 {:04}", rng.random_range(0..10_000))),
                contact_preference: ContactPreference {
                    locale: "en-GB",
                    disable_notifications: rng.random_bool(0.1),
                },
                title: None,
            }
        })
        .collect();
    let marketplace = category == Category::Marketplace;

    let referral = Referral {
        id: id.to_string(),
        engagement_id: engagement_id.to_string(),
        name,
        organization_id: &ctx.org.id,
        organization_name: ctx.org.name,
        external_reference_id: rng
            .random_bool(0.3)
            .then(|| format!("CRM-{:06}", rng.random_range(0..1_000_000))),
        created_date_time: timefmt::format(lifecycle.created),
        updated_date_time: timefmt::format(lifecycle.updated),
        expiration_date_time: lifecycle.expiration.map(timefmt::format),
        accepted_date_time: lifecycle.accepted.map(timefmt::format),
        closed_date_time: lifecycle.closed.map(timefmt::format),
        status: lifecycle.status,
        substatus: lifecycle.substatus,
        status_reason: lifecycle.status_reason,
        kind,
        qualification,
        direction,
        referral_source: marketplace.then(|| pick(&mut rng, &["AppSource", "AzureMarketplace"])),
        call_to_action: marketplace
            .then(|| pick(&mut rng, &["ContactMe", "FreeTrial", "TestDrive"])),
        customer_profile: CustomerProfile {
            name: customer.name.clone(),
            address,
            size: match rng.random_range(0..20) {
                0 => None,
                1 => Some(""),
                _ => Some(pick(&mut rng, SIZES)),
            },
            team: customer_team,
            ids,
            is_matching_complete: rng.random_bool(0.3).then(|| rng.random_bool(0.5)),
        },
        consent: Consent {
            consent_to_to_share_info_with_others: rng.random_bool(0.7),
            consent_to_contact: rng.random_bool(0.9),
            consent_to_share_referral_with_microsoft_sellers: rng.random_bool(0.75),
            consent_to_microsoft_to_contact_specific_partners: rng.random_bool(0.4),
        },
        details: Details {
            notes: (!rng.random_bool(0.15)).then(|| project_notes.to_string()),
            deal_value,
            currency: Some(currency),
            closing_date_time: Some(timefmt::format(timefmt::truncate(
                lifecycle.created + rng.random_range(30..240) * DAY,
                0,
            ))),
            requirements: Requirements {
                industries: vec![IdRef {
                    id: INDUSTRIES[rng.random_range(0..INDUSTRIES.len())].2,
                }],
                products: (0..rng.random_range(0..3))
                    .map(|_| IdRef {
                        id: pick(&mut rng, PRODUCTS).0,
                    })
                    .collect(),
                services: if rng.random_bool(0.4) {
                    vec![IdRef { id: "Consulting" }]
                } else {
                    Vec::new()
                },
                solutions,
                offers: Vec::new(),
                additional_requirements: AdditionalRequirements {
                    attributes: if rng.random_bool(0.2) {
                        vec![Attribute {
                            id: "CustomerMarketplaceIntent",
                            kind: "MarketplaceIntent",
                        }]
                    } else {
                        Vec::new()
                    },
                    iot: None,
                },
            },
            customer_requested_contact: match rng.random_range(0..3) {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            },
            customer_action: marketplace.then_some("ContactMe"),
        },
        team: partner_team,
        invite_context: InviteContext {
            notes: rng
                .random_bool(0.5)
                .then(|| format!("Customer asked for help with {project}.")),
            invited_by,
            assistance_request_code: pick(&mut rng, ASSISTANCE_CODES),
        },
        target: vec![Target {
            kind: pick(
                &mut rng,
                &["SolutionProfile", "BusinessProfileLocation", "None"],
            ),
            id: guid(&mut rng),
        }],
        e_tag: etag(&mut rng, lifecycle.updated),
        links: Links {
            related_referrals: Link {
                uri: format!(
                    "https://api.partner.microsoft.com/v1.0/engagements/referrals?$filter=engagementId eq '{engagement_id}'"
                ),
                method: "GET",
            },
            self_link: Link {
                uri: format!("https://api.partner.microsoft.com/v1.0/engagements/referrals/{id}"),
                method: "GET",
            },
        },
        sales_stage: lifecycle.sales_stage,
        campaign_id: rng
            .random_bool(0.2)
            .then(|| format!("FY25-{}", rng.random_range(100..999))),
        referral_program: rng.random_bool(0.25).then_some("AzureIPCoSell"),
        favorite: rng.random_bool(0.05),
        is_spam: rng.random_bool(0.01),
        quality: pick(
            &mut rng,
            &["Unknown", "Unknown", "Unknown", "High", "Medium", "Low"],
        ),
        mpn_id: &ctx.org.mpn_id,
        tags: if rng.random_bool(0.3) {
            vec![Tag {
                tag: pick(&mut rng, &["priority", "renewal", "öncelikli"]),
            }]
        } else {
            Vec::new()
        },
        registration_status,
        registrations,
        tracking_info: TrackingInfo {
            microsoft_msx_id: (category == Category::CoSell && rng.random_bool(0.6))
                .then(|| format!("7-{:010X}", rng.random_range(0..0xff_ffff_ffffu64))),
        },
        last_modified_via: rng.random_bool(0.05).then_some("API"),
        created_via: rng.random_bool(0.05).then_some("PartnerCenterUI"),
        deal_sensitivity: rng.random_bool(0.03).then_some("None"),
        solution_area: rng.random_bool(0.04).then_some("Azure"),
    };
    // Serialising plain structs of strings, numbers and bools cannot fail.
    let json = serde_json::to_string(&referral).unwrap_or_default();
    let keys = Keys {
        id,
        engagement_id,
        created: lifecycle.created,
        updated: lifecycle.updated,
        status: lifecycle.status,
        substatus: lifecycle.substatus,
        kind,
        qualification,
        direction,
        country: referral.customer_profile.address.country.unwrap_or(""),
    };
    (keys, json)
}

fn microsoft() -> InvitedBy {
    InvitedBy {
        organization_id: Some("msft".into()),
        organization_name: Some("Microsoft".into()),
    }
}

fn customer_team(rng: &mut SeededRng, customer: &Customer, first_contact: usize) -> Vec<Member> {
    let members = match customer.mail {
        Mail::Missing => rng.random_range(0..=1),
        _ => rng.random_range(1..=3),
    };
    (0..members)
        .map(|i| {
            let (first, first_local) = FIRST_NAMES[(first_contact + i * 7) % FIRST_NAMES.len()];
            let (last, last_local) = pick(rng, LAST_NAMES);
            let email = match &customer.mail {
                Mail::Missing => None,
                Mail::Free => Some(format!(
                    "{first_local}.{last_local}{}@{}",
                    rng.random_range(1..99),
                    pick(rng, tables::FREE_MAIL)
                )),
                Mail::Company(domain) if rng.random_bool(0.05) => {
                    // Some CRMs upper-case addresses; the domain must still be recognised.
                    Some(format!(
                        "{first_local}.{last_local}@{}",
                        domain.to_uppercase()
                    ))
                }
                Mail::Company(_) if rng.random_bool(0.04) => None,
                Mail::Company(domain) => Some(format!("{first_local}.{last_local}@{domain}")),
            };
            Member {
                first_name: Some(first.to_string()),
                last_name: Some(last.to_string()),
                email,
                phone_number: rng.random_bool(0.7).then(|| {
                    format!(
                        "{} {}",
                        customer.country.phone,
                        rng.random_range(100_000_000..999_999_999u32)
                    )
                }),
                contact_preference: ContactPreference {
                    locale: customer.country.locale,
                    disable_notifications: rng.random_bool(0.2),
                },
                title: rng.random_bool(0.5).then(|| {
                    pick(rng, &["CTO", "IT Director", "Procurement", "BT Müdürü"]).to_string()
                }),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Marketplace,
    Qualified,
    CoSell,
}

/// Status and the timestamps that must agree with it.
struct Lifecycle {
    status: &'static str,
    substatus: &'static str,
    status_reason: Option<&'static str>,
    sales_stage: Option<&'static str>,
    created: i64,
    updated: i64,
    expiration: Option<i64>,
    accepted: Option<i64>,
    closed: Option<i64>,
}

impl Lifecycle {
    fn generate(rng: &mut SeededRng, direction: &str, origin: Origin) -> Lifecycle {
        let (status, substatus) = match origin {
            Origin::Added { .. } if direction == "Outgoing" => ("Active", "Accepted"),
            Origin::Added { .. } => ("New", "Pending"),
            Origin::Dataset if direction == "Outgoing" => weighted(
                rng,
                &[
                    (("Active", "Accepted"), 50),
                    (("Closed", "Won"), 28),
                    (("Closed", "Lost"), 22),
                ],
            ),
            Origin::Dataset => weighted(
                rng,
                &[
                    (("New", "Pending"), 10),
                    (("New", "Received"), 6),
                    (("Active", "Accepted"), 28),
                    (("Closed", "Won"), 14),
                    (("Closed", "Lost"), 12),
                    (("Closed", "Declined"), 16),
                    (("Closed", "Expired"), 13),
                    (("None", "None"), 1),
                ],
            ),
        };
        let (created, limit) = match origin {
            Origin::Dataset => {
                let created = ANCHOR - rng.random_range(DAY..3 * 365 * DAY);
                (with_random_precision(rng, created), ANCHOR)
            }
            Origin::Added { now } => (with_random_precision(rng, now), now),
        };
        let outgoing = direction == "Outgoing";
        let within = |rng: &mut SeededRng, from: i64, span: i64| -> i64 {
            let to = (from + span).min(limit);
            if to <= from {
                from
            } else {
                let t = rng.random_range(from..=to);
                with_random_precision(rng, t).max(from)
            }
        };
        let accepted = match status {
            "Active" | "Closed" if outgoing => Some(created),
            "Active" => Some(within(rng, created, 14 * DAY)),
            "Closed" if matches!(substatus, "Won" | "Lost") => Some(within(rng, created, 14 * DAY)),
            _ => None,
        };
        let closed =
            (status == "Closed").then(|| within(rng, accepted.unwrap_or(created), 120 * DAY));
        let last_event = closed.or(accepted).unwrap_or(created);
        let updated = match (origin, status) {
            (Origin::Added { .. }, _) => created,
            (_, "Closed") => within(rng, last_event, 5 * DAY),
            _ => within(rng, last_event, limit - last_event),
        };
        let status_reason = match substatus {
            "Lost" => Some(pick(rng, LOST_REASONS)),
            "Declined" => Some(pick(
                rng,
                &["Not a fit", "No capacity", "Customer is not in our region"],
            )),
            "Expired" => Some("Referral expired without a response"),
            _ => None,
        };
        let sales_stage = match status {
            "Active" => Some(pick(
                rng,
                &["Qualify", "Develop", "Propose", "Close", "100"],
            )),
            "Closed" if accepted.is_some() => Some("Close"),
            "New" => Some("Qualify"),
            _ => None,
        };
        Lifecycle {
            status,
            substatus,
            status_reason,
            sales_stage,
            created,
            updated,
            expiration: (status == "New" && !outgoing).then_some(created + 14 * DAY),
            accepted,
            closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_json_other_seed_other_json() {
        let a = Context::new(7, 1000);
        let b = Context::new(7, 1000);
        let c = Context::new(8, 1000);
        for i in 0..50 {
            assert_eq!(
                generate(&a, i, Origin::Dataset).1,
                generate(&b, i, Origin::Dataset).1
            );
            assert_ne!(
                generate(&a, i, Origin::Dataset).1,
                generate(&c, i, Origin::Dataset).1
            );
        }
    }

    #[test]
    fn referrals_are_consistent_and_varied() {
        let ctx = Context::new(42, 3000);
        let mut statuses = std::collections::BTreeSet::new();
        let mut digits = std::collections::BTreeSet::new();
        let (mut free_mail, mut no_email, mut unicode, mut string_deal) = (0, 0, 0, 0);
        for i in 0..3000 {
            let (keys, json) = generate(&ctx, i, Origin::Dataset);
            let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
            assert_eq!(v["id"], keys.id.to_string());
            assert_eq!(
                v["id"].as_str().map(str::to_lowercase).as_deref(),
                v["id"].as_str()
            );
            assert_eq!(v["status"], keys.status);
            assert!(
                keys.updated >= keys.created && keys.updated <= ANCHOR,
                "{json}"
            );
            assert_eq!(
                timefmt::parse(v["updatedDateTime"].as_str().expect("str")),
                Some(keys.updated)
            );
            let etag = v["eTag"].as_str().expect("eTag");
            assert!(etag.starts_with('"') && etag.ends_with('"'));
            let allowed: &[&str] = match keys.status {
                "New" => &["Pending", "Received"],
                "Active" => &["Accepted"],
                "Closed" => &["Won", "Lost", "Declined", "Expired"],
                _ => &["None"],
            };
            assert!(allowed.contains(&keys.substatus), "{json}");
            statuses.insert((keys.status, keys.substatus));
            let updated = v["updatedDateTime"].as_str().expect("str");
            digits.insert(updated.split('.').nth(1).map_or(0, |f| f.len() - 1));
            let emails: Vec<&str> = v["customerProfile"]["team"]
                .as_array()
                .expect("team")
                .iter()
                .filter_map(|m| m["email"].as_str())
                .collect();
            if emails.is_empty() {
                no_email += 1;
            } else if emails
                .iter()
                .any(|e| e.ends_with("@gmail.com") || e.ends_with("@outlook.com"))
            {
                free_mail += 1;
            }
            if json.contains('ı') || json.contains('🚀') {
                unicode += 1;
            }
            if v["details"]["dealValue"].is_string() {
                string_deal += 1;
            }
        }
        assert!(statuses.len() >= 7, "{statuses:?}");
        assert_eq!(digits, (0..=7).collect(), "fraction digit counts");
        assert!(
            free_mail > 30 && no_email > 30 && unicode > 100 && string_deal > 50,
            "free {free_mail} none {no_email} unicode {unicode} string {string_deal}"
        );
    }

    #[test]
    fn added_referrals_start_new_or_active_at_now() {
        let ctx = Context::new(1, 10);
        let now = ANCHOR + 400 * DAY;
        for i in 10..30 {
            let (keys, _) = generate(&ctx, i, Origin::Added { now });
            assert!(matches!(
                (keys.status, keys.substatus),
                ("New", "Pending") | ("Active", "Accepted")
            ));
            assert!(keys.created <= now && now - keys.created < TICKS_PER_SEC);
            assert_eq!(keys.created, keys.updated);
        }
    }
}
