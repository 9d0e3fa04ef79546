#!/usr/bin/env bash
# Peak memory of a whole drover process against its embedded mock, at 100,000 and at 1,000,000
# requests (benches/million-requests.toml): histograms and counters, not per-request samples, so
# the two peaks should be nearly equal. The peak is the kernel's VmHWM for the process, which
# drover records in results.json (environment.peak_rss_bytes); /usr/bin/time's figure is shown
# too when it is installed. Loopback only; about 30 s on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --profile dist --quiet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for requests in 100000 1000000; do
  scenario="$out/scenario-$requests.toml"
  sed "s/^requests = .*/requests = $requests/" benches/million-requests.toml > "$scenario"
  start=$(date +%s.%N)
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f "%M" -o "$out/time-$requests" \
      target/dist/drover run "$scenario" --no-progress --no-preflight --out "$out/$requests" > /dev/null 2> "$out/stderr-$requests"
  else
    target/dist/drover run "$scenario" --no-progress --no-preflight --out "$out/$requests" > /dev/null 2> "$out/stderr-$requests"
  fi
  end=$(date +%s.%N)
  results=$(ls "$out/$requests"/*/results.json)
  python3 - "$results" "$requests" "$start" "$end" "$out/time-$requests" <<'PY'
import json, os, sys
path, requests, start, end, time_file = sys.argv[1:]
r = json.load(open(path))
s = r["targets"][0]["summary"]
peak = r["environment"].get("peak_rss_bytes")
line = (f"{int(requests):>9,} requests: {s['requests']['succeeded']:,} ok in {float(end) - float(start):.1f} s "
        f"({s['throughput']['requests_per_s']:,.0f} req/s), peak RSS "
        f"{peak / 2**20:.1f} MiB" if peak else "peak RSS unknown (not Linux)")
if os.path.exists(time_file):
    line += f" (/usr/bin/time: {int(open(time_file).read().split()[-1]) / 1024:.1f} MiB)"
print(line)
PY
done
echo "machine: $(nproc) cores, $(uname -sr); one run each, not an average"
