"""Textbook chapters from a Docusaurus `docs/` folder as it is, or from one Markdown file.

Every `.md`/`.mdx` file is one chapter; folders are categories. What Docusaurus reads, and
how we read it:

* Front matter (YAML, optional): `title`, `id`, `slug`, `sidebar_position`, `draft`; our own
  flat format adds `module` and `chapter` (the sample textbook uses them)::

      ---
      module: "Module 1: The Robotic Nervous System"
      chapter: 1
      title: "ROS 2 Foundations"
      slug: ros2-foundations
      ---

* Order: within a folder, items with a position first (by position), then the others by
  file name. A file's position is `sidebar_position`, else `chapter`, else its number prefix
  (`02-topics.md`); a folder's is `position` in its `_category_.json` (or `.yml`), else its
  number prefix. A folder's `index`/`README`/`<folder name>` file opens the folder. Chapters
  are numbered 1, 2, ... in that reading order unless the front matter gives `chapter`.
* Module: the label of the top-level folder (`label` in `_category_.json`, else the folder
  name without its number prefix, as Docusaurus shows it); files directly under the root
  have none. Front matter `module` wins.
* Title: front matter `title`, else the first `#` heading, else the folder's label (for an
  index file), else the file's id.
* Slug: the page's Docusaurus path flattened to one URL segment: the folders and the file's
  id (`id`, else its name), number prefixes dropped (`01-basics/02-nodes.md` ->
  `basics-nodes`; an index file takes its folder's path). Front matter `slug` replaces the
  path (`/x/y` -> `x-y`) or, when relative, the file's part of it. Slugs are lower-case ASCII
  (python-slugify); a slug already taken gets `-2`, `-3` (reported as a note).
* Skipped: files and folders starting with `_` or `.` (Docusaurus partials), `draft: true`.
* MDX: `textbook.rag.mdx.strip_mdx` takes out imports, JSX tags and admonition markers.

A file that cannot be read (not UTF-8, bad front matter, no permission) is left out and
reported as one line `<file>: <reason>`; so is a `_category_.json` that is not valid (its
folder keeps the defaults). The rest of the book loads.

Every heading starts a new, flat Section (its text stops at the next heading of any level).
Text between the `#` title and the first `##` becomes a level-1 section named after the
chapter. Lines inside fenced code blocks are never headings (a `# comment` in a shell
snippet stays code). Anchors follow GitHub's slug rules, made unique per chapter with
`-1`, `-2` suffixes like GitHub does; a Docusaurus heading id (`## Setup {#setup}`) is used
as given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from frontmatter.default_handlers import YAMLHandler
from slugify import slugify

from textbook.rag.mdx import strip_mdx
from textbook.rag.types import Chapter, Section

__all__ = [
    "Book",
    "Fence",
    "MarkdownLine",
    "book_files",
    "find_chapter",
    "find_section",
    "github_slug",
    "iter_markdown_lines",
    "load_book",
    "load_chapter",
    "load_chapters",
    "plain_heading_text",
]

DOC_SUFFIXES = (".md", ".mdx")
CATEGORY_FILES = ("_category_.json", "_category_.yml", "_category_.yaml")
INDEX_NAMES = ("index", "readme")
MAX_SLUG_CHARS = 90  # the API accepts 100; room for a "-N" suffix
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


_HEADING_ID_RE = re.compile(r"^(?P<text>.*?)[ \t]*\{#(?P<id>[a-z0-9][a-z0-9_-]*)\}$")
_NUMBER_PREFIX_RE = re.compile(r"^(?P<number>\d+)\s*[-_.]+\s*(?P<rest>[^-_.\s].*)$")
_NOT_A_NUMBER_PREFIX_RE = re.compile(r"^\d+[-_.]\d+")  # dates and versions: 2024-01-x, 7.0-x
_FRONT_MATTER = YAMLHandler()


def _heading(raw: str) -> tuple[str, str | None]:
    """A heading's text and its Docusaurus id (`## Setup {#setup}`), if it has one."""
    match = _HEADING_ID_RE.match(raw)
    if match is None:
        return plain_heading_text(raw), None
    return plain_heading_text(match["text"]), match["id"]


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
            sections.append(
                Section(title=title, anchor=anchor or anchors.make(title), level=level, text=text)
            )

    for line in iter_markdown_lines(body):
        match = None if line.in_code else HEADING_RE.match(line.text)
        if match is None:
            buffer.append(line.text)
            continue
        heading, custom_id = _heading(match.group(2) or "")
        heading_level = len(match.group(1))
        if heading_level == 1 and not seen_title and not sections and not "".join(buffer).strip():
            # The document's `#` title: it names the intro section.
            seen_title = True
            title = heading or chapter_title
            anchor = anchors.make(custom_id or title)
            continue
        flush()
        buffer = []
        title, level, anchor = heading, heading_level, anchors.make(custom_id or heading)
    flush()
    return tuple(sections)


