#!/usr/bin/env python3
"""Renders the Helm chart (deploy/helm/drover) into the plain manifests (deploy/kubernetes/),
and checks both, offline.

    python3 deploy/render.py           # write deploy/kubernetes/*.yaml from the chart
    python3 deploy/render.py --check   # what CI runs (deploy/check.sh installs the packages)

--check fails when the committed plain manifests differ from the chart rendered with the example
values, when `helm lint` reports an error, when a rendering (the example values and the variants
below) does not validate against the Kubernetes API schemas of 1.30 and of the newest version
kubernetes-validate knows (strict: unknown fields are errors), when a wiring rule below is
broken, or when bad values are not refused with a message that names them.

Rendering uses the Helm library itself (the helm-python-sdk package carries it; no helm binary
and no cluster are needed).
"""

import difflib
import pathlib
import sys

import helm_python
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent
CHART = ROOT / "helm" / "drover"
PLAIN = ROOT / "kubernetes"
RELEASE = "drover"
# The values the plain manifests are rendered with: a run must be given its folder and start.
EXAMPLE = {"run": {"id": "run-example", "startAt": "2026-11-25T16:00:00Z"}}
KUBERNETES_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]
HEADER = (
    "# Generated from the Helm chart deploy/helm/drover (release \"drover\", run.id=run-example,\n"
    "# run.startAt=2026-11-25T16:00:00Z) by `python3 deploy/render.py`: edit the chart, then run it.\n"
)


