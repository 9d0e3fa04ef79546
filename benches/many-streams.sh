#!/usr/bin/env bash
# Client memory per open stream (issue 28): 10,000, 50,000 and 100,000 HTTP/2 streams held open at
# once against a separate `drover mock` process (so the server's memory is not the client's),
# spread over pools of 1,000 streams per connection (`http2 = { connections = streams / 1000 }`),
# plus a run of 100 streams as the baseline. Every request waits 15 s for its first token, so all
# of them are open together; the run checks that from the request log (the last send before the
# first answer) and that none waited for a stream slot. Memory is the client's RSS 8 s in, with
# every stream open and idle (VmRSS); per open stream is (RSS - the 100-stream run's RSS) /
# (streams - 100). The peak (VmHWM, results.json's environment.peak_rss_bytes) comes as the
# answers all end at once and the records queue for the recorder; it is shown beside.
# By default every stream starts in the same instant (one closed-loop user each), which also
# holds what opening 100,000 requests at once leaves behind; with RATE=N they are opened by an
# open loop at N per second instead (RATE=20000: 100,000 streams in 5 s, all still open together
# when RSS is read).
# Loopback only; about 2 minutes on a 2-core machine.
#   STREAMS="10000 50000 100000" PROFILE=dist bash benches/many-streams.sh
#   RATE=20000 PROFILE=release bash benches/many-streams.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${PROFILE:-dist}
cargo build --profile "$profile" --quiet
drover=target/$profile/drover
out=$(mktemp -d)
port=${PORT:-18089}
ttft=15s
"$drover" mock --addr "127.0.0.1:$port" --ttft "$ttft" --itl 1ms --output-tokens 1 \
  --max-concurrent-streams 1000 > "$out/mock.log" 2>&1 &
mock=$!
trap 'kill "$mock" 2> /dev/null || true; rm -rf "$out"' EXIT
for _ in $(seq 50); do
  if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2> /dev/null; then break; fi
  sleep 0.1
done
baseline=""
for streams in 100 ${STREAMS:-10000 50000 100000}; do
  connections=$(( (streams + 999) / 1000 ))
  if [ -n "${RATE:-}" ]; then
    # Streams opened at a paced arrival rate (all still open together: 100,000 at 20,000/s
    # take 5 s, the first answer comes at 15 s).
    load="kind = \"open\"
rate = $RATE
max_in_flight = $streams"
    # RSS is read 3 s after the last stream opened, well before the first answer (15 s).
    read_after=$(( streams / RATE + 3 ))
    if [ "$read_after" -gt 12 ]; then
      echo "RATE=$RATE is too slow to open $streams streams before the first answers" >&2
      exit 2
    fi
  else
    # Every stream opened in the same instant: one closed-loop user each.
    load="kind = \"closed\"
users = $streams"
    read_after=8
  fi
  cat > "$out/s-$streams.toml" <<EOF
name = "many-streams-$streams"
[[targets]]
name = "mock"
model = "mock"
base_url = "http://127.0.0.1:$port/v1"
http = "http2"
http2 = { connections = $connections }
[[classes]]
name = "short"
input_tokens = 8
max_tokens = 1
[load]
$load
requests = $streams
EOF
  /usr/bin/time -f "%e %U %S" -o "$out/time-$streams" \
    "$drover" run "$out/s-$streams.toml" --no-progress --no-preflight --export-requests \
    --out "$out/run-$streams" > "$out/stdout-$streams" 2> "$out/stderr-$streams" &
  timed=$!
  # With every stream open and idle, well before the first answers: the client's RSS then.
  sleep "$read_after"
  client=$(pgrep -P "$timed" || true)
  idle_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$client/status" 2> /dev/null || echo 0)
  wait "$timed" || {
    cat "$out/stdout-$streams" "$out/stderr-$streams"
    exit 1
  }
  run_dir=$(ls -d "$out/run-$streams"/*/)
  line=$(python3 - "$run_dir" "$streams" "$out/time-$streams" "$baseline" "$idle_kib" <<'PY'
import json, sys
run_dir, streams, time_file, baseline, idle_kib = sys.argv[1:]
streams, idle = int(streams), int(idle_kib) * 1024
results = json.load(open(run_dir + "results.json"))
summary = results["targets"][0]["summary"]
ok = summary["requests"]["succeeded"]
peak = results["environment"]["peak_rss_bytes"]
connections = summary["connections"]
last_send = first_answer = None
for line in open(run_dir + "requests.jsonl"):
    request = json.loads(line)
    last_send = max(last_send or 0.0, request["sent_ms"])
    if request.get("ttft_ms") is not None:
        answer = request["sent_ms"] + request["ttft_ms"]
        first_answer = answer if first_answer is None else min(first_answer, answer)
wall, user, system = (float(x) for x in open(time_file).read().split()[-3:])
together = last_send is not None and first_answer is not None and last_send < first_answer
text = (f"{streams:>7,} streams over {connections['connections_used']:>3} connections: {ok:,} ok, "
        f"all open at once: {'yes' if together else 'NO'} (last send {last_send / 1000:.1f} s, "
        f"first answer {first_answer / 1000:.1f} s), stream waits {connections['stream_waits']}, "
        f"RSS with every stream open {idle / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB, "
        f"client CPU {user + system:.1f} s")
if baseline:
    base_streams, base_idle, base_peak = (int(x) for x in baseline.split(":"))
    per_stream = (idle - base_idle) / (streams - base_streams)
    per_stream_peak = (peak - base_peak) / (streams - base_streams)
    text += (f"; per open stream {per_stream / 1024:.2f} KiB "
             f"(peak, as the answers all end at once: {per_stream_peak / 1024:.2f} KiB)")
if ok != streams or not together or idle == 0:
    text += "  <- NOT VALID"
print(f"{text}|{streams}:{idle}:{peak}")
PY
)
  echo "${line%%|*}"
  if [ -z "$baseline" ]; then baseline=${line##*|}; fi
done
echo "machine: $(nproc) cores, $(uname -sr); profile $profile; streams opened $(
  [ -n "${RATE:-}" ] && echo "at $RATE per second" || echo "all at once"
); one run each"
