//! The API as a hostile web page, a DNS-rebinding attacker or a fuzzer sees it: foreign
//! `Host`s, cross-site POSTs, control characters in every parameter, and what every
//! answer carries (JSON errors, `nosniff`, `no-store`, compression).

use reqwest::header::{CONTENT_TYPE, HOST, ORIGIN};

use super::*;

/// Every GET endpoint, the UI's assets and an unknown path.
const GET_PATHS: &[&str] = &[
    "/",
    "/assets/app.js",
    "/assets/js/api.js",
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    "/api/v1/partner-center/referrals",
    "/api/v1/partner-center/referrals/pipeline",
    "/api/v1/partner-center/referrals.csv",
    "/api/v1/partner-center/referrals/r1",
    "/api/v1/partner-center/companies",
    "/api/v1/partner-center/sync-runs",
    "/api/v1/partner-center/sync-runs/1",
    "/no/such/page",
];

/// Request headers as (name, value).
type Headers<'a> = &'a [(&'a str, &'a str)];

const TRIGGER: &str = "/api/v1/partner-center/referrals/sync";

impl App {
    fn port(&self) -> &str {
        self.base.rsplit(':').next().expect("a port")
    }

    async fn get_as(&self, path: &str, host: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .header(HOST, host)
            .send()
            .await
            .expect("request")
    }

    async fn post(&self, headers: &[(&str, &str)], body: &'static str) -> (u16, Value) {
        let mut request = self.client.post(format!("{}{TRIGGER}", self.base));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.body(body).send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }
}

#[tokio::test]
async fn a_foreign_host_gets_no_data_from_any_path() {
    let app = spawn(Config {
        public_hosts: vec!["sync.example.com".to_owned()],
        ..Config::default()
    })
    .await;
    seed(&app.pool).await;
    let port = app.port().to_owned();
    for path in GET_PATHS {
        for host in [
            format!("rebind.attacker.example:{port}"),
            "rebind.attacker.example".to_owned(),
            format!("127.0.0.1.attacker.example:{port}"),
            format!("localhost.attacker.example:{port}"),
        ] {
            let response = app.get_as(path, &host).await;
            assert_eq!(response.status(), 421, "GET {path} Host: {host}");
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
            let body: Value = response.json().await.expect("a JSON body");
            assert_eq!(body["success"], false, "{path}");
            assert!(
                body["error"]
                    .as_str()
                    .expect("error")
                    .contains("public_hosts"),
                "the refusal says how to allow a proxy's name: {body}"
            );
            for secret in ["Contoso", "Fabrikam", "r1", "northwind"] {
                assert!(!body.to_string().contains(secret), "{path}: {body}");
            }
        }
    }
    for host in [
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
        format!("127.0.0.1:{port}"),
        "[::1]:8000".to_owned(),
        "sync.example.com".to_owned(),
        "Sync.Example.com:443".to_owned(),
    ] {
        for path in ["/", "/assets/app.js", "/api/v1/partner-center/referrals"] {
            let response = app.get_as(path, &host).await;
            assert_eq!(response.status(), 200, "GET {path} Host: {host}");
        }
    }
}

