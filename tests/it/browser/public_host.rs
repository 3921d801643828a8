//! The UI behind a reverse proxy: the browser knows the daemon by a public name (mapped
//! to loopback in Chromium, as a proxy in front would make it), which `public_hosts`
//! lists; a name it does not list, as a DNS-rebinding page would use, gets no page.

use super::*;

#[tokio::test]
async fn the_ui_works_under_a_public_host_and_a_foreign_name_gets_nothing() {
    let live = live(12, |_, config| {
        config.public_hosts = vec!["sync.example.test".to_owned()];
        config.api_token = Some("proxy-token-0123456789".to_owned().into());
    })
    .await;
    let port = live
        .site
        .base
        .rsplit(':')
        .next()
        .expect("a port")
        .to_owned();
    let rules =
        "--host-resolver-rules=MAP sync.example.test 127.0.0.1, MAP rebind.attacker.test 127.0.0.1"
            .to_owned();
    let b = Browser::start_with("public-host", 1280, 800, &[rules]).await;
    b.client
        .goto(&format!("http://sync.example.test:{port}/"))
        .await
        .unwrap();
    b.wait_for(
        "the token prompt opens",
        "document.getElementById('token-dialog').open",
    )
    .await;
    b.by_testid("token-input")
        .await
        .send_keys("proxy-token-0123456789")
        .await
        .unwrap();
    b.by_testid("token-submit").await.click().await.unwrap();
    b.wait_for(
        "the status is read with the token",
        &format!("{STATE} === 'idle'"),
    )
    .await;
    b.by_testid("sync-now").await.click().await.unwrap();
    b.wait_for(
        "the trigger is accepted from the public origin",
        &format!(
            "{TOASTS}.some(t => t.dataset.kind === 'success' && t.textContent.includes('12 referrals inserted'))"
        ),
    )
    .await;
    b.wait_for("the rows load", &format!("{ROWS}.length === 12"))
        .await;
    b.screenshot("synced").await;

    b.client
        .goto(&format!("http://rebind.attacker.test:{port}/"))
        .await
        .unwrap();
    let text = b
        .wait_for(
            "the foreign name gets the refusal",
            "document.body && document.body.innerText",
        )
        .await;
    let text = text.as_str().expect("text");
    assert!(text.contains("does not answer for the host"), "{text}");
    assert!(!text.contains("sync-now"), "{text}");
    b.close().await;
}
