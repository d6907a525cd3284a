//! A minimal W3C WebDriver client (the handful of commands the browser test needs), over
//! the same small HTTP/1.1 client as the REST tests: a new session, navigate, run a
//! script, find an element, click, read an attribute or text, accept a dialog, take a
//! screenshot, end the session.

use serde_json::{json, Value};

use super::request;

/// A WebDriver session.
pub struct Session {
    driver: String,
    id: String,
}

/// The WebDriver spec's key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Session {
    /// Opens a session with `capabilities` (`alwaysMatch`).
    pub async fn new(driver: &str, capabilities: Value) -> Session {
        let body = json!({ "capabilities": { "alwaysMatch": capabilities } }).to_string();
        let (s, v) = request(driver, "POST", "/session", Some(&body)).await;
        assert_eq!(s, 200, "new WebDriver session: {v}");
        let id = v["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Session {
            driver: driver.to_string(),
            id,
        }
    }

    async fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let path = format!("/session/{}{path}", self.id);
        let body = body.map(|b| b.to_string());
        let (s, v) = request(&self.driver, method, &path, body.as_deref()).await;
        if s == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{method} {path}: {s} {v}"))
        }
    }

    /// Navigates to `url`.
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })))
            .await
            .unwrap();
    }

    /// Runs `script` in the page; its return value.
    pub async fn execute(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
        .await
        .unwrap()
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        match self
            .cmd(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
        {
            Ok(v) => v[ELEMENT].as_str().map(String::from),
            Err(_) => None,
        }
    }

    /// An attribute of the first element matching `css` (read in one script, so a page
    /// that re-renders in between cannot leave a stale element).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.getAttribute({}) : null;",
            json!(css),
            json!(name)
        );
        self.execute(&script).await.as_str().map(String::from)
    }

    /// The text of the first element matching `css` (one script, as [`Session::attr`]).
    pub async fn text(&self, css: &str) -> Option<String> {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : null;",
            json!(css)
        );
        self.execute(&script).await.as_str().map(String::from)
    }

    /// Clicks the first element matching `css`; retried while the page re-renders under
    /// it (a stale element), at most `tries` times.
    pub async fn click(&self, css: &str, tries: usize) {
        let mut last = String::new();
        for _ in 0..tries {
            if let Some(e) = self.find(css).await {
                match self
                    .cmd("POST", &format!("/element/{e}/click"), Some(json!({})))
                    .await
                {
                    Ok(_) => return,
                    Err(err) => last = err,
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("cannot click {css}: {last}");
    }

    /// Accepts the open dialog (`confirm`), if there is one; whether there was.
    pub async fn accept_dialog(&self) -> bool {
        self.cmd("POST", "/alert/accept", Some(json!({}))).await.is_ok()
    }

    /// A PNG screenshot of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", None).await.unwrap();
        base64_decode(v.as_str().expect("base64 PNG"))
    }

    /// Ends the session (the browser quits).
    pub async fn close(self) {
        let _ = self.cmd("DELETE", "", None).await;
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (k, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * k);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}
