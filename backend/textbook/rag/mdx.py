"""The Markdown a reader sees in an MDX page: ESM, JSX and admonition markers taken out.

Docusaurus compiles `.mdx` (and, since v3, `.md`) pages as MDX. What only the site's build
uses must not reach the index, while the prose inside components must:

* `import`/`export` blocks (ESM) go. As in MDX, one starts a block at column 0 and runs to a
  blank line at which its brackets are balanced; inside a paragraph `import ...` is prose.
* JSX tags go, their children stay: `<Tabs>`, `<TabItem value="py">` (attributes may span
  lines and hold `{...}` expressions with `>` in them), `</TabItem>`, `<Figure ... />`,
  fragments and `<!-- -->` comments. Removed lines leave one paragraph break, so the tab
  bodies on either side stay separate paragraphs. Tags inside a line's prose go too, except
  inside `code spans`. A `<Name` that does not close within MAX_CONSTRUCT_LINES is prose.
* `{/* comments */}` and expressions that open a line (`{props.x}`) go.
* Admonition markers go (`:::note`, `:::tip[Title]`, `:::warning Title`, the closing `:::`),
  the body stays as ordinary paragraphs; a custom title stays as a line of its own.

Fenced code blocks are kept byte for byte: an `import` line or `<Tabs>` in a code sample is
code. MDX has no indented code blocks, so a fence indented by four or more spaces (as inside
a `<TabItem>`) is still a fence; such a block is moved left by its fence's indentation so
the Markdown parser downstream sees it as one.

There is no maintained MDX parser for Python, and a CommonMark parser reads a line-leading
`<TabItem>` as an HTML block that swallows the prose after it; hence this small scanner.
"""

from __future__ import annotations

import re

__all__ = ["strip_mdx"]

_FENCE_RE = re.compile(r"^(?P<indent>[ \t]*)(?P<marker>`{3,}|~{3,})(?P<info>.*)$")
_ESM_RE = re.compile(r"^(?:import|export)(?=[\s{*])")
_ADMONITION_RE = re.compile(
    r"^[ \t]*:{3,}(?:(?P<kind>[A-Za-z][\w-]*)(?:\[(?P<label>[^\]]*)\])?(?P<title>[ \t].*)?)?$"
)
# What opens a JSX construct: a tag or closing tag (`<Name`, `</Name`, `<a.b`), a fragment
# (`<>`, `</>`), an HTML comment, or an expression. `<https://...>` and `a < b` do not.
_TAG_START_RE = re.compile(r"<(?:/?[A-Za-z][\w.-]*(?=[\s/>]|$)|/?>|!--)")
_INLINE_TAG_RE = re.compile(r"<(?:/?[A-Za-z][\w.-]*(?:\s[^<>]*?)?/?|/?)>|<!--.*?-->|\{/\*.*?\*/\}")
_SYNTAX_RE = re.compile(r"['\"`{}>]")
MAX_CONSTRUCT_LINES = 100  # a tag or expression longer than this is taken for prose
_CODE_SPAN_RE = re.compile(r"(`+).*?(?<!`)\1(?!`)")


def strip_mdx(text: str) -> str:
    """`text` without what MDX compiles away (see the module docstring)."""
    lines = text.split("\n")
    out = _Output()
    index = 0
    while index < len(lines):
        line = lines[index]
        fence = _FENCE_RE.match(line)
        if fence and not (fence["marker"][0] == "`" and "`" in fence["info"]):
            index = _copy_fence(lines, index, fence, out)
            continue
        if out.block_start and _ESM_RE.match(line):
            index = _skip_esm(lines, index)
            out.remove()
            continue
        admonition = _ADMONITION_RE.match(line)
        if admonition:
            title = (admonition["label"] or admonition["title"] or "").strip()
            out.remove()
            if title:
                out.add(title)
            index += 1
            continue
        stripped = line.lstrip()
        if stripped.startswith(("<", "{")) and _opens_construct(stripped):
            stripped_line = _strip_leading_constructs(lines, index)
            if stripped_line is not None:
                kept, index = stripped_line
                out.remove()
                if kept:
                    out.add(kept)
                continue
        out.add(_strip_inline(line))
        index += 1
    return "\n".join(out.lines)


