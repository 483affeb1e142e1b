"""Textbook chapters from Markdown files: YAML front matter plus `#` headings.

A chapter file looks like::

    ---
    module: "Module 1: The Robotic Nervous System"
    chapter: 1
    title: "ROS 2 Foundations"
    slug: ros2-foundations
    ---

    # ROS 2 Foundations
    Introduction ...
    ## A section
    ### A subsection

Every heading starts a new, flat Section (its text stops at the next heading of any level).
Text between the `#` title and the first `##` becomes a level-1 section named after the
chapter. Lines inside fenced code blocks are never headings (a `# comment` in a shell
snippet stays code). Anchors follow GitHub's slug rules, made unique per chapter with
`-1`, `-2` suffixes like GitHub does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml

from textbook.rag.types import Chapter, Section

__all__ = [
    "Fence",
    "MarkdownLine",
    "find_chapter",
    "find_section",
    "github_slug",
    "iter_markdown_lines",
    "load_chapter",
    "load_chapters",
    "plain_heading_text",
]

REQUIRED_FIELDS = ("module", "chapter", "title", "slug")
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
FENCE_OPEN_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_INLINE_CODE_RE = re.compile(r"`+([^`]*)`+")
_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS_RE = re.compile(r"(\*{1,3}|_{1,3}|~~)(\S(?:.*?\S)?)\1")
_SLUG_DROP_RE = re.compile(r"[^\w\- ]", re.UNICODE)


class Fence:
    """An open fenced code block: the closing fence must use the same character, at least
    as many times, and carry no info string (CommonMark)."""

    __slots__ = ("char", "length")

    def __init__(self, marker: str) -> None:
        self.char = marker[0]
        self.length = len(marker)

    def closes(self, line: str) -> bool:
        stripped = line.strip()
        return (
            len(line) - len(line.lstrip(" ")) <= 3
            and len(stripped) >= self.length
            and set(stripped) == {self.char}
        )


class MarkdownLine:
    """One source line, whether it belongs to a fenced code block (fences included) and
    whether it is the opening fence of one."""

    __slots__ = ("in_code", "opens_fence", "text")

    def __init__(self, text: str, in_code: bool, opens_fence: bool = False) -> None:
        self.text = text
        self.in_code = in_code
        self.opens_fence = opens_fence


def iter_markdown_lines(text: str) -> Iterator[MarkdownLine]:
    """Lines of a Markdown document tagged with fenced-code membership.

    An unclosed fence runs to the end of the document, as in CommonMark.
    """
    fence: Fence | None = None
    for line in text.splitlines():
        if fence is not None:
            if fence.closes(line):
                fence = None
            yield MarkdownLine(line, True)
            continue
        match = FENCE_OPEN_RE.match(line)
        # A backtick fence's info string may not contain backticks.
        if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            fence = Fence(match.group(1))
            yield MarkdownLine(line, True, opens_fence=True)
            continue
        yield MarkdownLine(line, False)


def plain_heading_text(raw: str) -> str:
    """Heading text as a reader sees it: inline code, links and emphasis unwrapped."""
    text = _INLINE_CODE_RE.sub(r"\1", raw)
    text = _LINK_RE.sub(r"\1", text)
    previous = None
    while previous != text:  # nested emphasis (***x***, **_x_**) peels one layer per pass
        previous = text
        text = _EMPHASIS_RE.sub(r"\2", text)
    return " ".join(text.split())


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower-case, punctuation dropped, spaces to hyphens."""
    text = plain_heading_text(heading).lower()
    return _SLUG_DROP_RE.sub("", text).replace(" ", "-")


