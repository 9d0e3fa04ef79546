#!/usr/bin/env bash
# The CI gate's measured false-alarm rate and power. Runs scenarios/ci-gate.toml RUNS times
# unchanged and compares each run with the first (`drover compare`, default thresholds and 95%
# confidence), then RUNS times with the embedded mock 20% slower in TTFT (mean 30 ms -> 36 ms)
# and compares each with the same first run. A CPU-heavy process (BUSY busy loops, 1 by default)
# runs beside drover throughout, as on a shared CI machine. Prints how often each comparison was
# called regressed, and the metrics that were. Last, RUNS pairs of scenarios/quickstart.toml
# runs, each pair compared (the rerun check of README's first command).
#
#   bash benches/gate-noise.sh              # RUNS=10 BUSY=1
#   RUNS=20 BUSY=2 bash benches/gate-noise.sh
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-10}"
busy="${BUSY:-1}"
cargo build --release --quiet
bin="$PWD/target/release/drover"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 "$busy"); do
  sh -c 'while :; do :; done' &
  pids+=("$!")
done

slower="$work/ci-gate-slower.toml"
sed 's/mean = "30ms", spread = "2ms"/mean = "36ms", spread = "2ms"/' scenarios/ci-gate.toml >"$slower"
grep -q 'mean = "36ms"' "$slower" || { echo "could not make the mock slower" >&2; exit 1; }

run_once() { # scenario, folder -> path of results.json
  "$bin" run "$1" --out "$2" --no-progress >/dev/null 2>"$2.log" || {
    code=$?
    # 7 (an SLO failed or is undecided) still leaves results to compare.
    [ "$code" -eq 7 ] || { cat "$2.log" >&2; exit "$code"; }
  }
  ls "$2"/*/results.json
}

# drover compare's exit code: 0 no regression, 8 regressed; anything else stops the script.
compare_once() { # baseline, current, label
  set +e
  "$bin" compare "$1" "$2" >"$work/compare.txt" 2>&1
  code=$?
  set -e
  case "$code" in
    0) ;;
    8) echo "  $3: regressed: $(grep -E ' regressed$' "$work/compare.txt" | awk '{print $2"/"$3}' | tr '\n' ' ')" ;;
    *) cat "$work/compare.txt" >&2; exit "$code" ;;
  esac
  return "$code"
}

first="$(run_once scenarios/ci-gate.toml "$work/base")"
unchanged_regressed=0
for i in $(seq 1 "$runs"); do
  current="$(run_once scenarios/ci-gate.toml "$work/same-$i")"
  compare_once "$first" "$current" "unchanged run $i" || unchanged_regressed=$((unchanged_regressed + 1))
done
slower_regressed=0
for i in $(seq 1 "$runs"); do
  current="$(run_once "$slower" "$work/slower-$i")"
  if compare_once "$first" "$current" "slower run $i" >/dev/null; then
    echo "  slower run $i: not called regressed"
  else
    slower_regressed=$((slower_regressed + 1))
  fi
done
quickstart_regressed=0
for i in $(seq 1 "$runs"); do
  a="$(run_once scenarios/quickstart.toml "$work/quick-$i-a")"
  b="$(run_once scenarios/quickstart.toml "$work/quick-$i-b")"
  compare_once "$a" "$b" "quickstart pair $i" || quickstart_regressed=$((quickstart_regressed + 1))
done
echo "gate-noise: $busy busy loop(s) beside drover on $(nproc) cores"
echo "gate-noise: ci-gate unchanged: regressed in $unchanged_regressed of $runs (false alarms)"
echo "gate-noise: ci-gate with TTFT 20% slower: regressed in $slower_regressed of $runs"
echo "gate-noise: quickstart run twice: regressed in $quickstart_regressed of $runs (false alarms)"
