//! Properties of the parser and writer over generated documents: whatever text arrives, the
//! parser answers without panicking; whatever it accepts, it writes back as ASCII that
//! parses to the same document; and other apps' entries survive our writes.

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

const CLIENT: &str = "e4a1c7f2-9d3b-4a68-b5c0-1f2e3d4c5b6a";
const HOME: &str = "6d1f4c2a.b7e2a9c4";
const TENANT: &str = "b7e2a9c4-3f16-4d58-8e0a-5c7d9f1b3a26";
const SCOPE: &str = "https://api.partner.microsoft.com/user_impersonation";

const SECTIONS: [&str; 6] = [
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    ID_TOKEN,
    ACCOUNT,
    APP_METADATA,
    "FutureSection",
];

const FIELDS: [&str; 14] = [
    "credential_type",
    "secret",
    "home_account_id",
    "environment",
    "client_id",
    "realm",
    "target",
    "expires_on",
    "refresh_on",
    "last_modification_time",
    "family_id",
    "username",
    "authority_type",
    "local_account_id",
];

fn scope() -> ClientScope {
    ClientScope {
        client_id: CLIENT.into(),
        environment: "127.0.0.1".into(),
        realm: TENANT.into(),
        scope: SCOPE.into(),
    }
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "-?[0-9]{1,20}(\\.[0-9]{1,4})?".prop_map(Value::from),
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            btree_map(".{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Field values drawn often from the ones selection matches on, so lookups do find things.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "127.0.0.1", "login.windows.net", CLIENT, "E4A1C7F2-9D3B-4A68-B5C0-1F2E3D4C5B6A",
            "other-client", HOME, "other.home", TENANT, SCOPE, "1", "", "MSSTS", "ADFS",
            "1795000000", "9999999999",
        ])
        .prop_map(Value::from),
        2 => leaf(),
        1 => any_json(),
    ]
}

fn entry() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        4 => prop::sample::select(FIELDS.to_vec()).prop_map(str::to_owned),
        1 => ".{0,8}",
    ];
    btree_map(name, field_value(), 0..10).prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// A document MSAL could have written: known sections hold objects of objects; unknown
/// sections hold anything.
fn document() -> impl Strategy<Value = Map<String, Value>> {
    let known =
        btree_map(".{0,16}", entry(), 0..5).prop_map(|m| Value::Object(m.into_iter().collect()));
    (
        btree_map(prop::sample::select(SECTIONS[..5].to_vec()), known, 0..5),
        proptest::option::of(any_json()),
    )
        .prop_map(|(sections, future)| {
            let mut root: Map<String, Value> = sections
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            if let Some(v) = future {
                root.insert(SECTIONS[5].to_owned(), v);
            }
            root
        })
}

fn foreign_credentials(cache: &TokenCache) -> Vec<(String, Map<String, Value>)> {
    [ACCESS_TOKEN, REFRESH_TOKEN, ID_TOKEN]
        .iter()
        .flat_map(|section| {
            cache
                .entries(section)
                .filter(|(_, e)| !field_eq(e, "client_id", CLIENT))
                .map(move |(k, e)| (format!("{section}/{k}"), e.clone()))
        })
        .collect()
}

proptest! {
    #[test]
    fn any_text_is_parsed_or_refused_without_panicking(text in ".{0,200}") {
        let _ = TokenCache::parse(&text);
    }

    #[test]
    fn json_shaped_text_is_parsed_or_refused_without_panicking(
        text in r#"[{}\[\]":,0-9a-zA-Z .\\-]{0,200}"#
    ) {
        let _ = TokenCache::parse(&text);
    }

    #[test]
    fn an_accepted_document_is_written_as_ascii_and_reads_back_the_same(doc in document()) {
        let text = Value::Object(doc).to_string();
        let cache = TokenCache::parse(&text).expect("objects of objects are accepted");
        let written = cache.to_json();
        prop_assert!(written.is_ascii());
        prop_assert_eq!(TokenCache::parse(&written).expect("our own output parses"), cache);
    }

    #[test]
    fn a_known_section_that_is_not_an_object_of_objects_is_refused(
        doc in document(),
        section in prop::sample::select(SECTIONS[..5].to_vec()),
        bad in prop_oneof![
            leaf().prop_filter("null means absent", |v| !v.is_null()),
            vec(leaf(), 0..3).prop_map(Value::from),
            leaf().prop_map(|v| serde_json::json!({ "k": v })),
        ],
    ) {
        let mut doc = doc;
        doc.insert(section.to_owned(), bad);
        prop_assert!(TokenCache::parse(&Value::Object(doc).to_string()).is_err());
    }

    #[test]
    fn lookups_answer_and_a_sign_in_keeps_other_apps_entries(doc in document(), now in 0i64..4_000_000_000) {
        let mut cache = TokenCache::parse(&Value::Object(doc).to_string()).expect("parses");
        let scope = scope();
        let before = foreign_credentials(&cache);
        for account in cache.accounts(&scope) {
            let _ = cache.refresh_token(&scope, &account.home_account_id);
            let _ = cache.access_token(&scope, &account.home_account_id);
        }
        for home in cache.client_home_accounts(&scope) {
            let _ = cache.username_of(&scope, &home);
        }
        let grant = TokenGrant {
            home_account_id: HOME,
            access_token: "at",
            refresh_token: Some("rt"),
            id_token: Some("id"),
            scope: SCOPE,
            token_type: "Bearer",
            expires_in: 3600,
            ext_expires_in: 3600,
            refresh_in: None,
            family_id: None,
        };
        let account = NewAccount {
            home_account_id: HOME,
            local_account_id: "oid",
            username: "ops@example.com",
            account_source: "device_code",
        };
        cache.store_sign_in(&scope, &grant, &account, now);
        let reread = TokenCache::parse(&cache.to_json()).expect("our own output parses");
        prop_assert_eq!(foreign_credentials(&reread), before);
        prop_assert!(reread.accounts(&scope).iter().any(|a| a.home_account_id == HOME));
        prop_assert!(reread.refresh_token(&scope, HOME).is_some());
    }
}
