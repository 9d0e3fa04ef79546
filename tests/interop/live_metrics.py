"""drover's live metrics (`drover run --metrics-addr`), read by the official Prometheus Python
client's text parser during a 20 s run against an embedded mock that fails some requests: every
scrape parses, counters never go down, requests are seen in flight, and the last scrape after the
run's results are written shows the same counts as results.json (requests by class and outcome,
errors by class, warm-up requests, TTFT and E2E samples, output tokens).

Usage: python3 live_metrics.py PATH_TO_DROVER_BINARY
Loopback only; the run is bounded (20 s of load, 90 s in all) and stopped on exit.
"""

import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

SCENARIO = """
name = "live-metrics"
seed = 21

[[targets]]
name = "mock"
model = "mock-llm"

[targets.mock]
ttft = "20ms"
itl = "4ms"
output_tokens = 24

[targets.mock.faults]
http_500 = 0.05
http_429 = 0.03

[[classes]]
name = "chat"
weight = 3
input_tokens = 64
max_tokens = 24

[[classes]]
name = "long"
input_tokens = 256
max_tokens = 24

[load]
kind = "open"
arrival = "poisson"
rate = 25
duration = "20s"
warmup = "2s"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(text):
    """{(name, frozenset(labels)): value} of every sample on the page."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def main():
    binary = sys.argv[1]
    checks = []

    def check(name, condition, detail=""):
        checks.append((name, bool(condition)))
        if not condition:
            print(f"FAIL {name}: {detail}")

    with tempfile.TemporaryDirectory() as tmp:
        scenario = os.path.join(tmp, "live.toml")
        with open(scenario, "w") as f:
            f.write(SCENARIO)
        port = free_port()
        proc = subprocess.Popen(
            [binary, "run", scenario, "--no-progress", "--out", os.path.join(tmp, "out"),
             "--metrics-addr", f"127.0.0.1:{port}", "--metrics-linger", "5s"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        scrapes, errors, final, results = [], [], None, None
        deadline = time.time() + 90
        try:
            while time.time() < deadline:
                done = [r for r in (json.load(open(p)) for p in glob.glob(
                    os.path.join(tmp, "out", "*", "results.json"))) if r["status"] != "in_progress"]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                        text = r.read().decode()
                except OSError as error:
                    errors.append(str(error))
                    if proc.poll() is not None:
                        break
                    time.sleep(0.2)
                    continue
                try:
                    page = samples(text)
                except Exception as error:  # the parser refused the page
                    check("every page parses", False, f"{error}: {text[:300]!r}")
                    break
                scrapes.append(page)
                if done:
                    # Scraped after the results were written: the run's last word.
                    final, results = page, done[0]
                    break
                time.sleep(1)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        stderr = proc.stderr.read()

    check("the run exits 0", code == 0, stderr[-2000:])
    check("at least 15 scrapes during the run", len(scrapes) >= 15, f"{len(scrapes)}; {errors[-3:]}")
    check("the last scrape follows the results", final is not None and results is not None)
    counters = [key for key in (scrapes[-1] if scrapes else {})
                if key[0].endswith("_total") or key[0].endswith("_count")]
    went_down = [(key, a[key], b[key]) for a, b in zip(scrapes, scrapes[1:])
                 for key in counters if key in a and key in b and b[key] < a[key]]
    check("counters never go down", not went_down, repr(went_down[:3]))
    in_flight = [page.get(("drover_requests_in_flight", frozenset({("target", "mock")})), 0)
                 for page in scrapes]
    check("requests are seen in flight", max(in_flight, default=0) > 0, repr(in_flight))
    if final is None or results is None:
        print(f"live metrics: {sum(1 for _, ok in checks if ok)} passed, "
              f"{sum(1 for _, ok in checks if not ok)} failed")
        sys.exit(1)

    target = results["targets"][0]
    for cls in target["classes"]:
        requests = [(dict(labels), value) for (name, labels), value in final.items()
                    if name == "drover_requests_total" and dict(labels)["class"] == cls["name"]]
        ok = sum(v for labels, v in requests if labels["outcome"] == "ok")
        failed = sum(v for labels, v in requests if labels["outcome"] != "ok")
        counts = cls["requests"]
        check(f"{cls['name']}: ok requests equal results' succeeded", ok == counts["succeeded"],
              f"{ok} vs {counts['succeeded']}")
        check(f"{cls['name']}: failed requests equal results' failed", failed == counts["failed"],
              f"{failed} vs {counts['failed']}")
        by_class = {labels["outcome"]: v for labels, v in requests if labels["outcome"] != "ok"}
        check(f"{cls['name']}: errors by class equal results' errors",
              by_class == {k: float(v) for k, v in cls["errors"].items()},
              f"{by_class} vs {cls['errors']}")
    summary = target["summary"]
    check("some requests failed, as the mock's faults make them", summary["requests"]["failed"] > 0,
          repr(summary["requests"]))
    label = frozenset({("target", "mock")})
    for name, expected in [
        ("drover_warmup_requests_total", summary["requests"]["warmup_excluded"]),
        ("drover_output_tokens_total", summary["tokens"]["output"]),
        ("drover_ttft_seconds_count", summary["latency_ms"]["ttft"]["count"]),
        ("drover_e2e_seconds_count", summary["latency_ms"]["e2e"]["count"]),
    ]:
        value = final.get((name, label))
        check(f"{name} equals results.json", value == expected, f"{value} vs {expected}")
    check("nothing is left in flight", final.get(("drover_requests_in_flight", label)) == 0,
          repr(final.get(("drover_requests_in_flight", label))))

    passed = sum(1 for _, ok in checks if ok)
    failed = len(checks) - passed
    print(f"live metrics: {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
