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
//! loses its connection leaves every write in it "outcome unknown". A replica that does not
//! know `Writes` (an older version) refuses the frame before doing anything: its writes are
//! sent again one by one, and so is every later write to it. A frame is kept to half the
//! transport's frame limit so that its answer fits too. Reads are not batched: their answers
//! carry values of up to a megabyte each.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::core::Command;
use super::pins::Pins;
use super::protocol::{StoreRequest, StoreResponse, BAD_REQUEST, MAX_WRITES_PER_REQUEST};
use crate::transport::{self, PeerAddr, Service, Transport, TransportError};

/// Room left in a frame's answer for each write's outcome (its path and metadata), beyond
/// what the write itself takes.
const ANSWER_ROOM_PER_OP: usize = 64;

/// Lanes kept before idle ones are dropped (addresses come from the configuration and from
/// replicas' leader hints, so this is rarely reached).
const MAX_IDLE_LANES: usize = 64;

/// Writes waiting in one lane for a frame; beyond this they are sent alone.
const LANE_QUEUE: usize = 4 * MAX_WRITES_PER_REQUEST;

type Answer = Result<StoreResponse, TransportError>;

/// Where a batched write's answer goes, and how long its caller waits.
type Waiter = (Duration, oneshot::Sender<Answer>);

struct Job {
    cmd: Command,
    timeout: Duration,
    answer: oneshot::Sender<Answer>,
}

struct Lane {
    /// This client's writes to the replica that have not been answered yet.
    busy: AtomicUsize,
    /// The replica refused a `Writes` frame: send it lone writes only.
    singles: Arc<AtomicBool>,
    queue: mpsc::Sender<Job>,
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
    out: Arc<Out>,
    lanes: Mutex<HashMap<SocketAddr, Arc<Lane>>>,
}

