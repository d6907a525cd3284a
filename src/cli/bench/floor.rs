//! The floors under `strand bench messaging`'s `send_and_wait`: what one request/response
//! costs on loopback below the messaging layer, measured in the same process and runtime.
//!
//! - `quic_floor_us`: bare quinn with the cluster's mutual TLS, one connection, one fresh
//!   bidirectional stream per request (16 bytes each way), the server answering in a task
//!   per stream, as any quinn server does. Nothing of strand's but the TLS material.
//! - `transport_floor_us`: [`Transport::request`] over strand's [`QuicTransport`] to a node
//!   whose service [`Handler`] answers at once (on the connection's task, as messaging is
//!   served): framing, limits, no messaging.
//!
//! `send_and_wait_us` minus `transport_floor_us` is what messaging itself costs;
//! `transport_floor_us` minus `quic_floor_us` is what strand's transport adds to quinn.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use crate::cli::CliError;
use crate::settings::{self, Settings};
use crate::transport::quic::{QuicConfig, QuicTransport};
use crate::transport::{Handler, Incoming, PeerAddr, Service, Transport};

/// A service number no strand component uses: the transport floor's echo.
const FLOOR_SERVICE: Service = Service(0x7f01);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Round trips of bare quinn (µs each): `warm` untimed, then `n` timed; and their
/// [`Usage`] per round trip.
pub async fn quic_floor(
    settings: &Settings,
    warm: usize,
    n: usize,
) -> Result<(Vec<u64>, serde_json::Value), CliError> {
    let server_tls = settings::tls_material_for(settings, "floor-server", crate::authz::Role::Participant)
        .map_err(CliError::failed)?;
    let client_tls = settings::tls_material_for(settings, "floor-client", crate::authz::Role::Participant)
        .map_err(CliError::failed)?;
    let server_crypto = QuicServerConfig::try_from(server_tls.server_config().map_err(CliError::failed)?)
        .map_err(CliError::failed)?;
    let server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    let server = quinn::Endpoint::server(server_config, loopback()).map_err(CliError::failed)?;
    let server_addr = server.local_addr().map_err(CliError::failed)?;
    let accept = tokio::spawn({
        let server = server.clone();
        async move {
            let Some(incoming) = server.accept().await else {
                return;
            };
            let Ok(conn) = incoming.await else { return };
            while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    if let Ok(body) = recv.read_to_end(1 << 16).await {
                        let _ = send.write_all(&body).await;
                        let _ = send.finish();
                    }
                });
            }
        }
    });
    let client_crypto = QuicClientConfig::try_from(client_tls.client_config().map_err(CliError::failed)?)
        .map_err(CliError::failed)?;
    let mut client = quinn::Endpoint::client(loopback()).map_err(CliError::failed)?;
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(client_crypto)));
    let conn = client
        .connect(server_addr, "strand")
        .map_err(CliError::failed)?
        .await
        .map_err(CliError::failed)?;
    let payload = [7u8; 16];
    let mut us = Vec::with_capacity(n);
    let mut usage = Usage::now();
    for k in 0..warm + n {
        if k == warm {
            usage = Usage::now();
        }
        let t = Instant::now();
        let (mut send, mut recv) = conn.open_bi().await.map_err(CliError::failed)?;
        send.write_all(&payload).await.map_err(CliError::failed)?;
        send.finish().map_err(CliError::failed)?;
        let back = recv.read_to_end(1 << 16).await.map_err(CliError::failed)?;
        if back != payload {
            return Err(CliError::failed("the quinn floor's echo came back different"));
        }
        if k >= warm {
            us.push(t.elapsed().as_micros() as u64);
        }
    }
    let cost = usage.per_op_since(n);
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.close(0u32.into(), b"done");
    accept.abort();
    Ok((us, cost))
}

/// The transport floor's echo: answers each request with its body, at once.
struct Echo;

impl Handler for Echo {
    fn handle(&self, incoming: Incoming) {
        if let Incoming::Request { body, reply, .. } = incoming {
            reply.ok(body);
        }
    }
}

/// Round trips of [`Transport::request`] from `sender` to an echo service on a fresh node
/// endpoint (µs each): `warm` untimed, then `n` timed; and their [`Usage`] per round trip.
pub async fn transport_floor(
    settings: &Settings,
    sender: &Arc<dyn Transport>,
    warm: usize,
    n: usize,
) -> Result<(Vec<u64>, serde_json::Value), CliError> {
    let tls = settings::tls_material_for(settings, "floor-node", crate::authz::Role::Participant)
        .map_err(CliError::failed)?;
    let node = QuicTransport::bind(QuicConfig::new(loopback(), tls)).map_err(CliError::failed)?;
    let serving = node
        .serve(FLOOR_SERVICE, 1024, Arc::new(Echo))
        .map_err(CliError::failed)?;
    let to = PeerAddr::named("floor-node", node.local_addr());
    let payload = Bytes::from_static(&[7u8; 16]);
    let mut us = Vec::with_capacity(n);
    let mut usage = Usage::now();
    for k in 0..warm + n {
        if k == warm {
            usage = Usage::now();
        }
        let t = Instant::now();
        let back = sender
            .request(&to, FLOOR_SERVICE, payload.clone(), Duration::from_secs(5))
            .await
            .map_err(CliError::failed)?;
        if back != payload {
            return Err(CliError::failed("the transport floor's echo came back different"));
        }
        if k >= warm {
            us.push(t.elapsed().as_micros() as u64);
        }
    }
    let cost = usage.per_op_since(n);
    node.shutdown().await;
    drop(serving);
    Ok((us, cost))
}

/// What a phase cost this whole process per operation, whatever the machine's load: CPU
/// time (user + system, every thread) and context switches (voluntary and not: each is a
/// thread that slept and was woken, the hops an idle machine pays for most).
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    cpu_us: f64,
    switches: f64,
}

impl Usage {
    /// The process's usage so far (zero where the OS does not say).
    pub fn now() -> Usage {
        use nix::sys::resource::{getrusage, UsageWho};
        match getrusage(UsageWho::RUSAGE_SELF) {
            Ok(u) => {
                let us = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e6 + t.tv_usec() as f64;
                Usage {
                    cpu_us: us(u.user_time()) + us(u.system_time()),
                    switches: (u.voluntary_context_switches() + u.involuntary_context_switches()) as f64,
                }
            }
            Err(_) => Usage {
                cpu_us: 0.0,
                switches: 0.0,
            },
        }
    }

    /// Per operation since `self`, for `ops` operations, as JSON.
    pub fn per_op_since(self, ops: usize) -> serde_json::Value {
        let now = Usage::now();
        let n = ops.max(1) as f64;
        let round = |x: f64| (x * 10.0).round() / 10.0;
        serde_json::json!({
            "cpu_us": round((now.cpu_us - self.cpu_us) / n),
            "context_switches": round((now.switches - self.switches) / n),
        })
    }
}
