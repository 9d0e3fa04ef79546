#!/usr/bin/env bash
# Streaming capacity: drover against its own mock (a separate `drover mock` process) at growing
# numbers of concurrent streams with a fast token cadence. Prints the sustained SSE events/s and
# output tokens/s drover measured, the client's and the mock's CPU time per million events, and
# drover's TTFT and inter-token p50/p99 (when those drift from the mock's configured 5 ms and
# 1 ms, the client or the mock is saturated).
#
#   bash benches/streaming-capacity.sh                 # 100 1000 5000 streams, 10 s each
#   STREAMS="100 1000" DURATION=5 bash benches/streaming-capacity.sh
#
# Everything is on 127.0.0.1 and every run is bounded in time. 5,000 streams need about 10,000
# file descriptors (client and mock sockets); the script raises the soft limit as far as allowed.
set -euo pipefail

cd "$(dirname "$0")/.."
STREAMS=${STREAMS:-"100 1000 5000"}
DURATION=${DURATION:-10}
PORT=${PORT:-18093}
TOKENS=${TOKENS:-200}
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cargo build --profile dist --quiet
DROVER="$(pwd)/target/dist/drover"
WORK=$(mktemp -d)
cleanup() {
  [[ -n "${MOCK_PID:-}" ]] && kill "$MOCK_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$DROVER" mock --addr "127.0.0.1:$PORT" --ttft 5ms --itl 1ms --output-tokens "$TOKENS" >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/models" && break
  sleep 0.1
done

cpu_of() { # user + system seconds of a process, from /proc
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

echo "machine: $(nproc) cores, $(uname -srm); $(date -u +%Y-%m-%dT%H:%MZ); mock TTFT 5 ms, ITL 1 ms, $TOKENS tokens per stream; ${DURATION}s per level"
printf "%8s  %12s  %12s  %14s  %14s  %9s  %9s  %8s  %8s\n" streams "events/s" "tokens/s" "client CPU/M" "mock CPU/M" "TTFT p50" "TTFT p99" "ITL p50" "ITL p99"
for streams in $STREAMS; do
  cat >"$WORK/s.toml" <<EOF
name = "streaming-capacity-$streams"
[[targets]]
name = "mock"
model = "m"
mode = "stream"
base_url = "http://127.0.0.1:$PORT/v1"
http = "http1"
[[classes]]
name = "c"
input_tokens = 8
max_tokens = $TOKENS
[load]
kind = "closed"
users = $streams
duration = "${DURATION}s"
EOF
  mock_before=$(cpu_of "$MOCK_PID")
  client_cpu=$(python3 - "$DROVER" "$WORK" <<'EOF'
import resource, subprocess, sys
drover, work = sys.argv[1], sys.argv[2]
subprocess.run([drover, "run", f"{work}/s.toml", "--out", f"{work}/out", "--no-progress",
                "--no-preflight"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.2f" % (usage.ru_utime + usage.ru_stime))
EOF
)
  mock_after=$(cpu_of "$MOCK_PID")
  python3 - "$WORK" "$streams" "$client_cpu" "$mock_before" "$mock_after" <<'EOF'
import glob, json, sys
work, streams, client_cpu, before, after = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:])
r = json.load(open(glob.glob(f"{work}/out/*/results.json")[0]))
s = r["targets"][0]["summary"]
window = s["throughput"]["window_s"]
tokens = s["tokens"]["output"]
# One content event per token, plus the role prelude, finish, usage and [DONE] per stream.
events = tokens + 4 * s["requests"]["succeeded"]
events_per_s = events / window if window else 0
# CPU covers the whole process (start-up and report included), so CPU per million events is a
# slight overestimate; connection set-up is inside the window.
mock_cpu = after - before
lat = s["latency_ms"]
def p(metric, q):
    return lat.get(metric, {}).get(q, float("nan"))
print("%8d  %12s  %12s  %12.2f s  %12.2f s  %6.1f ms  %6.1f ms  %5.2f ms  %5.2f ms" % (
    streams, f"{events_per_s:,.0f}", f"{s['throughput']['output_tokens_per_s']:,.0f}",
    client_cpu / events * 1e6 if events else float("nan"),
    mock_cpu / events * 1e6 if events else float("nan"),
    p("ttft", "p50"), p("ttft", "p99"), p("itl", "p50"), p("itl", "p99")))
if s["requests"]["failed"]:
    print(f"          {s['requests']['failed']} failed: {s['errors']}")
EOF
  rm -rf "$WORK/out"
done
