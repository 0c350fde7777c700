"""The README and docs/*.md: every relative link and image resolves to a file of this repository, every #anchor to a
heading (GitHub's slug) of its target, and nothing points readers at files they do not have. Web links are not
fetched."""

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT_BYTES = 12 * 1024

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), with an optional "title"; link text may hold one level of brackets.
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s)]+)(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
HTML_TARGET = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)=\"([^\"]+)\"", re.IGNORECASE)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:id|name)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# What only the project's own machines have: the sibling folder of source notes and its files.
INTERNAL = re.compile(r"\.\./shared|\bshared/data\b|PAPER\.md|PITFALLS\.md|STYLE\.md|\bseeds?\s+00[0-4]\b", re.I)


def without_code(text: str, spans: bool = True) -> str:
    """The text with fenced code blocks (and inline code spans, with `spans`) blanked out: what they hold is not
    Markdown. A heading's code span is part of its anchor, so headings are read with spans kept."""
    kept, fence = [], None
    for line in text.splitlines():
        opening = FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)[0] * len(opening.group(1))
            kept.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            kept.append("")
        else:
            kept.append(CODE_SPAN.sub("", line) if spans else line)
    return "\n".join(kept)


def link_targets(text: str) -> list[str]:
    """Every link and image target of a Markdown text, in order."""
    prose = without_code(text)
    targets = [m.group(1) for m in INLINE_LINK.finditer(prose)]
    targets += REFERENCE_DEFINITION.findall(prose) + HTML_TARGET.findall(prose)
    return [target[1:-1] if target.startswith("<") else target for target in targets]


def image_targets(text: str) -> list[str]:
    prose = without_code(text)
    return [m.group(1) for m in INLINE_LINK.finditer(prose) if m.group(0).startswith("!")]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its visible text in lower case, without punctuation and symbols, spaces as '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link or image counts by its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "")
    keep = ("L", "M", "Nd", "Nl", "Pc")
    text = "".join(c for c in text.lower() if c in " -" or unicodedata.category(c).startswith(keep))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The #fragments a page answers to: its headings' slugs (repeats get -1, -2, …) and explicit <a id/name>."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in without_code(page.read_text(encoding="utf-8"), spans=False).splitlines():
        if heading := HEADING.match(line):
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found | set(HTML_ANCHOR.findall(without_code(page.read_text(encoding="utf-8"))))


def relative_links(page: Path) -> list[tuple[str, Path, str]]:
    """(as written, resolved path, anchor) of every link that is not a web address, from one page."""
    links = []
    for target in link_targets(page.read_text(encoding="utf-8")):
        if SCHEME.match(target):
            continue
        path, _, anchor = target.partition("#")
        links.append((target, (page.parent / path).resolve() if path else page, anchor))
    return links


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_heading_slugs_follow_githubs_rules():
    assert slug("Resume, checkpoints, divergence") == "resume-checkpoints-divergence"
    assert slug("Weights & Biases") == "weights--biases"
    assert slug("The A-RNN: settings and backends") == "the-a-rnn-settings-and-backends"
    assert slug("`make bench`") == "make-bench"
    assert slug("Authors' code") == "authors-code"
    assert slug("chang2019") == "chang2019"
    assert slug("model_backend × T ≤ 4") == "model_backend--t--4"
    assert slug("See [Models](models.md)") == "see-models"


def test_a_repeated_heading_answers_to_numbered_anchors(tmp_path):
    page = tmp_path / "page.md"
    page.write_text('# Notes\n\n## Setup\n\n```\n# not a heading\n```\n\n## Setup\n\n<a id="key"></a>\n')
    assert anchors(page) == {"notes", "setup", "setup-1", "key"}


def test_links_inside_code_are_not_links():
    text = (
        "[page](a.md) and `[not](b.md)`\n\n```bash\necho [not](c.md)\n```\n\n"
        '![image](figures/x.png "title") [web](https://example.org) <https://example.org>\n\n[ref]: d.md\n'
    )
    assert link_targets(text) == ["a.md", "figures/x.png", "https://example.org", "d.md"]
    assert image_targets(text) == ["figures/x.png"]


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_relative_link_resolves_to_a_path_in_the_repository(page):
    broken = [written for written, path, _ in relative_links(page) if not path.exists()]
    outside = [written for written, path, _ in relative_links(page) if not path.is_relative_to(ROOT)]
    assert not broken, f"{page_id(page)} links to missing paths: {broken}"
    assert not outside, f"{page_id(page)} links outside the repository: {outside}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_anchor_names_a_heading_of_its_target(page):
    missing = [
        written
        for written, path, anchor in relative_links(page)
        if anchor and path.suffix == ".md" and path.is_file() and anchor not in anchors(path)
    ]
    assert not missing, f"{page_id(page)} links to anchors its targets do not have: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_image_is_a_file_in_the_repository(page):
    images = [target for target in image_targets(page.read_text(encoding="utf-8")) if not SCHEME.match(target)]
    missing = [target for target in images if not (page.parent / target.partition("#")[0]).resolve().is_file()]
    assert not missing, f"{page_id(page)} shows images that are not files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_pages_do_not_point_readers_at_files_they_do_not_have(page):
    mentions = [m.group(0) for m in INTERNAL.finditer(page.read_text(encoding="utf-8"))]
    assert not mentions, f"{page_id(page)} mentions {mentions}: cite the paper or the authors' repository instead"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {path for _, path, _ in relative_links(README)}
    unlinked = [page_id(page) for page in PAGES[1:] if page not in linked]
    assert not unlinked, f"README.md does not link {unlinked}"


def test_readme_stays_under_12_kib():
    size = len(README.read_bytes())
    assert size <= README_LIMIT_BYTES, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT_BYTES})"