#[tokio::test]
async fn cross_site_and_non_json_posts_are_refused_before_the_trigger() {
    let app = spawn(Config {
        public_hosts: vec!["sync.example.com".to_owned()],
        ..Config::default()
    })
    .await;
    let own = format!("http://127.0.0.1:{}", app.port());
    let text = ("content-type", "text/plain");
    let json_type = ("content-type", "application/json");
    let refused: &[(Headers, &str, u16)] = &[
        // The classic: a page's simple POST, which needs no permission from the browser.
        (&[text, ("origin", "https://evil.example")], "x", 403),
        (&[("origin", "https://evil.example")], "", 403),
        (&[("origin", "null")], "", 403),
        (&[("origin", "http://127.0.0.1:1")], "", 403),
        (&[("sec-fetch-site", "cross-site")], "", 403),
        (&[("sec-fetch-site", "same-site")], "", 403),
        (&[text], "x", 415),
        (&[text], "", 415),
        (
            &[("content-type", "application/x-www-form-urlencoded")],
            "a=b",
            415,
        ),
        (
            &[("content-type", "multipart/form-data; boundary=x")],
            "",
            415,
        ),
        (&[], "{}", 415),
        (&[json_type], "[1]", 400),
        (&[json_type], "not json", 400),
    ];
    for (headers, body, status) in refused {
        let (got, answer) = app.post(headers, body).await;
        assert_eq!(got, *status, "{headers:?} {body:?}: {answer}");
        assert_eq!(answer["success"], false);
        assert!(
            !answer["error"]
                .as_str()
                .expect("error")
                .contains("disabled"),
            "{headers:?}: refused before the trigger ran: {answer}"
        );
    }
    // What the UI, curl and a proxy's public name send passes to the trigger, which
    // answers that sync is disabled in this configuration.
    let accepted: &[(Headers, &str)] = &[
        (&[], ""),
        (&[json_type], ""),
        (&[("content-type", "application/json; charset=utf-8")], "{}"),
        (
            &[("origin", own.as_str()), ("sec-fetch-site", "same-origin")],
            "",
        ),
        (&[("sec-fetch-site", "none")], ""),
        (
            &[
                ("host", "sync.example.com"),
                ("origin", "https://sync.example.com"),
                ("sec-fetch-site", "same-origin"),
            ],
            "",
        ),
    ];
    for (headers, body) in accepted {
        let (got, answer) = app.post(headers, body).await;
        assert_eq!(got, 400, "{headers:?} {body:?}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .expect("error")
                .contains("disabled"),
            "{headers:?}: reached the trigger: {answer}"
        );
    }
    let (got, answer) = app
        .post(
            &[
                ("host", "sync.example.com"),
                ("origin", "https://other.example"),
            ],
            "",
        )
        .await;
    assert_eq!(got, 403, "{answer}");
}

#[tokio::test]
async fn health_without_the_token_shows_only_status_and_booleans() {
    let app = spawn(Config {
        api_token: Some("health-token-0123456789".to_owned().into()),
        ..Config::default()
    })
    .await;
    let url = format!("{}/healthz", app.base);
    for token in [None, Some("wrong-token")] {
        let mut request = app.client.get(&url);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        let response = request.send().await.expect("GET /healthz");
        assert_eq!(response.status(), 200, "a load balancer still gets 200");
        let body: Value = response.json().await.expect("JSON");
        let keys: Vec<&str> = body
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "status",
                "partner_center_enabled",
                "database",
                "signed_in",
                "sign_in_required",
                "sync_running",
                "shutting_down"
            ],
            "{body}"
        );
        assert_eq!(body["status"], "ok");
        assert_eq!(body["database"], json!({"reachable": true}));
    }
    let full: Value = app
        .client
        .get(&url)
        .bearer_auth("health-token-0123456789")
        .send()
        .await
        .expect("GET /healthz")
        .json()
        .await
        .expect("JSON");
    for key in ["version", "auth", "last_run", "next_run_at", "current_run"] {
        assert!(full.get(key).is_some(), "{key} with the token: {full}");
    }
    let open = spawn(Config::default()).await;
    let body = open.ok("/healthz").await;
    assert!(
        body.get("auth").is_some(),
        "no api_token: the whole document: {body}"
    );
}

/// Each GET endpoint with its query parameters, as the served OpenAPI document lists
/// them (which a unit test keeps equal to what the handlers declare).
async fn every_parameter(app: &App) -> Vec<(String, Vec<String>)> {
    let doc = app.ok("/api/openapi.json").await;
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .expect("docs/openapi.json"),
    )
    .expect("JSON");
    assert_eq!(doc, committed, "the served document is the committed one");
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter_map(|(path, item)| {
            let names: Vec<String> = item["get"]["parameters"]
                .as_array()?
                .iter()
                .filter(|p| p["in"] == "query")
                .map(|p| p["name"].as_str().expect("a name").to_owned())
                .collect();
            (!names.is_empty()).then(|| (path.clone(), names))
        })
        .collect()
}

