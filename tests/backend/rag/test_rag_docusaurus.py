"""A Docusaurus docs folder as it is: order, modules, titles, slugs, MDX, unreadable files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from rag_helpers import FIXTURE_DOCUSAURUS

from textbook.rag.chunking import chunk_chapters
from textbook.rag.content import iter_markdown_lines, load_book, load_chapters
from textbook.rag.types import Chapter

MODULE_1 = "Module 1: Foundations"
BROKEN = "02-simulation/broken-front-matter.md"

# (number, slug, title, module) in the order the site's sidebar shows them.
EXPECTED = [
    (1, "index", "Welcome to the Book", ""),  # sidebar_position 1; `slug: /`
    (2, "foundations", "Foundations overview", MODULE_1),  # index.md opens its folder
    (3, "foundations-ros-nodes", "Nodes and Executors", MODULE_1),  # `id: ros-nodes`
    (4, "foundations-topics", "Topics", MODULE_1),  # .mdx, title from its `#` heading
    (5, "foundations-advanced", "Advanced ROS 2", MODULE_1),  # README.md, _category_.yml
    (6, "foundations-advanced-quality-of-service", "Quality of Service", MODULE_1),  # relative slug
    (7, "foundations-advanced-summary", "Summary", MODULE_1),
    (8, "sim-gazebo-basics", "Gazebo Basics", "simulation"),  # `slug: /sim/gazebo-basics`
    (9, "simulation-summary", "Summary", "simulation"),  # no _category_: folder name
    (10, "glossary", "Glossary", ""),  # no position: after every positioned item
]


def _chapter(chapters: list[Chapter], slug: str) -> Chapter:
    return next(c for c in chapters if c.slug == slug)


def test_reading_order_modules_titles_and_slugs() -> None:
    book = load_book(FIXTURE_DOCUSAURUS)
    assert [(c.number, c.slug, c.title, c.module) for c in book.chapters] == EXPECTED


def test_same_title_in_two_folders_gets_two_slugs() -> None:
    chapters = load_book(FIXTURE_DOCUSAURUS).chapters
    summaries = [c.slug for c in chapters if c.title == "Summary"]
    assert summaries == ["foundations-advanced-summary", "simulation-summary"]


def test_partials_drafts_and_the_broken_page_are_not_chapters() -> None:
    book = load_book(FIXTURE_DOCUSAURUS)
    text = " ".join(s.text for c in book.chapters for s in c.sections)
    assert "partial" not in text and "Not published" not in text and "Broken" not in text
    assert book.skipped == [
        f"{FIXTURE_DOCUSAURUS / BROKEN}: front matter is not valid YAML: "
        "did not find expected ',' or ']' (line 3)"
    ]


def test_hidden_and_underscore_files_and_folders_are_not_pages(tmp_path: Path) -> None:
    for name in (".obsidian/notes.md", "_drafts/idea.md", "_snippet.mdx", "page.md"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("# Page\n\nText.\n", encoding="utf-8")
    book = load_book(tmp_path)
    assert [c.slug for c in book.chapters] == ["page"] and book.skipped == []


def test_mdx_page_keeps_prose_and_code_without_imports_jsx_or_admonition_markers() -> None:
    topics = _chapter(load_book(FIXTURE_DOCUSAURUS).chapters, "foundations-topics")
    assert [(s.anchor, s.level) for s in topics.sections] == [("topics", 1), ("publishers", 2)]
    text = "\n".join(s.text for s in topics.sections)
    for prose in (
        "A topic has exactly one message type.",
        "Naming topics",
        "Use relative names so that namespaces apply.",
        "Python publishers call `create_publisher`.",
        "C++ publishers hold a `rclcpp::Publisher<T>::SharedPtr`.",
        "Press Ctrl+C to stop a node.",
        "Mismatched QoS profiles silently drop",
    ):
        assert prose in text
    prose_only = "\n".join(line.text for line in iter_markdown_lines(text) if not line.in_code)
    for gone in (
        "import",
        "@theme/Tabs",
        "@site/src/components/Figure",
        "export const toc",
        "<TabItem",
        "</Tabs>",
        "<Figure",
        "editor's comment",
        ":::",
        "<kbd>",
    ):
        assert gone not in prose_only
    # Code blocks keep their imports and JSX, the indented one inside <TabItem> included.
    assert "```python\nimport rclpy\nfrom std_msgs.msg import String\n# <Tabs> in a comment" in text
    assert (
        "import Tabs from '@theme/Tabs';\n\nexport default function Example() {\n"
        '  return <Tabs><TabItem value="a">A</TabItem></Tabs>;' in text
    )


def test_chunks_of_an_mdx_page_hold_no_jsx() -> None:
    chunks = chunk_chapters(load_book(FIXTURE_DOCUSAURUS).chapters)
    prose = [c.text for c in chunks if "```" not in c.text]
    assert prose and not any("<Tab" in t or "import " in t for t in prose)


def test_docusaurus_heading_ids_are_the_anchors() -> None:
    nodes = _chapter(load_book(FIXTURE_DOCUSAURUS).chapters, "foundations-ros-nodes")
    executors = nodes.sections[1]
    assert (executors.title, executors.anchor) == ("Executors", "executors")


def test_number_prefixes_follow_docusaurus(tmp_path: Path) -> None:
    for name in ("03 - setup.md", "2024-01-release-notes.md", "1.2-upgrade.md", "10_tuning.md"):
        (tmp_path / name).write_text(f"# {name}\n\nText.\n", encoding="utf-8")
    book = load_book(tmp_path)
    # Prefixes 3 and 10 are positions; dates and versions are names (after, by name).
    assert [c.slug for c in book.chapters] == [
        "setup",
        "tuning",
        "1-2-upgrade",
        "2024-01-release-notes",
    ]


def test_slugs_are_ascii_and_url_safe(tmp_path: Path) -> None:
    russian = "\u0412\u0432\u0435\u0434\u0435\u043d\u0438\u0435"  # "Introduction"
    (tmp_path / f"{russian}.md").write_text(f"# {russian}\n\nText.\n", encoding="utf-8")
    (tmp_path / "C++ Basics.mdx").write_text("# C++\n\nText.\n", encoding="utf-8")
    slugs = [c.slug for c in load_book(tmp_path).chapters]
    assert slugs == ["c-basics", "vvedenie"]


def test_category_label_and_position_change_module_and_order(tmp_path: Path) -> None:
    for folder in ("alpha", "beta"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "page.md").write_text(f"# {folder}\n\nText.\n", encoding="utf-8")
    assert [c.module for c in load_book(tmp_path).chapters] == ["alpha", "beta"]
    (tmp_path / "beta" / "_category_.json").write_text(
        json.dumps({"label": "Module 0: Beta", "position": 1}), encoding="utf-8"
    )
    chapters = load_book(tmp_path).chapters
    assert [(c.slug, c.module) for c in chapters] == [
        ("beta-page", "Module 0: Beta"),
        ("alpha-page", "alpha"),
    ]


def test_a_page_named_after_its_folder_opens_it(tmp_path: Path) -> None:
    (tmp_path / "03-control").mkdir()
    for name in ("a-first.md", "control.md"):
        (tmp_path / "03-control" / name).write_text("Text.\n", encoding="utf-8")
    book = load_book(tmp_path)
    assert [(c.slug, c.title) for c in book.chapters] == [
        ("control", "control"),
        ("control-a-first", "a-first"),
    ]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ('{"label": "Unclosed", ', "not valid JSON: Expecting"),
        ('["a", "list"]', "must be a mapping"),
        ('{"label": 7}', "'label' must be a string, got 7"),
        ('{"position": "first"}', "'position' must be a number, got 'first'"),
    ],
)
def test_bad_category_file_is_reported_and_its_folder_still_loads(
    tmp_path: Path, content: str, reason: str
) -> None:
    (tmp_path / "01-basics").mkdir()
    (tmp_path / "01-basics" / "page.md").write_text("# Page\n\nText.\n", encoding="utf-8")
    category = tmp_path / "01-basics" / "_category_.json"
    category.write_text(content, encoding="utf-8")
    book = load_book(tmp_path)
    assert [(c.slug, c.module) for c in book.chapters] == [("basics-page", "basics")]
    assert len(book.skipped) == 1 and book.skipped[0].startswith(f"{category}: {reason}")


def _unreadable_files(docs: Path) -> dict[Path, str]:
    """Write pages that cannot be read, each with the reason load_book must give."""
    bad_utf8 = docs / "02-simulation" / "latin1.md"
    bad_utf8.write_bytes("# Caf\xe9\n".encode("latin-1"))
    dangling = docs / "02-simulation" / "moved.mdx"
    dangling.symlink_to(docs / "nowhere.mdx")
    return {
        bad_utf8: "not UTF-8 text (byte 5)",
        dangling: "cannot be read: No such file or directory",
        docs / BROKEN: "front matter is not valid YAML",
    }


def test_unreadable_pages_are_one_line_each_and_the_rest_loads(docs_dir: Path) -> None:
    reasons = _unreadable_files(docs_dir)
    book = load_book(docs_dir)
    assert [c.slug for c in book.chapters] == [slug for _, slug, _, _ in EXPECTED]
    assert len(book.skipped) == len(reasons)
    for source, reason in reasons.items():
        assert any(line.startswith(f"{source}: {reason}") for line in book.skipped), source
    with pytest.raises(ValueError, match=r"cannot be read|not UTF-8|not valid YAML"):
        load_chapters(docs_dir)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without read permission")
def test_a_page_without_read_permission_is_skipped(docs_dir: Path) -> None:
    locked = docs_dir / "glossary.md"
    locked.chmod(0)
    try:
        book = load_book(docs_dir)
    finally:
        locked.chmod(0o644)
    assert f"{locked}: cannot be read: Permission denied" in book.skipped
    assert "glossary" not in [c.slug for c in book.chapters]


def test_one_file_loads_on_its_own(tmp_path: Path) -> None:
    page = FIXTURE_DOCUSAURUS / "01-foundations" / "02-topics.mdx"
    book = load_book(page)
    assert [(c.number, c.slug, c.title, c.module) for c in book.chapters] == [
        (1, "topics", "Topics", "")
    ]
    (tmp_path / "notes.txt").write_text("not a page", encoding="utf-8")
    assert load_book(tmp_path / "notes.txt").skipped == [
        f"{tmp_path / 'notes.txt'}: not a .md or .mdx file"
    ]
    with pytest.raises(ValueError, match="no such file or directory"):
        load_book(tmp_path / "missing")