def _first_title(body: str) -> str | None:
    """The text of the first `#` heading outside code, if any."""
    for line in iter_markdown_lines(body):
        match = None if line.in_code else HEADING_RE.match(line.text)
        if match and len(match.group(1)) == 1 and match.group(2):
            return _heading(match.group(2))[0] or None
    return None


# --- files ----------------------------------------------------------------------------------


class _Unreadable(Exception):
    """A file left out of the book; the message is the reason, without the file name."""


def _read_text(source: Path) -> str:
    try:
        return source.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _Unreadable(f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise _Unreadable(f"cannot be read: {exc.strerror or exc}") from exc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's complaint in one line, with the line number in the file."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark:
        return f"{exc.problem} (line {exc.problem_mark.line + 1})"
    return " ".join(str(exc).split())


def _front_matter(text: str) -> tuple[dict[str, object], str]:
    """(front matter, body); no front matter is an empty mapping."""
    if not _FRONT_MATTER.detect(text):
        return {}, text
    try:
        header, body = _FRONT_MATTER.split(text)
    except ValueError as exc:
        raise _Unreadable("front matter is not closed by a '---' line") from exc
    try:
        data = _FRONT_MATTER.load(header)
    except yaml.YAMLError as exc:
        raise _Unreadable(f"front matter is not valid YAML: {_yaml_problem(exc)}") from exc
    if data is None:
        return {}, body
    if not isinstance(data, dict):
        raise _Unreadable("front matter must be a YAML mapping")
    return data, body


def _text_field(data: dict[str, object], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Unreadable(f"front matter '{name}' must be a string, got {value!r}")
    return value.strip() or None


def _number_field(data: dict[str, object], name: str, *, integer: bool) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    # bool is an int subclass; `chapter: yes` is a mistake, not chapter 1.
    if integer and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise _Unreadable(f"front matter '{name}' must be a non-negative integer, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Unreadable(f"front matter '{name}' must be a number, got {value!r}")
    return value


def _number_prefix(name: str) -> tuple[int | None, str]:
    """Docusaurus's number prefix: `02-topics` -> (2, "topics"); dates and versions stay."""
    if _NOT_A_NUMBER_PREFIX_RE.match(name):
        return None, name
    match = _NUMBER_PREFIX_RE.match(name)
    if match is None:
        return None, name
    return int(match["number"]), match["rest"]


def _slug_of(parts: Iterable[str]) -> str:
    words = [slugify(part) for part in parts]
    return (
        slugify("-".join(w for w in words if w), max_length=MAX_SLUG_CHARS, word_boundary=True)
        or "index"
    )


@dataclass(slots=True)
class _Doc:
    source: Path
    position: float | None
    title: str
    slug: str
    module: str | None  # from the front matter
    number: int | None  # from the front matter
    body: str


@dataclass(slots=True)
class _Folder:
    label: str
    position: float | None
    index: list[_Doc] = field(default_factory=list)
    items: list[_Doc | _Folder] = field(default_factory=list)


@dataclass(slots=True)
class Book:
    """The chapters in reading order, the files left out and notes on what was adjusted."""

    chapters: list[Chapter] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "<file>: <reason>", one per file
    notes: list[str] = field(default_factory=list)  # e.g. a slug renamed to stay unique


def _read_doc(source: Path, folders: list[str], label: str | None) -> _Doc | None:
    """One page; None for a draft. `folders` are the slug parts of its folders, `label` the
    label of the folder it opens (index files only)."""
    data, body = _front_matter(_read_text(source))
    if data.get("draft") is True:
        return None
    title = _text_field(data, "title")
    doc_id = _text_field(data, "id")
    slug = _text_field(data, "slug")
    module = _text_field(data, "module")
    number = _number_field(data, "chapter", integer=True)
    position = _number_field(data, "sidebar_position", integer=False)
    if doc_id is not None and "/" in doc_id:
        raise _Unreadable(f"front matter 'id' {doc_id!r} must not contain '/'")
    prefix, name = _number_prefix(source.stem)
    body = strip_mdx(body)
    if slug is not None:
        parts = slug.strip("/").split("/") if slug.startswith("/") else [*folders, *slug.split("/")]
    elif label is not None:
        parts = folders
    else:
        parts = [*folders, doc_id or name]
    return _Doc(
        source=source,
        position=position if position is not None else number if number is not None else prefix,
        title=title or _first_title(body) or label or doc_id or name,
        slug=_slug_of(parts),
        module=module,
        number=int(number) if number is not None else None,
        body=body,
    )


def _read_category(directory: Path, book: Book) -> tuple[str | None, float | None]:
    """(label, position) from the folder's `_category_.json`/`.yml`, when it has a valid one."""
    for name in CATEGORY_FILES:
        source = directory / name
        if not source.is_file():
            continue
        try:
            text = _read_text(source)
            try:
                data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
            except ValueError as exc:
                raise _Unreadable(f"not valid JSON: {exc}") from exc
            except yaml.YAMLError as exc:
                raise _Unreadable(f"not valid YAML: {_yaml_problem(exc)}") from exc
            if not isinstance(data, dict):
                raise _Unreadable('must be a mapping such as {"label": ..., "position": ...}')
            label = data.get("label")
            if label is not None and not isinstance(label, str):
                raise _Unreadable(f"'label' must be a string, got {label!r}")
            position = data.get("position")
            if position is not None and (
                isinstance(position, bool) or not isinstance(position, (int, float))
            ):
                raise _Unreadable(f"'position' must be a number, got {position!r}")
        except _Unreadable as exc:
            book.skipped.append(
                f"{source}: {exc} (the folder keeps its default label and position)"
            )
            return None, None
        return (label.strip() or None) if label else None, position
    return None, None


def _read_folder(directory: Path, folders: list[str], book: Book, seen: set[Path]) -> _Folder:
    prefix, name = _number_prefix(directory.name)
    label, position = _read_category(directory, book) if folders else (None, None)
    folder = _Folder(label=label or name, position=position if position is not None else prefix)
    index_names = (*INDEX_NAMES, name.lower())
    try:
        entries = sorted(directory.iterdir(), key=lambda p: p.name)
    except OSError as exc:
        book.skipped.append(f"{directory}: cannot be listed: {exc.strerror or exc}")
        return folder
    for entry in entries:
        if entry.name.startswith(("_", ".")):
            continue
        try:
            if entry.is_dir():
                real = entry.resolve()
                if real in seen:  # a symlink loop
                    continue
                seen.add(real)
                sub = _read_folder(entry, [*folders, _number_prefix(entry.name)[1]], book, seen)
                folder.items.append(sub)
            elif entry.suffix.lower() in DOC_SUFFIXES:
                opens = bool(folders) and _number_prefix(entry.stem)[1].lower() in index_names
                doc = _read_doc(entry, folders, folder.label if opens else None)
                if doc is not None:
                    (folder.index if opens else folder.items).append(doc)
        except _Unreadable as exc:
            book.skipped.append(f"{entry}: {exc}")
        except OSError as exc:
            book.skipped.append(f"{entry}: cannot be read: {exc.strerror or exc}")
    # Docusaurus: items with a position first, by position; the rest keep file-name order.
    folder.items.sort(key=lambda item: (item.position is None, item.position or 0))
    return folder


def _reading_order(folder: _Folder, module: str | None) -> Iterator[tuple[_Doc, str | None]]:
    for doc in folder.index:
        yield doc, module
    for item in folder.items:
        if isinstance(item, _Folder):
            yield from _reading_order(item, module if module is not None else item.label)
        else:
            yield item, module


def _assemble(docs: Iterable[tuple[_Doc, str | None]], book: Book) -> None:
    origin: dict[str, Path] = {}
    for position, (doc, module) in enumerate(docs, start=1):
        slug, suffix = doc.slug, 1
        while slug in origin:
            suffix += 1
            slug = f"{doc.slug}-{suffix}"
        if slug != doc.slug:
            book.notes.append(
                f"{doc.source}: slug {doc.slug!r} is taken by "
                f"{origin[doc.slug]}; this chapter is {slug!r}"
            )
        origin[slug] = doc.source
        book.chapters.append(
            Chapter(
                slug=slug,
                number=doc.number if doc.number is not None else position,
                title=doc.title,
                module=doc.module or module or "",
                sections=_parse_sections(doc.body, doc.title),
            )
        )


def load_book(path: Path) -> Book:
    """The chapters under a Docusaurus docs folder (or of one file), in reading order.

    Never raises for a bad file: it is left out and named in `Book.skipped`. ValueError when
    `path` does not exist.
    """
    book = Book()
    if path.is_dir():
        root = _read_folder(path, [], book, {path.resolve()})
        _assemble(_reading_order(root, None), book)
    elif path.exists():
        try:
            if path.suffix.lower() not in DOC_SUFFIXES:
                raise _Unreadable("not a .md or .mdx file")
            doc = _read_doc(path, [], None)
        except _Unreadable as exc:
            book.skipped.append(f"{path}: {exc}")
        else:
            if doc is not None:
                _assemble([(doc, None)], book)
    else:
        raise ValueError(f"{path}: no such file or directory")
    return book


def book_files(path: Path) -> list[Path]:
    """The files whose changes can change `load_book(path)` (pages and category files)."""
    if not path.is_dir():
        return [path] if path.exists() else []
    return sorted(
        p for p in path.rglob("*") if p.suffix.lower() in DOC_SUFFIXES or p.name in CATEGORY_FILES
    )


def load_chapter(source: Path) -> Chapter:
    """One file's chapter; ValueError naming the file when it cannot be read."""
    return load_chapters(source)[0]


def load_chapters(path: Path) -> list[Chapter]:
    """`load_book(path).chapters`, strictly: ValueError naming the first file left out."""
    book = load_book(path)
    if book.skipped:
        raise ValueError(book.skipped[0])
    if not book.chapters:
        raise ValueError(f"{path}: no chapters (.md or .mdx files)")
    return book.chapters


def find_chapter(chapters: Iterable[Chapter], slug: str) -> Chapter | None:
    return next((chapter for chapter in chapters if chapter.slug == slug), None)


def find_section(
    chapters: Iterable[Chapter], slug: str, anchor: str
) -> tuple[Chapter, Section] | None:
    """The chapter with `slug` and its section with `anchor`, or None when either is unknown."""
    chapter = find_chapter(chapters, slug)
    if chapter is None:
        return None
    for section in chapter.sections:
        if section.anchor == anchor:
            return chapter, section
    return None