#[tokio::test]
async fn control_characters_in_any_parameter_are_a_400_naming_it() {
    let app = spawn(Config::default()).await;
    seed(&app.pool).await;
    let mut checked = 0;
    let endpoints = every_parameter(&app).await;
    assert_eq!(endpoints.len(), 7, "{endpoints:?}");
    for (path, names) in endpoints {
        for name in names {
            for value in [
                "%00",
                "a%00b",
                "New%0D%0AX-Injected:%201",
                "%1B%5B31m",
                "%7F",
            ] {
                assert_bad_param(&app, &format!("{path}?{name}={value}"), &name).await;
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "{checked} checks");
    for path in [
        "/api/v1/partner-center/referrals/r1%00",
        "/api/v1/partner-center/referrals/%00",
        "/api/v1/partner-center/referrals/r%0A1",
        "/api/v1/partner-center/sync-runs/1%00",
        "/api/v1/partner-center/sync-runs/%00",
    ] {
        let (status, body) = app.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["error"].as_str().expect("error").contains("`id`"),
            "{path}: {body}"
        );
    }
    // Not valid UTF-8 once decoded: refused by the router's own extractor, in JSON.
    let (status, body) = app.get("/api/v1/partner-center/referrals/%FF").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = app.get("/api/v1/partner-center/referrals?q=%FF").await;
    assert_eq!(status, 200, "lossy decoding of a search is harmless");
}

#[tokio::test]
async fn every_answer_is_json_nosniff_and_no_store() {
    let app = spawn(Config::default()).await;
    seed(&app.pool).await;
    for path in [
        "/api/v1/partner-center/referrals",
        "/api/v1/partner-center/referrals/r1",
        "/api/v1/partner-center/referrals/nope",
        "/api/v1/partner-center/sync-runs",
        "/api/v1/partner-center/referrals?limit=0",
        "/healthz",
        "/no/such/page",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .expect("GET");
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert!(
            headers[CONTENT_TYPE]
                .to_str()
                .expect("text")
                .starts_with("application/json"),
            "{path}"
        );
    }
    let (status, body) = app.get("/no/such/page").await;
    assert_eq!(status, 404);
    assert!(
        body["error"]
            .as_str()
            .expect("error")
            .contains("/no/such/page")
    );
    let response = app
        .client
        .delete(format!("{}/api/v1/partner-center/referrals", app.base))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 405);
    assert!(
        response.headers()["allow"]
            .to_str()
            .expect("text")
            .contains("GET")
    );
    let body: Value = response.json().await.expect("a JSON 405");
    assert_eq!(body["success"], false);
    let response = app
        .client
        .get(format!("{}{TRIGGER}", app.base))
        .header(ORIGIN, "https://evil.example")
        .send()
        .await
        .expect("GET");
    assert_ne!(
        response.status(),
        403,
        "GET changes nothing; Origin is not checked"
    );
    let page = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .expect("GET /");
    assert_eq!(
        page.headers()["cache-control"],
        "no-cache",
        "the UI keeps its own"
    );
}

