#!/usr/bin/env bash
# Peer benchmark: drover next to wrk and oha against a neutral fast server that none of them
# wrote (nginx on loopback), and drover's own mock measured the same way.
#
#   bash benches/peers.sh            # 10 s per run, 2 rounds, connections 16 64 256
#   QUICK=1 bash benches/peers.sh    # 3 s per run, 1 round (a smoke test of the script)
#   CASES="json" CONNECTIONS=64 ROUNDS=3 DURATION=5 bash benches/peers.sh
#
# Installs what is missing: wrk and nginx from Debian's packages (apt-get), oha from crates.io
# (cargo install oha --locked). Everything listens on 127.0.0.1 and every run is bounded in time.
#
# Cases:
#   json  non-streaming: nginx returns a fixed chat-completion JSON (drover mode "complete")
#   sse   streaming: nginx serves a recorded SSE stream of 1,000 chunk events plus usage
#         (drover mode "stream" parses and times every event; wrk and oha read it unparsed)
#   mock  non-streaming against `drover mock` with no configured delay (its capacity)
# Tools run one after another within each round (alternating), each as its own process; client
# CPU is the tool's user + system time from getrusage. Figures are from one noisy run set on the
# machine named at the top: client and server share its cores.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-"16 64 256"}
CASES=${CASES:-"json sse mock"}
if [[ -n "${QUICK:-}" ]]; then
  DURATION=3
  ROUNDS=1
  CONNECTIONS="64"
fi
PORT=${PORT:-18091}
MOCK_PORT=${MOCK_PORT:-18092}

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need nginx; then
  echo "installing wrk and nginx (apt-get)" >&2
  apt-get install -y wrk nginx-light >/dev/null 2>&1 || {
    apt-get update >/dev/null && apt-get install -y wrk nginx-light >/dev/null
  }
fi
export PATH="$HOME/.cargo/bin:$PATH"
if ! need oha; then
  echo "installing oha (cargo install oha --locked)" >&2
  cargo install oha --locked >/dev/null 2>&1
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
cargo build --profile dist --quiet
DROVER="$ROOT/target/dist/drover"

