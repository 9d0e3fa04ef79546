#!/usr/bin/env bash
# Installs the official openai and anthropic Python SDKs, the Prometheus Python client and Hugging
# Face's tokenizers package into a virtualenv under target/ and runs the interop checks against
# `drover mock`, drover's live metrics against the client's parser, and synthetic prompts against
# the package's token count. `--install-only` stops after the virtualenv is ready.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="$root/target/interop-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'openai>=1.40,<3' 'anthropic>=0.40,<1' \
  'prometheus_client>=0.20,<1' 'tokenizers>=0.20,<1'
# `.ci/run` installs while cargo builds, then runs the checks.
if [ "${1:-}" = "--install-only" ]; then exit 0; fi
# `.ci/run` passes the binary `cargo test` built (DROVER_BIN); run alone, this builds one.
drover="${DROVER_BIN:-}"
if [ -z "$drover" ]; then
  cargo build --quiet --bin drover
  drover="$root/target/debug/drover"
fi
"$venv/bin/python" "$root/tests/interop/openai_sdk.py" "$drover"
"$venv/bin/python" "$root/tests/interop/anthropic_sdk.py" "$drover"
"$venv/bin/python" "$root/tests/interop/live_metrics.py" "$drover"
"$venv/bin/python" "$root/tests/interop/tokenizer_lengths.py" "$drover"
