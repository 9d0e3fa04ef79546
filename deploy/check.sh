#!/usr/bin/env bash
# The deployment check CI runs: installs the Helm library (helm-python-sdk, which carries Helm
# itself: no helm binary, no cluster) and kubernetes-validate (the Kubernetes API schemas) into a
# virtualenv under target/, then renders and validates the chart and the plain manifests
# (deploy/render.py --check). `--install-only` stops after the virtualenv is ready.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/deploy-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 PyYAML==6.0.3
# `.ci/run` installs while cargo builds, then runs the check.
if [ "${1:-}" = "--install-only" ]; then exit 0; fi
# Helm's library logs each `required` value it finds missing; the check asserts those refusals.
"$venv/bin/python" deploy/render.py --check 2> >(grep -v 'WARN missing required values' >&2)
