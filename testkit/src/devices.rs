//! The demo page in a real browser: one person on a laptop and a phone,
//! each a headless Chromium with its own profile, doing what the page offers
//! by typing and clicking. Run against every demo app, like the suite.

use std::{future::Future, net::SocketAddr, panic::AssertUnwindSafe, path::Path};

use futures_util::FutureExt;
use serde_json::{json, Value};

use crate::{
    chromium::{Chromium, Page, LAPTOP, PHONE},
    suite::{App, Settings},
};

/// The notice a device gets on its next load after it was signed out.
pub const SIGNED_OUT_NOTICE: &str =
    "You were signed out (this device was revoked or your session ended)";

/// The whole scenario against the app `spawn` starts (see
/// [`App::start`]). With `screenshots`, saves `demo-desktop.png` and
/// `demo-phone.png` there, taken while both devices are signed in.
pub async fn a_person_uses_the_page_on_a_laptop_and_a_phone<F, Fut>(
    test: &str,
    spawn: F,
    screenshots: Option<&Path>,
) where
    F: Fn(Settings) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<SocketAddr, String>> + Send + 'static,
{
    let chromium = Chromium::start().await;
    let app = App::start(test, spawn, &[]).await;
    let laptop = chromium.open(LAPTOP).await;
    let phone = chromium.open(PHONE).await;
    // Close the browsers whatever happens, or they outlive the test.
    let outcome = AssertUnwindSafe(scenario(&app, &laptop, &phone, screenshots))
        .catch_unwind()
        .await;
    laptop.close().await;
    phone.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    app.cleanup().await;
}

