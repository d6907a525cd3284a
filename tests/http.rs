//! The HTTP server against a live embedded cluster: Helix REST v2 shapes, write commands
//! that take effect in the store, JSON errors with status codes, /readyz, server-sent
//! events, HTTPS with the cluster's certificates.

#[path = "http_support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use strand::http::{HttpError, HttpOptions, Listen};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helix_rest_reads_have_helix_shapes_and_write_commands_take_effect() {
    let f = start(31, false).await;
    let b = f.base.clone();
    wait_ev(&f.admin, "convergence", |ev| converged(ev, 3, "")).await;

    let (s, v) = get(&b, "/admin/v2/clusters").await;
    assert_eq!((s, v), (200, json!({ "clusters": [C] })));

    let (s, v) = get(&b, &format!("/admin/v2/clusters/{C}")).await;
    assert_eq!(s, 200);
    assert_eq!(v["id"], json!(C));
    assert_eq!(v["controller"], json!("ctl-1"));
    assert_eq!(v["paused"], json!(false));
    assert_eq!(v["resources"], json!([RESOURCE]));
    assert_eq!(v["instances"], json!(instances()));
    assert_eq!(v["liveInstances"], json!(instances()));

    let (s, v) = get(&b, &format!("/admin/v2/clusters/{C}/instances")).await;
    assert_eq!(s, 200);
    assert_eq!(v["online"], json!(instances()));
    assert_eq!(v["disabled"], json!([]));

    let (s, v) = get(&b, &format!("/admin/v2/clusters/{C}/instances/web_1")).await;
    assert_eq!(s, 200);
    assert_eq!(v["id"], json!("web_1"));
    assert_eq!(v["config"]["simpleFields"]["HELIX_ENABLED"], json!("true"));
    assert!(v["liveInstance"]["simpleFields"]["SESSION_ID"].is_string());

    // The external view over REST is the store's record.
    let (s, v) = get(
        &b,
        &format!("/admin/v2/clusters/{C}/resources/{RESOURCE}/externalView"),
    )
    .await;
    assert_eq!(s, 200);
    let stored = f.admin.external_view(C, RESOURCE).await.unwrap().unwrap();
    assert_eq!(v["mapFields"], serde_json::to_value(&stored.map_fields).unwrap());
    let (s, v) = get(
        &b,
        &format!("/admin/v2/clusters/{C}/resources/{RESOURCE}/idealState"),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["simpleFields"]["STATE_MODEL_DEF_REF"], json!("MasterSlave"));
    let (s, v) = get(&b, &format!("/admin/v2/clusters/{C}/resources")).await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({ "id": C, "idealStates": [RESOURCE], "externalViews": [RESOURCE] })
        )
    );

    // Writes: disable an instance; the store's config says so and the controller moves
    // its replicas away.
    let (s, _) = post(
        &b,
        &format!("/admin/v2/clusters/{C}/instances/web_2?command=disable"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let cfg = instance(&f.admin, "web_2").await;
    assert!(!cfg.enabled().unwrap());
    wait_ev(&f.admin, "web_2's replicas offline", |ev| {
        ev.values().all(|m| m.get("web_2").is_none_or(|s| s == "OFFLINE"))
            && ev
                .values()
                .all(|m| m.values().filter(|s| *s == "MASTER").count() == 1)
    })
    .await;
    let (_, v) = get(&b, &format!("/admin/v2/clusters/{C}/instances")).await;
    assert_eq!(v["disabled"], json!(["web_2"]));
    let (s, _) = post(
        &b,
        &format!("/admin/v2/clusters/{C}/instances/web_2?command=enable"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(instance(&f.admin, "web_2").await.enabled().unwrap());

    // Maintenance on with a reason, read back, off.
    let path = format!("/admin/v2/clusters/{C}?command=enableMaintenanceMode");
    let (s, _) = post(&b, &path, Some(r#"{"reason":"disk swap"}"#)).await;
    assert_eq!(s, 200);
    let (_, v) = get(&b, &format!("/admin/v2/clusters/{C}/maintenance")).await;
    assert_eq!(
        (v["maintenance"].clone(), v["reason"].clone()),
        (json!(true), json!("disk swap"))
    );
    assert!(f.admin.maintenance(C).await.unwrap().is_some());
    let (s, _) = post(
        &b,
        &format!("/admin/v2/clusters/{C}?command=disableMaintenanceMode"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(f.admin.maintenance(C).await.unwrap().is_none());

    // Partitions: disable one on an instance, enable it back.
    let body = format!(r#"{{"resource":"{RESOURCE}","partitions":["{RESOURCE}_1"]}}"#);
    let path = format!("/admin/v2/clusters/{C}/instances/web_0?command=disablePartitions");
    assert_eq!(post(&b, &path, Some(&body)).await.0, 200);
    let disabled = instance(&f.admin, "web_0").await.disabled_partitions();
    assert_eq!(disabled.get(RESOURCE), Some(&vec![format!("{RESOURCE}_1")]));
    let path = format!("/admin/v2/clusters/{C}/instances/web_0?command=enablePartitions");
    assert_eq!(post(&b, &path, Some(&body)).await.0, 200);
    assert!(instance(&f.admin, "web_0").await.disabled_partitions().is_empty());

    // Config update through REST is the admin's config.
    let path = format!("/admin/v2/clusters/{C}/configs?command=update");
    let rec = format!(r#"{{"id":"{C}","simpleFields":{{"MAX_OFFLINE_INSTANCES_ALLOWED":"5"}}}}"#);
    assert_eq!(post(&b, &path, Some(&rec)).await.0, 200);
    let (_, v) = get(&b, &format!("/admin/v2/clusters/{C}/configs")).await;
    assert_eq!(v["simpleFields"]["MAX_OFFLINE_INSTANCES_ALLOWED"], json!("5"));

    // A new resource by query parameters, then rebalance.
    let path = format!("/admin/v2/clusters/{C}/resources/other?numPartitions=2&stateModelRef=OnlineOffline");
    assert_eq!(request(&b, "PUT", &path, None).await.0, 201);
    let path = format!("/admin/v2/clusters/{C}/resources/other?command=rebalance&replicas=2");
    let (s, v) = post(&b, &path, None).await;
    assert_eq!(s, 200);
    assert_eq!(v["simpleFields"]["REPLICAS"], json!("2"));
    assert_eq!(
        f.admin
            .ideal_state(C, "other")
            .await
            .unwrap()
            .record
            .simple("REPLICAS"),
        Some("2")
    );

    // The dashboard's view: the grid is the store's external view.
    let ev = wait_ev(&f.admin, "converged again", |ev| converged(ev, 3, "")).await;
    let (s, v) = get(&b, &format!("/api/v1/clusters/{C}/view")).await;
    assert_eq!(s, 200);
    let grid = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == json!(RESOURCE))
        .unwrap();
    for cell in grid["cells"].as_array().unwrap() {
        let (p, i) = (
            cell["partition"].as_str().unwrap(),
            cell["instance"].as_str().unwrap(),
        );
        if let Some(st) = ev.get(p).and_then(|m| m.get(i)) {
            // The view may be newer than `ev`; only a converged view must match exactly.
            assert!(cell["external"].is_string(), "{p}/{i} should show {st}");
        }
    }
    assert_eq!(v["leader"]["name"], json!("ctl-1"));
    assert_eq!(v["instances"].as_array().unwrap().len(), 3);
    f.http.shutdown().await;
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_error_with_a_status_code_and_never_a_panic() {
    let f = start(32, false).await;
    let b = f.base.clone();
    let cases: Vec<(&str, String, Option<&str>, u16, &str)> = vec![
        (
            "GET",
            "/admin/v2/clusters/NOPE".into(),
            None,
            404,
            "cluster NOPE does not exist",
        ),
        (
            "GET",
            format!("/admin/v2/clusters/{C}/instances/nobody"),
            None,
            404,
            "nobody",
        ),
        (
            "GET",
            format!("/admin/v2/clusters/{C}/resources/nothing/idealState"),
            None,
            404,
            "nothing",
        ),
        (
            "POST",
            format!("/admin/v2/clusters/{C}/instances/web_0?command=explode"),
            None,
            400,
            "unknown instance command",
        ),
        (
            "POST",
            format!("/admin/v2/clusters/{C}/instances/web_0"),
            None,
            400,
            "?command=",
        ),
        (
            "POST",
            format!("/admin/v2/clusters/{C}/instances/web_0?command=disablePartitions"),
            Some("{not json"),
            400,
            "body",
        ),
        (
            "POST",
            format!("/admin/v2/clusters/{C}/instances/web_0?command=disablePartitions"),
            Some(r#"{"resource":"db","partitions":["db_99"]}"#),
            404,
            "db_99",
        ),
        (
            "POST",
            format!("/admin/v2/clusters/{C}/resources/{RESOURCE}?command=rebalance&replicas=many"),
            None,
            400,
            "many",
        ),
        (
            "PUT",
            format!("/admin/v2/clusters/{C}"),
            None,
            409,
            "already exists",
        ),
        (
            "PUT",
            format!("/admin/v2/clusters/{C}/resources/x?numPartitions=0&stateModelRef=MasterSlave"),
            None,
            400,
            "partitions",
        ),
        (
            "DELETE",
            format!("/admin/v2/clusters/{C}/instances/web_0"),
            None,
            409,
            "web_0",
        ),
        (
            "POST",
            format!("/admin/v2/clusters/{C}/instances/web_0?command=reset"),
            Some(r#"{"resource":"db","partitions":["db_0"]}"#),
            409,
            "not ERROR",
        ),
        (
            "POST",
            format!("/admin/v2/clusters/{C}/configs?command=frobnicate"),
            Some("{}"),
            400,
            "update",
        ),
        ("GET", "/no/such/path".into(), None, 404, "no such path"),
        (
            "PATCH",
            format!("/admin/v2/clusters/{C}"),
            None,
            405,
            "Method Not Allowed",
        ),
        (
            "GET",
            "/admin/v2/clusters/bad%20name/instances".into(),
            None,
            400,
            "cluster name",
        ),
    ];
    for (method, path, body, status, text) in cases {
        let (s, v) = request(&b, method, &path, body).await;
        assert_eq!(s, status, "{method} {path}: {v}");
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no JSON error: {v}"));
        assert!(
            msg.contains(text),
            "{method} {path}: {msg:?} should mention {text:?}"
        );
        assert!(v["code"].is_string());
    }
    // Nothing was written by the failed commands.
    assert!(instance(&f.admin, "web_0").await.disabled_partitions().is_empty());
    assert!(f.admin.cluster_exists(C).await.unwrap());
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_server_refuses_writes_and_says_so() {
    let f = start(33, true).await;
    let (s, v) = post(
        &f.base,
        &format!("/admin/v2/clusters/{C}/instances/web_0?command=disable"),
        None,
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["code"], json!("read_only"));
    assert!(instance(&f.admin, "web_0").await.enabled().unwrap());
    let (_, v) = get(&f.base, "/api/v1/server").await;
    assert_eq!(v["readOnly"], json!(true));
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_roles_and_events_stream_store_changes() {
    let mut f = start(34, false).await;
    let (s, _) = get(&f.base, "/livez").await;
    assert_eq!(s, 200);
    // Ready once the controller leads and the participant is registered.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (s, v) = get(&f.base, "/readyz").await;
        if s == 200 {
            assert_eq!(v["ready"], json!(true));
            assert_eq!(v["checks"].as_array().unwrap().len(), 2);
            break;
        }
        assert_eq!(s, 503);
        assert!(tokio::time::Instant::now() < deadline, "never ready: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The participant checked stops: not ready, and the check says why.
    f.cluster.stop_participant("web_0").await.unwrap();
    let (s, v) = get(&f.base, "/readyz").await;
    assert_eq!(s, 503, "{v}");
    let p = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == json!("participant"))
        .unwrap();
    assert_eq!(p["ready"], json!(false));

    // SSE: an operator's write shows up on the stream as an instanceConfig event.
    let is_web_1_config = |e: &(u64, String)| {
        e.1.contains(r#""kind":"instanceConfig""#) && e.1.contains(r#""instance":"web_1""#)
    };
    let (mut tcp, mut got) = open_events(&f.base, None).await;
    // The server records from the first revision it watches; write until seen.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut enabled = false;
    while !sse_events(&got).iter().any(is_web_1_config) {
        f.admin.enable_instance(C, "web_1", enabled).await.unwrap();
        enabled = !enabled;
        read_more(&mut tcp, &mut got, Duration::from_millis(500)).await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "no instanceConfig event: {got}"
        );
    }
    drop(tcp);
    let seen = sse_events(&got);
    let first = seen.iter().find(|e| is_web_1_config(e)).unwrap().clone();
    assert!(first.1.contains(r#""at_ms":"#), "{}", first.1);

    // A stream opened later starts with what happened before it (no write now: only the
    // server's journal can deliver it), in the order the first stream saw.
    let (mut tcp, mut got) = open_events(&f.base, None).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !sse_events(&got).iter().any(|e| e.0 == first.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog lacks event {}: {got}",
            first.0
        );
        read_more(&mut tcp, &mut got, Duration::from_millis(200)).await;
    }
    let replayed = sse_events(&got);
    let again = replayed.iter().find(|e| e.0 == first.0).unwrap();
    assert_eq!(
        again.1, first.1,
        "the same event, with the time the server saw it"
    );
    let ids: Vec<u64> = replayed.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, once: {ids:?}");
    drop(tcp);

    // A client resuming with `Last-Event-ID` gets only what came after it.
    let boot = sse_boot(&got);
    let (mut tcp, mut got) = open_events(&f.base, Some(&format!("{boot}-{}", first.0))).await;
    f.admin.enable_instance(C, "web_1", !enabled).await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !sse_events(&got)
        .iter()
        .any(|e| e.0 > first.0 && is_web_1_config(e))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new event after resuming: {got}"
        );
        read_more(&mut tcp, &mut got, Duration::from_millis(200)).await;
    }
    let resumed: Vec<u64> = sse_events(&got).iter().map(|e| e.0).collect();
    assert!(
        resumed.iter().all(|&n| n > first.0),
        "resumed after {}: {resumed:?}",
        first.0
    );
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_with_the_cluster_certificates_and_plain_http_is_loopback_only() {
    let f = start(35, false).await;
    // Plain HTTP on a non-loopback address is refused before binding.
    let err = strand::http::start(
        HttpOptions {
            addr: "0.0.0.0:0".parse().unwrap(),
            listen: Listen::Plain,
            read_only: false,
        },
        f.admin.clone(),
        Default::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HttpError::PlainNotLoopback { .. }), "{err}");

    // HTTPS with a node certificate of the cluster's CA; a client certificate of the same
    // CA gets answers.
    let settings = strand::settings::Settings::load_with_env(
        &strand::settings::SettingsFlags {
            tls_dir: Some(f.cluster.dir().join("tls")),
            store: vec![],
        },
        |_| None,
    )
    .unwrap();
    let node =
        strand::settings::tls_material_for(&settings, "web-http", strand::authz::Role::Spectator).unwrap();
    let client =
        strand::settings::tls_material_for(&settings, "web-operator", strand::authz::Role::Operator).unwrap();
    let server = strand::http::start(
        HttpOptions {
            addr: "127.0.0.1:0".parse().unwrap(),
            listen: Listen::Https(Arc::new(node)),
            read_only: false,
        },
        f.admin.clone(),
        Default::default(),
    )
    .await
    .unwrap();
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let mut cfg = client.client_config().unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("web-http").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the cluster CA");
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri("/admin/v2/clusters")
        .header("host", "web-http")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    use http_body_util::BodyExt;
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        json!({ "clusters": [C] })
    );

    // A viewer's certificate reads, and its writes are refused (403), whatever the path.
    let viewer =
        strand::settings::tls_material_for(&settings, "web-viewer", strand::authz::Role::Viewer).unwrap();
    let mut cfg = viewer.client_config().unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(rustls_pki_types::ServerName::try_from("web-http").unwrap(), tcp)
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = |method: &str, uri: &str| {
        hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "web-http")
            .body(http_body_util::Full::<bytes::Bytes>::new(bytes::Bytes::new()))
            .unwrap()
    };
    let resp = send.send_request(req("GET", "/admin/v2/clusters")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.into_body().collect().await.unwrap();
    send.ready().await.unwrap();
    let resp = send
        .send_request(req("PUT", "/admin/v2/clusters/viewer-made"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["code"], "permission_denied", "{body}");
    assert!(!f
        .admin
        .list_clusters()
        .await
        .unwrap()
        .contains(&"viewer-made".to_string()));

    // Without a client certificate: no answer.
    let tcp = tokio::net::TcpStream::connect(server.local_addr()).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .uri("/admin/v2/clusters")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert!(
        send.send_request(req).await.is_err(),
        "plain HTTP to the HTTPS port gets no answer"
    );
    server.shutdown().await;
    f.http.shutdown().await;
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_prometheus_text_with_gossip_controller_and_participant_figures() {
    let f = start(36, false).await;
    wait_ev(&f.admin, "convergence", |ev| converged(ev, 3, "")).await;
    let (s, v) = get(&f.base, "/metrics").await;
    assert_eq!(s, 200);
    let text = v.as_str().expect("text exposition").to_string();
    let line = |name: &str, labels: &[&str]| {
        text.lines()
            .find(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
    };
    assert_eq!(
        line("strand_controller_leader{", &[r#"cluster="WEB""#]),
        Some(1.0),
        "{text}"
    );
    assert!(line("strand_controller_epoch{", &[r#"cluster="WEB""#]).unwrap() > 0.0);
    // The controller's gossip sees the three participants alive.
    assert!(
        line("strand_members{", &[r#"status="alive""#]).unwrap() >= 3.0,
        "{text}"
    );
    assert_eq!(line("strand_membership_isolated", &[]), Some(0.0));
    assert_eq!(
        line("strand_participant_session_live{", &[r#"instance="web_0""#]),
        Some(1.0)
    );
    // web_0 took replicas: OFFLINE→SLAVE transitions counted, with their durations.
    let ok = line(
        "strand_participant_transitions_total{",
        &[r#"from="OFFLINE""#, r#"to="SLAVE""#, r#"phase="ok""#],
    );
    assert!(ok.unwrap_or(0.0) >= 1.0, "{text}");
    assert!(
        text.contains("strand_participant_transition_duration_seconds_bucket"),
        "{text}"
    );
    f.cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_served_streamed_and_exported_as_metrics() {
    let f = start(37, false).await;
    wait_ev(&f.admin, "convergence", |ev| converged(ev, 3, "")).await;
    let rule = "AVG(web_latency_ms)[INSTANCE=web_*] > 5";
    // A bad rule is a 400 with the reason; a good one is added in canonical form.
    let path = format!("/admin/v2/clusters/{C}/alerts");
    let (s, v) = request(&f.base, "PUT", &path, Some("AVG(x)[NODE=*] > 5")).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("bad_request")), "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("unknown scope \"NODE\""),
        "{v}"
    );
    let (s, v) = request(
        &f.base,
        "PUT",
        &path,
        Some(r#"{"rule": "avg(web_latency_ms)[instance=web_*]>5"}"#),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rule"], json!(rule));
    let (s, _) = request(&f.base, "PUT", &path, Some(rule)).await;
    assert_eq!(s, 409, "the same rule twice is a conflict");

    // Open the event stream, then make the rule fire.
    let (mut tcp, mut got) = open_events(&f.base, None).await;
    let health = f.cluster.participants["web_0"].health();
    health
        .report("web_latency_ms", 9.0, strand::health::Scope::instance())
        .unwrap();
    health.flush().await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !got.contains(r#""kind":"alert","action":"fired""#) {
        read_more(&mut tcp, &mut got, Duration::from_millis(200)).await;
        assert!(tokio::time::Instant::now() < deadline, "no alert event: {got}");
    }
    assert!(got.contains(r#""detail":"INSTANCE=web_0 = 9""#), "{got}");

    let (s, v) = get(&f.base, &path).await;
    assert_eq!(s, 200);
    assert_eq!(
        v["alerts"][0]["firing"][0]["scope"],
        json!("INSTANCE=web_0"),
        "{v}"
    );
    let (_, st) = get(&f.base, &format!("/admin/v2/clusters/{C}/status")).await;
    assert_eq!(st["alerts"][0]["rule"], json!(rule), "{st}");
    assert!(st["leader"]["epoch"].as_u64().unwrap() > 0, "{st}");
    let (_, h) = get(&f.base, &format!("/admin/v2/clusters/{C}/health")).await;
    assert!(
        h["aggregates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["stat"] == json!("AVG(web_latency_ms)") && a["value"] == json!(9.0)),
        "{h}"
    );

    // Exported: firing by rule, and the transition counted (the write is acknowledged
    // before the controller counts it, so wait for the counter).
    wait_alert_metrics(&f.base, 1.0, "firing").await;

    // Removing the rule clears what it fired, on the stream too.
    let (s, v) = request(
        &f.base,
        "DELETE",
        &format!("{path}?rule=AVG(web_latency_ms)%5BINSTANCE%3Dweb_*%5D%20%3E%205"),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !got.contains(r#""kind":"alert","action":"cleared""#) {
        read_more(&mut tcp, &mut got, Duration::from_millis(200)).await;
        assert!(tokio::time::Instant::now() < deadline, "no cleared event: {got}");
    }
    wait_alert_metrics(&f.base, 0.0, "cleared").await;
    f.cluster.shutdown().await;
}

/// Opens the cluster's event stream; the connection and what was read, once the response
/// headers are in.
async fn open_events(base: &str, last_event_id: Option<&str>) -> (tokio::net::TcpStream, String) {
    use tokio::io::AsyncWriteExt;
    let addr = base.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let resume = last_event_id
        .map(|id| format!("last-event-id: {id}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET /admin/v2/clusters/{C}/events HTTP/1.1\r\nhost: {addr}\r\naccept: text/event-stream\r\n{resume}\r\n"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut got = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !got.contains("text/event-stream") {
        assert!(tokio::time::Instant::now() < deadline, "no event stream: {got}");
        read_more(&mut tcp, &mut got, Duration::from_millis(200)).await;
    }
    (tcp, got)
}

/// The complete events of a raw SSE response (those ended by their blank line): (sequence
/// number of the `<boot>-<seq>` id, data). The body is chunked, one event per chunk, so an
/// event's lines are found by their prefixes.
fn sse_events(raw: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let (mut id, mut data) = (None, None);
    for line in raw.split('\n') {
        let line = line.trim_end_matches('\r');
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().rsplit_once('-').and_then(|(_, n)| n.parse::<u64>().ok());
        } else if let Some(d) = line.strip_prefix("data:") {
            data = Some(d.trim().to_string());
        } else if line.is_empty() {
            if let (Some(n), Some(d)) = (id.take(), data.take()) {
                out.push((n, d));
            }
        }
    }
    out
}

/// The server run's half of the event ids in a raw SSE response.
fn sse_boot(raw: &str) -> String {
    raw.lines()
        .find_map(|l| l.strip_prefix("id:"))
        .and_then(|v| v.trim().split_once('-'))
        .map(|(b, _)| b.to_string())
        .expect("an event id")
}

/// Appends what arrives on the stream within `wait` to `got`; fails if the stream closed.
async fn read_more(tcp: &mut tokio::net::TcpStream, got: &mut String, wait: Duration) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 8192];
    if let Ok(Ok(n)) = tokio::time::timeout(wait, tcp.read(&mut buf)).await {
        assert!(n > 0, "stream closed: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

/// Waits until `/metrics` shows the alerts test's rule firing for `firing` groups, with one
/// transition `to` counted.
async fn wait_alert_metrics(base: &str, firing: f64, to: &str) {
    let label = r#"rule="AVG(web_latency_ms)[INSTANCE=web_*] > 5""#;
    let metric = |text: &str, name: &str, extra: &str| {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(label) && l.contains(extra))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, m) = get(base, "/metrics").await;
        let text = m.as_str().unwrap_or_default().to_string();
        if metric(&text, "strand_alerts_firing{", "") == Some(firing)
            && metric(&text, "strand_alert_transitions_total{", &format!("to=\"{to}\"")) == Some(1.0)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alert metrics never {firing} / {to}: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