#[tokio::test]
async fn large_answers_are_gzipped_for_clients_that_ask() {
    let app = spawn(Config::default()).await;
    seed(&app.pool).await;
    for path in [
        "/api/v1/partner-center/referrals",
        "/api/v1/partner-center/referrals.csv",
    ] {
        let url = format!("{}{path}", app.base);
        let gzipped = app
            .client
            .get(&url)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("GET");
        assert_eq!(gzipped.status(), 200);
        assert_eq!(gzipped.headers()["content-encoding"], "gzip", "{path}");
        let packed = gzipped.bytes().await.expect("body").len();
        let plain = app.client.get(&url).send().await.expect("GET");
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let unpacked = plain.bytes().await.expect("body").len();
        assert!(packed < unpacked, "{path}: {packed} >= {unpacked}");
    }
    let small = app
        .client
        .get(format!("{}/readyz", app.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("GET");
    assert!(
        small.headers().get("content-encoding").is_none(),
        "tiny bodies stay plain"
    );
}

/// The real binary, its JSON log read back: one DEBUG line per request with method, path,
/// status and duration, never the query; hostile requests leave no ERROR line.
#[tokio::test]
async fn the_access_log_has_each_request_without_its_query_and_no_error_for_bad_input() {
    use std::io::{BufRead, BufReader};
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").expect("write config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut child = support::Reaped(
        support::command()
            .arg("--config")
            .arg(&config)
            .arg("run")
            .env("DATABASE_URL", &db.url)
            .env("HUNTER_PARTNER_CENTER_LISTEN", format!("127.0.0.1:{port}"))
            .env("HUNTER_PARTNER_CENTER_LOG_FORMAT", "json")
            .env("RUST_LOG", "info,partner_center_sync::http=debug")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn partner-center-sync run"),
    );
    let stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let get = |path: &str| client.get(format!("{base}{path}")).send();
    let listed = get("/api/v1/partner-center/referrals?q=needle-in-the-query").await;
    assert_eq!(listed.expect("GET").status(), 200);
    for hostile in [
        "/api/v1/partner-center/referrals?q=%00",
        "/api/v1/partner-center/referrals/%00",
        "/api/v1/partner-center/sync-runs/1%00",
        "/api/v1/partner-center/referrals/%FF",
    ] {
        assert_eq!(get(hostile).await.expect("GET").status(), 400, "{hostile}");
    }
    let foreign = client
        .get(format!("{base}/"))
        .header(HOST, "rebind.attacker.example")
        .send()
        .await
        .expect("GET");
    assert_eq!(foreign.status(), 421);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().expect("the daemon exits");
    assert!(status.success(), "{status}");
    let lines = reader.join().expect("log reader");
    let records: Vec<Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let access: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "http_request")
        .collect();
    let listed = access
        .iter()
        .find(|r| r["path"] == "/api/v1/partner-center/referrals" && r["status"] == 200)
        .unwrap_or_else(|| panic!("an access line for the list:\n{}", lines.join("\n")));
    assert_eq!(listed["level"], "DEBUG");
    assert_eq!(listed["method"], "GET");
    assert!(listed["duration_ms"].is_number(), "{listed}");
    assert!(
        access.iter().any(|r| r["status"] == 421),
        "the refused host is logged too"
    );
    let all = lines.join("\n");
    assert!(
        !all.contains("needle-in-the-query"),
        "the query is never logged:\n{all}"
    );
    let errors: Vec<&Value> = records.iter().filter(|r| r["level"] == "ERROR").collect();
    assert!(
        errors.is_empty(),
        "client input caused ERROR lines: {errors:?}"
    );
}

/// `status` reads the daemon's `/healthz` with the configured token, so it gets the
/// whole document; a caller without the token gets only the public summary.
#[tokio::test]
async fn status_sends_the_token_for_the_whole_health_document() {
    let token = "status-token-0123456789";
    let app = spawn(Config {
        api_token: Some(token.to_owned().into()),
        ..Config::default()
    })
    .await;
    let listen = app.base.trim_start_matches("http://").to_owned();
    let mut reports = Vec::new();
    for with_token in [true, false] {
        let mut command = support::command();
        command
            .args(["status", "--json"])
            .env("DATABASE_URL", &app._db.url)
            .env("HUNTER_PARTNER_CENTER_LISTEN", &listen);
        if with_token {
            command.env("HUNTER_PARTNER_CENTER_API_TOKEN", token);
        }
        // Async, so the in-process daemon on this runtime can answer meanwhile.
        let out = tokio::process::Command::from(command)
            .output()
            .await
            .expect("status runs");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        reports.push(report["daemon"].clone());
    }
    let (full, public) = (&reports[0], &reports[1]);
    assert_eq!(full["version"], env!("CARGO_PKG_VERSION"), "{full}");
    assert_eq!(full["database"]["reachable"], true, "{full}");
    assert!(public.get("version").is_none(), "{public}");
    assert_eq!(public["database"]["reachable"], true, "{public}");
}
