"""Chapter loading: front matter, sections, anchors, code fences."""

from __future__ import annotations

from pathlib import Path

import pytest

from textbook.core.config import SAMPLE_CONTENT_DIR
from textbook.rag.content import find_section, github_slug, load_chapters


def test_front_matter_and_order(fixture_chapters: Path) -> None:
    chapters = load_chapters(fixture_chapters)
    assert [(c.number, c.slug) for c in chapters] == [(1, "ros2-basics"),
                                                      (2, "gazebo-simulation")]
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
        encoding="utf-8")
    chapter = load_chapters(source)[0]
    assert [s.anchor for s in chapter.sections] == ["a", "b"]
    assert "## inner" in chapter.sections[0].text


@pytest.mark.parametrize(("heading", "anchor"), [
    ("Quality of Service (QoS) Profiles", "quality-of-service-qos-profiles"),
    ("Using `robot_localization` in ROS 2", "using-robot_localization-in-ros-2"),
    ("Launch Files, Parameters & tf2", "launch-files-parameters--tf2"),
    ("The **Jacobian** and [singularities](https://example.org)", "the-jacobian-and-singularities"),
    ("Zero-Moment Point: ZMP", "zero-moment-point-zmp"),
])
def test_github_slug(heading: str, anchor: str) -> None:
    assert github_slug(heading) == anchor


@pytest.mark.parametrize(("front_matter", "message"), [
    ("module: M\nchapter: 1\ntitle: T\n", "lacks slug"),
    ("module: M\nchapter: one\ntitle: T\nslug: t\n", "'chapter' must be a non-negative integer"),
    ("module: M\nchapter: 1\ntitle: T\nslug: Not A Slug\n", "'slug'"),
    ("module: [M\nchapter: 1\n", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping"),
])
def test_bad_front_matter_names_the_file(tmp_path: Path, front_matter: str, message: str) -> None:
    source = tmp_path / "broken-chapter.md"
    source.write_text(f"---\n{front_matter}---\n# T\n\n## A\n\ntext\n", encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_chapters(tmp_path)
    assert "broken-chapter.md" in str(info.value)


def test_missing_or_unclosed_front_matter(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# No front matter\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"a\.md: missing YAML front matter"):
        load_chapters(tmp_path)
    (tmp_path / "a.md").write_text("---\nmodule: M\n# T\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"a\.md: front matter is not closed"):
        load_chapters(tmp_path)


def test_duplicate_slug_is_refused(tmp_path: Path, fixture_chapters: Path) -> None:
    text = (fixture_chapters / "01-nervous-system.md").read_text(encoding="utf-8")
    (tmp_path / "a.md").write_text(text, encoding="utf-8")
    (tmp_path / "b.md").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="already used by"):
        load_chapters(tmp_path)


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
