#!/usr/bin/env bash
# strand's demo, from a fresh machine: installs what is missing, builds, runs.
#
#   1. the rebalance engine plans Helix's tutorial cluster, then its failover (offline);
#   2. five gossiping nodes on loopback: one is SIGKILLed, the survivors declare it down;
#   3. a three-replica property store: writes, a watch, the leader SIGKILLed, writes go on.
#
# Everything runs on 127.0.0.1 in a temporary directory (TLS material included: the first
# process creates a development CA there) and every process it starts is stopped by PID.
# STRAND_BIN=path/to/strand skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${STRAND_BIN:-}" ]; then
  . scripts/setup.sh
  cargo build --release --quiet
  STRAND_BIN="$CARGO_TARGET_DIR/release/strand"
fi
S="$STRAND_BIN"
WORK="$(mktemp -d /tmp/strand-demo.XXXXXX)"
export STRAND_TLS_DIR="$WORK/tls" STRAND_EXIT_WITH_PARENT=1
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  rm -rf "$WORK"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
# wait_until SECONDS COMMAND...: polls COMMAND every 20 ms until it succeeds.
wait_until() {
  local deadline=$(( $(now_ms) + $1 * 1000 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(now_ms)" -lt "$deadline" ] || { echo "demo: timed out waiting for: $*" >&2; return 1; }
    sleep 0.02
  done
}
free_port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== 1. the rebalance engine, offline: Helix's tutorial cluster (6 partitions x 3 replicas, MasterSlave, 3 instances)"
"$S" plan examples/plan/tutorial.json -o table
echo
echo "== ... and the same cluster after localhost_12913 is killed: its MASTERs move to existing SLAVEs"
"$S" plan examples/plan/failover.json -o table
echo

echo "== 2. membership: five nodes gossip over QUIC with mutual TLS"
NODE_PORTS=()
for i in 1 2 3 4 5; do NODE_PORTS+=("$(free_port)"); done
SEED="127.0.0.1:${NODE_PORTS[0]}"
NODE_PIDS=()
for i in 1 2 3 4 5; do
  args=(node run --name "node$i" --listen "127.0.0.1:${NODE_PORTS[$((i-1))]}")
  [ "$i" -gt 1 ] && args+=(--seed "$SEED")
  "$S" "${args[@]}" >"$WORK/node$i.log" 2>&1 &
  PIDS+=($!); NODE_PIDS+=($!); disown $!
  [ "$i" -eq 1 ] && wait_until 20 "$S" members --node "$SEED"
done
all_alive() { [ "$("$S" members --node "$SEED" --status alive -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["members"]))')" -eq 5 ]; }
wait_until 20 all_alive
"$S" members --node "$SEED"
echo
echo "-- SIGKILL node5"
VICTIM_PID="${NODE_PIDS[4]}"
KILLED_AT=$(now_ms)
kill -9 "$VICTIM_PID"
down_everywhere() {
  for i in 1 2 3 4; do
    "$S" members --node "127.0.0.1:${NODE_PORTS[$((i-1))]}" --status down -o json | grep -q '"node5"' || return 1
  done
}
wait_until 10 down_everywhere
SEEN_AT=$(now_ms)
"$S" members --node "$SEED"
first=$(python3 - "$WORK" "$KILLED_AT" <<'EOF'
import json, sys, glob
work, killed = sys.argv[1], int(sys.argv[2])
seen = []
for path in glob.glob(f"{work}/node[1-4].log"):
    for line in open(path):
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("event") == "MemberDown" and e.get("name") == "node5":
            seen.append(e["at_unix_ms"] - killed)
            break
print(f"first survivor: {min(seen)} ms, last survivor: {max(seen)} ms" if seen else "no MemberDown logged")
EOF
)
echo "node5 declared down by every survivor: $first (polled by this script: $((SEEN_AT - KILLED_AT)) ms)"
for p in "${NODE_PIDS[@]:0:4}"; do kill "$p" 2>/dev/null || true; done
echo

echo "== 3. the property store: three Raft replicas (RocksDB, fsync on) as separate processes"
STORE_PORTS=()
for i in 1 2 3; do STORE_PORTS+=("$(free_port)"); done
PEERS="1@127.0.0.1:${STORE_PORTS[0]},2@127.0.0.1:${STORE_PORTS[1]},3@127.0.0.1:${STORE_PORTS[2]}"
export STRAND_STORE="127.0.0.1:${STORE_PORTS[0]},127.0.0.1:${STORE_PORTS[1]},127.0.0.1:${STORE_PORTS[2]}"
STORE_PIDS=()
for i in 1 2 3; do
  "$S" store run --id "$i" --listen "127.0.0.1:${STORE_PORTS[$((i-1))]}" --peers "$PEERS" \
    --data-dir "$WORK/store$i" >"$WORK/store$i.log" 2>&1 &
  PIDS+=($!); STORE_PIDS+=($!); disown $!
done
wait_until 30 "$S" admin put /MYCLUSTER/CONFIGS/CLUSTER/MYCLUSTER '{"id":"MYCLUSTER","simpleFields":{},"listFields":{},"mapFields":{}}'
"$S" admin watch /MYCLUSTER >"$WORK/watch.log" 2>&1 &
PIDS+=($!); disown $!
"$S" admin put /MYCLUSTER/IDEALSTATES/myDB '{"id":"myDB","simpleFields":{"NUM_PARTITIONS":"6","REBALANCE_MODE":"FULL_AUTO","REPLICAS":"3","STATE_MODEL_DEF_REF":"MasterSlave"},"listFields":{},"mapFields":{}}'
"$S" store status
echo
"$S" admin ls /MYCLUSTER
"$S" admin get /MYCLUSTER/IDEALSTATES/myDB
echo
LEADER=$("$S" store status -o json | python3 -c '
import json, sys
doc = json.load(sys.stdin)
rows = doc if isinstance(doc, list) else doc.get("replicas", [])
print(next((r["id"] for r in rows if str(r.get("role", "")).lower() == "leader"), ""))')
if [ -n "$LEADER" ]; then
  echo "-- SIGKILL the leader, replica $LEADER, then write again"
  KILLED_AT=$(now_ms)
  kill -9 "${STORE_PIDS[$((LEADER-1))]}"
  wait_until 20 "$S" admin put /MYCLUSTER/PROPERTYSTORE/after-failover '"written after the leader was killed"'
  echo "a write was acknowledged again $(( $(now_ms) - KILLED_AT )) ms after the kill"
  sleep 0.5
  "$S" store status || true
fi
echo
echo "-- what the watch on /MYCLUSTER saw (JSON lines):"
sleep 0.3
cat "$WORK/watch.log"