def merge(base, extra):
    """`extra` laid over `base`, recursively (as `--set` does)."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def render(values):
    """{template file name: rendered text} of the manifests (NOTES.txt left out, empty ones too)."""
    chart = helm_python.Chart.load(CHART)
    rendered = chart.render(chart.merge_values(merge(EXAMPLE, values)), name=RELEASE, namespace="default")
    out = {}
    for path, text in rendered.items():
        name = pathlib.PurePosixPath(path).name
        if name.endswith(".yaml") and text.strip():
            out[name] = text.lstrip("\n")
    return out


def write():
    for old in PLAIN.glob("*.yaml"):
        old.unlink()
    for name, text in sorted(render({}).items()):
        (PLAIN / name).write_text(HEADER + text)
        print(f"wrote {PLAIN / name}")


def documents(manifests):
    for name, text in sorted(manifests.items()):
        for doc in yaml.safe_load_all(text):
            if doc:
                yield name, doc


def validate(label, manifests, failures):
    for version in KUBERNETES_VERSIONS:
        for name, doc in documents(manifests):
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                failures.append(f"{label}: {name} is not a valid {doc.get('kind')} for Kubernetes {version}: {error.message}")
            except kubernetes_validate.SchemaNotFoundError as error:
                failures.append(f"{label}: {name}: no schema for Kubernetes {version}: {error}")


def by_kind(manifests):
    return {f"{doc['kind']}/{doc['metadata']['name']}": doc for _, doc in documents(manifests)}


def check_wiring(label, manifests, shards, failures):
    """The rules the workers and the merge rely on, for one rendering."""
    objects = by_kind(manifests)
    workers = objects.get(f"Job/{RELEASE}-workers")
    merge_job = objects.get(f"Job/{RELEASE}-merge")
    if workers is None or merge_job is None:
        failures.append(f"{label}: the workers or the merge Job is missing: {sorted(objects)}")
        return
    spec = workers["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    count = int(env["DROVER_SHARD_COUNT"]["value"])
    if not (spec["completions"] == spec["parallelism"] == count == shards):
        failures.append(f"{label}: completions, parallelism and DROVER_SHARD_COUNT differ from shards={shards}")
    if spec.get("backoffLimitPerIndex") != 0 or "backoffLimit" in spec:
        failures.append(f"{label}: a failed worker must fail only its own index, not retried")
    rules = spec["podFailurePolicy"]["rules"]
    fail_job = [r for r in rules if r["action"] == "FailJob"]
    if len(fail_job) != 1 or sorted(fail_job[0]["onExitCodes"]["values"]) != [2, 3, 4, 5] or fail_job[0]["onExitCodes"]["containerName"] != container["name"]:
        failures.append(f"{label}: the podFailurePolicy must fail the Job on exits 2, 3, 4, 5 of the drover container: {rules}")
    if "--exit-zero-on-verdict" not in container["args"]:
        failures.append(f"{label}: workers must exit 0 on a verdict (--exit-zero-on-verdict)")
    merge_args = merge_job["spec"]["template"]["spec"]["containers"][0]["args"]
    for flag in ["--wait", "--report", "--archive", "--max-start-skew"]:
        if flag not in merge_args:
            failures.append(f"{label}: the merge Job lacks {flag}")
    if merge_job["spec"].get("backoffLimit") != 0:
        failures.append(f"{label}: the merge Job must fail on its verdict, not retry")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for job in (workers, merge_job)
        for v in job["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    if len(claims) != 1:
        failures.append(f"{label}: workers and merge use different volumes: {claims}")


def check_refused(label, values, needle, failures):
    """Rendering with `values` must fail with a message containing `needle`."""
    try:
        render(values)
    except helm_python.HelmError as error:
        if needle not in str(error):
            failures.append(f"{label}: refused, but the message does not say {needle!r}: {error}")
        return
    failures.append(f"{label}: rendered although the values are wrong")


def check():
    failures = []
    committed = {p.name: p.read_text() for p in PLAIN.glob("*.yaml")}
    expected = {name: HEADER + text for name, text in render({}).items()}
    if committed != expected:
        for name in sorted(set(committed) | set(expected)):
            diff = difflib.unified_diff(
                committed.get(name, "").splitlines(True),
                expected.get(name, "").splitlines(True),
                f"deploy/kubernetes/{name} (committed)",
                f"deploy/kubernetes/{name} (rendered)",
            )
            sys.stdout.writelines(diff)
        failures.append("deploy/kubernetes/ differs from the chart: run `python3 deploy/render.py`")

    report = helm_python.lint(CHART, merge(helm_python.Chart.load(CHART).values, EXAMPLE), strict=False)
    for message in report["messages"]:
        if message["severity"] >= 3:
            failures.append(f"helm lint: {message['path']}: {message['error']}")
    failures.extend(f"helm lint: {error}" for error in report["errors"])

    variants = {
        "example values": ({}, 4),
        "8 shards, no key, own claim, no fetch pod": (
            {
                "shards": 8,
                "apiKey": {"secret": ""},
                "storage": {"existingClaim": "my-results"},
                "fetch": {"enabled": False},
                "worker": {"extraArgs": ["--export-requests"]},
                "extraEnv": [{"name": "ANTHROPIC_API_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "anthropic"}}}],
            },
            8,
        ),
        "one shard, a storage class": ({"shards": 1, "storage": {"storageClass": "nfs", "accessMode": "ReadWriteOnce"}}, 1),
    }
    for label, (values, shards) in variants.items():
        manifests = render(values)
        validate(label, manifests, failures)
        check_wiring(label, manifests, shards, failures)
        print(f"{label}: {len(manifests)} manifests rendered and validated against Kubernetes {', '.join(KUBERNETES_VERSIONS)}")
    validate("deploy/kubernetes", committed, failures)

    check_refused("no run.id", {"run": {"id": ""}}, "run.id is required", failures)
    check_refused("no run.startAt", {"run": {"startAt": ""}}, "run.startAt is required", failures)
    check_refused("shards = 0", {"shards": 0}, "shards", failures)
    check_refused("an unknown pull policy", {"image": {"pullPolicy": "Sometimes"}}, "pullPolicy", failures)

    for failure in failures:
        print(f"FAIL {failure}")
    print(f"deploy check: {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    if sys.argv[1:]:
        sys.exit("usage: python3 deploy/render.py [--check]")
    write()
