"""A custom Runpod serverless worker, tested on localpod before any image is built.

This file is what a team would put in its worker image (``CMD ["python", "-u", "handler.py"]``).
On localpod it runs as a real worker process under the runpod SDK, with the same queue, scaler and
billing as any endpoint:

    localpod serve --handler myteam/word-stats=examples/word_stats_handler.py

then create a template whose image is ``myteam/word-stats:0.1`` (any tag) and an endpoint on it,
and send jobs with the runpod SDK, curl or rpbook (docs/custom-workers.md walks through it).

Input: ``{"text": "...", "stream": false}``. Output: the word count and the longest words; with
``"stream": true`` the handler is a generator that yields one item per sentence (the SDK streams each
to ``/stream`` and, with ``return_aggregate_stream``, returns them all as the job's output). An empty
text returns ``{"error": ...}``: the SDK turns that into a FAILED job.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import runpod

WORD = re.compile(r"[A-Za-z']+")


def stats(text: str) -> dict[str, Any]:
    words = WORD.findall(text)
    longest = sorted({w.lower() for w in words}, key=lambda w: (-len(w), w))[:3]
    return {"words": len(words), "longest": longest}


def handler(job: dict[str, Any]) -> dict[str, Any] | Iterator[dict[str, Any]]:
    text = str(job["input"].get("text", ""))
    if not text.strip():
        return {"error": "input.text is empty: send {'input': {'text': '...'}}"}
    return stats(text)


def streaming_handler(job: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One item per sentence. A generator handler: every job streams, whatever its input."""
    text = str(job["input"].get("text", ""))
    for sentence in filter(None, (s.strip() for s in re.split(r"(?<=[.!?])\s+", text))):
        yield {"sentence": sentence, **stats(sentence)}


if __name__ == "__main__":
    import os

    if os.environ.get("WORD_STATS_STREAM") == "1":  # a template env variable picks the generator
        runpod.serverless.start({"handler": streaming_handler, "return_aggregate_stream": True})
    else:
        runpod.serverless.start({"handler": handler})