WORK=$(mktemp -d)
# nginx's workers run as an unprivileged user: they must be able to read the recorded stream.
chmod 755 "$WORK"
cleanup() {
  [[ -f "$WORK/nginx.pid" ]] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [[ -n "${MOCK_PID:-}" ]] && kill "$MOCK_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The fixed answers, in the shape an OpenAI-compatible server sends.
COMPLETION='{"id":"chatcmpl-peer","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from nginx."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}'
mkdir -p "$WORK/www/sse/v1/chat"
python3 - "$WORK/www/sse/v1/chat/completions" <<'EOF'
import sys
events = ['data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n']
for i in range(1000):
    events.append('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" tok%d"},"finish_reason":null}]}\n\n' % i)
events.append('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
events.append('data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1000,"total_tokens":1009}}\n\n')
events.append('data: [DONE]\n\n')
open(sys.argv[1], "w").write("".join(events))
EOF
# Content events (the role prelude, 1,000 tokens, the finish chunk, usage, [DONE]).
SSE_EVENTS=1000

cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  client_body_buffer_size 16k;
  types { }
  server {
    listen 127.0.0.1:$PORT backlog=4096;
    location = /v1/chat/completions {
      default_type application/json;
      return 200 '$COMPLETION';
    }
    location = /sse/v1/chat/completions {
      # A static file; POST to a static file is a 405, which error_page turns into the file.
      root $WORK/www;
      default_type text/event-stream;
      error_page 405 =200 \$uri;
    }
  }
}
EOF
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/error.log"
"$DROVER" mock --addr "127.0.0.1:$MOCK_PORT" --ttft 0ms --itl 0ms --output-tokens 4 >/dev/null 2>&1 &
MOCK_PID=$!
for _ in $(seq 50); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/v1/chat/completions" -d '{}' \
    && curl -s -o /dev/null "http://127.0.0.1:$MOCK_PORT/v1/models" && break
  sleep 0.1
done
chmod -R a+rX "$WORK/www"
# The servers must answer what the tools are told to expect, or every figure is wrong.
want=$(stat -c %s "$WORK/www/sse/v1/chat/completions")
got=$(curl -s -X POST -d '{}' "http://127.0.0.1:$PORT/sse/v1/chat/completions" | wc -c)
if [[ "$got" != "$want" ]]; then
  echo "nginx served $got bytes of the $want-byte stream; see $WORK/error.log" >&2
  exit 1
fi
curl -s -X POST -d '{}' "http://127.0.0.1:$PORT/v1/chat/completions" | grep -q '"chat.completion"' || {
  echo "nginx did not serve the fixed completion" >&2
  exit 1
}
BODY='{"model":"m","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16,"stream":false}'
SSE_BODY='{"model":"m","messages":[{"role":"user","content":"Say hello."}],"max_tokens":1000,"stream":true}'

# Runs a command; prints "<its stdout>" to a file and "user+sys seconds" of it.
timed() {
  local out=$1
  shift
  python3 - "$out" "$@" <<'EOF'
import resource, subprocess, sys
out = sys.argv[1]
with open(out, "w") as f:
    subprocess.run(sys.argv[2:], stdout=f, stderr=subprocess.STDOUT, check=False)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print("%.2f" % (usage.ru_utime + usage.ru_stime))
EOF
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
run_wrk() { # case url body connections
  cat >"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.body = '$3'
wrk.headers["Content-Type"] = "application/json"
EOF
  local cpu
  cpu=$(timed "$WORK/wrk.out" wrk -t2 -c"$4" -d"${DURATION}s" -s "$WORK/post.lua" "$2")
  local rps
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.out")
  echo -e "$1\t$4\twrk\t${rps:-0}\t$cpu" >>"$RESULTS"
}
run_oha() {
  local cpu
  cpu=$(timed "$WORK/oha.out" oha --no-tui -z "${DURATION}s" -c "$4" -m POST \
    -H "content-type: application/json" -d "$3" "$2")
  local rps
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/oha.out")
  echo -e "$1\t$4\toha\t${rps:-0}\t$cpu" >>"$RESULTS"
}
run_drover() { # case base_url mode connections
  local dir="$WORK/drover-$1-$4"
  mkdir -p "$dir"
  cat >"$dir/s.toml" <<EOF
name = "peers-$1-$4"
[[targets]]
name = "peer"
model = "m"
mode = "$3"
base_url = "$2"
http = "http1"
[[classes]]
name = "c"
input_tokens = 3
max_tokens = 1000
[load]
kind = "closed"
users = $4
duration = "${DURATION}s"
EOF
  local cpu
  cpu=$(timed "$dir/out.txt" "$DROVER" run "$dir/s.toml" --out "$dir/out" --no-progress --no-preflight)
  local rps
  rps=$(python3 -c "
import glob, json
r = json.load(open(glob.glob('$dir/out/*/results.json')[0]))
s = r['targets'][0]['summary']
print('%.1f' % s['throughput']['requests_per_s'])
")
  rm -rf "$dir/out"
  echo -e "$1\t$4\tdrover\t${rps:-0}\t$cpu" >>"$RESULTS"
}

echo "machine: $(nproc) cores, $(uname -srm); $(date -u +%Y-%m-%dT%H:%MZ); ${DURATION}s per run, $ROUNDS round(s)" >&2
for round in $(seq "$ROUNDS"); do
  for c in $CONNECTIONS; do
    echo "round $round, $c connections" >&2
    if [[ " $CASES " == *" json "* ]]; then
      run_wrk json "http://127.0.0.1:$PORT/v1/chat/completions" "$BODY" "$c"
      run_oha json "http://127.0.0.1:$PORT/v1/chat/completions" "$BODY" "$c"
      run_drover json "http://127.0.0.1:$PORT/v1" complete "$c"
    fi
    if [[ " $CASES " == *" sse "* ]]; then
      run_wrk sse "http://127.0.0.1:$PORT/sse/v1/chat/completions" "$SSE_BODY" "$c"
      run_oha sse "http://127.0.0.1:$PORT/sse/v1/chat/completions" "$SSE_BODY" "$c"
      run_drover sse "http://127.0.0.1:$PORT/sse/v1" stream "$c"
    fi
    if [[ " $CASES " == *" mock "* ]]; then
      run_wrk mock "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "$BODY" "$c"
      run_drover mock "http://127.0.0.1:$MOCK_PORT/v1" complete "$c"
    fi
  done
done

python3 - "$RESULTS" "$SSE_EVENTS" "$DURATION" "$(nproc)" <<'EOF'
import collections, statistics, sys
path, events, duration, cores = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
runs = collections.defaultdict(list)
for line in open(path):
    case, conns, tool, rps, cpu = line.split("\t")
    runs[(case, int(conns), tool)].append((float(rps), float(cpu)))
def median(values):
    return statistics.median(values) if values else 0.0
print(f"peer benchmark on {cores} cores (client and server share them); median of the rounds; one noisy run set")
print(f"{'case':<5} {'conns':>5} {'tool':<7} {'req/s':>10} {'events/s':>12} {'client CPU s':>12} {'events/CPU-s':>13} {'drover/tool':>11}")
for case in ("json", "sse", "mock"):
    for conns in sorted({k[1] for k in runs if k[0] == case}):
        drover = median([r for r, _ in runs.get((case, conns, "drover"), [])])
        for tool in ("wrk", "oha", "drover"):
            samples = runs.get((case, conns, tool))
            if not samples:
                continue
            rps = median([r for r, _ in samples])
            cpu = median([c for _, c in samples])
            per_event = ""
            event_rate = ""
            if case == "sse":
                event_rate = f"{rps * events:,.0f}"
                per_event = f"{rps * events * duration / cpu:,.0f}" if cpu > 0 else "-"
            ratio = f"{drover / rps:.2f}x" if tool != "drover" and rps > 0 else ""
            print(f"{case:<5} {conns:>5} {tool:<7} {rps:>10,.0f} {event_rate:>12} {cpu:>12.2f} {per_event:>13} {ratio:>11}")
EOF