impl Lanes {
    pub(super) fn new(transport: Arc<dyn Transport>) -> Self {
        Lanes {
            out: Arc::new(Out {
                transport,
                pins: Pins::default(),
            }),
            lanes: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a replica's name is pinned at `to` (see [`super::pins`]).
    pub(super) fn is_pinned(&self, to: SocketAddr) -> bool {
        self.out.pins.name(to).is_some()
    }

    /// Sends `req` to the replica at `to` and returns its answer.
    pub(super) async fn send(&self, to: SocketAddr, req: &StoreRequest, timeout: Duration) -> Answer {
        let StoreRequest::Write(cmd) = req else {
            return direct(&self.out, to, req, timeout).await;
        };
        let lane = self.lane(to);
        let (_busy, alone) = Busy::enter(&lane);
        if alone || lane.singles.load(Ordering::Acquire) {
            return direct(&self.out, to, req, timeout).await;
        }
        let (answer, rx) = oneshot::channel();
        let job = Job {
            cmd: cmd.clone(),
            timeout,
            answer,
        };
        // A full queue (more writers than a frame takes, waiting) or a stopped lane: the
        // write goes alone, so the queue stays bounded.
        if lane.queue.try_send(job).is_err() {
            return direct(&self.out, to, req, timeout).await;
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            // The lane task hands every job it takes an answer; it can only have stopped
            // with the runtime, after the write may have been sent.
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
        if let Some(lane) = lanes.get(&to) {
            return lane.clone();
        }
        if lanes.len() >= MAX_IDLE_LANES {
            // Dropping an idle lane ends its task once its frames in flight are answered.
            lanes.retain(|_, l| l.busy.load(Ordering::Acquire) > 0);
        }
        let (queue, rx) = mpsc::channel(LANE_QUEUE);
        let singles = Arc::new(AtomicBool::new(false));
        let budget = self.out.transport.max_frame_size() / 2;
        tokio::spawn(run_lane(self.out.clone(), to, rx, budget, singles.clone()));
        let lane = Arc::new(Lane {
            busy: AtomicUsize::new(0),
            singles,
            queue,
        });
        lanes.insert(to, lane.clone());
        lane
    }
}

/// Sends `req` to the replica at `to`, which must be the one pinned there (if any), and
/// learns from its answer who is where.
async fn direct(out: &Out, to: SocketAddr, req: &StoreRequest, timeout: Duration) -> Answer {
    let peer = PeerAddr {
        addr: to,
        name: out.pins.name(to),
    };
    let answer = transport::call(&*out.transport, &peer, Service::STORE, req, timeout).await;
    if let Ok(resp) = &answer {
        out.pins.learn(to, resp);
    }
    answer
}

/// The way out to the replicas: the transport and the names pinned at their addresses.
pub(super) struct Out {
    transport: Arc<dyn Transport>,
    pins: Pins,
}

/// What a write takes of a frame: itself, and room for its outcome in the answer.
fn frame_cost(cmd: &Command) -> usize {
    let ops = match cmd {
        Command::Txn(t) => t.success.len().max(t.failure.len()).max(1),
        Command::Compact { .. } => 1,
    };
    cmd.approx_size() + ANSWER_ROOM_PER_OP * ops
}

/// Forms frames from the lane's queue until the client is dropped: everything queued by the
/// time it runs, up to [`MAX_WRITES_PER_REQUEST`] writes and `budget` bytes (a single larger
/// write goes alone, as it would without batching).
async fn run_lane(
    transport: Arc<Out>,
    to: SocketAddr,
    mut rx: mpsc::Receiver<Job>,
    budget: usize,
    singles: Arc<AtomicBool>,
) {
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        // Let every task that is ready to run now queue its write first: the writers woken
        // by one batch of answers then leave together in the next frame.
        tokio::task::yield_now().await;
        let mut bytes = frame_cost(&first.cmd);
        let mut jobs = vec![first];
        while jobs.len() < MAX_WRITES_PER_REQUEST {
            let Ok(job) = rx.try_recv() else { break };
            let cost = frame_cost(&job.cmd);
            if bytes + cost > budget {
                next = Some(job);
                break;
            }
            bytes += cost;
            jobs.push(job);
        }
        tokio::spawn(send_frame(transport.clone(), to, jobs, singles.clone()));
    }
}

async fn send_frame(transport: Arc<Out>, to: SocketAddr, mut jobs: Vec<Job>, singles: Arc<AtomicBool>) {
    // Abandoned writes (their caller timed out or gave up) are not sent.
    jobs.retain(|j| !j.answer.is_closed());
    if jobs.len() <= 1 || singles.load(Ordering::Acquire) {
        send_singly(&transport, to, jobs).await;
        return;
    }
    let timeout = jobs.iter().map(|j| j.timeout).max().unwrap_or_default();
    let n = jobs.len();
    // The commands move into the request (no copy); a refused frame gives them back.
    let (cmds, waiters): (Vec<Command>, Vec<Waiter>) =
        jobs.into_iter().map(|j| (j.cmd, (j.timeout, j.answer))).unzip();
    let request = StoreRequest::Writes(cmds);
    let answer_all = |waiters: Vec<Waiter>, e: TransportError| {
        for (_, answer) in waiters {
            let _ = answer.send(Err(e.clone()));
        }
    };
    match direct(&transport, to, &request, timeout).await {
        Ok(StoreResponse::Many(list)) if list.len() == n => {
            for ((_, answer), resp) in waiters.into_iter().zip(list) {
                let _ = answer.send(Ok(resp));
            }
        }
        // The replica took the frame and answered something else: it may have applied the
        // writes, so their outcome is unknown.
        Ok(other) => {
            let got = match other {
                StoreResponse::Many(list) => format!("{} answers", list.len()),
                _ => "a single answer".to_string(),
            };
            let e = TransportError::Lost {
                peer: to.to_string(),
                reason: format!("the answer to {n} writes was {got}"),
            };
            answer_all(waiters, e);
        }
        // Refused before anything was proposed (a replica that does not know `Writes`):
        // nothing happened, so each write may go again on its own.
        Err(TransportError::Refused { reason, .. }) if reason.starts_with(BAD_REQUEST) => {
            tracing::debug!(%to, %reason, "the replica refused batched writes; sending them one by one");
            singles.store(true, Ordering::Release);
            if let StoreRequest::Writes(cmds) = request {
                let jobs = cmds
                    .into_iter()
                    .zip(waiters)
                    .map(|(cmd, (timeout, answer))| Job { cmd, timeout, answer })
                    .collect();
                send_singly(&transport, to, jobs).await;
            }
        }
        Err(e) => answer_all(waiters, e),
    }
}

/// Sends each write in its own frame, all at once.
async fn send_singly(transport: &Arc<Out>, to: SocketAddr, jobs: Vec<Job>) {
    let sends = jobs.into_iter().map(|job| async move {
        let answer = direct(transport, to, &StoreRequest::Write(job.cmd), job.timeout).await;
        let _ = job.answer.send(answer);
    });
    futures::future::join_all(sends).await;
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;
    use crate::propertystore::core::{Op, OpOutcome, Stat, Txn, Written};
    use crate::transport::mem::MemNetwork;
    use crate::transport::Incoming;

    fn set(path: &str) -> Command {
        Command::Txn(Txn::single(Op::Set {
            path: path.into(),
            value: b"v".to_vec(),
            expected_version: None,
        }))
    }

    fn path_of(cmd: &Command) -> String {
        match cmd {
            Command::Txn(t) => match &t.success[0] {
                Op::Set { path, .. } => path.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    /// How the stand-in replica treats a `Writes` frame.
    #[derive(Clone, Copy)]
    enum Mode {
        /// One answer per write, naming its path.
        Answer,
        /// A single answer for the whole frame.
        Misanswer,
        /// Refused as an older replica would (it cannot decode `Writes`).
        Refuse,
        /// Never answered (the responder is kept).
        Hold,
    }

    /// A replica stand-in on `net`: answers each lone write, treats frames as `mode` says, and
    /// records the paths of every frame it receives.
    struct StandIn {
        addr: SocketAddr,
        frames: Arc<Mutex<Vec<Vec<String>>>>,
    }

    impl StandIn {
        fn start(net: &MemNetwork, mode: Mode) -> StandIn {
            let server = net.endpoint("store-1");
            let mut inbox = server.register(Service::STORE, 4096).unwrap();
            let addr = server.local_addr();
            let frames: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
            let seen = frames.clone();
            tokio::spawn(async move {
                let _server = server;
                let mut held = Vec::new();
                let mut revision = 0u64;
                let mut written = |path: String| {
                    revision += 1;
                    StoreResponse::Written(Written {
                        revision,
                        succeeded: true,
                        ops: vec![OpOutcome::Put {
                            path,
                            stat: Stat {
                                version: 1,
                                create_revision: revision,
                                mod_revision: revision,
                            },
                        }],
                    })
                };
                while let Some(Incoming::Request { body, reply, .. }) = inbox.recv().await {
                    let cmds = match crate::codec::decode::<StoreRequest>(&body).unwrap() {
                        StoreRequest::Write(cmd) => {
                            seen.lock().unwrap().push(vec![path_of(&cmd)]);
                            reply.ok_typed(&written(path_of(&cmd)));
                            continue;
                        }
                        StoreRequest::Writes(cmds) => cmds,
                        other => panic!("unexpected {other:?}"),
                    };
                    let paths: Vec<String> = cmds.iter().map(path_of).collect();
                    seen.lock().unwrap().push(paths.clone());
                    match mode {
                        Mode::Answer => reply.ok_typed(&StoreResponse::Many(
                            paths.into_iter().map(&mut written).collect(),
                        )),
                        Mode::Misanswer => reply.ok_typed(&written(paths[0].clone())),
                        Mode::Refuse => reply.refuse(format!("{BAD_REQUEST}: unknown variant")),
                        Mode::Hold => held.push(reply),
                    }
                }
            });
            StandIn { addr, frames }
        }

        fn frame_sizes(&self) -> Vec<usize> {
            self.frames.lock().unwrap().iter().map(Vec::len).collect()
        }
    }

    /// Writes of `/{prefix}{i}` for `i` in `0..n`, sent through `lanes` at once (one task
    /// polling them all, so on a current-thread runtime every write after the first is queued
    /// before the lane task runs).
    async fn concurrent_sets(lanes: &Lanes, to: SocketAddr, prefix: &str, n: usize) -> Vec<Answer> {
        let calls = (0..n).map(|i| async move {
            let req = StoreRequest::Write(set(&format!("/{prefix}{i}")));
            lanes.send(to, &req, Duration::from_secs(10)).await
        });
        futures::future::join_all(calls).await
    }

    fn answered_path(answer: &Answer) -> String {
        match answer {
            Ok(StoreResponse::Written(w)) => match &w.ops[..] {
                [OpOutcome::Put { path, .. }] => path.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    /// The first write (sent alone) was answered; every write of the frame behind it is
    /// outcome unknown.
    fn assert_lone_answered_rest_unknown(answers: &[Answer]) {
        assert_eq!(answered_path(&answers[0]), "/k0");
        for a in &answers[1..] {
            assert!(matches!(a, Err(e) if e.is_outcome_unknown()), "{a:?}");
        }
    }

    #[tokio::test]
    async fn concurrent_writes_share_a_frame_and_each_gets_its_own_answer() {
        let net = MemNetwork::new(7);
        let replica = StandIn::start(&net, Mode::Answer);
        let lanes = Lanes::new(net.client("c"));
        let answers = concurrent_sets(&lanes, replica.addr, "k", 200).await;
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(
                answered_path(answer),
                format!("/k{i}"),
                "write {i} got its own answer"
            );
        }
        // The first went alone; the other 199 were queued behind it and left together.
        assert_eq!(replica.frame_sizes(), vec![1, 199]);
    }

    #[tokio::test]
    async fn a_lone_write_goes_in_its_own_frame() {
        let net = MemNetwork::new(8);
        let replica = StandIn::start(&net, Mode::Answer);
        let lanes = Lanes::new(net.client("c"));
        for i in 0..3 {
            let req = StoreRequest::Write(set(&format!("/k{i}")));
            lanes
                .send(replica.addr, &req, Duration::from_secs(10))
                .await
                .unwrap();
        }
        assert_eq!(replica.frame_sizes(), vec![1, 1, 1]);
    }

    #[tokio::test]
    async fn a_frame_answered_wrongly_leaves_its_writes_outcome_unknown() {
        let net = MemNetwork::new(9);
        let replica = StandIn::start(&net, Mode::Misanswer);
        let lanes = Lanes::new(net.client("c"));
        let answers = concurrent_sets(&lanes, replica.addr, "k", 50).await;
        assert_eq!(replica.frame_sizes(), vec![1, 49]);
        assert_lone_answered_rest_unknown(&answers);
    }

    #[tokio::test]
    async fn writes_to_a_replica_that_refuses_frames_go_one_by_one() {
        let net = MemNetwork::new(10);
        let replica = StandIn::start(&net, Mode::Refuse);
        let lanes = Lanes::new(net.client("c"));
        for round in ["a", "b"] {
            let answers = concurrent_sets(&lanes, replica.addr, round, 30).await;
            for (i, answer) in answers.iter().enumerate() {
                assert_eq!(answered_path(answer), format!("/{round}{i}"));
            }
        }
        // One refused frame of 29, then lone writes only: 1 + 29 resent in the first round,
        // 30 lone writes in the second.
        let sizes = replica.frame_sizes();
        assert_eq!(sizes.iter().filter(|&&n| n > 1).count(), 1, "{sizes:?}");
        assert_eq!(sizes.len(), 1 + 1 + 29 + 30, "{sizes:?}");
    }

    #[tokio::test]
    async fn a_frame_whose_replica_crashes_leaves_every_write_in_it_outcome_unknown() {
        let net = MemNetwork::new(11);
        let replica = StandIn::start(&net, Mode::Hold);
        let lanes = Arc::new(Lanes::new(net.client("c")));
        let to = replica.addr;
        let writes = tokio::spawn({
            let lanes = lanes.clone();
            async move { concurrent_sets(&lanes, to, "k", 20).await }
        });
        while replica.frame_sizes() != vec![1, 19] {
            tokio::task::yield_now().await;
        }
        assert!(net.crash(to));
        assert_lone_answered_rest_unknown(&writes.await.unwrap());
    }

    #[tokio::test]
    async fn abandoned_writes_are_not_sent() {
        let net = MemNetwork::new(12);
        let replica = StandIn::start(&net, Mode::Hold);
        let lanes = Lanes::new(net.client("c"));
        // One write held by the replica keeps the lane busy; ten more are queued behind it
        // and given up before the lane task runs.
        let held = StoreRequest::Write(set("/held"));
        let held = lanes.send(replica.addr, &held, Duration::from_secs(10));
        tokio::pin!(held);
        assert!((&mut held).now_or_never().is_none());
        for i in 0..10 {
            let req = StoreRequest::Write(set(&format!("/gone{i}")));
            assert!(lanes
                .send(replica.addr, &req, Duration::from_secs(10))
                .now_or_never()
                .is_none());
        }
        let req = StoreRequest::Write(set("/kept"));
        let kept = lanes.send(replica.addr, &req, Duration::from_secs(10)).await;
        assert_eq!(answered_path(&kept), "/kept");
        let frames = replica.frames.lock().unwrap().clone();
        assert_eq!(frames, vec![vec!["/held".to_string()], vec!["/kept".to_string()]]);
    }

    #[tokio::test]
    async fn frames_stay_within_half_the_transport_frame_limit() {
        let net = MemNetwork::new(13);
        let replica = StandIn::start(&net, Mode::Answer);
        let limit = 64 * 1024;
        let lanes = Lanes::new(Arc::new(net.client("c").with_max_frame(limit)));
        let big = |i: usize| {
            Command::Txn(Txn::single(Op::Set {
                path: format!("/big{i}"),
                value: vec![7u8; 4000],
                expected_version: None,
            }))
        };
        // About 4.1 KB of a 32 KiB frame each, with room for the answer.
        let per_frame = (limit / 2) / frame_cost(&big(10));
        assert!((7..=8).contains(&per_frame), "{per_frame}");
        let calls = (0..40).map(|i| {
            let lanes = &lanes;
            let to = replica.addr;
            async move {
                lanes
                    .send(to, &StoreRequest::Write(big(i)), Duration::from_secs(10))
                    .await
            }
        });
        for answer in futures::future::join_all(calls).await {
            assert!(matches!(answer, Ok(StoreResponse::Written(_))), "{answer:?}");
        }
        // The first alone, the other 39 in frames as full as the limit allows.
        let sizes = replica.frame_sizes();
        assert_eq!(sizes[0], 1);
        assert_eq!(sizes.iter().sum::<usize>(), 40);
        assert!(sizes[1..].iter().all(|&n| n <= per_frame), "{sizes:?}");
        assert_eq!(sizes.len(), 1 + 39usize.div_ceil(per_frame), "{sizes:?}");
    }
}
