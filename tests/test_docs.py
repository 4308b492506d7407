"""The docs: README.md is a short front page and docs/ holds the rest. The generated reference pages
(docs/reference/) match the code, every relative link and #anchor resolves, every page under docs/ is
linked from an index, and README.md stays short. Fast: no TensorFlow, no training."""

import importlib.util
import os
import re
import sys
import unicodedata

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(REPO, "docs")
README = os.path.join(REPO, "README.md")
INDEXES = [README, os.path.join(DOCS, "README.md")]
REGENERATE = ".venv/bin/python docs/generate.py"

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def markdown_files():
    files = [README]
    for root, dirs, names in os.walk(DOCS):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        files += [os.path.join(root, name) for name in sorted(names) if name.endswith(".md")]
    return files


def rel(path):
    return os.path.relpath(path, REPO)


def prose_lines(path):
    """(line number, text) of the lines outside fenced code blocks."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    inside = None
    for number, line in enumerate(lines, 1):
        fence = FENCE.match(line)
        if fence:
            if inside is None:
                inside = fence.group(1)
            elif fence.group(1) == inside:
                inside = None
            continue
        if inside is None:
            yield number, line


def slug(heading):
    """GitHub's anchor for a heading: the rendered text, lowercased, punctuation dropped except - and _,
    spaces turned into -."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images keep their text
    text = INLINE_CODE.sub(lambda m: m.group(2), text)
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("*", "")  # emphasis; _ is kept, as GitHub keeps it
    text = text.strip().lower()
    kept = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(path, cache={}):  # noqa: B006 (a cache on purpose)
    if path not in cache:
        found, seen = set(), {}
        for _, line in prose_lines(path):
            match = HEADING.match(line)
            if match:
                base = slug(match.group(2))
                count = seen.get(base, 0)
                seen[base] = count + 1
                found.add(base if count == 0 else f"{base}-{count}")  # GitHub numbers repeated headings
        cache[path] = found
    return cache[path]


def links(path):
    """(line number, target) of every link and image in the prose of a markdown file."""
    for number, line in prose_lines(path):
        line = INLINE_CODE.sub("", line)
        for match in LINK.finditer(line):
            yield number, match.group(1)


def load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", os.path.join(DOCS, "generate.py"))
    module = importlib.util.module_from_spec(spec)
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no docs/__pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = writes
    return module


def test_generated_reference_pages_are_up_to_date():
    generator = load_generator()
    pages = generator.generated()
    assert set(pages) == {"docs/reference/recipes.md", "docs/reference/cli.md"}
    for relative, text in pages.items():
        path = os.path.join(REPO, relative)
        assert os.path.isfile(path), f"{relative} is missing; run {REGENERATE}"
        with open(path, encoding="utf-8", newline="") as f:
            current = f.read()
        assert current == text, f"{relative} is out of date with the code; run {REGENERATE}"
    assert generator.stale(pages) == []


def test_generated_reference_pages_are_deterministic():
    generator = load_generator()
    first, second = generator.generated(), generator.generated()
    assert first == second
    for relative, text in first.items():
        assert REPO not in text, f"{relative} contains the absolute repository path"
        assert not re.search(r" at 0x[0-9a-f]+", text), f"{relative} contains a memory address"


def test_recipe_reference_covers_every_task_and_key():
    from toolkit.api import recipe_class
    from toolkit.tasks import TASKS

    generator = load_generator()
    text = generator.recipes_reference()
    for name in TASKS.names():
        assert f"## {name}\n" in text, f"docs/reference/recipes.md has no section for task {name}"
        for key, kind, *_ in generator.field_rows(recipe_class(name)):
            top_section = "." not in key and kind in ("section", "section | null")
            found = f"### {name}: {key}\n" in text if top_section else f"| `{key}` |" in text
            assert found, f"docs/reference/recipes.md: {name} lacks the key {key}"


def test_cli_reference_covers_every_verb():
    from toolkit.cli import _parser

    generator = load_generator()
    text = generator.cli_reference()
    for words, _ in generator._commands(_parser(), ["toolkit"]):
        assert f"## {' '.join(words)}\n" in text, f"docs/reference/cli.md lacks {' '.join(words)}"


def test_slug_follows_github_rules():
    assert slug("Serving: `toolkit serve`") == "serving-toolkit-serve"
    assert slug("TFLite (LiteRT) and quantisation") == "tflite-litert-and-quantisation"
    assert slug("Distributed training (`train.strategy`)") == "distributed-training-trainstrategy"
    assert slug("image_classification: top-level keys") == "image_classification-top-level-keys"
    assert slug("First run of each task in 5 minutes") == "first-run-of-each-task-in-5-minutes"


@pytest.mark.parametrize("path", markdown_files(), ids=rel)
def test_relative_links_and_anchors_resolve(path):
    problems = []
    for number, target in links(path):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # external: not checked (no network in tests)
        file_part, _, anchor = target.partition("#")
        destination = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        where = f"{rel(path)}:{number}: link {target!r}"
        if os.path.isabs(file_part):
            problems.append(f"{where} is absolute; use a relative link")
        elif not os.path.exists(destination):
            problems.append(f"{where} points at {rel(destination)}, which does not exist")
        elif anchor and destination.endswith(".md"):
            if anchor not in anchors(destination):
                problems.append(f"{where}: no heading of {rel(destination)} has the anchor #{anchor}")
    assert not problems, "\n".join(problems)


def test_every_docs_page_is_linked_from_an_index():
    linked = set()
    for index in INDEXES:
        for _, target in links(index):
            file_part = target.partition("#")[0]
            if file_part and not SCHEME.match(file_part):
                linked.add(os.path.normpath(os.path.join(os.path.dirname(index), file_part)))
    missing = [rel(page) for page in markdown_files() if page not in INDEXES and page not in linked]
    assert not missing, f"pages under docs/ linked from neither README.md nor docs/README.md: {missing}"


def test_readme_is_short_and_starts_with_make_demo_and_make_test():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    assert lines <= 260, f"README.md has {lines} lines (at most 260): move detail into docs/"
    for command in ("make demo", "make test"):
        assert command in text, f"README.md does not show `{command}`"
