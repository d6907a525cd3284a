//! Client-side write batching: a client's concurrent writes to one replica travel together,
//! in one [`StoreRequest::Writes`] frame, as TiKV's batch commands do.
//!
//! ```text
//!   write ─► lane(replica) ─┬─ nothing else in flight ─► its own frame (Write), no extra hop
//!                           └─ others in flight ───────► queue ─► lane task: everything
//!                              queued by the time it runs ─► one Writes frame ─► Many answers
//! ```
//!
//! Each write still gets exactly the answer a lone write would (the replica answers each
//! in order), so the retry rules of [`super::client`] are unchanged; a frame that times out or
//! loses its connection leaves every write in it "outcome unknown". Reads are not batched:
//! their answers carry values of up to a megabyte each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::core::Command;
use super::protocol::{StoreRequest, StoreResponse, MAX_WRITES_PER_REQUEST};
use crate::transport::{self, PeerAddr, Service, Transport, TransportError};

/// A frame is closed once its commands reach this size (a single larger one goes alone);
/// well below the transport's 16 MiB frame limit even with a 4 MiB transaction on top.
const MAX_FRAME_COMMAND_BYTES: usize = 4 << 20;

type Answer = Result<StoreResponse, TransportError>;

struct Job {
    cmd: Command,
    timeout: Duration,
    answer: oneshot::Sender<Answer>,
}

struct Lane {
    /// This client's writes to the replica that have not been answered yet.
    busy: AtomicUsize,
    queue: mpsc::UnboundedSender<Job>,
}

/// Counts a write as in flight on its lane until it is answered or abandoned.
struct Busy<'a>(&'a Lane);

