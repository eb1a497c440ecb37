"""localpod's deterministic stand-in for a language model.

No real LLM can run on a machine without a GPU, yet the runbooks, benchmarks and tests need a worker
that answers like one: replies that respond to the prompt, token counts, ``max_tokens`` cut-offs,
stop strings and token-by-token streaming with realistic latency. This module produces such replies
from a few intent rules and a fixed sentence corpus, choosing sentences with a hash of the prompt and
the seed, so the same request always gives the same text (tests can compare outputs) while
different prompts give different, on-topic answers. Clients can tell it apart from a real model by
:data:`SYSTEM_FINGERPRINT`, which the vLLM emulation reports in every response.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from localpod.serverless.backends.base import JobContext

SYSTEM_FINGERPRINT = "localpod-deterministic-stand-in"
"""Shown as ``system_fingerprint`` in responses: the text was written by this module, not an LLM."""

MODEL_NOTE = "localpod deterministic stand-in text model (no real LLM runs here)"
"""A longer label for model cards."""

TOKEN_RE = re.compile(r"\s*(?:\w+|[^\w\s])|\s+")
"""One token = a word or one punctuation mark, with the whitespace before it folded in; a trailing
run of whitespace is a token of its own. ``"".join(tokenize(t)) == t`` for every text."""

CHAT_TOKENS_PER_MESSAGE = 4
"""Chat-template overhead per message (role markers), as real chat templates add."""
CHAT_TOKENS_PER_REPLY = 3
"""Overhead of the assistant turn header that ends every chat prompt."""


def tokenize(text: str) -> list[str]:
    """Split text into the stand-in model's tokens (used for usage counts and streaming)."""
    return TOKEN_RE.findall(text)


def count_tokens(text: str) -> int:
    """Number of tokens of ``text``."""
    return len(TOKEN_RE.findall(text))


def message_text(content: object) -> str:
    """The text of an OpenAI message ``content``: a string, or a list of parts of which the
    ``{"type": "text", "text": ...}`` ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(parts)
    return ""


def chat_prompt_tokens(messages: Sequence[dict]) -> int:
    """Prompt tokens of a chat request: message texts plus the chat template's overhead."""
    total = CHAT_TOKENS_PER_REPLY
    for message in messages:
        total += count_tokens(message_text(message.get("content"))) + CHAT_TOKENS_PER_MESSAGE
    return total


