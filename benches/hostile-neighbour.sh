#!/usr/bin/env bash
# A hostile neighbour on a quiet machine: one target streams 30 MiB of one letter without usage
# beside an embedded mock target (TTFT 20 ms, ITL 5 ms), 2 closed-loop users each, against the
# same run with a calm first target. Prints peak RSS, the mock's completions and its ITL p99 and
# max in both runs, and fails when the mock's ITL p99 moved more than 2 ms or its completions
# more than 10%, or peak RSS grew more than 64 MiB (tests/hostile.rs asserts all but the ITL p99
# in `cargo test`, where other work shares the machine).
#
#   bash benches/hostile-neighbour.sh            # ROUNDS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo test --quiet --test it --no-run
for round in $(seq 1 "${ROUNDS:-3}"); do
  echo "round $round"
  HOSTILE_STRICT_TIMING=1 DROVER_TEST_BIN="$PWD/target/release/drover" \
    cargo test --quiet --test it hostile::a_30_mb -- --nocapture 2>&1 | grep -E "peak RSS|panicked|test result"
done
