"""Chapter loading: front matter, sections, anchors, code fences."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from textbook.core.config import SAMPLE_CONTENT_DIR
from textbook.rag.content import find_section, github_slug, load_book, load_chapters


def test_front_matter_and_order(fixture_chapters: Path) -> None:
    chapters = load_chapters(fixture_chapters)
    assert [(c.number, c.slug) for c in chapters] == [(1, "ros2-basics"), (2, "gazebo-simulation")]
    first = chapters[0]
    assert first.title == "ROS 2 Basics"
    assert first.module == "Module 1: The Robotic Nervous System"


def test_sections_levels_and_unique_anchors(fixture_chapters: Path) -> None:
    first = load_chapters(fixture_chapters)[0]
    assert [(s.level, s.anchor) for s in first.sections] == [
        (1, "ros-2-basics"),
        (2, "nodes-and-topics"),
        (2, "quality-of-service"),
        (3, "compatibility"),
        (2, "services"),
        (2, "nodes-and-topics-1"),
    ]
    intro = first.sections[0]
    assert intro.title == "ROS 2 Basics" and intro.text.startswith("ROS 2 is the middleware")


def test_headings_inside_code_fences_are_code(fixture_chapters: Path) -> None:
    nodes = load_chapters(fixture_chapters)[0].sections[1]
    assert "## This is a comment in a shell script, not a heading" in nodes.text
    assert "# List the running nodes" in nodes.text
    assert nodes.text.rstrip().endswith("Publishers never know who subscribes.")


def test_tilde_fence_and_longer_fence(tmp_path: Path) -> None:
    source = tmp_path / "c.md"
    source.write_text(
        "---\nmodule: M\nchapter: 3\ntitle: T\nslug: t\n---\n# T\n\n## A\n\n"
        "~~~\n## not a heading\n```\n# still code\n~~~\n\n"
        "````markdown\n```\n## inner\n```\n````\n\n## B\n\nbody\n",
        encoding="utf-8",
    )
    chapter = load_chapters(source)[0]
    assert [s.anchor for s in chapter.sections] == ["a", "b"]
    assert "## inner" in chapter.sections[0].text


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Quality of Service (QoS) Profiles", "quality-of-service-qos-profiles"),
        ("Using `robot_localization` in ROS 2", "using-robot_localization-in-ros-2"),
        ("Launch Files, Parameters & tf2", "launch-files-parameters--tf2"),
        (
            "The **Jacobian** and [singularities](https://example.org)",
            "the-jacobian-and-singularities",
        ),
        ("Zero-Moment Point: ZMP", "zero-moment-point-zmp"),
    ],
)
def test_github_slug(heading: str, anchor: str) -> None:
    assert github_slug(heading) == anchor


@pytest.mark.parametrize(
    ("front_matter", "reason"),
    [
        (
            "module: M\nchapter: one\ntitle: T\n",
            "front matter 'chapter' must be a non-negative integer, got 'one'",
        ),
        ("title: [a, b]\n", "front matter 'title' must be a string, got ['a', 'b']"),
        ("sidebar_position: first\n", "front matter 'sidebar_position' must be a number"),
        ("id: basics/nodes\n", "front matter 'id' 'basics/nodes' must not contain '/'"),
        ("module: [M\nchapter: 1\n", "front matter is not valid YAML: "),
        ("- just\n- a list\n", "front matter must be a YAML mapping"),
    ],
)
def test_bad_front_matter_skips_that_file_with_its_reason(
    tmp_path: Path, front_matter: str, reason: str
) -> None:
    source = tmp_path / "broken-chapter.md"
    source.write_text(f"---\n{front_matter}---\n# T\n\n## A\n\ntext\n", encoding="utf-8")
    (tmp_path / "good.md").write_text("# Good\n\nFine.\n", encoding="utf-8")
    book = load_book(tmp_path)
    assert [c.slug for c in book.chapters] == ["good"]
    assert len(book.skipped) == 1
    assert book.skipped[0].startswith(f"{source}: {reason}")
    assert "\n" not in book.skipped[0]
    with pytest.raises(ValueError, match=r"broken-chapter\.md"):
        load_chapters(tmp_path)


def test_front_matter_is_optional_but_must_be_closed(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# No front matter\n\nText.\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("---\nmodule: M\n# T\n", encoding="utf-8")
    book = load_book(tmp_path)
    assert [(c.slug, c.title) for c in book.chapters] == [("a", "No front matter")]
    assert book.skipped == [f"{tmp_path / 'b.md'}: front matter is not closed by a '---' line"]


def test_colliding_slugs_get_a_suffix_and_a_note(tmp_path: Path, fixture_chapters: Path) -> None:
    text = (fixture_chapters / "01-nervous-system.md").read_text(encoding="utf-8")
    (tmp_path / "a.md").write_text(text, encoding="utf-8")
    (tmp_path / "b.md").write_text(text, encoding="utf-8")
    book = load_book(tmp_path)
    assert [c.slug for c in book.chapters] == ["ros2-basics", "ros2-basics-2"]
    assert book.notes == [
        f"{tmp_path / 'b.md'}: slug 'ros2-basics' is taken by "
        f"{tmp_path / 'a.md'}; this chapter is 'ros2-basics-2'"
    ]
    assert book.skipped == []


def test_find_section(fixture_chapters: Path) -> None:
    chapters = load_chapters(fixture_chapters)
    found = find_section(chapters, "ros2-basics", "quality-of-service")
    assert found is not None
    chapter, section = found
    assert chapter.slug == "ros2-basics" and section.title == "Quality of Service"
    assert find_section(chapters, "ros2-basics", "no-such-anchor") is None
    assert find_section(chapters, "no-such-chapter", "quality-of-service") is None


def test_shipped_chapters_load() -> None:
    """The sample textbook in the package parses with unique slugs and non-empty sections."""
    chapters = load_chapters(SAMPLE_CONTENT_DIR)
    assert chapters, "no sample chapters shipped"
    for chapter in chapters:
        assert chapter.sections, chapter.slug
        anchors = [s.anchor for s in chapter.sections]
        assert len(anchors) == len(set(anchors)), chapter.slug


def test_sample_textbook_keeps_its_front_matter_identity() -> None:
    """Slugs, numbers, modules and titles are the front matter's, so chunk ids (and the URLs
    a deployment already gave out) do not change with the Docusaurus reader."""
    expected = []
    for source in sorted(SAMPLE_CONTENT_DIR.glob("*.md")):
        front = yaml.safe_load(source.read_text(encoding="utf-8").split("---\n")[1])
        expected.append((front["slug"], front["chapter"], front["module"], front["title"]))
    expected.sort(key=lambda item: item[1])
    chapters = load_chapters(SAMPLE_CONTENT_DIR)
    assert [(c.slug, c.number, c.module, c.title) for c in chapters] == expected
