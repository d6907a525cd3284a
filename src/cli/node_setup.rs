//! What `strand controller run` and `strand participant run` share: Helix's `--zkSvr`
//! option, a node endpoint with its certificate, a store client, and waiting for SIGTERM.

use std::net::SocketAddr;
use std::sync::Arc;

use super::CliError;
use crate::authz::Role;
use crate::propertystore::PropertyStore;
use crate::settings::{self, Settings, SettingsFlags};
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::tls::TlsDir;
use crate::transport::{PeerRole, Transport};

/// Settings flags plus Helix's `--zkSvr HOST:PORT`, which names the strand store to use.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeSettings {
    /// TLS directory and store endpoints.
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Helix's name for the store endpoint (ZooKeeper's address in Helix): the strand store.
    #[arg(long = "zkSvr", value_name = "HOST:PORT", value_delimiter = ',')]
    pub zk_svr: Vec<String>,
}

impl NodeSettings {
    /// The settings flags with `--zkSvr` folded into `--store`.
    pub fn flags(&self) -> SettingsFlags {
        let mut f = self.settings.clone();
        f.store.extend(self.zk_svr.iter().cloned());
        f
    }
}

/// A node endpoint named `name` at `listen`, with a certificate granting `role` from the
/// settings' TLS directory (issued on first use by the development CA); it reloads its
/// material when the files change or on SIGHUP.
pub fn endpoint(
    flags: &SettingsFlags,
    name: &str,
    role: Role,
    listen: SocketAddr,
) -> Result<Arc<dyn Transport>, CliError> {
    let settings = Settings::load(flags).map_err(CliError::usage)?;
    let tls = settings::tls_material_for(&settings, name, role).map_err(CliError::failed)?;
    let t = QuicTransport::bind(QuicConfig::new(listen, tls))
        .map_err(|e| CliError::failed(format!("cannot listen on {listen}: {e}")))?;
    // Rotated certificates and revocations are picked up without a restart.
    crate::transport::reload::watch_material(
        &t,
        TlsDir::new(&settings.tls_dir),
        name.to_string(),
        PeerRole::Node,
        crate::transport::reload::RELOAD_EVERY,
        true,
    );
    Ok(t as Arc<dyn Transport>)
}

/// A store client with a cache (long-running processes read configs often), with the CLI's
/// certificate (for the HTTP server, which acts for its callers).
pub fn store(flags: &SettingsFlags) -> Result<PropertyStore, CliError> {
    super::store::connect_with(flags, 10_000)
}

/// A store client with a cache over the node's own endpoint: the store checks what it
/// writes against the node's certificate.
pub fn store_over(flags: &SettingsFlags, transport: Arc<dyn Transport>) -> Result<PropertyStore, CliError> {
    super::store::connect_over(flags, transport, 10_000)
}

/// Completes on SIGTERM or SIGINT.
pub async fn terminated() -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| CliError::failed(format!("cannot watch SIGTERM: {e}")))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| CliError::failed(format!("cannot watch SIGINT: {e}")))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// A multi-threaded runtime with two workers (the machines strand targets are small).
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}")))
}
