//! Shared by the HTTP and browser tests: an embedded cluster with the HTTP server on
//! 127.0.0.1:0 (plain HTTP, loopback) and a small HTTP/1.1 client.

#![allow(dead_code)]

pub mod webdriver;

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::BodyExt;
use strand::admin::{AddResource, Admin};
use strand::embedded::EmbeddedCluster;
use strand::http::{HttpOptions, HttpServer, Listen, Observed};
use strand::model::RebalanceMode;

pub const C: &str = "WEB";
pub const RESOURCE: &str = "db";
pub const PARTITIONS: usize = 4;
pub const WAIT: Duration = Duration::from_secs(30);

/// A running cluster: a controller, three participants, one MasterSlave resource of 4
/// partitions × 3 replicas, and the HTTP server.
pub struct Fixture {
    pub cluster: EmbeddedCluster,
    pub admin: Admin,
    pub http: HttpServer,
    pub base: String,
}

pub fn instances() -> Vec<String> {
    (0..3).map(|i| format!("web_{i}")).collect()
}

pub async fn start(seed: u64, read_only: bool) -> Fixture {
    let mut cluster = EmbeddedCluster::start(seed).await.unwrap();
    let admin = Admin::new(cluster.store());
    admin.add_cluster(C).await.unwrap();
    for i in instances() {
        admin.add_instance(C, &i).await.unwrap();
    }
    admin
        .add_resource(
            C,
            RESOURCE,
            &AddResource::new(PARTITIONS, "MasterSlave").mode(RebalanceMode::FullAuto),
        )
        .await
        .unwrap();
    admin
        .set_resource_property(C, RESOURCE, "REPLICAS", "3")
        .await
        .unwrap();
    cluster.add_controller("ctl-1", &[C]).await.unwrap();
    for i in instances() {
        cluster.add_participant(C, &i, None).await.unwrap();
    }
    // What a controller process observes, plus one participant's readiness and metrics.
    let mut observed = Observed::controller(&cluster.controllers["ctl-1"], &[C.to_string()]);
    let participant = Observed::participant(&cluster.participants["web_0"]);
    observed.checks.extend(participant.checks);
    observed.collectors.extend(participant.collectors);
    let http = strand::http::start(
        HttpOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            listen: Listen::Plain,
            read_only,
        },
        Admin::new(cluster.store()),
        observed,
    )
    .await
    .unwrap();
    let base = format!("http://{}", http.local_addr());
    Fixture {
        cluster,
        admin,
        http,
        base,
    }
}

/// partition → instance → state in the external view.
pub async fn external_view(admin: &Admin) -> BTreeMap<String, BTreeMap<String, String>> {
    admin
        .external_view(C, RESOURCE)
        .await
        .unwrap()
        .map(|r| r.map_fields)
        .unwrap_or_default()
}

/// Waits until the external view satisfies `pred`.
pub async fn wait_ev(
    admin: &Admin,
    what: &str,
    pred: impl Fn(&BTreeMap<String, BTreeMap<String, String>>) -> bool,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let ev = external_view(admin).await;
        if pred(&ev) {
            return ev;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {ev:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every partition has one MASTER and every replica is MASTER or SLAVE on a live instance.
pub fn converged(ev: &BTreeMap<String, BTreeMap<String, String>>, replicas: usize, without: &str) -> bool {
    ev.len() == PARTITIONS
        && ev.values().all(|m| {
            m.len() == replicas
                && !m.contains_key(without)
                && m.values().filter(|s| *s == "MASTER").count() == 1
                && m.values().all(|s| s == "MASTER" || s == "SLAVE")
        })
}

/// One HTTP/1.1 request; the status and the body (JSON when it parses, else a string).
pub async fn request(base: &str, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", &addr)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.unwrap_or("").to_string(),
        )))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).to_string();
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

/// A GET request.
pub async fn get(base: &str, path: &str) -> (u16, serde_json::Value) {
    request(base, "GET", path, None).await
}

/// A POST request.
pub async fn post(base: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    request(base, "POST", path, body).await
}

/// An instance's config, as the store holds it.
pub async fn instance(admin: &Admin, name: &str) -> strand::model::InstanceConfig {
    admin.instance_config(C, name).await.unwrap()
}
