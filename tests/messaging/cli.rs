//! `strand admin send` against real `strand participant run` processes: ECHO replies, the
//! summary, exit codes for timeouts and bad input.

use std::process::Output;
use std::time::{Duration, Instant};

use strand::admin::Admin;
use strand::cli::local_cluster::LocalCluster;

const WAIT: Duration = Duration::from_secs(30);

fn send(cluster: &LocalCluster, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_strand"))
        .args([
            "admin",
            "send",
            "--cluster",
            "MSG",
            "--store",
            &cluster.store_flag(),
        ])
        .args(args)
        .env("STRAND_TLS_DIR", cluster.tls_dir())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_send_prints_echo_replies_and_exits_non_zero_on_timeouts_and_bad_input() {
    let mut cluster = LocalCluster::new(None, "MSG")
        .unwrap()
        .with_exe(env!("CARGO_BIN_EXE_strand"));
    cluster.start_store(1).unwrap();
    let admin = Admin::new(cluster.client().unwrap());
    let deadline = Instant::now() + WAIT;
    while admin.add_cluster("MSG").await.is_err() {
        assert!(Instant::now() < deadline, "the store never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in ["fast_1", "slow_2"] {
        admin.add_instance("MSG", i).await.unwrap();
    }
    cluster.start_participant("fast_1", &[]).unwrap();
    cluster
        .start_participant("slow_2", &["--reply-delay-ms".into(), "3000".into()])
        .unwrap();
    let store = cluster.client().unwrap();
    let live = strand::model::Layout::new("MSG").live_instances();
    let deadline = Instant::now() + WAIT;
    while store.children(&live).await.map(|c| c.len()).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "the participants never registered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // One instance: its ECHO reply (name and body) and a summary, exit 0.
    let out = send(
        &cluster,
        &[
            "--criteria",
            "instanceName=fast_1,dataSource=LIVEINSTANCES",
            "--type",
            "ECHO",
            "--body",
            "{\"a\":1}",
            "--wait",
            "-o",
            "json",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["reply"]["body"],
        serde_json::json!({"instance": "fast_1", "body": {"a": 1}})
    );
    assert_eq!(lines[1]["summary"]["recipients"], 1);

    // Both, with a timeout shorter than slow_2's reply delay: one reply, one timed out, exit 1.
    let out = send(
        &cluster,
        &[
            "--criteria",
            "instanceName=%,dataSource=LIVEINSTANCES",
            "--type",
            "ECHO",
            "--wait",
            "--timeout",
            "500ms",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("reply from fast_1"), "{stdout}");
    assert!(stdout.contains("timed out: slow_2"), "{stdout}");
    assert!(
        stdout.contains("2 recipients: 1 answered, 0 failed, 1 timed out"),
        "{stdout}"
    );

    // A type nobody handles is a failure, exit 1.
    let out = send(
        &cluster,
        &[
            "--criteria",
            "instanceName=fast_1,dataSource=LIVEINSTANCES",
            "--type",
            "NOPE",
            "--wait",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("no handler for message type NOPE"),
        "{}",
        text(&out.stdout)
    );

    // Bad criteria and bad bodies: one clear line, exit 2.
    for (args, needle) in [
        (vec!["--criteria", "colour=red", "--type", "ECHO"], "unknown key"),
        (
            vec![
                "--criteria",
                "instanceName=%",
                "--type",
                "ECHO",
                "--body",
                "{oops",
            ],
            "--body is not JSON",
        ),
        (
            vec!["--criteria", "instanceName=%", "--type", "bad type"],
            "message type",
        ),
    ] {
        let out = send(&cluster, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains(needle),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}
