"""Interop with the official `anthropic` Python SDK: drives `drover mock`'s `/v1/messages`
through the SDK, streaming and not, and checks that the SDK parses its text, usage, stop reasons
and event sequence, and reports a wrong key as an authentication error; then its Message Batches
(`client.messages.batches` create, retrieve, results, list and cancel).

Usage: python3 anthropic_sdk.py PATH_TO_DROVER_BINARY
Loopback only; every call has a timeout and the mock is stopped on exit.
"""

import sys
import time

import anthropic
from anthropic import Anthropic

from openai_sdk import KEY, start_mock


def main():
    binary = sys.argv[1]
    proc, base_url = start_mock(binary)
    # The SDK appends /v1/messages to its base URL.
    root = base_url.removesuffix("/v1")
    client = Anthropic(base_url=root, api_key=KEY, timeout=10, max_retries=0)
    messages = [{"role": "user", "content": "say something about load testing"}]
    checks = []

    def check(name, condition, detail=""):
        checks.append((name, bool(condition)))
        print(f"{'ok  ' if condition else 'FAIL'} {name} {detail}")

    try:
        reply = client.messages.create(
            model="mock-llm", max_tokens=5, system="Be brief.", messages=messages)
        check("messages non-stream text", len(reply.content[0].text.split()) == 5,
              repr(reply.content[0].text))
        check("messages non-stream usage",
              reply.usage.output_tokens == 5 and reply.usage.input_tokens > 0, repr(reply.usage))
        check("messages non-stream stop_reason", reply.stop_reason == "max_tokens",
              repr(reply.stop_reason))

        with client.messages.stream(model="mock-llm", max_tokens=100, messages=messages) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        check("messages stream text", len(text.split()) == 12, repr(text))
        check("messages stream usage", final.usage.output_tokens == 12
              and final.usage.input_tokens > 0, repr(final.usage))
        check("messages stream stop_reason", final.stop_reason == "end_turn",
              repr(final.stop_reason))

        events = [event.type for event in client.messages.create(
            model="mock-llm", max_tokens=3, messages=messages, stream=True)]
        check("messages stream events", events[0] == "message_start"
              and events[-1] == "message_stop"
              and events.count("content_block_delta") == 3
              and "message_delta" in events, repr(events))

        try:
            Anthropic(base_url=root, api_key="wrong", timeout=10, max_retries=0).messages.create(
                model="mock-llm", max_tokens=5, messages=messages)
            check("messages wrong key", False, "no error raised")
        except anthropic.AuthenticationError as error:
            check("messages wrong key", error.status_code == 401)

        requests = [{"custom_id": f"req-{i}", "params": {
            "model": "mock-llm", "max_tokens": 4 + i, "messages": messages}} for i in range(3)]
        batch = client.messages.batches.create(requests=requests)
        check("batches create", batch.type == "message_batch"
              and batch.processing_status == "in_progress"
              and batch.request_counts.processing == 3 and batch.results_url is None, repr(batch))
        deadline = time.monotonic() + 10
        while batch.processing_status != "ended" and time.monotonic() < deadline:
            time.sleep(0.1)
            batch = client.messages.batches.retrieve(batch.id)
        check("batches retrieve ended", batch.processing_status == "ended"
              and batch.request_counts.succeeded == 3 and batch.ended_at is not None
              and batch.results_url is not None, repr(batch))
        results = {entry.custom_id: entry for entry in client.messages.batches.results(batch.id)}
        check("batches results", sorted(results) == ["req-0", "req-1", "req-2"]
              and all(entry.result.type == "succeeded" for entry in results.values()),
              repr(results))
        message = results["req-1"].result.message
        check("batches result message", message.usage.output_tokens == 5
              and message.usage.input_tokens > 0 and message.stop_reason == "max_tokens"
              and len(message.content[0].text.split()) == 5, repr(message))
        listed = [b.id for b in client.messages.batches.list()]
        check("batches list", batch.id in listed, repr(listed))

        slow = client.messages.batches.create(requests=[{"custom_id": "late", "params": {
            "model": "mock-llm", "max_tokens": 4, "messages": messages}}])
        cancelled = client.messages.batches.cancel(slow.id)
        check("batches cancel", cancelled.processing_status == "canceling"
              and cancelled.cancel_initiated_at is not None, repr(cancelled))
        ended = client.messages.batches.retrieve(slow.id)
        late = list(client.messages.batches.results(slow.id))
        check("batches cancelled results", ended.processing_status == "ended"
              and ended.request_counts.canceled == 1 and late[0].result.type == "canceled",
              repr((ended, late)))

        try:
            client.messages.batches.create(requests=[{"custom_id": "no spaces allowed",
                                                      "params": requests[0]["params"]}])
            check("batches bad custom_id", False, "no error raised")
        except anthropic.BadRequestError as error:
            check("batches bad custom_id", "custom_id" in str(error), str(error))
    finally:
        proc.terminate()
        proc.wait(timeout=5)

    passed = sum(1 for _, ok in checks if ok)
    failed = len(checks) - passed
    print(f"interop (anthropic): {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
