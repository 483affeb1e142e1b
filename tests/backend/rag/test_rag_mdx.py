"""strip_mdx: what the Docusaurus build compiles away does not reach the index; prose and
code do."""

from __future__ import annotations

import pytest

from textbook.core.config import SAMPLE_CONTENT_DIR
from textbook.rag.mdx import strip_mdx


def test_plain_markdown_is_unchanged() -> None:
    """The sample textbook (Markdown with code full of `import` and `<tags>`) passes as is."""
    for source in sorted(SAMPLE_CONTENT_DIR.glob("*.md")):
        text = source.read_text(encoding="utf-8")
        assert strip_mdx(text) == text, source.name


def test_imports_and_exports_go_even_across_lines() -> None:
    text = (
        "import Tabs from '@theme/Tabs';\n"
        "import {\n  Figure,\n  Caption,\n} from '@site/src/components';\n"
        "export const meta = {\n  a: 1,\n\n  b: 2,\n};\n"
        "\n"
        "# Title\n\nProse.\n"
    )
    assert strip_mdx(text) == "# Title\n\nProse.\n"


def test_import_inside_a_paragraph_is_prose() -> None:
    text = "Before you write code,\nimport the package in your launch file.\n"
    assert strip_mdx(text) == text


def test_jsx_tags_go_and_their_children_stay() -> None:
    text = (
        '<Tabs groupId="lang">\n'
        '  <TabItem value="py" label="Python" default>\n'
        "\n"
        "Python prose.\n"
        "\n"
        "  </TabItem>\n"
        "  <TabItem\n"
        '    value="cpp"\n'
        "    render={() => count > 1 ? <b>x</b> : null}\n"
        "  >\n"
        "C++ prose.\n"
        "  </TabItem>\n"
        "</Tabs>\n"
        '<Figure src="/img/a.png" alt="a > b" />\n'
        "<>\n"
        "Fragment prose.\n"
        "</>\n"
    )
    assert strip_mdx(text) == "Python prose.\n\nC++ prose.\n\nFragment prose.\n"


def test_a_line_of_tags_and_text_keeps_the_text() -> None:
    assert strip_mdx("<summary>Which engines?</summary>\n") == "Which engines?\n"
    assert strip_mdx("Press <kbd>Ctrl</kbd>+<kbd>C</kbd>.<br/>\n") == "Press Ctrl+C.\n"


def test_tags_inside_code_spans_stay() -> None:
    text = "Declare a `<ros2_control>` block and a `List<String>`, then <b>run</b> it.\n"
    assert strip_mdx(text) == text.replace("<b>run</b>", "run")


@pytest.mark.parametrize(
    "text",
    [
        "See <https://docs.ros.org> and <mail@example.org>.\n",
        "<https://docs.ros.org>\n",
        "Keep a < b and b > c as they are.\n",
    ],
)
def test_autolinks_and_comparisons_are_not_jsx(text: str) -> None:
    assert strip_mdx(text) == text


def test_comments_and_expressions_go() -> None:
    text = (
        "{/* an editor's note\n   over two lines */}\n"
        "Prose{/* inline */} here.\n"
        "<!-- an HTML comment -->\n"
        "{frontMatter.description}\n"
        "More prose.\n"
    )
    assert strip_mdx(text) == "Prose here.\n\nMore prose.\n"


@pytest.mark.parametrize(
    ("marker", "title"),
    [
        (":::note", None),
        (":::tip[Naming topics]", "Naming topics"),
        (":::warning Quality of service", "Quality of service"),
        ("::::danger", None),
    ],
)
def test_admonition_markers_go_and_the_body_and_title_stay(marker: str, title: str | None) -> None:
    text = f"Before.\n\n{marker}\nUse relative names.\n{':' * marker.count(':')}\n\nAfter.\n"
    body = f"{title}\nUse relative names." if title else "Use relative names."
    assert strip_mdx(text) == f"Before.\n\n{body}\n\nAfter.\n"


def test_code_blocks_are_kept_byte_for_byte() -> None:
    code = (
        '```jsx title="src/Example.js"\n'
        "import Tabs from '@theme/Tabs';\n"
        "\n"
        "export default function Example() {\n"
        '  return <Tabs><TabItem value="a">A</TabItem></Tabs>;\n'
        "}\n"
        ":::note\n"
        "{/* kept */}\n"
        "```\n"
        "~~~~md\n"
        "```\n"
        "<Tabs>\n"
        "```\n"
        "~~~~\n"
    )
    assert strip_mdx(code) == code


def test_a_fence_indented_inside_a_component_becomes_a_fence() -> None:
    text = (
        '<TabItem value="py">\n'
        "\n"
        "    ```python\n"
        "    import rclpy\n"
        "        rclpy.init()\n"
        "    ```\n"
        "\n"
        "</TabItem>\n"
    )
    assert strip_mdx(text) == "```python\nimport rclpy\n    rclpy.init()\n```\n"


def test_an_unclosed_tag_is_left_as_prose() -> None:
    text = "<Note that this never closes\n<Nor this one\n\nIt is prose.\n"
    assert strip_mdx(text) == text
    after_a_tag = "<b>Bold</b> then <Unclosed rest\nnext\n"
    assert strip_mdx(after_a_tag) == "Bold then <Unclosed rest\nnext\n"
