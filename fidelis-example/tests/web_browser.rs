//! The web dashboard in a real headless Chromium, driven through chromedriver (WebDriver):
//! an account opened through the form appears on a dashboard open in another tab without a
//! reload (server-sent events), an invalid deposit shows its error next to the field and
//! changes nothing, the account page shows the history, and a transfer through its form
//! (after one to an unknown account, refused at the field) completes and moves both
//! balances. Saves screenshots of the dashboard and of the account page after the transfer
//! under `target/tmp/`.
//!
//! Needs `chromedriver` (Debian: `apt-get install chromium chromium-driver`). Without it at
//! build time the test is built `#[ignore]`d (`cargo test` lists it as ignored, with the
//! reason), unless `FIDELIS_BROWSER_TESTS=required` (as in `.ci/run`), which makes a missing
//! driver a failure.

#![cfg(feature = "web")]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use fidelis_core::prelude::*;
use fidelis_example::commands::OpenAccount;
use fidelis_example::web::WebApp;

/// chromedriver on the `PATH`. The test is built `#[ignore]`d when it was not there at build
/// time (see build.rs), so a missing one here is a failure.
fn chromedriver() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("chromedriver"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "chromedriver is not on the PATH (apt-get install chromium chromium-driver), \
                 though it was when this test was built or FIDELIS_BROWSER_TESTS=required"
            )
        })
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// Starts chromedriver and opens a headless Chromium session through it.
async fn browser(driver: &PathBuf) -> (tokio::process::Child, Client) {
    let port = free_port();
    let child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on {port} within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut options = serde_json::json!({
        "args": [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
        ]
    });
    if std::path::Path::new("/usr/bin/chromium").is_file() {
        options["binary"] = "/usr/bin/chromium".into();
    }
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");
    (child, client)
}

