//! Rotation without a restart: a task that reloads a QUIC endpoint's TLS material (its
//! certificate and key, the CA bundle, the revocation list) when the files change, checked
//! every `every`, or at once on SIGHUP when asked to listen for it. New connections use the
//! new material ([`QuicTransport::reload`]); material that does not load (a half-rotated
//! pair, a revoked own certificate) is logged and the old material kept.
//!
//! ```text
//!   every `every` / SIGHUP ─► fingerprint(files) changed? ─► TlsDir::load ─► QuicTransport::reload
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::quic::QuicTransport;
use super::tls::TlsDir;
use super::PeerRole;

/// How often a node looks at its TLS files by default.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// What identifies a version of the files: each one's modification time and length (absent
/// files count too).
pub type Fingerprint = Vec<Option<(SystemTime, u64)>>;

/// The fingerprint of `files` now.
pub fn fingerprint(files: &[PathBuf]) -> Fingerprint {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        })
        .collect()
}

/// Watches `name`'s material in `dir` for `transport` until the transport is dropped.
/// With `sighup`, a SIGHUP reloads at once.
pub fn watch_material(
    transport: &Arc<QuicTransport>,
    dir: TlsDir,
    name: String,
    kind: PeerRole,
    every: Duration,
    sighup: bool,
) -> JoinHandle<()> {
    let weak: Weak<QuicTransport> = Arc::downgrade(transport);
    tokio::spawn(async move {
        let files = dir.material_files(&name, kind).to_vec();
        let mut seen = fingerprint(&files);
        let mut hup = if sighup {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
        } else {
            None
        };
        loop {
            let forced = tokio::select! {
                biased;
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => None } } => true,
                () = tokio::time::sleep(every) => false,
            };
            let Some(transport) = weak.upgrade() else { return };
            let now = fingerprint(&files);
            if !forced && now == seen {
                continue;
            }
            seen = now;
            match dir.load(&name, kind) {
                Ok(material) => {
                    if let Err(e) = transport.reload(&material) {
                        tracing::warn!(%name, error = %e, "cannot use the new TLS material; keeping the old");
                    }
                }
                Err(e) => {
                    tracing::warn!(%name, error = %e, "cannot load the new TLS material; keeping the old")
                }
            }
        }
    })
}
