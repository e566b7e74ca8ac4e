"""The docs cannot rot: the README's quickstart and every tutorial's code run as written, the site
builds strictly and opens from disk in a real browser with every internal link whole, no error and
nothing fetched from the network."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import ROOT, chromium_path, open_page

import augment

TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))
NOT_RUN = "<!-- not run: "


def python_blocks(path: Path) -> list[str]:
    """The ``python`` blocks of a page, in order, except those right after ``<!-- not run: why -->``."""
    text = path.read_text()
    blocks = []
    for match in re.finditer(r"```python\n(.*?)```", text, re.S):
        before = text[:match.start()].rstrip().splitlines()
        if before and before[-1].startswith(NOT_RUN):
            assert len(before[-1]) > len(NOT_RUN) + 10, f"{path.name}: say why a block is not run"
            continue
        blocks.append(match.group(1))
    return blocks


def run_page(path: Path, folder: Path) -> subprocess.CompletedProcess:
    """A page's blocks as one script, run as a user runs it: a fresh interpreter in an empty folder,
    the repository on the path (the tutorials say to run them from its root)."""
    script = folder / f"{path.stem}.py"
    script.write_text("\n".join(python_blocks(path)))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(script)], cwd=folder, env=environment, capture_output=True,
                          text=True, timeout=600)


def test_readme_is_a_short_front_page_with_compare_and_the_transform_on_its_first_screen():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    first_screen = "\n".join(lines[:30])
    assert "compare" in first_screen and "transform" in first_screen and "realism" in first_screen
    # every link of the front page reaches a file of the repository (the docs pages on GitHub)
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", "\n".join(lines)):
        assert target.startswith("http") or (ROOT / target).exists(), target


def test_readme_quickstart_runs_as_written(tmp_path):
    quickstart = python_blocks(ROOT / "README.md")
    assert len(quickstart) == 1 and quickstart == python_blocks(ROOT / "docs" / "getting-started.md")
    result = run_page(ROOT / "README.md", tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "analytics" / "index.html").exists() and (tmp_path / "policy.json").exists()
    assert augment.SamplingPolicy.load(tmp_path / "policy.json").realism == 0.5
    assert len(augment.read_manifest(tmp_path / "generated" / "manifest.jsonl")) == 50


@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_every_tutorial_code_block_runs(page, tmp_path):
    assert python_blocks(page), f"{page.name} has no code to run"
    result = run_page(page, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_generated_reference_pages_come_from_the_code():
    sys.path.insert(0, str(ROOT / "tools"))
    import docs_hooks

    catalogue = docs_hooks.on_page_markdown((ROOT / "docs" / "catalogue.md").read_text(), None, None, None)
    assert augment.catalogue_markdown(augment.ALL_AUGMENTATIONS) in catalogue
    assert augment.catalogue_markdown(augment.EXTENDED_AUGMENTATIONS) in catalogue and "<!--" not in catalogue
    cli = docs_hooks.on_page_markdown((ROOT / "docs" / "cli.md").read_text(), None, None, None)
    for command in ("search", "report", "compare", "synthesize", "policy", "evaluate", "catalogue", "schema"):
        assert f"## `{command}`" in cli and f"usage: augment {command}" in cli.replace("augment.py", "augment")
    formats = docs_hooks.on_page_markdown((ROOT / "docs" / "formats.md").read_text(), None, None, None)
    for field in augment.file_schema("policy")["properties"]:
        assert f"| `{field}` |" in formats
    home = docs_hooks.on_page_markdown((ROOT / "docs" / "index.md").read_text(), None, None, None)
    assert "## Quickstart" in home and "](docs/" not in home
    with pytest.raises(ValueError, match="unknown generated section"):
        docs_hooks.on_page_markdown("<!-- generated: nothing -->", None, None, None)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site as CI builds it (strict: a broken link or an unrenderable docstring fails)."""
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir",
                             str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.mark.browser
def test_site_opens_from_disk_offline_with_every_internal_link_whole(site):
    chromium = chromium_path()
    from playwright.sync_api import sync_playwright

    errors, requests, visited, broken = [], [], set(), []
    with sync_playwright() as playwright:
        browser, page = open_page(playwright, chromium, site / "index.html", errors)
        page.on("request", lambda request: requests.append(request.url))
        waiting = [(site / "index.html").as_uri()]
        while waiting:
            url = waiting.pop()
            if url in visited:
                continue
            visited.add(url)
            page.goto(url)
            page.wait_for_load_state("load")
            if url.endswith("/index.html") and len(visited) == 1:
                (ROOT / "test-artifacts").mkdir(exist_ok=True)
                page.screenshot(path=str(ROOT / "test-artifacts" / "docs-home.png"), full_page=False)
            images = page.eval_on_selector_all("article img", "els => els.map(e => [e.src, e.naturalWidth])")
            broken += [(url, src) for src, width in images if not width]
            for link in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                target = urlparse(link)
                if target.scheme != "file":
                    continue
                path = Path(unquote(target.path))
                if not path.exists():
                    broken.append((url, link))
                elif path.suffix == ".html":
                    waiting.append(path.as_uri())
        browser.close()
    assert not broken, broken
    assert not errors, errors
    assert all(urlparse(u).scheme in ("file", "data", "blob") for u in requests), [
        u for u in requests if urlparse(u).scheme not in ("file", "data", "blob")]
    pages = {Path(urlparse(u).path).relative_to(site).as_posix() for u in visited}
    assert {"index.html", "getting-started.html", "tutorials/compare.html", "tutorials/transform.html",
            "study.html", "api.html", "cli.html", "formats.html", "catalogue.html"} <= pages
    assert (ROOT / "test-artifacts" / "docs-home.png").stat().st_size > 10_000
