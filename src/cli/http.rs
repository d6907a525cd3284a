//! `--http ADDR [--http-plain] [--http-read-only]`: the flags every long-running command
//! takes to serve the HTTP API, `/metrics` and the dashboard (`crate::http`), and starting it.

use std::net::SocketAddr;
use std::sync::Arc;

use super::CliError;
use crate::admin::Admin;
use crate::http::{HttpOptions, HttpServer, Listen, Observed};
use crate::propertystore::PropertyStore;
use crate::settings::{self, Settings, SettingsFlags};

/// The HTTP server's flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct HttpFlags {
    /// Serve the REST API (Helix's /admin/v2), /livez, /readyz and the dashboard here
    /// (HTTPS with this node's certificate; clients show one from the cluster CA).
    #[arg(long = "http", value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Serve plain HTTP instead of HTTPS (loopback addresses only).
    #[arg(long = "http-plain", requires = "http")]
    pub plain: bool,
    /// Refuse every write (and show no action buttons on the dashboard).
    #[arg(long = "http-read-only", requires = "http")]
    pub read_only: bool,
}

impl HttpFlags {
    /// Starts the server when `--http` was given; `name` is the certificate it serves with
    /// (a node certificate granting `role`, issued by the development CA when missing).
    /// Prints the URL on stderr.
    pub async fn start(
        &self,
        settings_flags: &SettingsFlags,
        name: &str,
        role: crate::authz::Role,
        store: PropertyStore,
        observed: Observed,
    ) -> Result<Option<HttpServer>, CliError> {
        let Some(addr) = self.http else {
            return Ok(None);
        };
        let listen = if self.plain {
            Listen::Plain
        } else {
            let settings = Settings::load(settings_flags).map_err(CliError::usage)?;
            let tls = settings::tls_material_for(&settings, name, role).map_err(CliError::failed)?;
            Listen::Https(Arc::new(tls))
        };
        let options = HttpOptions {
            addr,
            listen,
            read_only: self.read_only,
        };
        let server = crate::http::start(options, Admin::new(store), observed)
            .await
            .map_err(|e| match e {
                crate::http::HttpError::PlainNotLoopback { .. } => CliError::usage(e),
                e => CliError::failed(e),
            })?;
        eprintln!("http: serving {}", server.url());
        Ok(Some(server))
    }
}
