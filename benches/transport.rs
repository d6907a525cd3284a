//! QUIC transport latency and throughput on loopback, both ends in this process.
//!
//! First prints one JSON line per case with latency percentiles of individual requests
//! (criterion reports means, the targets are p50/p99), and datagram throughput; then runs the
//! criterion groups. `cargo bench --bench transport` (release build).
//!
//! Cases: request/response with 64-byte and 4 KiB bodies, 1 and 64 requests in flight over
//! one connection; datagrams of 1 KiB sent as fast as `send_datagram` allows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use futures::future::join_all;
use strand::transport::quic::{QuicConfig, QuicTransport};
use strand::transport::tls::{self, TlsMaterial};
use strand::transport::{Incoming, PeerAddr, PeerRole, Service, Transport};

const TIMEOUT: Duration = Duration::from_secs(10);

struct Pair {
    client: Arc<QuicTransport>,
    to: PeerAddr,
    _server: Arc<QuicTransport>,
    datagrams: Arc<AtomicU64>,
}

fn material(ca: &tls::CertAndKey, name: &str) -> TlsMaterial {
    let issued = tls::issue_certificate(
        ca,
        name,
        PeerRole::Node,
        strand::authz::RoleSet::of(strand::authz::Role::Store),
        &[],
        &[],
    )
    .expect("issue");
    TlsMaterial::from_pem(&ca.cert_pem, &issued.cert_pem, &issued.key_pem).expect("material")
}

/// Two nodes on loopback; the server echoes STORE requests and counts MEMBERSHIP datagrams.
async fn pair() -> Pair {
    let ca = tls::generate_ca("bench CA").expect("CA");
    let loopback = "127.0.0.1:0".parse().expect("addr");
    let server = QuicTransport::bind(QuicConfig::new(loopback, material(&ca, "server"))).expect("bind");
    let client = QuicTransport::bind(QuicConfig::new(loopback, material(&ca, "client"))).expect("bind");
    let mut inbox = server.register(Service::STORE, 4096).expect("register");
    tokio::spawn(async move {
        while let Some(incoming) = inbox.recv().await {
            if let Incoming::Request { body, reply, .. } = incoming {
                reply.ok(body);
            }
        }
    });
    let datagrams = Arc::new(AtomicU64::new(0));
    let mut gossip = server.register(Service::MEMBERSHIP, 4096).expect("register");
    let counter = datagrams.clone();
    tokio::spawn(async move {
        while gossip.recv().await.is_some() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let to = PeerAddr::named("server", server.local_addr());
    // Connect before measuring.
    client
        .request(&to, Service::STORE, Bytes::from_static(b"warm"), TIMEOUT)
        .await
        .expect("warm-up request");
    Pair {
        client,
        to,
        _server: server,
        datagrams,
    }
}

async fn round_trip(p: &Pair, body: &Bytes) -> Duration {
    let start = Instant::now();
    p.client
        .request(&p.to, Service::STORE, body.clone(), TIMEOUT)
        .await
        .expect("request");
    start.elapsed()
}

/// Latency of each of `total` requests, `concurrency` in flight at a time.
async fn latencies(p: &Pair, size: usize, concurrency: usize, total: usize) -> Vec<Duration> {
    let body = Bytes::from(vec![0xa5u8; size]);
    let mut all = Vec::with_capacity(total);
    while all.len() < total {
        let batch = join_all((0..concurrency).map(|_| round_trip(p, &body))).await;
        all.extend(batch);
    }
    all.sort();
    all
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn percentiles(rt: &tokio::runtime::Runtime) {
    rt.block_on(async {
        let p = pair().await;
        for (size, label) in [(64, "64B"), (4096, "4KiB")] {
            for concurrency in [1, 64] {
                let _ = latencies(&p, size, concurrency, 2_000).await;
                let total = if concurrency == 1 { 20_000 } else { 64_000 };
                let start = Instant::now();
                let l = latencies(&p, size, concurrency, total).await;
                let elapsed = start.elapsed().as_secs_f64();
                println!(
                    "{{\"bench\":\"transport/request\",\"body\":\"{label}\",\"concurrency\":{concurrency},\
                     \"requests\":{},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1},\"requests_per_s\":{:.0}}}",
                    l.len(),
                    pct(&l, 0.5),
                    pct(&l, 0.99),
                    pct(&l, 1.0),
                    l.len() as f64 / elapsed
                );
            }
        }
        // Datagrams: send for one second, then give stragglers a moment.
        let body = Bytes::from(vec![0x5au8; 1024]);
        let before = p.datagrams.load(Ordering::Relaxed);
        let start = Instant::now();
        let mut sent = 0u64;
        while start.elapsed() < Duration::from_secs(1) {
            for _ in 0..64 {
                p.client
                    .send_datagram(&p.to, Service::MEMBERSHIP, body.clone())
                    .expect("datagram");
                sent += 1;
            }
            tokio::task::yield_now().await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let received = p.datagrams.load(Ordering::Relaxed) - before;
        println!(
            "{{\"bench\":\"transport/datagram\",\"bytes\":1024,\"sent\":{sent},\"received\":{received},\
             \"sent_per_s\":{:.0},\"received_per_s\":{:.0}}}",
            sent as f64 / elapsed,
            received as f64 / elapsed
        );
    });
}

fn request_response(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let p = rt.block_on(pair());
    let mut group = c.benchmark_group("transport/request");
    for (size, label) in [(64usize, "64B"), (4096, "4KiB")] {
        let body = Bytes::from(vec![0xa5u8; size]);
        for concurrency in [1usize, 64] {
            group.throughput(Throughput::Elements(concurrency as u64));
            group.bench_with_input(
                BenchmarkId::new(label, format!("concurrency-{concurrency}")),
                &concurrency,
                |b, &concurrency| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let start = Instant::now();
                            for _ in 0..iters {
                                join_all((0..concurrency).map(|_| round_trip(&p, &body))).await;
                            }
                            start.elapsed()
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3));
    targets = request_response
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    percentiles(&rt);
    drop(rt);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