/// The text of the first element matching `css`, once `accept` takes it (within 10 s).
async fn text_when(client: &Client, css: &str, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    loop {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if accept(&text) {
                return text;
            }
            last = text;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` never matched within 10 s; last text: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types `value` into the input `css`, replacing what it held.
async fn fill(client: &Client, css: &str, value: &str) {
    let input = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no `{css}`: {error}"));
    input.clear().await.expect("clears");
    input.send_keys(value).await.expect("types");
}

async fn submit(client: &Client, form: &str) {
    client
        .find(Locator::Css(&format!("#{form} button[type=submit]")))
        .await
        .unwrap_or_else(|error| panic!("no submit button in #{form}: {error}"))
        .click()
        .await
        .expect("clicks");
}

#[cfg_attr(
    not(fidelis_browser),
    ignore = "install chromium and chromium-driver (or set FIDELIS_BROWSER_TESTS=required) to run the browser test"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_browser() {
    let driver = chromedriver();
    let domain = fidelis_example::domain()
        .database("memory")
        .build()
        .await
        .expect("the ledger builds");
    domain
        .process(OpenAccount {
            account_number: "ACC-001".into(),
            holder_name: "Alice Johnson".into(),
            opening_deposit: Decimal::new(150_000, 2),
        })
        .await
        .expect("the first account opens");
    let listener = WebApp::new(domain)
        .poll_every(Duration::from_millis(50))
        .bind("127.0.0.1:0".parse().expect("an address"))
        .await
        .expect("the dashboard binds");
    let base = format!("http://{}", listener.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener.serve(async {
        let _ = stopped.await;
    }));
    let (mut chromedriver, client) = browser(&driver).await;

    // Tab 1: the dashboard, watching. A marker on its window tells a reload apart.
    client
        .goto(&format!("{base}/"))
        .await
        .expect("the dashboard loads");
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("table#accounts[data-connected]"))
        .await
        .expect("the live feed connects");
    client
        .execute("window.notReloaded = true;", vec![])
        .await
        .expect("the marker is set");
    let dashboard_tab = client.window().await.expect("the dashboard's tab");

    // Tab 2: open an account through the form.
    let form_tab = client.new_window(true).await.expect("a second tab").handle;
    client
        .switch_to_window(form_tab)
        .await
        .expect("switches tab");
    client
        .goto(&format!("{base}/"))
        .await
        .expect("the dashboard loads");
    fill(&client, "#open-account-account_number", "ACC-002").await;
    fill(&client, "#open-account-holder_name", "Grace Hopper").await;
    fill(&client, "#open-account-opening_deposit", "250.00").await;
    submit(&client, "open-account").await;
    text_when(&client, "h1", |text| text == "Account ACC-002").await;
    text_when(&client, "#history", |text| text.contains("AccountOpened")).await;

    // An invalid deposit: its error next to the amount, the balance unchanged.
    fill(&client, "#deposit-amount", "-5").await;
    submit(&client, "deposit").await;
    let error = text_when(&client, "#deposit-amount-error", |text| !text.is_empty()).await;
    assert_eq!(error, "Deposit amount must be positive");
    let described = client
        .find(Locator::Css("#deposit-amount"))
        .await
        .expect("the amount input")
        .attr("aria-describedby")
        .await
        .expect("reads the attribute");
    assert_eq!(described.as_deref(), Some("deposit-amount-error"));
    text_when(&client, "#balance", |text| text == "$250.00").await;

    // A valid one: the history page shows it.
    fill(&client, "#deposit-amount", "100").await;
    fill(&client, "#deposit-reference", "Salary").await;
    submit(&client, "deposit").await;
    text_when(&client, "#balance", |text| text == "$350.00").await;
    let history = text_when(&client, "#history tbody", |text| {
        text.contains("DepositMade")
    })
    .await;
    assert!(history.contains("Salary"), "{history}");
    assert!(
        client
            .find(Locator::Css("#deposit-amount-error"))
            .await
            .is_err()
    );

    // A transfer to an unknown account: refused at the target, nothing moved.
    fill(&client, "#transfer-target", "ACC-404").await;
    fill(&client, "#transfer-amount", "50").await;
    submit(&client, "transfer").await;
    let error = text_when(&client, "#transfer-target-error", |text| !text.is_empty()).await;
    assert!(error.contains("no account"), "{error}");
    text_when(&client, "#balance", |text| text == "$350.00").await;
    // To Alice by her number: completed, and the page says so.
    fill(&client, "#transfer-target", "ACC-001").await;
    submit(&client, "transfer").await;
    let outcome = text_when(&client, "#transfer-outcome", |text| !text.is_empty()).await;
    assert!(
        outcome.contains("Transfer of $50.00 to ACC-001: completed."),
        "{outcome}"
    );
    text_when(&client, "#balance", |text| text == "$300.00").await;
    let screenshot = client.screenshot().await.expect("a screenshot");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("account-after-transfer.png");
    std::fs::write(&path, &screenshot).expect("the screenshot is written");
    eprintln!("account page screenshot: {}", path.display());

    // Tab 1 shows the new account and its deposit without having reloaded.
    client
        .switch_to_window(dashboard_tab)
        .await
        .expect("switches back");
    let rows = text_when(&client, "#account-rows", |text| {
        text.contains("Grace Hopper") && text.contains("$300.00")
    })
    .await;
    assert!(
        rows.contains("Alice Johnson") && rows.contains("$1550.00"),
        "{rows}"
    );
    let not_reloaded = client
        .execute("return window.notReloaded === true;", vec![])
        .await
        .expect("reads the marker");
    assert_eq!(
        not_reloaded,
        serde_json::Value::Bool(true),
        "the dashboard reloaded"
    );
    text_when(&client, "#live-status", |text| {
        text.starts_with("2 accounts")
    })
    .await;

    let screenshot = client.screenshot().await.expect("a screenshot");
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &screenshot).expect("the screenshot is written");
    eprintln!("dashboard screenshot: {}", path.display());

    client.close().await.expect("the session ends");
    let _ = chromedriver.kill().await;
    let _ = stop.send(());
    server
        .await
        .expect("the server's task")
        .expect("the server stops cleanly");
}
