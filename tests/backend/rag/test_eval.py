"""The retrieval evaluation (bench/eval): its metrics and its question set.

The scores themselves are not asserted here: `make eval` reports them (docs/backend.md).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from textbook.core.config import SAMPLE_CONTENT_DIR
from textbook.rag.content import find_section, load_chapters

EVAL_DIR = Path(__file__).resolve().parents[3] / "bench" / "eval"


def _evaluate() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_eval_evaluate", EVAL_DIR / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


ev = _evaluate()
A, B, C, D = ("ch", "a"), ("ch", "b"), ("ch", "c"), ("other", "a")


def test_first_rank_is_one_based_and_matches_chapter_and_anchor() -> None:
    assert ev.first_rank([B, A, A], A) == 2
    assert ev.first_rank([A], A) == 1
    assert ev.first_rank([D, B], A) is None  # same anchor in another chapter is a miss
    assert ev.first_rank([], A) is None


def test_hit_at_k_counts_ranks_up_to_k() -> None:
    ranks = [1, 2, 5, 6, None]
    assert ev.hit_at(ranks, 1) == pytest.approx(1 / 5)
    assert ev.hit_at(ranks, 5) == pytest.approx(3 / 5)
    assert ev.hit_at(ranks, 10) == pytest.approx(4 / 5)


def test_mrr_averages_reciprocal_ranks_with_misses_as_zero() -> None:
    assert ev.mrr_at([1, 2, 4, None], 10) == pytest.approx((1 + 1 / 2 + 1 / 4 + 0) / 4)
    assert ev.mrr_at([1, 11], 10) == pytest.approx(1 / 2)  # below the cut-off counts as 0
    assert ev.mrr_at([None, None], 10) == 0


def test_metrics_of_a_ranking() -> None:
    results = {"q1": [A, B], "q2": [B, C, A], "q3": [D, D]}
    ranks = [ev.first_rank(found, A) for found in results.values()]
    assert ev.metrics(ranks) == {
        "hit@1": pytest.approx(0.3333, abs=1e-4),
        "hit@5": pytest.approx(0.6667, abs=1e-4),
        "mrr@10": pytest.approx(0.4444, abs=1e-4),
    }
    with pytest.raises(ValueError, match="no questions"):
        ev.metrics([])


def test_question_set_labels_sections_of_the_sample_textbook() -> None:
    questions = ev.load_questions()
    chapters = load_chapters(SAMPLE_CONTENT_DIR)
    assert len(questions) >= 60
    missing = [
        f"{q.chapter}#{q.anchor}"
        for q in questions
        if find_section(chapters, q.chapter, q.anchor) is None
    ]
    assert missing == []
    assert len({q.text.lower() for q in questions}) == len(questions)
    assert {q.chapter for q in questions} == {c.slug for c in chapters}
    quiz = [
        q
        for q in questions
        if "primary purpose" in q.text.lower() or "which of the following" in q.text.lower()
    ]
    assert len(quiz) >= 5


def test_a_malformed_question_entry_is_named(tmp_path: Path) -> None:
    path = tmp_path / "questions.yaml"
    path.write_text("- q: What is a node?\n  chapter: ros2-foundations\n", encoding="utf-8")
    with pytest.raises(ValueError, match="entry 1 needs exactly q, chapter and anchor"):
        ev.load_questions(path)


def test_a_variant_runs_through_the_store_and_reports_misses() -> None:
    questions = [
        ev.Question(
            "Quality of Service profiles: reliability, durability, history",
            "ros2-foundations",
            "quality-of-service-profiles",
        ),
        ev.Question("zzzz qqqq", "ros2-foundations", "nodes"),
    ]
    result = ev.run_variant("default", {"chunk_heading_context": "section"}, questions)
    assert result["settings"] == {"chunk_heading_context": "section"}
    assert result["questions"] == 2 and result["chunks"] > 0
    misses = {m["expected"]: m for m in result["misses"]}
    assert misses["ros2-foundations#nodes"]["rank"] is None  # nonsense is never found
    assert result["metrics"]["hit@1"] == (2 - len(misses)) / 2