def last_user_text(messages: Sequence[dict]) -> str:
    """What the reply answers: the last user message (else the last message of any role)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message.get("content"))
    return message_text(messages[-1].get("content")) if messages else ""


# -- replies -----------------------------------------------------------------------------------

_TOPIC_SENTENCES = (
    "A good way to approach {t} is to start with the basic ideas and build up from there.",
    "The details of {t} depend a lot on context, so it helps to be specific.",
    "Many people find {t} easier to understand once they see a concrete example.",
    "When thinking about {t}, it is worth separating the well-established facts from the open questions.",
    "There is a lot of good material on {t}, and comparing a few sources gives a balanced picture.",
    "The most important point about {t} is usually the simplest one.",
)

_GENERAL_SENTENCES = (
    "It also helps to look at a concrete example before generalizing.",
    "In practice, the right answer depends on your goals and constraints.",
    "If you share more context, I can give a more specific answer.",
    "Breaking a problem into smaller steps often makes it much easier to handle.",
    "One common mistake is to skip the fundamentals and jump straight to the advanced material.",
    "It is worth checking any important detail against a reliable source.",
    "Small experiments are a cheap way to test an idea before committing to it.",
    "Clear definitions prevent a lot of confusion later on.",
    "Trade-offs are normal, and naming them explicitly makes decisions easier.",
    "A short summary at the end helps the main points stick.",
    "Understanding usually grows in layers, so patience pays off.",
    "Asking why a step is needed often reveals the idea behind it.",
    "Good notes make it easy to pick the work up again later.",
    "Feedback from someone else can reveal gaps that are hard to see alone.",
    "It is fine to revise an early answer once more information is available.",
    "Simple explanations are often the most useful ones.",
    "Examples from everyday life can make abstract ideas feel familiar.",
    "Consistency over time usually beats short bursts of effort.",
    "Keeping the big picture in mind helps when the details get complicated.",
    "Most questions have a short answer and a longer, more nuanced one.",
)

_GREETING = re.compile(r"^\s*(?:hi|hello|hey|hiya|howdy|greetings|good (?:morning|afternoon|evening))\b", re.I)
_HOW_ARE_YOU = re.compile(r"\bhow (?:are you|are things|is it going|'s it going)\b|\bhow's it going\b", re.I)
_THANKS = re.compile(r"^\s*(?:thanks|thank you|thx|many thanks)\b", re.I)
_IDENTITY = re.compile(
    r"\b(?:who|what) are you\b|\bwhat (?:model|llm) are you\b|\bare you an? (?:ai|bot|llm|language model)\b", re.I
)
_SAY = re.compile(
    r"^\s*(?:please\s+)?(?:say|repeat|reply with|respond with|answer with)\s+(?:only\s+|just\s+|exactly\s+)?"
    r"(?:the (?:word|words|phrase)\s+)?[:\-]?\s*(?P<phrase>.+?)\s*$",
    re.I | re.S,
)
_HOW_TO = re.compile(
    r"^\s*how\s+(?:do|can|should|would|could|might|to)\s+(?:i|we|you|one|people)?\s*(?P<rest>.+)$", re.I
)
_WHAT = re.compile(r"^\s*(?P<w>what|who)(?:\s+|'s\s+)(?:is|are|was|were)?\s*(?P<rest>.+)$", re.I)
_QUESTION_WORD = re.compile(r"^\s*(?:why|where|when|which|how|is|are|can|could|do|does|did|should|would|will)\b", re.I)
_INSTRUCTION = re.compile(
    r"^\s*(?:please\s+|can you\s+|could you\s+)?(?P<verb>tell me about|describe|explain|summari[sz]e|define|list"
    r"|write(?: me)?(?: a| an| some)?\s+(?P<kind>\w+)\s+(?:about|on))\s+(?P<rest>.+)$",
    re.I | re.S,
)
_NOT_A_PHRASE = {"something", "anything", "some", "more", "a", "an", "what", "why", "how"}
"""First words after "say" that ask for content rather than give the exact words to repeat."""
_PRONOUNS = {"my": "your", "me": "you", "i": "you", "myself": "yourself", "our": "your", "us": "you", "mine": "yours"}
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class _Plan:
    """How a reply starts and how many corpus sentences follow before the natural end."""

    opener: str
    topic: str | None
    continuation: int


def _digest(*parts: object) -> int:
    data = "\x1f".join(str(p) for p in parts).encode("utf-8", "replace")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def _clean_topic(text: str, max_words: int = 12) -> str:
    text = text.strip().strip("\"'“”‘’").rstrip("?!.;: ").strip()
    words = text.split()[:max_words]
    swapped = [_PRONOUNS.get(w.lower(), w) if w.lower() in _PRONOUNS else w for w in words]
    return " ".join(swapped)


def _focus_sentence(text: str) -> str:
    """The sentence a reply answers: the last question, else the first sentence."""
    sentences = [s.strip() for s in _SENTENCE_SPLIT.split(text.strip()) if s.strip()]
    if not sentences:
        return ""
    questions = [s for s in sentences if s.endswith("?")]
    return questions[-1] if questions else sentences[0]


def _plan(user_text: str, seed: int) -> _Plan:
    text = " ".join(user_text.split())
    extra = _digest("len", seed, text) % 3
    if not text:
        return _Plan("Hello! How can I help you today?", None, 0)
    if _IDENTITY.search(text):
        return _Plan(
            "I am localpod's deterministic stand-in text model: no real language model runs here, "
            "so my replies are placeholders built from your prompt.",
            None,
            0,
        )
    say = _SAY.match(text)
    if say and len(text) <= 200:
        raw = say.group("phrase").strip()
        phrase = raw.strip("\"'“”")
        quoted = phrase != raw
        words = phrase.split()
        if quoted or (len(words) <= 3 and words[0].lower() not in _NOT_A_PHRASE):
            return _Plan(phrase.rstrip(".") if len(words) == 1 else phrase, None, 0)
    greeting, how_are_you = _GREETING.match(text), _HOW_ARE_YOU.search(text)
    if greeting and how_are_you:
        return _Plan("Hello! I'm doing well, thank you for asking. How can I help you today?", None, 0)
    if how_are_you:
        return _Plan("I'm doing well, thank you for asking! How can I help you today?", None, 0)
    if greeting and len(text.split()) <= 4:
        return _Plan("Hello! It's nice to hear from you. How can I help you today?", None, 0)
    if _THANKS.match(text):
        return _Plan("You're welcome! Let me know if there is anything else I can help with.", None, 0)

    focus = _focus_sentence(text)
    instruction = _INSTRUCTION.match(focus)
    if instruction:
        topic = _clean_topic(instruction.group("rest"))
        verb = instruction.group("verb").lower()
        if instruction.group("kind"):
            opener = f"Here is a short {instruction.group('kind').lower()} about {topic}."
        elif verb.startswith("explain"):
            opener = f"Here is a short explanation of {topic}."
        elif verb.startswith("summar"):
            opener = f"Here is a brief summary of {topic}."
        elif verb == "define":
            opener = f"Here is a simple definition of {topic}."
        elif verb == "list":
            opener = f"Here are a few points about {topic}."
        else:
            opener = f"Here is a short description of {topic}."
        return _Plan(opener, topic, 2 + extra)
    how_to = _HOW_TO.match(focus)
    if how_to:
        topic = _clean_topic(how_to.group("rest"))
        return _Plan(f"Here is a simple way to {topic}.", f"how to {topic}", 2 + extra)
    what = _WHAT.match(focus)
    if what and what.group("rest").strip():
        topic = _clean_topic(what.group("rest"))
        if what.group("w").lower() == "who":
            return _Plan(f"Here is what is generally known about {topic}.", topic, 2 + extra)
        return _Plan(f"Here is a short overview of {topic}.", topic, 2 + extra)
    if focus.endswith("?") or _QUESTION_WORD.match(focus):
        question = _clean_topic(focus, max_words=20)
        return _Plan(f'You asked: "{question}?" Here is a short answer.', _clean_topic(focus, 6), 2 + extra)
    snippet = _clean_topic(focus, max_words=10)
    return _Plan(f'You wrote: "{snippet}". Here are a few thoughts on that.', snippet, 1 + extra)


def _continuations(plan: _Plan, user_text: str, seed: int) -> Iterator[str]:
    """An endless, non-repeating-until-exhausted stream of corpus sentences for this reply."""
    pool = list(_GENERAL_SENTENCES)
    if plan.topic:
        pool += [s.format(t=plan.topic) for s in _TOPIC_SENTENCES]
    rng = random.Random(_digest("continuation", seed, user_text))
    previous: str | None = None
    while True:
        order = pool[:]
        rng.shuffle(order)
        if order[0] == previous and len(order) > 1:
            order[0], order[-1] = order[-1], order[0]
        yield from order
        previous = order[-1]


def _reply_sentences(user_text: str, seed: int) -> tuple[Iterator[str], int]:
    """All sentences of a reply (endless) and how many of them come before the natural end."""
    plan = _plan(user_text, seed)

    def sentences() -> Iterator[str]:
        yield plan.opener
        yield from _continuations(plan, user_text, seed)

    return sentences(), 1 + plan.continuation


# -- generation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    """One finished completion: its tokens (``"".join(tokens)`` is the text) and why it ended."""

    tokens: list[str]
    finish_reason: str
    """``"stop"`` (natural end or a stop string) or ``"length"`` (``max_tokens`` reached)."""
    stop_reason: str | None = None
    """The stop string that ended the text, as vLLM reports it; None otherwise."""
    text: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "text", "".join(self.tokens))


def generate(
    user_text: str,
    *,
    seed: int = 0,
    max_tokens: int,
    stop: Sequence[str] = (),
    min_tokens: int = 0,
    ignore_eos: bool = False,
    prefix: str = "",
) -> Generation:
    """Write the reply to ``user_text``.

    The reply has a natural end (a few sentences); ``max_tokens`` cuts it earlier with
    ``finish_reason="length"``; the earliest ``stop`` string cuts it just before the stop with
    ``finish_reason="stop"``; ``min_tokens``/``ignore_eos`` keep it going with more corpus sentences
    (ending at a sentence boundary once ``min_tokens`` is reached, or only at ``max_tokens``).
    ``prefix`` is put before the first sentence (a space for raw-prompt completions).
    """
    sentences, natural = _reply_sentences(user_text, seed)
    stops = [s for s in stop if s]
    longest_stop = max((len(s) for s in stops), default=0)
    tokens: list[str] = []
    text = ""
    for index, sentence in enumerate(sentences):
        if index >= natural and not ignore_eos and len(tokens) >= min_tokens:
            return Generation(tokens, "stop")
        piece = (prefix if index == 0 else " ") + sentence
        for token in tokenize(piece):
            if len(tokens) >= max_tokens:
                return Generation(tokens, "length")
            candidate = text + token
            if stops:
                window_start = max(0, len(text) - longest_stop + 1)
                hits = [(candidate.find(s, window_start), s) for s in stops]
                hits = [(pos, s) for pos, s in hits if pos >= 0]
                if hits:
                    pos, matched = min(hits)
                    partial = candidate[len(text) : pos] if pos > len(text) else ""
                    if partial:
                        tokens.append(partial)
                    elif pos < len(text):  # the stop began inside earlier tokens: trim them
                        tokens = tokenize(text[:pos])
                    return Generation(tokens, "stop", matched)
            tokens.append(token)
            text = candidate
    raise AssertionError("unreachable: the sentence stream is endless")


# -- pacing --------------------------------------------------------------------------------------

T = TypeVar("T")


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


async def paced(ctx: JobContext, steps: Iterable[T]) -> AsyncIterator[T]:
    """Yield ``steps`` at decoding speed: ``time_to_first_token_s`` before the first,
    ``inter_token_s`` between the others (read live from ``ctx.profile``; 0 means no sleep).
    Stops early when the job is cancelled."""
    first = True
    for step in steps:
        if ctx.cancelled.is_set():
            return
        await _sleep(ctx.profile.time_to_first_token_s if first else ctx.profile.inter_token_s)
        first = False
        yield step


async def decode_time(ctx: JobContext, n_tokens: int) -> None:
    """Wait as long as generating ``n_tokens`` takes, for non-streamed responses."""
    await _sleep(ctx.profile.time_to_first_token_s + ctx.profile.inter_token_s * max(n_tokens - 1, 0))
