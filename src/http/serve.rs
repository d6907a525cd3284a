//! The listener: HTTPS with the cluster's certificates (the node's certificate from the
//! TLS directory; clients show one from the cluster CA), or plain HTTP only on a loopback address
//! and only when asked. One task accepts; each connection is served by its own task.
//!
//! Over HTTPS the client certificate's roles count: a caller whose certificate grants neither
//! admin nor operator ([`crate::authz::administers`]) gets answers to reads only; its writes
//! are refused with 403 `permission_denied`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::watch;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::IntoResponse;

use super::error::ApiError;
use crate::authz::{self, RoleSet};
use crate::transport::tls::{identity_of, TlsMaterial};

/// Why the HTTP server could not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Plain HTTP was asked for on an address that is not loopback.
    #[error("plain HTTP is served only on a loopback address, not {addr}; drop --http-plain to serve HTTPS")]
    PlainNotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {reason}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The certificate material cannot make a TLS server configuration.
    #[error("TLS: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
}

/// How the server listens.
#[derive(Debug, Clone)]
pub enum Listen {
    /// HTTPS with this node's certificate.
    Https(Arc<TlsMaterial>),
    /// Plain HTTP (loopback only).
    Plain,
}

/// The rustls server configuration for HTTPS: the node's certificate, and — as on every
/// other strand link — a client certificate from the cluster CA required (`strand tls client
/// generate`; import it into the browser, or `curl --cert`), so only holders of the
/// cluster's certificates reach the admin API. ALPN is HTTP/1.1.
pub fn tls_config(material: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, HttpError> {
    let mut config = material.server_config().map_err(|e| HttpError::Tls {
        reason: e.to_string(),
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A running HTTP server; dropping it stops accepting.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    https: bool,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves `app`.
    pub async fn start(addr: SocketAddr, listen: Listen, app: Router) -> Result<HttpServer, HttpError> {
        let tls = match &listen {
            Listen::Https(m) => Some(TlsAcceptor::from(tls_config(m)?)),
            Listen::Plain if !addr.ip().is_loopback() => return Err(HttpError::PlainNotLoopback { addr }),
            Listen::Plain => None,
        };
        let listener = TcpListener::bind(addr).await.map_err(|e| HttpError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        let local = listener.local_addr().map_err(|e| HttpError::Bind {
            addr,
            reason: e.to_string(),
        })?;
        let (stop, stopped) = watch::channel(false);
        let https = tls.is_some();
        let task = tokio::spawn(accept_loop(listener, tls, app, stopped));
        Ok(HttpServer {
            addr: local,
            https,
            stop,
            task: Some(task),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The dashboard's URL.
    pub fn url(&self) -> String {
        format!("{}://{}/", if self.https { "https" } else { "http" }, self.addr)
    }

    /// Stops accepting and waits for the accept loop to end.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The router as a caller with `roles` may use it: whole for administrators, reads only for
/// everyone else.
fn for_caller(app: Router, roles: RoleSet) -> Router {
    if authz::administers(roles) {
        app
    } else {
        app.layer(axum::middleware::from_fn(move |req: Request, next: Next| async move {
            if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
                next.run(req).await
            } else {
                ApiError::PermissionDenied {
                    reason: format!("a certificate granting {roles} reads only; writes need the admin or operator role"),
                }
                .into_response()
            }
        }))
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            biased;
            _ = stopped.changed() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("http: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let app = app.clone();
        let tls = tls.clone();
        let mut stop = stopped.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let served = async {
                match tls {
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(s) => {
                            let roles = s
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .and_then(|c| identity_of(c).ok())
                                .map(|i| i.roles)
                                .unwrap_or_default();
                            let service = TowerToHyperService::new(for_caller(app, roles));
                            builder.serve_connection(TokioIo::new(s), service).await
                        }
                        Err(e) => {
                            tracing::debug!("http: TLS handshake with {peer}: {e}");
                            Ok(())
                        }
                    },
                    None => {
                        builder
                            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app))
                            .await
                    }
                }
            };
            tokio::select! {
                _ = stop.changed() => {}
                r = served => if let Err(e) = r {
                    tracing::debug!("http: connection from {peer}: {e}");
                },
            }
        });
    }
}
