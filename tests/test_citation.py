"""CITATION.cff is valid YAML and carries the version lth reports in every run.json."""

from __future__ import annotations

import re

import yaml

import lth
from tests.conftest import ROOT


def test_citation_version_matches_the_package() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    assert cff["title"] and cff["authors"] and cff["message"]
    project = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert project is not None
    assert cff["version"] == lth.__version__ == project.group(1)
