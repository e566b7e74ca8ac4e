"""The README's catalogue table is the catalogue's own."""

from conftest import ROOT

import augment


def test_readme_catalogue_table_matches_the_code():
    readme = (ROOT / "README.md").read_text()
    assert augment.catalogue_markdown(augment.ALL_AUGMENTATIONS) in readme
    assert augment.catalogue_markdown(augment.EXTENDED_AUGMENTATIONS) in readme


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("pip install")]
    assert command and command[0] in readme
