//! Scoped config with change notifications and the application property store: in order with
//! old and new values, resumed from a revision without a gap, across a store leader SIGKILL
//! (replicas as processes); CAS updates under concurrent updaters, listeners on a path and a
//! subtree, read-your-writes through the cache; bad scopes, keys and paths.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strand::admin::{AddResource, Admin};
use strand::config::{
    AppChange, AppEvent, ConfigAccessor, ConfigChange, ConfigError, ConfigFilter, ConfigScope,
    ConfigScopeType, ConfigStart, ConfigSubscription,
};
use strand::embedded::EmbeddedCluster;

#[allow(dead_code)]
#[path = "store/cluster.rs"]
mod cluster;

fn scope(text: &str) -> ConfigScope {
    ConfigScope::parse(text).unwrap()
}

async fn next_changes(sub: &mut ConfigSubscription, n: usize) -> Vec<ConfigChange> {
    let mut out = Vec::new();
    while out.len() < n {
        let batch = tokio::time::timeout(Duration::from_secs(20), sub.next_batch())
            .await
            .expect("no config change within 20 s")
            .unwrap();
        out.extend(batch);
    }
    assert_eq!(out.len(), n, "more changes than expected: {out:?}");
    out
}

fn triple(c: &ConfigChange) -> (String, String, Option<String>, Option<String>) {
    (c.scope.to_string(), c.key.clone(), c.old.clone(), c.new.clone())
}

fn t(
    scope: &str,
    key: &str,
    old: Option<&str>,
    new: Option<&str>,
) -> (String, String, Option<String>, Option<String>) {
    (scope.into(), key.into(), old.map(Into::into), new.map(Into::into))
}

