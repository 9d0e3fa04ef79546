"""Synthetic prompts exact in a model's own tokenizer, counted by Hugging Face's own `tokenizers`
Python package: drover runs a scenario with `tokenizer = { file = ... }` (the test tokenizer under
tests/fixtures/tokenizer) against a small OpenAI-compatible server started here, which records
every user message and answers without usage; each prompt must be exactly 1, 7, 64, 512 or 2,048
tokens by the package's count, and drover's results must say that the answers were counted with
that file.

Usage: python3 tokenizer_lengths.py PATH_TO_DROVER_BINARY
Loopback only; 50 requests, bounded by a 60 s timeout.
"""

import collections
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading

from tokenizers import Tokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "tokenizer", "tokenizer.json")
LENGTHS = [1, 7, 64, 512, 2048]
RECEIVED = []
LOCK = threading.Lock()


class Server(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = json.loads(self.rfile.read(length))
        text = body["messages"][-1]["content"]
        # drover's preflight request, sent once before the load, is not a synthetic prompt.
        if text != "Reply with the word OK.":
            with LOCK:
                RECEIVED.append(text)
        answer = json.dumps({
            "id": "chatcmpl-1", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": " request latency tokens"}}],
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def main():
    drover = sys.argv[1]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    classes = "".join(
        f'[[classes]]\nname = "p{n}"\ninput_tokens = {n}\nmax_tokens = 16\n\n' for n in LENGTHS
    )
    scenario = f"""
name = "tokenizer-lengths"
[[targets]]
name = "server"
base_url = "http://127.0.0.1:{server.server_address[1]}/v1"
model = "m"
mode = "complete"
tokenizer = {{ file = {json.dumps(TOKENIZER)} }}

{classes}
[load]
kind = "closed"
users = 2
requests = 50
"""
    failures = 0
    checks = 0
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "s.toml")
        with open(path, "w") as f:
            f.write(scenario)
        run = subprocess.run(
            [drover, "run", path, "--out", os.path.join(scratch, "out"), "--no-progress"],
            capture_output=True, text=True, timeout=60,
        )
        if run.returncode != 0:
            print(run.stdout, run.stderr)
            print("tokenizer interop: drover run failed")
            sys.exit(1)
        [folder] = os.listdir(os.path.join(scratch, "out"))
        with open(os.path.join(scratch, "out", folder, "results.json")) as f:
            results = json.load(f)
    server.shutdown()

    def check(name, ok, detail=""):
        nonlocal failures, checks
        checks += 1
        print(("ok   " if ok else "FAIL ") + name + (f": {detail}" if detail else ""))
        failures += 0 if ok else 1

    tokenizer = Tokenizer.from_file(TOKENIZER)
    counts = collections.Counter(
        len(tokenizer.encode(text, add_special_tokens=False).ids) for text in RECEIVED
    )
    check("50 prompts received", len(RECEIVED) == 50, str(len(RECEIVED)))
    check(
        "every prompt is 1, 7, 64, 512 or 2048 tokens by the tokenizers package",
        set(counts) <= set(LENGTHS),
        str(sorted(counts.items())),
    )
    check("every length was sent", set(counts) == set(LENGTHS), str(sorted(counts)))
    target = results["targets"][0]
    tokens = target["summary"]["tokens"]
    check("answers counted with the file", tokens["source_tokenizer"] == 50, json.dumps(tokens))
    # " request latency tokens": three tokens of the test vocabulary, by the package too.
    answer = len(tokenizer.encode(" request latency tokens", add_special_tokens=False).ids)
    check("output tokens as the package counts them", tokens["output"] == 50 * answer,
          f"{tokens['output']} against {50 * answer}")
    check("results name the tokenizer", "tokenizer.json" in target["tokenizer"]["name"],
          target["tokenizer"]["name"])
    print(f"tokenizer interop: {checks - failures} passed, {failures} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
