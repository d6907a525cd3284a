//! The dashboard in a real browser: headless Chromium driven through WebDriver
//! (chromedriver, spoken by `http_support::webdriver`) against a live embedded cluster. One browser session, four scenarios:
//! the grid shows the states the store holds; killing a participant turns its cells over
//! to the new states; disabling an instance from the page takes effect in the store; an
//! alert rule added over REST fires on a participant's report and the alerts panel shows it.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/setup.sh` installs them); the
//! test installs them itself when missing and skips, saying so, only if that fails.
//! `STRAND_SCREENSHOT=docs/dashboard.png` saves the page after the failover.

#[path = "http_support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::webdriver::Session;
use support::*;

/// Finds chromedriver and chromium, installing them with apt when missing.
fn chromium() -> Option<(String, String)> {
    let find = || {
        let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        let browser = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())?;
        Some((driver.to_string(), browser.to_string()))
    };
    if let Some(found) = find() {
        return Some(found);
    }
    eprintln!("browser test: chromium or chromedriver missing; installing them with apt-get");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", "chromium", "chromium-driver"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    find()
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_driver(path: &str) -> (Driver, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver did not listen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (Driver(child), url)
}

async fn browser(webdriver: &str, binary: &str) -> Session {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1100"]
        }
    });
    Session::new(webdriver, caps).await
}

type Grid = BTreeMap<String, BTreeMap<String, String>>;

/// partition → instance → state as the page shows it (non-empty cells only).
async fn page_grid(c: &Session) -> Grid {
    let v = c
        .execute(
            "return Array.from(document.querySelectorAll('table.grid[data-resource=\"db\"] td.cell'))\
             .map(e => [e.dataset.partition, e.dataset.instance, e.dataset.state]);",
        )
        .await;
    let mut out = Grid::new();
    for row in v.as_array().cloned().unwrap_or_default() {
        let (p, i, s) = (
            row[0].as_str().unwrap(),
            row[1].as_str().unwrap(),
            row[2].as_str().unwrap(),
        );
        if !s.is_empty() {
            out.entry(p.into()).or_default().insert(i.into(), s.into());
        }
    }
    out
}

/// Waits until the page's grid equals the store's external view and `pred` holds for it.
async fn wait_page_is_store(c: &Session, f: &Fixture, what: &str, pred: impl Fn(&Grid) -> bool) -> Grid {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let page = page_grid(c).await;
        let store = external_view(&f.admin).await;
        if page == store && pred(&store) {
            return page;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}:\npage  {page:?}\nstore {store:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_store_follows_a_failover_and_disables_an_instance() {
    let Some((driver_path, binary)) = chromium() else {
        eprintln!("SKIPPED browser test: chromium and chromium-driver are not installed and could not be installed with apt-get");
        return;
    };
    let (_driver, webdriver) = start_driver(&driver_path).await;
    let mut f = start(41, false).await;
    wait_ev(&f.admin, "convergence", |ev| converged(ev, 3, "")).await;
    let c = browser(&webdriver, &binary).await;
    c.goto(&format!("{}/", f.base)).await;

    // 1. The grid shows what the store holds.
    let shown = wait_page_is_store(&c, &f, "the grid to show the converged external view", |ev| {
        converged(ev, 3, "")
    })
    .await;
    let leader = c.text("#leader").await.unwrap_or_default();
    assert!(leader.contains("ctl-1"), "leader card: {leader}");
    assert_eq!(c.attr("body", "data-read-only").await.as_deref(), Some("false"));

    // 2. Kill the participant holding db_0's MASTER: its cells turn over on screen.
    // (Chosen from the converged grid: the store may be moving a MASTER right now.)
    let victim = shown["db_0"]
        .iter()
        .find(|(_, s)| *s == "MASTER")
        .map(|(i, _)| i.clone())
        .unwrap();
    f.cluster.kill_participant(&victim).await.unwrap();
    wait_page_is_store(&c, &f, "a new MASTER for every partition on screen", |ev| {
        converged(ev, 2, &victim)
    })
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let css = format!("tr[data-instance=\"{victim}\"] [data-gossip]");
    while c.attr(&css, "data-gossip").await.as_deref() != Some("down") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{victim} never shown down"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let timeline = c.text("#timeline").await.unwrap_or_default();
    assert!(
        timeline.contains(&victim),
        "the time line names the victim: {timeline}"
    );
    // A page opened after the failover reads it off its time line too (the server keeps
    // the recent events, with the times it saw them).
    c.goto(&format!("{}/", f.base)).await;
    let ended = format!("{victim} session ended");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let timeline = c.text("#timeline").await.unwrap_or_default();
        if timeline.contains(&ended) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a page opened after the kill lacks it: {timeline}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if let Ok(path) = std::env::var("STRAND_SCREENSHOT") {
        let png = c.screenshot().await;
        assert_eq!(&png[..4], b"\x89PNG");
        std::fs::write(&path, png).unwrap();
        eprintln!("browser test: screenshot saved to {path}");
    }

    // 3. Disable a live instance from the page (confirming the dialog).
    let target = support::instances().into_iter().find(|i| *i != victim).unwrap();
    let button = format!("button[data-action=\"disable\"][data-instance=\"{target}\"]");
    c.click(&button, 40).await;
    assert!(c.accept_dialog().await, "the page asks for confirmation");
    let deadline = tokio::time::Instant::now() + WAIT;
    while instance(&f.admin, &target).await.enabled().unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "disabling {target} from the page had no effect"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let css = format!("tr[data-instance=\"{target}\"] [data-enabled]");
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.attr(&css, "data-enabled").await.as_deref() != Some("false") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never showed {target} disabled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its replicas go OFFLINE and the page follows the store.
    wait_page_is_store(
        &c,
        &f,
        "the disabled instance's replicas offline on screen",
        |ev| ev.values().all(|m| m.get(&target).is_none_or(|s| s == "OFFLINE")),
    )
    .await;

    // 4. An alert rule added over REST fires on a participant's report: the alerts panel
    // and the time line show it.
    let rule = "AVG(demo_ms)[INSTANCE=*] > 5";
    let (status, body) = support::request(
        &f.base,
        "PUT",
        &format!("/admin/v2/clusters/{C}/alerts"),
        Some(rule),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let reporter = f.cluster.participants.keys().next().unwrap().clone();
    let health = f.cluster.participants[&reporter].health();
    health
        .report("demo_ms", 9.0, strand::health::Scope::instance())
        .unwrap();
    health.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while c.attr("#alerts", "data-firing").await.as_deref() != Some("1") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never showed the alert firing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let panel = c.text("#alerts").await.unwrap_or_default();
    assert!(
        panel.contains(rule) && panel.contains(&format!("INSTANCE={reporter}")),
        "{panel}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while !c
        .text("#timeline")
        .await
        .unwrap_or_default()
        .contains("alert fired")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the time line never showed the alert"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    c.close().await;
    f.cluster.shutdown().await;
}
