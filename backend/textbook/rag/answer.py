"""Answers from retrieved passages: extractive (no language model) and LLM prompts.

Passages are cited as [1], [2], ... in the order they are given, which is the order the
API returns them as citations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from textbook.rag.content import iter_markdown_lines
from textbook.rag.sparse import terms
from textbook.rag.types import Passage

__all__ = [
    "EXTRACTIVE_NOTE",
    "MAX_SENTENCES",
    "NOTHING_FOUND",
    "build_prompt_messages",
    "compose_extractive_answer",
    "selected_text_messages",
]

MAX_SENTENCES = 4
MAX_ANSWER_CHARS = 1200
LONG_SENTENCE_TERMS = 30  # beyond this many distinct terms, a sentence's score is damped
EXTRACTIVE_NOTE = (
    "This answer is composed from the textbook passages below without a "
    "language model: the most relevant sentences, quoted with their source."
)
NOTHING_FOUND = (
    "The textbook passages I found do not cover this question. Try other words, "
    "or open the table of contents. (Composed from the textbook without a "
    "language model.)"
)

SYSTEM_PROMPT = (
    'You are the teaching assistant of the textbook "Physical AI & Humanoid Robotics". '
    "Answer the reader's question using ONLY the numbered textbook passages in the last "
    "message. After each statement, cite the passage(s) it comes from as [1], [2], ... "
    "using the passage numbers. If the passages do not contain the answer, say that the "
    "textbook does not cover it instead of guessing. Be concise and precise; use the "
    "textbook's terminology and keep code and units exact."
)
SELECTED_TEXT_PROMPT = (
    'You are the teaching assistant of the textbook "Physical AI & Humanoid Robotics". '
    "The reader selected a piece of the textbook and asks about it. Answer using ONLY the "
    "selected text in the last message. If it does not contain the answer, say so instead "
    "of guessing. Be concise and precise."
)

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(\[*_$])")
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_EMPHASIS_RE = re.compile(r"(\*\*|__)(.+?)\1")
_TABLE_ROW_RE = re.compile(r"^\s*\|")
_HEADING_RE = re.compile(r"^\s{0,3}#{1,6}\s")


@dataclass(frozen=True, slots=True)
class _Sentence:
    passage: int  # 0-based position in the passages given
    position: int  # order within the passage
    text: str
    terms: frozenset[int]  # distinct term ids (textbook.rag.sparse.terms)


def _prose_lines(markdown: str) -> list[str]:
    """The passage's prose: code blocks, tables and headings left out, list items unwrapped."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in iter_markdown_lines(markdown):
        text = line.text
        if (
            line.in_code
            or _TABLE_ROW_RE.match(text)
            or _HEADING_RE.match(text)
            or not text.strip()
            or _LIST_MARKER_RE.match(text)
        ):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            if not line.in_code and _LIST_MARKER_RE.match(text):
                current.append(_LIST_MARKER_RE.sub("", text).strip())
            continue
        current.append(text.strip())
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def _sentences(passages: Sequence[Passage]) -> list[_Sentence]:
    found: list[_Sentence] = []
    for index, passage in enumerate(passages):
        position = 0
        for paragraph in _prose_lines(passage.text):
            for raw in _SENTENCE_RE.split(paragraph):
                text = _EMPHASIS_RE.sub(r"\2", raw).strip()
                words = terms(text)
                # Fragments and lead-ins to a code block or table ("... as follows:") say
                # nothing once the block is left out.
                if len(words) < 3 or text.endswith(":"):
                    continue
                found.append(_Sentence(index, position, text, words))
                position += 1
    return found


def _rank(question: str, sentences: list[_Sentence]) -> list[tuple[float, _Sentence]]:
    """Sentences by query-term overlap, rarer terms weighing more, very long ones damped."""
    query = terms(question)
    if not query:
        return []
    total = len(sentences)
    weight = {
        term: math.log(1 + total / (1 + sum(term in s.terms for s in sentences))) for term in query
    }
    ranked: list[tuple[float, _Sentence]] = []
    for sentence in sentences:
        matched = query & sentence.terms
        if not matched:
            continue
        score = sum(weight[term] for term in matched)
        score *= min(1.0, LONG_SENTENCE_TERMS / len(sentence.terms)) ** 0.3
        # Earlier passages were ranked higher by retrieval; break near-ties in their favour.
        score *= 1.0 - 0.05 * min(sentence.passage, 5)
        ranked.append((score, sentence))
    ranked.sort(key=lambda item: (-item[0], item[1].passage, item[1].position))
    return ranked


def compose_extractive_answer(question: str, passages: Sequence[Passage]) -> str:
    """The no-LLM answer: the passages' most relevant sentences, each cited as [n]."""
    if not passages:
        return NOTHING_FOUND
    sentences = _sentences(passages)
    ranked = _rank(question, sentences)
    chosen: list[_Sentence] = []
    size = 0
    for _, sentence in ranked:
        if len(chosen) == MAX_SENTENCES:
            break
        if chosen and size + len(sentence.text) > MAX_ANSWER_CHARS:
            continue
        chosen.append(sentence)
        size += len(sentence.text)
    if not chosen:
        # No word in common: the top passage's opening is the best there is.
        chosen = [s for s in sentences if s.passage == 0][:2]
    if not chosen:
        return NOTHING_FOUND
    # Read in textbook order: by passage rank, then position within the passage.
    chosen.sort(key=lambda s: (s.passage, s.position))
    lines = [f"- {s.text} [{s.passage + 1}]" for s in chosen]
    return EXTRACTIVE_NOTE + "\n\n" + "\n".join(lines)


def _passage_block(number: int, passage: Passage) -> str:
    where = " > ".join(part for part in (passage.chapter_title, passage.section) if part)
    return f"[{number}] {where}\n{passage.text.strip()}"


def _history(history: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    return [
        {"role": turn["role"], "content": turn["content"]}
        for turn in history
        if turn.get("role") in ("user", "assistant") and turn.get("content")
    ]


def build_prompt_messages(
    question: str, passages: Sequence[Passage], history: Sequence[Mapping[str, str]] = ()
) -> list[dict[str, str]]:
    """Chat messages for the LLM mode: instructions, earlier turns, numbered passages."""
    if passages:
        context = "\n\n".join(_passage_block(n, p) for n, p in enumerate(passages, start=1))
    else:
        context = "(no passage matched the question)"
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        *_history(history),
        {"role": "user", "content": f"Textbook passages:\n\n{context}\n\nQuestion: {question}"},
    ]


def selected_text_messages(
    question: str, selected_text: str, history: Sequence[Mapping[str, str]] = ()
) -> list[dict[str, str]]:
    """Chat messages for a question about text the reader selected (no retrieval)."""
    return [
        {"role": "system", "content": SELECTED_TEXT_PROMPT},
        *_history(history),
        {
            "role": "user",
            "content": f'Selected text:\n"""\n{selected_text.strip()}\n"""\n\nQuestion: {question}',
        },
    ]
