"""Every Python code block of README.md and docs/*.md runs as written (a documented example that
breaks fails CI). Each block runs in a fresh namespace, in a temporary working directory."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for path in DOCS:
        text = path.read_text()
        for i, m in enumerate(BLOCK.finditer(text)):
            line = text[: m.start()].count("\n") + 2
            yield pytest.param(path, line, m.group(1), id=f"{path.relative_to(ROOT)}:{line}")


def test_the_docs_have_examples():
    assert len(list(_blocks())) >= 6  # README's four, the op examples, the library example


@pytest.mark.parametrize("path,line,code", list(_blocks()))
def test_code_block_runs(path, line, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{path.name}:{line}", "exec"), {"__name__": "__doc_example__"})


def test_relative_links_resolve():
    """Every relative link of the docs points at an existing file."""
    bad = []
    for path in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target:
                continue
            if not (path.parent / target).exists():
                bad.append(f"{path.relative_to(ROOT)} -> {target}")
    assert not bad, bad
