//! The wire shape of a referral: field names and order as Partner Center serialises them.
//!
//! Optional fields are either `null` or absent, as in real payloads; `skip_serializing_if`
//! marks the ones that are absent when unset.

use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Referral<'a> {
    pub(super) id: String,
    pub(super) engagement_id: String,
    pub(super) name: String,
    pub(super) organization_id: &'a str,
    pub(super) organization_name: &'a str,
    pub(super) external_reference_id: Option<String>,
    pub(super) created_date_time: String,
    pub(super) updated_date_time: String,
    pub(super) expiration_date_time: Option<String>,
    pub(super) accepted_date_time: Option<String>,
    pub(super) closed_date_time: Option<String>,
    pub(super) status: &'static str,
    pub(super) substatus: &'static str,
    pub(super) status_reason: Option<&'static str>,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) qualification: &'static str,
    pub(super) direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) referral_source: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) call_to_action: Option<&'static str>,
    pub(super) customer_profile: CustomerProfile,
    pub(super) consent: Consent,
    pub(super) details: Details,
    pub(super) team: Vec<Member>,
    pub(super) invite_context: InviteContext,
    pub(super) target: Vec<Target>,
    pub(super) e_tag: String,
    pub(super) links: Links,
    pub(super) sales_stage: Option<&'static str>,
    pub(super) campaign_id: Option<String>,
    pub(super) referral_program: Option<&'static str>,
    pub(super) favorite: bool,
    pub(super) is_spam: bool,
    pub(super) quality: &'static str,
    pub(super) mpn_id: &'a str,
    pub(super) tags: Vec<Tag>,
    pub(super) registration_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) registrations: Option<Vec<Registration>>,
    pub(super) tracking_info: TrackingInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) last_modified_via: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) created_via: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) deal_sensitivity: Option<&'static str>,
    /// Not in the documented schema: real payloads carry unlisted fields a client must keep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) solution_area: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CustomerProfile {
    pub(super) name: String,
    pub(super) address: Address,
    pub(super) size: Option<&'static str>,
    pub(super) team: Vec<Member>,
    pub(super) ids: Ids,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) is_matching_complete: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Address {
    pub(super) address_line1: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) address_line2: Option<String>,
    pub(super) city: Option<String>,
    pub(super) state: Option<String>,
    pub(super) postal_code: Option<String>,
    pub(super) country: Option<&'static str>,
    pub(super) region: Option<&'static str>,
}

/// `ids` is an array, except in one old sample where it is `{}`.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Ids {
    List(Vec<ProfileId>),
    Empty(EmptyObject),
}

#[derive(Serialize)]
pub(super) struct EmptyObject {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProfileId {
    pub(super) profile_type: &'static str,
    pub(super) id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Member {
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    pub(super) email: Option<String>,
    pub(super) phone_number: Option<String>,
    pub(super) contact_preference: ContactPreference,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) title: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ContactPreference {
    pub(super) locale: &'static str,
    pub(super) disable_notifications: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Consent {
    pub(super) consent_to_to_share_info_with_others: bool,
    pub(super) consent_to_contact: bool,
    pub(super) consent_to_share_referral_with_microsoft_sellers: bool,
    pub(super) consent_to_microsoft_to_contact_specific_partners: bool,
}

/// `dealValue` is a decimal, but the service's own PATCH sample sends a string.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum DealValue {
    Whole(u64),
    Fraction(f64),
    Text(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Details {
    pub(super) notes: Option<String>,
    pub(super) deal_value: Option<DealValue>,
    pub(super) currency: Option<&'static str>,
    pub(super) closing_date_time: Option<String>,
    pub(super) requirements: Requirements,
    pub(super) customer_requested_contact: Option<bool>,
    pub(super) customer_action: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Requirements {
    pub(super) industries: Vec<IdRef>,
    pub(super) products: Vec<IdRef>,
    pub(super) services: Vec<IdRef>,
    pub(super) solutions: Vec<Solution>,
    pub(super) offers: Vec<IdRef>,
    pub(super) additional_requirements: AdditionalRequirements,
}

#[derive(Serialize)]
pub(super) struct IdRef {
    pub(super) id: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Solution {
    pub(super) id: String,
    pub(super) name: &'static str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) price: f64,
    pub(super) quantity: u32,
    pub(super) currency: &'static str,
    pub(super) publisher_name: &'static str,
    pub(super) solution_type: &'static str,
}

#[derive(Serialize)]
pub(super) struct AdditionalRequirements {
    pub(super) attributes: Vec<Attribute>,
    pub(super) iot: Option<bool>,
}

#[derive(Serialize)]
pub(super) struct Attribute {
    pub(super) id: &'static str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InviteContext {
    pub(super) notes: Option<String>,
    pub(super) invited_by: InvitedBy,
    pub(super) assistance_request_code: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct InvitedBy {
    pub(super) organization_id: Option<String>,
    pub(super) organization_name: Option<String>,
}

#[derive(Serialize)]
pub(super) struct Target {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Links {
    pub(super) related_referrals: Link,
    #[serde(rename = "self")]
    pub(super) self_link: Link,
}

#[derive(Serialize)]
pub(super) struct Link {
    pub(super) uri: String,
    pub(super) method: &'static str,
}

#[derive(Serialize)]
pub(super) struct Tag {
    pub(super) tag: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Registration {
    pub(super) id: String,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) registration_date_time: String,
    pub(super) status: &'static str,
    pub(super) status_reason: Option<&'static str>,
    pub(super) contract: Option<String>,
    pub(super) solution_details: Vec<IdRef>,
    pub(super) status_history: Vec<StatusChange>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatusChange {
    pub(super) status: &'static str,
    pub(super) date_time: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TrackingInfo {
    pub(super) microsoft_msx_id: Option<String>,
}
