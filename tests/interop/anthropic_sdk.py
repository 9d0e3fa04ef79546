"""Interop with the official `anthropic` Python SDK: drives `drover mock`'s `/v1/messages`
through the SDK, streaming and not, and checks that the SDK parses its text, usage, stop reasons
and event sequence, and reports a wrong key as an authentication error.

Usage: python3 anthropic_sdk.py PATH_TO_DROVER_BINARY
Loopback only; every call has a timeout and the mock is stopped on exit.
"""

import sys

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
    finally:
        proc.terminate()
        proc.wait(timeout=5)

    passed = sum(1 for _, ok in checks if ok)
    failed = len(checks) - passed
    print(f"interop (anthropic): {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 else 1)


if __name__ == "__main__":
    main()
