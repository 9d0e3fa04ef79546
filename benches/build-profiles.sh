#!/usr/bin/env bash
# The two build profiles side by side (README, "Build profiles"): how long each takes to build
# from scratch, and how fast each binary drives the embedded mock.
#
# - build: `cargo build --release` and `cargo build --profile dist`, each in an empty target
#   folder of its own, dependencies downloaded first (so the network is not timed);
# - throughput: benches/million-requests.toml at REQUESTS requests (64 closed-loop users,
#   streaming, no configured delays), the two binaries alternating for ROUNDS rounds; each
#   round prints requests per second of each.
# Loopback only. Run it on a quiet machine: on 2 cores it takes about 5 minutes plus the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-300000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo fetch --quiet
for profile in release dist; do
  start=$(date +%s.%N)
  CARGO_TARGET_DIR="$work/target-$profile" cargo build --quiet --profile "$profile" --bin drover
  end=$(date +%s.%N)
  printf 'build %-7s %6.1f s from scratch\n' "$profile" "$(echo "$end - $start" | bc)"
done
scenario="$work/scenario.toml"
sed "s/^requests = .*/requests = $REQUESTS/" benches/million-requests.toml > "$scenario"
for round in $(seq "$ROUNDS"); do
  line="round $round:"
  for profile in release dist; do
    out="$work/out-$profile-$round"
    "$work/target-$profile/$profile/drover" run "$scenario" --no-progress --no-preflight \
      --out "$out" > /dev/null 2> "$work/stderr"
    rate=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.0f" % r["targets"][0]["summary"]["throughput"]["requests_per_s"])' "$out"/*/results.json)
    line="$line $profile $rate req/s"
  done
  echo "$line"
done
