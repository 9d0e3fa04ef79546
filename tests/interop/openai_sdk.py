"""Interop with the official `openai` Python SDK: drives `drover mock` through the SDK, streaming
and not, and checks that the SDK parses content, usage, finish reasons, model lists and errors;
the Responses API (whole, streamed with reasoning, incomplete), legacy completions, embeddings
(base64 and float) and Azure OpenAI's request shape; and that its Batch API calls (file upload,
batch create, retrieve, file content) work.

Usage: python3 openai_sdk.py PATH_TO_DROVER_BINARY
Loopback only; every call has a timeout and the mock is stopped on exit.
"""

import io
import json
import os
import subprocess
import sys
import time

import openai
from openai import OpenAI

KEY = "sk-interop-key-123456"


def start_mock(binary):
    env = dict(os.environ, DROVER_INTEROP_KEY=KEY)
    proc = subprocess.Popen(
        [binary, "mock", "--addr", "127.0.0.1:0", "--ttft", "5ms", "--itl", "1ms",
         "--output-tokens", "12", "--api-key-env", "DROVER_INTEROP_KEY",
         "--batch-processing-time", "300ms"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline().strip()
    prefix = "drover mock listening on "
    if not line.startswith(prefix):
        proc.kill()
        raise SystemExit(f"drover mock did not start: {line!r} {proc.stderr.read()!r}")
    return proc, line[len(prefix):]


def main():
    binary = sys.argv[1]
    proc, base_url = start_mock(binary)
    client = OpenAI(base_url=base_url, api_key=KEY, timeout=10, max_retries=0)
    messages = [{"role": "user", "content": "say something about load testing"}]
    checks = []

    def check(name, condition, detail=""):
        checks.append((name, bool(condition)))
        print(f"{'ok  ' if condition else 'FAIL'} {name} {detail}")

    try:
        reply = client.chat.completions.create(model="mock-llm", messages=messages, max_tokens=5)
        check("non-stream content", len(reply.choices[0].message.content.split()) == 5,
              repr(reply.choices[0].message.content))
        check("non-stream usage", reply.usage.completion_tokens == 5
              and reply.usage.prompt_tokens == 5 and reply.usage.total_tokens == 10,
              repr(reply.usage))
        check("non-stream finish_reason", reply.choices[0].finish_reason == "length")

        stream = client.chat.completions.create(
            model="mock-llm", messages=messages, stream=True,
            stream_options={"include_usage": True})
        content, usage, roles, finish = "", None, [], None
        for chunk in stream:
            if chunk.choices:
                delta = chunk.choices[0].delta
                content += delta.content or ""
                if delta.role:
                    roles.append(delta.role)
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage:
                usage = chunk.usage
        check("stream content", len(content.split()) == 12, repr(content))
        check("stream role prelude", roles == ["assistant"], repr(roles))
        check("stream usage", usage is not None and usage.completion_tokens == 12, repr(usage))
        check("stream finish_reason", finish == "stop", repr(finish))

        plain = client.chat.completions.create(model="mock-llm", messages=messages, stream=True)
        chunks = [c for c in plain]
        check("stream without usage", all(c.usage is None for c in chunks) and len(chunks) == 14,
              f"{len(chunks)} chunks")

        # The Responses API, whole and streamed, with a reasoning phase (x-mock-reasoning-tokens).
        response = client.responses.create(model="mock-llm", input="say something",
                                           instructions="be brief", max_output_tokens=6,
                                           extra_headers={"x-mock-output-tokens": "6"})
        check("responses output_text", len(response.output_text.split()) == 6
              and response.status == "completed", repr(response.output_text))
        check("responses usage", response.usage.output_tokens == 6
              and response.usage.input_tokens == 4, repr(response.usage))
        events, text, completed = [], "", None
        with client.responses.stream(model="mock-llm", input="say something",
                                     max_output_tokens=8,
                                     extra_headers={"x-mock-reasoning-tokens": "3",
                                                    "x-mock-output-tokens": "8"}) as stream:
            for event in stream:
                events.append(event.type)
                if event.type == "response.output_text.delta":
                    text += event.delta
            completed = stream.get_final_response()
        check("responses stream deltas", len(text.split()) == 5 and events[0] == "response.created"
              and events[-1] == "response.completed", repr(events[:3]))
        check("responses stream reasoning", "response.reasoning_summary_text.delta" in events
              and completed.usage.output_tokens_details.reasoning_tokens == 3, repr(completed.usage))
        check("responses stream sequence", completed.output_text == text, repr(completed.output_text))
        incomplete = client.responses.create(model="mock-llm", input="x", max_output_tokens=2,
                                             extra_headers={"x-mock-output-tokens": "5"})
        check("responses incomplete", incomplete.status == "incomplete"
              and incomplete.incomplete_details.reason == "max_output_tokens", repr(incomplete.status))

        # Legacy completions, whole and streamed.
        legacy = client.completions.create(model="mock-llm", prompt="say something", max_tokens=4)
        check("completions text", len(legacy.choices[0].text.split()) == 4
              and legacy.choices[0].finish_reason == "length" and legacy.usage.completion_tokens == 4,
              repr(legacy.choices[0].text))
        pieces = [c.choices[0].text for c in client.completions.create(
            model="mock-llm", prompt="say something", max_tokens=3, stream=True) if c.choices]
        check("completions stream", len("".join(pieces).split()) == 3, repr(pieces))

        # Embeddings: the SDK asks for base64 by default and decodes it.
        embedded = client.embeddings.create(model="mock-embed", input=["one two", "three"],
                                            dimensions=16)
        check("embeddings vectors", len(embedded.data) == 2
              and all(len(d.embedding) == 16 for d in embedded.data)
              and abs(sum(x * x for x in embedded.data[0].embedding) - 1.0) < 1e-3,
              repr(len(embedded.data)))
        check("embeddings usage", embedded.usage.prompt_tokens == 3, repr(embedded.usage))
        floats = client.embeddings.create(model="mock-embed", input="one", encoding_format="float")
        check("embeddings floats", len(floats.data[0].embedding) == 8)

        # Azure OpenAI's shape: deployment path, api-version, key in api-key.
        azure = openai.AzureOpenAI(azure_endpoint=base_url.removesuffix("/v1"), api_key=KEY,
                                   api_version="2024-10-21", timeout=10, max_retries=0)
        reply = azure.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=3)
        check("azure chat", len(reply.choices[0].message.content.split()) == 3)

        models = client.models.list()
        check("models list", any(m.id == "mock-llm" for m in models.data))

        try:
            OpenAI(base_url=base_url, api_key="sk-wrong", timeout=10, max_retries=0) \
                .chat.completions.create(model="mock-llm", messages=messages)
            check("wrong key is rejected", False)
        except openai.AuthenticationError as error:
            check("wrong key is rejected", error.status_code == 401)

        try:
            client.chat.completions.create(model="mock-llm", messages=messages,
                                           extra_headers={"x-mock-status": "429"})
            check("429 is a rate limit error", False)
        except openai.RateLimitError as error:
            check("429 is a rate limit error", error.response.headers.get("retry-after") == "1")

        lines = "".join(
            json.dumps({"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
                        "body": {"model": "mock-llm", "messages": messages, "max_tokens": 3}}) + "\n"
            for i in range(3))
        uploaded = client.files.create(file=("input.jsonl", io.BytesIO(lines.encode())),
                                       purpose="batch")
        check("batch file upload", uploaded.id.startswith("file-") and uploaded.purpose == "batch",
              repr(uploaded.id))
        batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                      completion_window="24h")
        check("batch create", batch.status == "validating" and batch.request_counts.total == 3,
              repr(batch.status))
        deadline = time.monotonic() + 10
        while batch.status not in ("completed", "failed", "expired", "cancelled") \
                and time.monotonic() < deadline:
            time.sleep(0.1)
            batch = client.batches.retrieve(batch.id)
        check("batch completes", batch.status == "completed" and batch.completed_at is not None
              and batch.request_counts.completed == 3, repr(batch.status))
        output = client.files.content(batch.output_file_id).text
        results = [json.loads(line) for line in output.splitlines() if line.strip()]
        check("batch output lines", sorted(r["custom_id"] for r in results)
              == ["req-0", "req-1", "req-2"]
              and all(r["response"]["body"]["usage"]["completion_tokens"] == 3 for r in results),
              repr(output[:200]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()

    passed = sum(1 for _, ok in checks if ok)
    failed = len(checks) - passed
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
