//! `strand tls …` as a user runs it: files written, refusals, exit codes; and the
//! certificates it writes work for a real QUIC exchange.

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::tls::TlsDir;
use strand::transport::{PeerAddr, PeerRole, Service, Transport};

use super::conformance::{serve, PATIENCE};
use super::loopback;

fn strand(args: &[&str], home: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strand"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .output()
        .expect("run strand");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_commands_write_working_certificates_and_refuse_overwrites() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dir = tmp.path().join("tls");
    let d = dir.to_str().unwrap();

    let (code, _, err) = strand(&["tls", "node", "generate", "--name", "n1", "--dir", d], &home);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no CA") && err.contains("strand tls ca generate"),
        "{err}"
    );

    let (code, out, err) = strand(&["tls", "ca", "generate", "--dir", d], &home);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ca.pem") && out.contains("ca.key"), "{out}");
    let (code, _, err) = strand(&["tls", "ca", "generate", "--dir", d], &home);
    assert_eq!(code, 1);
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");

    let (code, out, err) = strand(
        &[
            "tls",
            "node",
            "generate",
            "--name",
            "localhost_12913",
            "--ip",
            "127.0.0.1",
            "--dns",
            "localhost",
            "--dir",
            d,
        ],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("node-localhost_12913.pem") && out.contains("node-localhost_12913.key"),
        "{out}"
    );
    let (code, _, err) = strand(
        &["tls", "node", "generate", "--name", "bad name", "--dir", d],
        &home,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid name"), "{err}");
    let (code, _, _) = strand(
        &[
            "tls",
            "node",
            "generate",
            "--name",
            "x",
            "--ip",
            "not-an-ip",
            "--dir",
            d,
        ],
        &home,
    );
    assert_eq!(code, 2);
    let (code, out, err) = strand(
        &["tls", "client", "generate", "--name", "admin", "--dir", d],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("client-admin.pem"), "{out}");
    let (code, _, _) = strand(
        &["tls", "client", "generate", "--name", "admin", "--dir", d],
        &home,
    );
    assert_eq!(code, 1);
    let (code, _, err) = strand(
        &[
            "tls", "client", "generate", "--name", "admin", "--dir", d, "--force",
        ],
        &home,
    );
    assert_eq!(code, 0, "{err}");

    // Roles: given with --role (repeatable), defaults per kind, unknown ones refused.
    let (code, _, err) = strand(
        &[
            "tls", "client", "generate", "--name", "eve", "--role", "root", "--dir", d,
        ],
        &home,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown role \"root\""), "{err}");
    let (code, _, err) = strand(
        &[
            "tls",
            "node",
            "generate",
            "--name",
            "both",
            "--role",
            "controller",
            "--role",
            "participant",
            "--dir",
            d,
        ],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = strand(
        &[
            "tls", "client", "generate", "--name", "eve", "--role", "viewer", "--dir", d,
        ],
        &home,
    );
    assert_eq!(code, 0, "{err}");
    let t = TlsDir::new(&dir);
    assert_eq!(
        t.load("both", PeerRole::Node).unwrap().roles().to_string(),
        "controller,participant"
    );
    assert_eq!(
        t.load("eve", PeerRole::Client).unwrap().roles().to_string(),
        "viewer"
    );
    assert_eq!(
        t.load("admin", PeerRole::Client).unwrap().roles().to_string(),
        "admin"
    );
    assert_eq!(
        t.load("localhost_12913", PeerRole::Node)
            .unwrap()
            .roles()
            .to_string(),
        "participant"
    );

    // Revocation: a name or a serial goes to revoked.txt; a bad serial is a usage error.
    let (code, out, err) = strand(&["tls", "revoke", "--name", "eve", "--dir", d], &home);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("revoked.txt"), "{out}");
    let (code, _, err) = strand(&["tls", "revoke", "--serial", "zz", "--dir", d], &home);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not a hex serial"), "{err}");
    let e = t.load("eve", PeerRole::Client).unwrap_err();
    assert!(e.to_string().contains("revoked"), "{e}");

    // Without --dir, the default per-user location under HOME.
    let (code, out, err) = strand(&["tls", "ca", "generate"], &home);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".local/share/strand/tls/ca.pem"), "{out}");

    // The files work: a node and a client talk over mutual TLS.
    let tls = TlsDir::new(&dir);
    let node = QuicTransport::bind(QuicConfig::new(
        loopback(),
        tls.load("localhost_12913", PeerRole::Node).unwrap(),
    ))
    .unwrap();
    let _served = serve(node.register(Service::ADMIN, 8).unwrap());
    let cli = QuicTransport::client(QuicConfig::new(
        loopback(),
        tls.load("admin", PeerRole::Client).unwrap(),
    ))
    .unwrap();
    let answer = cli
        .request(
            &PeerAddr::named("localhost_12913", node.local_addr()),
            Service::ADMIN,
            Bytes::from_static(b"whoami"),
            PATIENCE,
        )
        .await
        .unwrap();
    assert_eq!(answer, Bytes::from_static(b"admin:client"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrapped_development_certificates_work_over_quic() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = strand::settings::Settings::load_with_env(&Default::default(), |k| {
        (k == "HOME").then(|| tmp.path().as_os_str().to_owned())
    })
    .unwrap();
    assert!(settings.tls_dir.starts_with(tmp.path()));
    let a = strand::settings::tls_material_for(&settings, "store-1", strand::authz::Role::Store).unwrap();
    let b = strand::settings::tls_material_for(&settings, "store-2", strand::authz::Role::Store).unwrap();
    let a = QuicTransport::bind(QuicConfig::new(loopback(), a)).unwrap();
    let b = QuicTransport::bind(QuicConfig::new(loopback(), b)).unwrap();
    let _served = serve(b.register(Service::RAFT, 8).unwrap());
    let answer = a
        .request(
            &PeerAddr::named("store-2", b.local_addr()),
            Service::RAFT,
            Bytes::from_static(b"whoami"),
            PATIENCE,
        )
        .await
        .unwrap();
    assert_eq!(answer, Bytes::from_static(b"store-1:node"));
}