class _Anchors:
    """Unique anchors within one document, suffixing repeats the way GitHub does."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def make(self, heading: str) -> str:
        base = github_slug(heading) or "section"
        anchor = base
        while anchor in self._seen:
            self._seen[base] += 1
            anchor = f"{base}-{self._seen[base]}"
        self._seen[anchor] = 0
        return anchor


def _split_front_matter(text: str, source: Path) -> tuple[dict[str, object], str]:
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise ValueError(f"{source}: missing YAML front matter (the file must start with '---')")
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            header = "".join(lines[1:index])
            body = "".join(lines[index + 1 :])
            break
    else:
        raise ValueError(f"{source}: front matter is not closed by a '---' line")
    try:
        data = yaml.safe_load(header)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{source}: front matter must be a YAML mapping")
    return data, body


def _check_front_matter(data: dict[str, object], source: Path) -> tuple[str, int, str, str]:
    missing = [name for name in REQUIRED_FIELDS if data.get(name) in (None, "")]
    if missing:
        raise ValueError(f"{source}: front matter lacks {', '.join(missing)}")
    number = data["chapter"]
    # bool is an int subclass; `chapter: yes` is a mistake, not chapter 1.
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise ValueError(f"{source}: front matter 'chapter' must be a non-negative integer, "
                         f"got {number!r}")
    module, title, slug = data["module"], data["title"], data["slug"]
    for name, value in (("module", module), ("title", title), ("slug", slug)):
        if not isinstance(value, str):
            raise ValueError(f"{source}: front matter '{name}' must be a string, got {value!r}")
    assert isinstance(module, str) and isinstance(title, str) and isinstance(slug, str)
    if not SLUG_RE.match(slug):
        raise ValueError(f"{source}: front matter 'slug' {slug!r} must be lower-case words "
                         "joined by hyphens")
    return module.strip(), number, title.strip(), slug


def _parse_sections(body: str, chapter_title: str) -> tuple[Section, ...]:
    anchors = _Anchors()
    sections: list[Section] = []
    title, level, anchor = chapter_title, 1, ""
    buffer: list[str] = []
    seen_title = False

    def flush() -> None:
        text = "\n".join(buffer).strip("\n")
        # Level-1 intro without text, or a heading directly followed by a subheading, is
        # kept only when it has a body: empty sections have nothing to read or cite.
        if text.strip():
            sections.append(Section(title=title, anchor=anchor or anchors.make(title),
                                    level=level, text=text))

    for line in iter_markdown_lines(body):
        match = None if line.in_code else HEADING_RE.match(line.text)
        if match is None:
            buffer.append(line.text)
            continue
        heading = plain_heading_text(match.group(2) or "")
        heading_level = len(match.group(1))
        if heading_level == 1 and not seen_title and not sections and not "".join(buffer).strip():
            # The document's `#` title: it names the intro section.
            seen_title = True
            title = heading or chapter_title
            anchor = anchors.make(title)
            continue
        flush()
        buffer = []
        title, level, anchor = heading, heading_level, anchors.make(heading)
    flush()
    return tuple(sections)


def load_chapter(source: Path) -> Chapter:
    """Parse one chapter file; ValueError naming the file when it is malformed."""
    try:
        text = source.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{source}: not UTF-8 text ({exc})") from exc
    data, body = _split_front_matter(text, source)
    module, number, title, slug = _check_front_matter(data, source)
    return Chapter(slug=slug, number=number, title=title, module=module,
                   sections=_parse_sections(body, title))


def load_chapters(path: Path) -> list[Chapter]:
    """All chapters under a directory (`*.md`, recursively) or one file, by chapter number.

    ValueError when a file is malformed or two files share a slug.
    """
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.md") if p.is_file())
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"{path}: no such file or directory")
    chapters: list[Chapter] = []
    origin: dict[str, Path] = {}
    for source in files:
        chapter = load_chapter(source)
        if chapter.slug in origin:
            raise ValueError(f"{source}: slug {chapter.slug!r} is already used by "
                             f"{origin[chapter.slug]}")
        origin[chapter.slug] = source
        chapters.append(chapter)
    chapters.sort(key=lambda c: (c.number, c.slug))
    return chapters


def find_chapter(chapters: Iterable[Chapter], slug: str) -> Chapter | None:
    return next((chapter for chapter in chapters if chapter.slug == slug), None)


def find_section(chapters: Iterable[Chapter], slug: str,
                 anchor: str) -> tuple[Chapter, Section] | None:
    """The chapter with `slug` and its section with `anchor`, or None when either is unknown."""
    chapter = find_chapter(chapters, slug)
    if chapter is None:
        return None
    for section in chapter.sections:
        if section.anchor == anchor:
            return chapter, section
    return None
