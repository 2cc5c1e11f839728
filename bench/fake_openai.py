"""Milliseconds per request to ``FakeOpenAIServer`` through the real ``openai`` client, on one
kept-alive connection and on a fresh connection per request.

Run: ``python bench/fake_openai.py [requests]``. Prints the median and the 90th percentile of
each, and the load average (the figures move with it). Before the server wrote its replies in
one send with TCP_NODELAY, a kept-alive request cost 44-116 ms (the client's delayed ACK
between the headers and the body); it should now be about a millisecond.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import openai

from turnout._fake_openai import FakeOpenAIServer


def _time(client: openai.OpenAI, count: int) -> list[float]:
    spent = []
    for _ in range(count):
        start = time.perf_counter()
        client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}])
        spent.append((time.perf_counter() - start) * 1000)
    return spent


def _report(label: str, spent: list[float]) -> None:
    p90 = statistics.quantiles(spent, n=10)[-1]
    print(f"{label:<28} median {statistics.median(spent):7.2f} ms   p90 {p90:7.2f} ms")


def main(count: int = 200) -> None:
    with FakeOpenAIServer() as server:
        kept = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        _time(kept, 5)  # warm up: imports, the first connection
        _report("kept-alive connection", _time(kept, count))
        kept.close()
        fresh = []
        for _ in range(count // 4):
            client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
            fresh += _time(client, 1)
            client.close()
        _report("fresh connection", fresh)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average: {load}  (cores: {os.cpu_count()})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