impl<'a> Busy<'a> {
    /// Enters the lane; the second value is whether no other write was in flight.
    fn enter(lane: &'a Lane) -> (Busy<'a>, bool) {
        let before = lane.busy.fetch_add(1, Ordering::AcqRel);
        (Busy(lane), before == 0)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client's way to the replicas: requests go straight out, concurrent writes to the
/// same replica share frames.
pub(super) struct Lanes {
    transport: Arc<dyn Transport>,
    lanes: Mutex<HashMap<SocketAddr, Arc<Lane>>>,
}

impl Lanes {
    pub(super) fn new(transport: Arc<dyn Transport>) -> Self {
        Lanes {
            transport,
            lanes: Mutex::new(HashMap::new()),
        }
    }

    /// Sends `req` to the replica at `to` and returns its answer.
    pub(super) async fn send(&self, to: SocketAddr, req: &StoreRequest, timeout: Duration) -> Answer {
        let StoreRequest::Write(cmd) = req else {
            return direct(&*self.transport, to, req, timeout).await;
        };
        let lane = self.lane(to);
        let (_busy, alone) = Busy::enter(&lane);
        if alone {
            return direct(&*self.transport, to, req, timeout).await;
        }
        let (answer, rx) = oneshot::channel();
        let job = Job {
            cmd: cmd.clone(),
            timeout,
            answer,
        };
        if lane.queue.send(job).is_err() {
            return direct(&*self.transport, to, req, timeout).await;
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(TransportError::Lost {
                peer: to.to_string(),
                reason: "the client's write lane stopped".into(),
            }),
            Err(_) => Err(TransportError::TimedOut {
                peer: to.to_string(),
                after: timeout,
            }),
        }
    }

    fn lane(&self, to: SocketAddr) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
        lanes
            .entry(to)
            .or_insert_with(|| {
                let (queue, rx) = mpsc::unbounded_channel();
                tokio::spawn(run_lane(self.transport.clone(), to, rx));
                Arc::new(Lane {
                    busy: AtomicUsize::new(0),
                    queue,
                })
            })
            .clone()
    }
}

async fn direct(transport: &dyn Transport, to: SocketAddr, req: &StoreRequest, timeout: Duration) -> Answer {
    transport::call(transport, &PeerAddr::any(to), Service::STORE, req, timeout).await
}

/// Forms frames from the lane's queue until the client is dropped.
async fn run_lane(transport: Arc<dyn Transport>, to: SocketAddr, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.recv().await {
        // Let every task that is ready to run now queue its write first: the writers woken
        // by one batch of answers then leave together in the next frame.
        tokio::task::yield_now().await;
        let mut bytes = first.cmd.approx_size();
        let mut jobs = vec![first];
        while jobs.len() < MAX_WRITES_PER_REQUEST && bytes < MAX_FRAME_COMMAND_BYTES {
            match rx.try_recv() {
                Ok(job) => {
                    bytes += job.cmd.approx_size();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        tokio::spawn(send_frame(transport.clone(), to, jobs));
    }
}

async fn send_frame(transport: Arc<dyn Transport>, to: SocketAddr, mut jobs: Vec<Job>) {
    // Abandoned writes (their caller timed out or gave up) are not sent.
    jobs.retain(|j| !j.answer.is_closed());
    let timeout = jobs.iter().map(|j| j.timeout).max().unwrap_or_default();
    if jobs.len() <= 1 {
        if let Some(job) = jobs.pop() {
            let answer = direct(&*transport, to, &StoreRequest::Write(job.cmd), timeout).await;
            let _ = job.answer.send(answer);
        }
        return;
    }
    let (cmds, answers): (Vec<Command>, Vec<oneshot::Sender<Answer>>) =
        jobs.into_iter().map(|j| (j.cmd, j.answer)).unzip();
    let n = cmds.len();
    match direct(&*transport, to, &StoreRequest::Writes(cmds), timeout).await {
        Ok(StoreResponse::Many(list)) if list.len() == n => {
            for (answer, resp) in answers.into_iter().zip(list) {
                let _ = answer.send(Ok(resp));
            }
        }
        // The replica took the frame and answered something else: it may have applied the
        // writes, so their outcome is unknown.
        Ok(other) => {
            let e = TransportError::Lost {
                peer: to.to_string(),
                reason: format!("the answer to {n} writes was {}", describe(&other)),
            };
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for answer in answers {
                let _ = answer.send(Err(e.clone()));
            }
        }
    }
}

fn describe(resp: &StoreResponse) -> String {
    match resp {
        StoreResponse::Many(list) => format!("{} answers", list.len()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::propertystore::core::{Op, Txn, Written};
    use crate::transport::mem::MemNetwork;
    use crate::transport::Incoming;

    fn set(path: &str) -> Command {
        Command::Txn(Txn::single(Op::Set {
            path: path.into(),
            value: b"v".to_vec(),
            expected_version: None,
        }))
    }

    /// A replica stand-in that answers every write with a revision and counts frames.
    fn answering(net: &MemNetwork, frames: Arc<Mutex<Vec<usize>>>, reply_many: bool) -> SocketAddr {
        let server = net.endpoint("store-1");
        let mut inbox = server.register(Service::STORE, 1024).unwrap();
        let addr = server.local_addr();
        tokio::spawn(async move {
            let _server = server;
            let mut revision = 0u64;
            while let Some(Incoming::Request { body, reply, .. }) = inbox.recv().await {
                let req: StoreRequest = crate::codec::decode(&body).unwrap();
                let mut written = || {
                    revision += 1;
                    StoreResponse::Written(Written {
                        revision,
                        succeeded: true,
                        ops: Vec::new(),
                    })
                };
                let resp = match req {
                    StoreRequest::Write(_) => {
                        frames.lock().unwrap().push(1);
                        written()
                    }
                    StoreRequest::Writes(cmds) => {
                        frames.lock().unwrap().push(cmds.len());
                        if reply_many {
                            StoreResponse::Many(cmds.iter().map(|_| written()).collect())
                        } else {
                            written()
                        }
                    }
                    other => panic!("unexpected {other:?}"),
                };
                reply.ok_typed(&resp);
            }
        });
        addr
    }

    /// `n` writes sent through `lanes` to `to` at once (one task polling them all).
    async fn concurrent_sets(lanes: &Lanes, to: SocketAddr, n: usize) -> Vec<Answer> {
        let calls = (0..n).map(|i| async move {
            let req = StoreRequest::Write(set(&format!("/k{i}")));
            lanes.send(to, &req, Duration::from_secs(10)).await
        });
        futures::future::join_all(calls).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_share_frames_and_each_gets_its_own_answer() {
        let net = MemNetwork::new(7);
        let frames = Arc::new(Mutex::new(Vec::new()));
        let to = answering(&net, frames.clone(), true);
        let lanes = Lanes::new(net.client("c"));
        let answers = concurrent_sets(&lanes, to, 200).await;
        let mut revisions: Vec<u64> = answers
            .into_iter()
            .map(|a| match a.unwrap() {
                StoreResponse::Written(w) => w.revision,
                other => panic!("{other:?}"),
            })
            .collect();
        revisions.sort_unstable();
        assert_eq!(revisions, (1..=200).collect::<Vec<u64>>(), "one answer each");
        let frames = frames.lock().unwrap().clone();
        assert_eq!(frames.iter().sum::<usize>(), 200);
        assert!(
            frames.len() < 200 && frames.iter().any(|&n| n > 1),
            "concurrent writes shared frames: {frames:?}"
        );
    }

    #[tokio::test]
    async fn a_lone_write_goes_in_its_own_frame() {
        let net = MemNetwork::new(8);
        let frames = Arc::new(Mutex::new(Vec::new()));
        let to = answering(&net, frames.clone(), true);
        let lanes = Lanes::new(net.client("c"));
        for i in 0..3 {
            let req = StoreRequest::Write(set(&format!("/k{i}")));
            lanes.send(to, &req, Duration::from_secs(10)).await.unwrap();
        }
        assert_eq!(*frames.lock().unwrap(), vec![1, 1, 1]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frame_answered_wrongly_leaves_its_writes_outcome_unknown() {
        let net = MemNetwork::new(9);
        let frames = Arc::new(Mutex::new(Vec::new()));
        let to = answering(&net, frames.clone(), false);
        let lanes = Lanes::new(net.client("c"));
        let answers = concurrent_sets(&lanes, to, 50).await;
        let batched: usize = frames.lock().unwrap().iter().filter(|&&n| n > 1).sum();
        let unknown = answers
            .iter()
            .filter(|a| matches!(a, Err(e) if e.is_outcome_unknown()))
            .count();
        assert!(batched > 0, "some writes were batched");
        assert_eq!(
            unknown, batched,
            "every write of a misanswered frame is outcome unknown"
        );
    }

    #[tokio::test]
    async fn a_frame_to_nobody_fails_every_write_in_it_as_not_delivered() {
        let net = MemNetwork::new(10);
        let lanes = Lanes::new(net.client("c"));
        let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let answers = concurrent_sets(&lanes, nobody, 20).await;
        for a in answers {
            assert!(matches!(&a, Err(e) if e.is_not_delivered()), "{a:?}");
        }
    }
}