async fn scenario(app: &App, laptop: &Page, phone: &Page, screenshots: Option<&Path>) {
    let home = format!("http://{}/", app.address);
    for device in [laptop, phone] {
        log_in(device, &home, "ada").await;
    }

    // Each sees both devices, by readable name, with where and when.
    laptop.goto(&home).await;
    phone.goto(&home).await;
    assert_devices(laptop, "Chrome on Linux", "Chrome on Android").await;
    assert_devices(phone, "Chrome on Android", "Chrome on Linux").await;

    // A value typed as plain text is stored as a JSON string, and survives
    // a reload and a restart of the app (a new process, same database).
    laptop.fill("#set-key", "theme").await;
    laptop.fill("#set-value", "dark").await;
    laptop.click("#set button").await;
    laptop.wait_for_text("#data", "theme").await;
    assert_eq!(stored(laptop).await["theme"], "dark");
    laptop.goto(&home).await;
    laptop.wait_for_text("#data", "\"dark\"").await;
    let restarted = app.another_instance().await;
    laptop.goto(&format!("{}/", restarted.base())).await;
    laptop.wait_for_text("#data", "\"dark\"").await;
    laptop.wait_for_text("#status", "Signed in as ada").await;
    phone.click("#count").await;
    phone.wait_for_text("#data", "counter").await;

    // The page fits the phone: laid out at its width, nothing to scroll
    // sideways.
    let widths = phone
        .eval(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await;
    assert!(
        widths[1].as_u64() <= Some(u64::from(PHONE.width))
            && widths[0].as_u64() <= widths[1].as_u64(),
        "the phone's page is {widths} (scrollWidth, innerWidth) wide"
    );

    if let Some(dir) = screenshots {
        laptop.goto(&home).await;
        phone.goto(&home).await;
        laptop.fit_height().await;
        laptop.screenshot(&dir.join("demo-desktop.png")).await;
        phone.screenshot(&dir.join("demo-phone.png")).await;
    }

    // Revoking the phone from the laptop signs it out; it is told so on its
    // next load, once.
    laptop.goto(&home).await;
    laptop.click("li.device:not(.current) button.revoke").await;
    laptop
        .wait_until(
            "document.querySelectorAll('li.device').length === 1",
            "the revoked device to leave the list",
        )
        .await;
    assert_signed_out_with_notice(phone, &home).await;
    phone.goto(&home).await;
    assert!(!phone.shown("#notice").await, "the notice shows once");

    // Sign out everywhere else.
    log_in(phone, &home, "ada").await;
    laptop.goto(&home).await;
    assert_devices(laptop, "Chrome on Linux", "Chrome on Android").await;
    laptop.click("#revoke-others").await;
    laptop
        .wait_until(
            "document.querySelectorAll('li.device').length === 1 \
             && !document.querySelector('#revoke-others')",
            "the other devices to leave the list",
        )
        .await;
    assert_signed_out_with_notice(phone, &home).await;

    // Logging out on purpose is not news: no notice.
    laptop.click("#logout").await;
    laptop.wait_for_text("#status", "Not signed in").await;
    laptop.goto(&home).await;
    assert!(!laptop.shown("#notice").await);

    for device in [laptop, phone] {
        assert_eq!(device.console_problems().await, Vec::<String>::new());
    }
    // The log reader does see errors, so the check above is not vacuous.
    laptop.eval("console.error('probe');", vec![]).await;
    let problems = laptop.console_problems().await;
    assert!(problems.iter().any(|p| p.contains("probe")), "{problems:?}");

    // Failures are shown, not swallowed: an error answer, an unreachable
    // server, an answer that is not JSON, and a value that is not JSON.
    laptop
        .eval(
            "document.querySelector('#set-key').value = 'k'.repeat(1025);",
            vec![],
        )
        .await;
    laptop.click("#set button").await;
    laptop.wait_for_text("#error", "Request failed (414)").await;
    laptop
        .eval(
            "window.fetch = () => Promise.reject(new TypeError('Failed to fetch'));",
            vec![],
        )
        .await;
    laptop.click("#count").await;
    laptop
        .wait_for_text("#error", "Could not reach the server")
        .await;
    laptop
        .eval(
            "window.fetch = async () => new Response('<h1>Bad gateway</h1>', \
             {status: 502, headers: {'content-type': 'text/html'}});",
            vec![],
        )
        .await;
    laptop.click("#count").await;
    laptop
        .wait_for_text("#error", "502 with something that is not JSON")
        .await;
    laptop.fill("#set-key", "n").await;
    laptop.fill("#set-value", "{oops").await;
    laptop.click("#set-json").await;
    laptop.click("#set button").await;
    laptop.wait_for_text("#error", "not valid JSON").await;
}

async fn log_in(device: &Page, home: &str, user: &str) {
    device.goto(home).await;
    assert_eq!(
        device.text("#status").await.as_deref(),
        Some("Not signed in")
    );
    assert!(
        !device.shown("#logout").await,
        "Log out shown while logged out"
    );
    device.fill("#login-user", user).await;
    device.click("#login button").await;
    device
        .wait_for_text("#status", &format!("Signed in as {user}"))
        .await;
    assert!(
        !device.shown("#login-section").await,
        "login form shown while logged in"
    );
    assert!(device.shown("#logout").await);
}

/// The list shows this device as `this` (marked) and one other, `other`,
/// each with where it signed in and a relative last-active time.
async fn assert_devices(device: &Page, this: &str, other: &str) {
    device.wait_for_text("#devices", other).await;
    let listed = device
        .eval(
            "return [...document.querySelectorAll('li.device')].map(li => ({
               name: li.querySelector('.name').innerText,
               current: li.classList.contains('current'),
               text: li.innerText,
               times: [...li.querySelectorAll('time')].map(t => t.innerText),
             }));",
            vec![],
        )
        .await;
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (mine, theirs) = (&listed[0], &listed[1]);
    assert_eq!(
        (&mine["name"], &mine["current"]),
        (&json!(this), &json!(true))
    );
    assert!(
        mine["text"].as_str().unwrap().contains("This device"),
        "{mine}"
    );
    assert_eq!(
        (&theirs["name"], &theirs["current"]),
        (&json!(other), &json!(false))
    );
    for entry in [mine, theirs] {
        let text = entry["text"].as_str().unwrap();
        assert!(text.contains("Signed in from 127.0.0.1"), "{text}");
        assert!(text.contains("last active"), "{text}");
        for time in entry["times"].as_array().unwrap() {
            let time = time.as_str().unwrap();
            assert!(
                time == "just now" || time.ends_with(" ago"),
                "a relative time, not {time:?}"
            );
        }
    }
}

async fn assert_signed_out_with_notice(device: &Page, home: &str) {
    device.goto(home).await;
    device.wait_for_text("#notice", SIGNED_OUT_NOTICE).await;
    assert_eq!(
        device.text("#status").await.as_deref(),
        Some("Not signed in")
    );
    assert!(device.shown("#login-section").await);
}

/// The session's data as the API answers it to this browser.
async fn stored(device: &Page) -> Value {
    device
        .eval(
            "return fetch('/api/session').then(r => r.json()).then(b => b.data);",
            vec![],
        )
        .await
}