class _Output:
    """The lines kept. A removed line becomes a paragraph break: one blank line, however
    many blank lines surround it; text without removals keeps its blank lines as they are."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._gap = False  # a line was removed since the last text line

    @property
    def block_start(self) -> bool:
        """Whether the next line starts a block (MDX's ESM may only start one)."""
        return self._gap or not self.lines or not self.lines[-1].strip()

    def remove(self) -> None:
        self._gap = True

    def add(self, line: str, *, code: bool = False) -> None:
        if not line.strip() and not code:
            if self._gap and (not self.lines or not self.lines[-1].strip()):
                return
        elif self._gap:
            if self.lines and self.lines[-1].strip():
                self.lines.append("")
            self._gap = False
        self.lines.append(line)
        if code:
            self._gap = False


def _copy_fence(lines: list[str], index: int, fence: re.Match[str], out: _Output) -> int:
    """Copy a fenced block (unchanged, or moved left when indented 4+); the next index."""
    indent = len(fence["indent"].expandtabs(4))
    shift = indent if indent >= 4 else 0  # 0-3 spaces: already a CommonMark fence, keep bytes
    char, length = fence["marker"][0], len(fence["marker"])

    def moved(line: str) -> str:
        if not shift:
            return line
        body = line.lstrip(" \t")
        lead = len(line[: len(line) - len(body)].expandtabs(4))
        return " " * max(0, lead - shift) + body

    out.add(moved(lines[index]), code=True)
    index += 1
    while index < len(lines):
        line = lines[index]
        out.add(moved(line), code=True)
        index += 1
        closing = line.strip()
        if len(closing) >= length and set(closing) == {char}:
            break
    return index


def _skip_esm(lines: list[str], index: int) -> int:
    """The index after an ESM block: the first blank line with balanced brackets."""
    depth = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip() and depth <= 0:
            return index
        depth += _bracket_balance(line)
        index += 1
    return index


def _bracket_balance(line: str) -> int:
    balance, quote = 0, ""
    for char in line:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char in "([{":
            balance += 1
        elif char in ")]}":
            balance -= 1
    return balance


def _opens_construct(stripped: str) -> bool:
    return stripped.startswith("{") or _TAG_START_RE.match(stripped) is not None


def _construct_end(text: str, start: int) -> int | None:
    """Where the tag, comment or expression at `start` ends (exclusive), None if it does not."""
    for opener, closer_text in (("<!--", "-->"), ("{/*", "*/}")):
        if text.startswith(opener, start):
            end = text.find(closer_text, start + len(opener))
            return None if end < 0 else end + len(closer_text)
    is_tag = text[start] == "<"
    depth, quote = (0 if is_tag else 1), ""
    for match in _SYNTAX_RE.finditer(text, start + 1):  # only the characters that matter
        char = match.group()
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if not is_tag and depth == 0:
                return match.end()
        elif char == ">" and is_tag and depth == 0:
            return match.end()
    return None


def _strip_leading_constructs(lines: list[str], index: int) -> tuple[str, int] | None:
    """Remove the tags/expressions that open line `index` (they may span later lines) and
    any that follow on the same line: the prose left over and the next line's index. None
    when the first one never closes (then it is not JSX but prose)."""
    text = lines[index]
    joined = False
    kept: list[str] = []
    first = position = len(text) - len(text.lstrip())
    while True:
        while position < len(text) and text[position] in " \t":
            position += 1
        if position >= len(text) or text[position] == "\n":
            break
        end = None
        if _opens_construct(text[position:]):
            end = _construct_end(text, position)
            if end is None and not joined:  # a tag whose attributes continue on later lines
                text = "\n".join(lines[index : index + MAX_CONSTRUCT_LINES])
                joined = True
                end = _construct_end(text, position)
            if end is None and position == first:
                return None
        if end is None:
            # Prose after the tags (or a tag that never closes), up to the end of this line.
            newline = text.find("\n", position)
            rest = text[position:] if newline < 0 else text[position:newline]
            kept.append(_strip_inline(rest).strip())
            break
        position = end
    return " ".join(part for part in kept if part), index + text.count("\n", 0, position) + 1


def _strip_inline(line: str) -> str:
    """Inline tags, HTML comments and `{/* */}` removed outside code spans."""
    if "<" not in line and "{/*" not in line:
        return line
    pieces: list[str] = []
    cursor = 0
    for span in _CODE_SPAN_RE.finditer(line):
        pieces.append(_INLINE_TAG_RE.sub("", line[cursor : span.start()]))
        pieces.append(span.group(0))
        cursor = span.end()
    pieces.append(_INLINE_TAG_RE.sub("", line[cursor:]))
    return "".join(pieces)