/// An embedded store with cluster C, instance h_1 and resource db (2 partitions).
async fn setup() -> (EmbeddedCluster, Admin) {
    let mut ec = EmbeddedCluster::start(7).await.unwrap();
    let admin = Admin::new(ec.store());
    admin.add_cluster("C").await.unwrap();
    admin.add_instance("C", "h_1").await.unwrap();
    admin
        .add_resource("C", "db", &AddResource::new(2, "MasterSlave"))
        .await
        .unwrap();
    (ec, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_arrive_in_order_with_old_and_new_values_at_every_scope() {
    let (mut ec, _admin) = setup().await;
    let writer = ec.config_accessor();
    let reader = ec.config_accessor();
    let kinds = [
        ConfigScopeType::Cluster,
        ConfigScopeType::Participant,
        ConfigScopeType::Resource,
        ConfigScopeType::Partition,
    ];
    let mut subs = Vec::new();
    for kind in kinds {
        let filter = ConfigFilter::Kind {
            cluster: "C".into(),
            kind,
        };
        subs.push(reader.subscribe(filter, ConfigStart::Now).await.unwrap());
    }
    let kv = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
    writer
        .set(&scope("CLUSTER=C"), &kv("MAX_OFFLINE_INSTANCES_ALLOWED", "2"))
        .await
        .unwrap();
    writer
        .set(&scope("CLUSTER=C"), &kv("MAX_OFFLINE_INSTANCES_ALLOWED", "3"))
        .await
        .unwrap();
    writer
        .set(&scope("PARTICIPANT=C,h_1"), &kv("app.limit", "10"))
        .await
        .unwrap();
    writer
        .set(&scope("RESOURCE=C,db"), &kv("qps", "100"))
        .await
        .unwrap();
    writer
        .set(&scope("PARTITION=C,db,db_1"), &kv("qps", "7"))
        .await
        .unwrap();
    writer
        .remove(&scope("CLUSTER=C"), &["MAX_OFFLINE_INSTANCES_ALLOWED".into()])
        .await
        .unwrap();
    writer
        .remove(&scope("PARTITION=C,db,db_1"), &["qps".into()])
        .await
        .unwrap();

    let cluster = next_changes(&mut subs[0], 3).await;
    assert_eq!(
        cluster.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t("CLUSTER=C", "MAX_OFFLINE_INSTANCES_ALLOWED", None, Some("2")),
            t("CLUSTER=C", "MAX_OFFLINE_INSTANCES_ALLOWED", Some("2"), Some("3")),
            t("CLUSTER=C", "MAX_OFFLINE_INSTANCES_ALLOWED", Some("3"), None),
        ]
    );
    assert!(cluster.windows(2).all(|w| w[0].revision < w[1].revision));
    let participant = next_changes(&mut subs[1], 1).await;
    assert_eq!(
        triple(&participant[0]),
        t("PARTICIPANT=C,h_1", "app.limit", None, Some("10"))
    );
    let resource = next_changes(&mut subs[2], 1).await;
    assert_eq!(triple(&resource[0]), t("RESOURCE=C,db", "qps", None, Some("100")));
    let partition = next_changes(&mut subs[3], 2).await;
    assert_eq!(
        partition.iter().map(triple).collect::<Vec<_>>(),
        vec![
            t("PARTITION=C,db,db_1", "qps", None, Some("7")),
            t("PARTITION=C,db,db_1", "qps", Some("7"), None),
        ]
    );
    // The subscription's revisions are the store's: a write's acknowledged revision.
    let last = writer
        .get_key(&scope("PARTICIPANT=C,h_1"), "app.limit")
        .await
        .unwrap();
    assert_eq!(last.as_deref(), Some("10"));

    // A one-scope subscription ignores its siblings (another instance's, its resource's partitions).
    let mut only = reader
        .subscribe(ConfigFilter::Scope(scope("RESOURCE=C,db")), ConfigStart::Now)
        .await
        .unwrap();
    writer
        .set(&scope("PARTITION=C,db,db_0"), &kv("x", "1"))
        .await
        .unwrap();
    writer
        .set(&scope("RESOURCE=C,db"), &kv("qps", "200"))
        .await
        .unwrap();
    let got = next_changes(&mut only, 1).await;
    assert_eq!(
        triple(&got[0]),
        t("RESOURCE=C,db", "qps", Some("100"), Some("200"))
    );
    ec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_resumes_from_its_revision_without_a_gap_or_a_repeat() {
    let (mut ec, _admin) = setup().await;
    let writer = ec.config_accessor();
    let reader = ec.config_accessor();
    let s = scope("CLUSTER=C");
    let filter = ConfigFilter::Scope(s.clone());
    let mut first = reader.subscribe(filter.clone(), ConfigStart::Now).await.unwrap();
    for i in 0..5 {
        writer.set_key(&s, "n", &i.to_string()).await.unwrap();
    }
    let seen = next_changes(&mut first, 5).await;
    let resume = first.resume_revision();
    assert_eq!(resume, seen[4].revision + 1);
    drop(first);
    // Written while nobody listens: a subscription from `resume` gets them, with the old value
    // the dropped one last saw.
    for i in 5..10 {
        writer.set_key(&s, "n", &i.to_string()).await.unwrap();
    }
    let mut second = reader
        .subscribe(filter.clone(), ConfigStart::From(resume))
        .await
        .unwrap();
    // Before it returned anything, it would resume where it was asked to start.
    assert_eq!(second.resume_revision(), resume);
    let rest = next_changes(&mut second, 5).await;
    let all: Vec<_> = seen.iter().chain(&rest).collect();
    for (i, c) in all.iter().enumerate() {
        assert_eq!(c.new.as_deref(), Some(i.to_string().as_str()));
        let old = (i > 0).then(|| (i - 1).to_string());
        assert_eq!(c.old, old, "change {i}");
    }
    assert!(all.windows(2).all(|w| w[0].revision < w[1].revision));
    // From a revision in the middle: exactly the changes from there on.
    let mut mid = reader
        .subscribe(filter, ConfigStart::From(seen[2].revision))
        .await
        .unwrap();
    let again = next_changes(&mut mid, 8).await;
    assert_eq!(again.first().map(triple), Some(triple(&seen[2])));
    assert_eq!(again.last().unwrap().new.as_deref(), Some("9"));
    ec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_views_read_what_the_engine_reads() {
    let (mut ec, _admin) = setup().await;
    let config = ec.config_accessor();
    let c = scope("CLUSTER=C");
    assert!(!config.allow_participant_auto_join("C").await.unwrap());
    config
        .set_key(&c, "allowParticipantAutoJoin", "true")
        .await
        .unwrap();
    config
        .set_key(&c, "MAX_OFFLINE_INSTANCES_ALLOWED", "4")
        .await
        .unwrap();
    config.set_key(&c, "DELAY_REBALANCE_TIME", "1500").await.unwrap();
    assert!(config.allow_participant_auto_join("C").await.unwrap());
    let cc = config.cluster_config("C").await.unwrap();
    assert_eq!(cc.max_offline_instances_allowed().unwrap(), Some(4));
    assert_eq!(cc.rebalance_delay_ms().unwrap(), Some(1500));
    assert_eq!(
        config
            .get_parsed::<u64>(&c, "DELAY_REBALANCE_TIME")
            .await
            .unwrap(),
        Some(1500)
    );
    config
        .set_key(&c, "allowParticipantAutoJoin", "maybe")
        .await
        .unwrap();
    let e = config
        .allow_participant_auto_join("C")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("allowParticipantAutoJoin") && e.contains("maybe"),
        "{e}"
    );
    let e = config
        .get_parsed::<u64>(&c, "allowParticipantAutoJoin")
        .await
        .unwrap_err();
    assert!(matches!(e, ConfigError::BadValue { .. }), "{e}");
    config
        .set_key(&scope("PARTICIPANT=C,h_1"), "ZONE_ID", "z1")
        .await
        .unwrap();
    ec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_scopes_keys_and_paths_get_clear_errors() {
    let (mut ec, _admin) = setup().await;
    let config = ec.config_accessor();
    for bad in ["C", "NODE=C", "RESOURCE=C", "CLUSTER=a/b"] {
        let e = ConfigScope::parse(bad).unwrap_err();
        assert!(e.is_usage(), "{bad}: {e}");
    }
    let e = config
        .set_key(&scope("CLUSTER=nope"), "k", "v")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cluster nope does not exist"), "{e}");
    let e = config.get(&scope("PARTICIPANT=C,h_9"), &[]).await.unwrap_err();
    assert!(e.to_string().contains("h_9"), "{e}");
    let e = config
        .set_key(&scope("RESOURCE=C,nodb"), "k", "v")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nodb"), "{e}");
    assert!(strand::config::parse_key_values("k1").unwrap_err().is_usage());

    let app = ec.property_store("C");
    for bad in [
        "",
        "x",
        "/a/",
        "/a//b",
        "/..",
        "/a/../../CONFIGS/CLUSTER/C",
        "/a/./b",
    ] {
        let e = app.set(bad, b"v").await.unwrap_err();
        assert!(
            matches!(e, ConfigError::InvalidPath { .. }) && e.is_usage(),
            "{bad:?}: {e}"
        );
    }
    // Nothing escaped: the cluster config is intact.
    assert!(config.cluster_config("C").await.is_ok());
    let e = app
        .create("/once", b"1")
        .await
        .and(app.create("/once", b"2").await)
        .unwrap_err();
    assert_eq!(e, ConfigError::AlreadyExists { path: "/once".into() });
    let e = app.set_if("/once", b"3", 7).await.unwrap_err();
    assert!(
        matches!(
            e,
            ConfigError::VersionMismatch {
                expected: 7,
                actual: 1,
                ..
            }
        ),
        "{e}"
    );
    ec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_updaters_lose_no_update() {
    let (mut ec, _admin) = setup().await;
    let stores: Vec<_> = (0..4).map(|_| ec.property_store("C")).collect();
    let per = 25u64;
    let mut tasks = Vec::new();
    for app in stores.clone() {
        tasks.push(tokio::spawn(async move {
            for _ in 0..per {
                app.update("/counters/hits", |old| {
                    let n: u64 = old.map_or(0, |v| std::str::from_utf8(v).unwrap().parse().unwrap());
                    (n + 1).to_string().into_bytes()
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = stores[0].get_fresh("/counters/hits").await.unwrap().unwrap();
    assert_eq!(v.value, (4 * per).to_string().into_bytes());
    assert_eq!(v.version, 4 * per);
    ec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_reads_its_own_writes_and_the_store_lists_and_removes() {
    let (mut ec, _admin) = setup().await;
    let a = ec.property_store("C");
    let b = ec.property_store("C");
    a.set("/app/x", b"1").await.unwrap();
    // b caches version 1.
    assert_eq!(b.get("/app/x").await.unwrap().unwrap().value, b"1");
    for i in 2..40u32 {
        let (w, r) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let v = i.to_string().into_bytes();
        w.set("/app/x", &v).await.unwrap();
        assert_eq!(
            w.get("/app/x").await.unwrap().unwrap().value,
            v,
            "writer's own read, step {i}"
        );
        // The other one then writes from the value it reads: its read is at least as new as
        // its own last write, never older.
        let seen = r.get("/app/x").await.unwrap().unwrap();
        assert!(seen.version as u32 >= i - 1, "step {i}: {seen:?}");
    }
    a.set("/app/y/z", b"").await.unwrap();
    let mut kids = a.children("/app").await.unwrap();
    kids.sort();
    assert_eq!(kids, ["x", "y"]);
    assert_eq!(a.children("/").await.unwrap(), ["app"]);
    assert_eq!(a.remove("/app").await.unwrap(), 2);
    assert_eq!(a.get("/app/x").await.unwrap(), None);
    assert_eq!(b.get_fresh("/app/y/z").await.unwrap(), None);
    // Application data is where Helix keeps it.
    a.set("/k", b"v").await.unwrap();
    let raw = ec.store().get("/C/PROPERTYSTORE/k").await.unwrap().unwrap();
    assert_eq!(raw.value, b"v");
    ec.shutdown().await;
}

/// A config set reads the record through its client's cache first: its own write is there
/// at once (the transaction fills the cache), and a record another client changed since only
/// fails the version guard, so alternating writers of one scope lose no key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sets_from_the_cache_see_their_own_writes_and_lose_no_other_writers_key() {
    let (mut ec, _admin) = setup().await;
    let (a_store, b_store) = (ec.store(), ec.store());
    let a = ConfigAccessor::new(a_store.clone());
    let b = ConfigAccessor::new(b_store);
    let s = scope("RESOURCE=C,db");
    a.set_key(&s, "first", "1").await.unwrap();
    let cached = a_store
        .cache_lookup(&s.path())
        .expect("the transaction left the record in the writer's cache")
        .expect("the record exists");
    assert!(
        String::from_utf8_lossy(&cached.value).contains("\"first\""),
        "cached record lacks the key just written: {}",
        String::from_utf8_lossy(&cached.value)
    );
    for i in 0..30 {
        let (w, key) = if i % 2 == 0 {
            (&b, format!("b{i}"))
        } else {
            (&a, format!("a{i}"))
        };
        w.set_key(&s, &key, &i.to_string()).await.unwrap();
    }
    let all = ec.config_accessor().get(&s, &[]).await.unwrap();
    for i in 0..30 {
        let key = if i % 2 == 0 {
            format!("b{i}")
        } else {
            format!("a{i}")
        };
        assert_eq!(all.get(&key), Some(&i.to_string()), "{key} lost: {all:?}");
    }
    assert_eq!(all.get("first").map(String::as_str), Some("1"));
    ec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_on_a_path_and_a_subtree_see_exactly_their_changes() {
    let (mut ec, _admin) = setup().await;
    let app = ec.property_store("C");
    let writer = ec.property_store("C");
    let on_path = Arc::new(Mutex::new(Vec::<AppEvent>::new()));
    let on_tree = Arc::new(Mutex::new(Vec::<AppEvent>::new()));
    let (p, t2) = (on_path.clone(), on_tree.clone());
    let _h1 = app
        .listen("/a", false, move |e| p.lock().unwrap().push(e))
        .await
        .unwrap();
    let _h2 = app
        .listen("/a", true, move |e| t2.lock().unwrap().push(e))
        .await
        .unwrap();
    writer.set("/a", b"1").await.unwrap();
    writer.set("/a/b", b"2").await.unwrap();
    writer.set("/ab", b"sibling").await.unwrap();
    writer.set("/a/b/c", b"3").await.unwrap();
    writer.remove("/a").await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while on_tree.lock().unwrap().len() < 6 || on_path.lock().unwrap().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "listeners saw {:?}",
            on_tree.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let show = |v: &[AppEvent]| {
        v.iter()
            .map(|e| match &e.change {
                AppChange::Put(v) => format!("put {} {}", e.path, String::from_utf8_lossy(&v.value)),
                AppChange::Deleted => format!("delete {}", e.path),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(show(&on_path.lock().unwrap()), ["put /a 1", "delete /a"]);
    let mut tree = show(&on_tree.lock().unwrap());
    // One recursive delete is one revision; its events' order within it is the store's.
    tree[3..].sort();
    assert_eq!(
        tree,
        [
            "put /a 1",
            "put /a/b 2",
            "put /a/b/c 3",
            "delete /a",
            "delete /a/b",
            "delete /a/b/c"
        ]
    );
    ec.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participants_and_spectators_hand_out_their_clusters_property_store() {
    let (mut ec, admin) = setup().await;
    admin
        .set_config(
            &scope("CLUSTER=C"),
            &BTreeMap::from([("allowParticipantAutoJoin".to_string(), "true".to_string())]),
        )
        .await
        .unwrap();
    let p = ec.add_participant("C", "p_1", None).await.unwrap();
    let from_participant = p.property_store().clone();
    from_participant.set("/shared", b"hello").await.unwrap();
    let spectator = ec.spectator("C").await.unwrap();
    let v = spectator.property_store().get("/shared").await.unwrap().unwrap();
    assert_eq!(v.value, b"hello");
    ec.shutdown().await;
}

/// Replicas as processes: the store leader is SIGKILLed while a writer changes a config key;
/// a subscription dropped before the kill and resumed after it from its revision sees every
/// acknowledged value once, in order, each change's old value the previous one's new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_resume_without_a_gap_after_the_store_leader_is_sigkilled() {
    let mut c = cluster::Cluster::start(3, 100_000);
    let client = c.client(1000);
    let leader = c.wait_leader(&client, None).await;
    let admin = Admin::new(c.client(0));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(e) = admin.add_cluster("C").await {
        assert!(std::time::Instant::now() < deadline, "{e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let writer = ConfigAccessor::from_admin(admin);
    let reader = ConfigAccessor::new(c.client(0));
    let s = scope("CLUSTER=C");
    let filter = ConfigFilter::Scope(s.clone());
    let mut sub = reader.subscribe(filter.clone(), ConfigStart::Now).await.unwrap();
    // Kept open across the kill: its watch moves to the new leader by itself.
    let mut live = ConfigAccessor::new(c.client(0))
        .subscribe(filter.clone(), ConfigStart::Now)
        .await
        .unwrap();
    let mut acked: Vec<u64> = Vec::new();
    let write = |n: u64| {
        let writer = writer.clone();
        let s = s.clone();
        async move {
            loop {
                match writer.set_key(&s, "n", &n.to_string()).await {
                    Ok(()) => return true,
                    Err(ConfigError::Admin(strand::admin::AdminError::OutcomeUnknown { .. })) => {
                        return false
                    }
                    Err(_) => {
                        // Nothing was written (the store was between leaders): try again.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    };
    for n in 0..20 {
        if write(n).await {
            acked.push(n);
        }
    }
    let mut changes = next_changes(&mut sub, 20).await;
    let resume = sub.resume_revision();
    drop(sub);
    c.kill(leader);
    let next = c.wait_leader(&client, Some(leader)).await;
    assert_ne!(next, leader);
    for n in 20..40 {
        if write(n).await {
            acked.push(n);
        }
    }
    let mut resumed = reader.subscribe(filter, ConfigStart::From(resume)).await.unwrap();
    // Every value up to the last acknowledged one: the unknown outcomes may or may not be there.
    let last = *acked.last().unwrap();
    while changes.last().and_then(|c| c.new.clone()) != Some(last.to_string()) {
        let batch = tokio::time::timeout(Duration::from_secs(30), resumed.next_batch())
            .await
            .expect("no change within 30 s after the kill")
            .unwrap();
        changes.extend(batch);
    }
    let mut live_changes = Vec::new();
    while live_changes.last().map(|c: &ConfigChange| c.new.clone()) != Some(Some(last.to_string())) {
        let batch = tokio::time::timeout(Duration::from_secs(30), live.next_batch())
            .await
            .expect("the live subscription saw no change within 30 s after the kill")
            .unwrap();
        live_changes.extend(batch);
    }
    assert_eq!(
        live_changes, changes,
        "the live and the resumed subscriptions disagree"
    );
    let values: Vec<u64> = changes
        .iter()
        .map(|c| c.new.as_deref().unwrap().parse().unwrap())
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated: {values:?}"
    );
    for n in &acked {
        assert!(
            values.contains(n),
            "acknowledged value {n} never notified: {values:?}"
        );
    }
    assert!(changes
        .windows(2)
        .all(|w| w[0].revision < w[1].revision && w[1].old == w[0].new));
    assert_eq!(changes[0].old, None);
}

/// `strand admin config …`, `helix-admin --setConfig/--getConfig`, `strand admin propertystore …`
/// against a replica process, bad input included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_sets_gets_watches_and_refuses_bad_input() {
    let c = cluster::Cluster::start(1, 100_000);
    let client = c.client(0);
    c.wait_leader(&client, None).await;
    let tls = c.tls_dir();
    let store = c.addrs[0].to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(args)
            .arg("--tls-dir")
            .arg(&tls)
            .args(["--store", &store])
            .env("STRAND_EXIT_WITH_PARENT", "1")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    let ok = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        out
    };
    // helix-admin's flags take the store as --zkSvr; the rest as strand's flags.
    let helix = |args: &[&str]| {
        let mut all = vec!["helix-admin", "--zkSvr", store.as_str()];
        all.extend(args);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
            .args(&all)
            .env("STRAND_TLS_DIR", &tls)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    helix(&["--addCluster", "C"]);
    helix(&["--setConfig", "CLUSTER", "C", "k=1,other=x"]);
    ok(&["admin", "config", "set", "--scope", "CLUSTER=C", "k=2"]);
    ok(&["admin", "config", "rm", "--scope", "CLUSTER=C", "other"]);
    assert!(helix(&["--getConfig", "CLUSTER", "C", "k"]).contains("\"k\" : \"2\""));
    let got = ok(&[
        "admin",
        "config",
        "get",
        "--scope",
        "CLUSTER=C",
        "k",
        "-o",
        "json",
    ]);
    assert!(got.contains(r#""k":"2""#), "{got}");
    // Replayed from revision 1: every change with its old value, one JSON line each.
    let lines = ok(&[
        "admin",
        "config",
        "watch",
        "--scope",
        "CLUSTER=C",
        "--from",
        "1",
        "--count",
        "4",
        "-o",
        "json",
    ]);
    let changes: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kv: Vec<(String, serde_json::Value, serde_json::Value)> = changes
        .iter()
        .map(|c| {
            (
                c["key"].as_str().unwrap().to_string(),
                c["old"].clone(),
                c["new"].clone(),
            )
        })
        .collect();
    use serde_json::json;
    assert_eq!(
        kv,
        [
            ("k".to_string(), json!(null), json!("1")),
            ("other".to_string(), json!(null), json!("x")),
            ("k".to_string(), json!("1"), json!("2")),
            ("other".to_string(), json!("x"), json!(null)),
        ]
    );

    ok(&[
        "admin",
        "propertystore",
        "set",
        "--cluster",
        "C",
        "/app/conf",
        "hello",
    ]);
    let (code, _, err) = run(&[
        "admin",
        "propertystore",
        "create",
        "--cluster",
        "C",
        "/app/conf",
        "again",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already exists"), "{err}");
    let v = ok(&[
        "admin",
        "propertystore",
        "get",
        "--cluster",
        "C",
        "/app/conf",
        "-o",
        "json",
    ]);
    assert!(
        v.contains(r#""value":"hello""#) && v.contains(r#""version":1"#),
        "{v}"
    );
    assert!(ok(&["admin", "propertystore", "ls", "--cluster", "C", "/app"]).contains("conf"));
    ok(&["admin", "propertystore", "rm", "--cluster", "C", "/app"]);
    let (code, _, err) = run(&["admin", "propertystore", "get", "--cluster", "C", "/app/conf"]);
    assert_eq!(code, Some(1), "{err}");

    for (args, needle) in [
        (
            vec!["admin", "config", "set", "--scope", "NODE=C", "k=v"],
            "PARTICIPANT=C,INSTANCE",
        ),
        (
            vec!["admin", "config", "set", "--scope", "CLUSTER=C", "novalue"],
            "not key=value",
        ),
        (
            vec!["admin", "config", "watch", "--scope", "CLUSTER=*"],
            "cluster cannot be '*'",
        ),
        (
            vec![
                "admin",
                "propertystore",
                "set",
                "--cluster",
                "C",
                "/../CONFIGS",
                "x",
            ],
            "cannot leave",
        ),
        (
            vec!["admin", "propertystore", "get", "--cluster", "C", "rel/path"],
            "starts with '/'",
        ),
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    let (code, _, err) = run(&["admin", "config", "set", "--scope", "CLUSTER=nope", "k=v"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("cluster nope does not exist"), "{err}");
}
