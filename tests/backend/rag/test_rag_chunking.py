"""Chunking: heading boundaries, whole code blocks and tables, size limit, stable ids."""

from __future__ import annotations

from pathlib import Path

from textbook.core.config import HeadingContext
from textbook.rag.chunking import DEFAULT_MAX_CHARS, Chunk, chunk_chapter, chunk_chapters
from textbook.rag.content import load_chapter, load_chapters
from textbook.rag.types import Chapter, Section

CODE = (
    "```python\n"
    + "\n".join(f"x{i} = {i}  # line {i} of the long block" for i in range(60))
    + "\n\n# a heading-like comment\n## another\n```"
)
TABLE = "| a | b |\n| --- | --- |\n" + "\n".join(f"| row {i} value | {i * 7} |" for i in range(80))


def _chapter(*sections: Section) -> Chapter:
    return Chapter(slug="c", number=1, title="C", module="M", sections=sections)


def _prose(words: int, seed: str = "word") -> str:
    """Sentences of twelve words, each starting with a capital letter."""

    def word(i: int) -> str:
        text = f"{seed}{i}"
        text = text.capitalize() if i % 12 == 0 else text
        return f"{text}." if i % 12 == 11 else text

    return " ".join(word(i) for i in range(words))


def test_one_chunk_per_short_section_with_metadata(fixture_chapters: Path) -> None:
    chapters = load_chapters(fixture_chapters)
    chunks = chunk_chapter(chapters[0])
    assert [c.anchor for c in chunks] == [s.anchor for s in chapters[0].sections]
    qos = next(c for c in chunks if c.anchor == "quality-of-service")
    assert (qos.module, qos.chapter, qos.chapter_number, qos.chapter_title, qos.section) == (
        "Module 1: The Robotic Nervous System",
        "ros2-basics",
        1,
        "ROS 2 Basics",
        "Quality of Service",
    )
    compat = next(c for c in chunks if c.anchor == "compatibility")
    assert compat.heading_path == ("ROS 2 Basics", "Quality of Service", "Compatibility")
    assert compat.search_text.startswith("ROS 2 Basics > Quality of Service > Compatibility\n\n")
    assert compat.payload()["chapter"] == "ros2-basics"


def test_code_blocks_are_never_split() -> None:
    assert len(CODE) > DEFAULT_MAX_CHARS
    section = Section(
        title="S",
        anchor="s",
        level=2,
        text=f"{_prose(150, 'before')}\n\n{CODE}\n\n{_prose(150, 'after')}",
    )
    chunks = chunk_chapter(_chapter(section))
    holding = [c for c in chunks if "x0 = 0" in c.text]
    assert len(holding) == 1 and CODE in holding[0].text
    # No other chunk carries any part of the code block.
    assert all("line 30 of the long block" not in c.text for c in chunks if c is not holding[0])
    for chunk in chunks:
        assert chunk.text.count("```") % 2 == 0, chunk.text


def test_headings_inside_code_are_not_split_points() -> None:
    code = "```bash\n# step one\nls\n## step two\npwd\n### step three\n```"
    section = Section(title="S", anchor="s", level=2, text=f"Run this:\n\n{code}\n\nDone.")
    chunks = chunk_chapter(_chapter(section))
    assert len(chunks) == 1 and code in chunks[0].text


def test_tables_are_never_split() -> None:
    assert len(TABLE) > DEFAULT_MAX_CHARS
    section = Section(
        title="S",
        anchor="s",
        level=2,
        text=f"{_prose(120)}\nThe table:\n{TABLE}\n\n{_prose(40, 'tail')}",
    )
    chunks = chunk_chapter(_chapter(section))
    holding = [c for c in chunks if "| row 0 value |" in c.text]
    assert len(holding) == 1 and TABLE in holding[0].text
    assert all("| row 40 value |" not in c.text for c in chunks if c is not holding[0])


def test_long_prose_is_cut_under_the_limit_at_sentence_ends() -> None:
    text = "\n\n".join(_prose(90, f"p{n}w") for n in range(6))
    chunks = chunk_chapter(_chapter(Section(title="S", anchor="s", level=2, text=text)))
    assert len(chunks) > 2
    assert all(len(c.text) <= DEFAULT_MAX_CHARS for c in chunks)
    assert " ".join(" ".join(c.text.split()) for c in chunks) == " ".join(text.split())
    # One paragraph longer than the limit is cut after a sentence, not mid-sentence.
    single = _prose(400, "s")
    pieces = chunk_chapter(_chapter(Section(title="S", anchor="s", level=2, text=single)))
    assert len(pieces) > 1 and all(p.text.endswith(".") for p in pieces[:-1])


def test_adjacent_code_blocks_stay_separate_blocks() -> None:
    first = "```python\n" + "a = 1\n" * 150 + "```"
    second = "```python\n" + "b = 2\n" * 150 + "```"
    chunks = chunk_chapter(
        _chapter(Section(title="S", anchor="s", level=2, text=f"{first}\n{second}"))
    )
    assert [c.text for c in chunks] == [first, second]


def test_ids_are_stable_and_content_derived(fixture_chapters: Path) -> None:
    first = chunk_chapters(load_chapters(fixture_chapters))
    second = chunk_chapters(load_chapters(fixture_chapters))
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    chapter = load_chapter(fixture_chapters / "01-nervous-system.md")
    edited = Chapter(
        slug=chapter.slug,
        number=chapter.number,
        title=chapter.title,
        module=chapter.module,
        sections=tuple(
            Section(
                s.title,
                s.anchor,
                s.level,
                s.text + " Edited." if s.anchor == "services" else s.text,
            )
            for s in chapter.sections
        ),
    )
    before = {c.anchor: c.id for c in chunk_chapter(chapter)}
    after = {c.anchor: c.id for c in chunk_chapter(edited)}
    assert before["services"] != after["services"]
    assert {k: v for k, v in before.items() if k != "services"} == {
        k: v for k, v in after.items() if k != "services"
    }


def test_heading_context_choices_set_what_is_indexed(fixture_chapters: Path) -> None:
    chapter = load_chapters(fixture_chapters)[0]

    def compat(heading_context: HeadingContext) -> Chunk:
        return next(
            c
            for c in chunk_chapter(chapter, heading_context=heading_context)
            if c.anchor == "compatibility"
        )

    trail, own, bare = compat("trail"), compat("section"), compat("none")
    assert own.search_text == f"Compatibility\n\n{own.text}"
    assert bare.search_text == bare.text
    assert trail.text == own.text == bare.text
    # What is indexed differs, so the ids differ: switching re-indexes on the next ingest.
    assert len({trail.id, own.id, bare.id}) == 3


def test_index_key_enters_the_ids(fixture_chapters: Path) -> None:
    chapters = load_chapters(fixture_chapters)
    first = chunk_chapters(chapters, index_key="encoding-a")
    again = chunk_chapters(chapters, index_key="encoding-a")
    other = chunk_chapters(chapters, index_key="encoding-b")
    assert [c.id for c in first] == [c.id for c in again]
    assert not {c.id for c in first} & {c.id for c in other}
    assert [c.text for c in first] == [c.text for c in other]


def test_max_chars_sets_the_chunk_size() -> None:
    text = "\n\n".join(_prose(90, f"p{n}w") for n in range(6))
    section = Section(title="S", anchor="s", level=2, text=text)
    small, large = (chunk_chapter(_chapter(section), size) for size in (400, 2000))
    assert len(small) > len(large)
    assert all(len(c.text) <= 400 for c in small)
