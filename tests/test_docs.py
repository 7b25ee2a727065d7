"""The docs are true to the config tree: every composed key is documented in docs/config.md with
its default, every documented key exists, and every relative link in the docs resolves.

docs/config.md's convention (stated at its top): a key table's first column is one backticked
dotted key. Its header says what the rows are:

- ``| key | default | ...``: keys of ``python -m experiments.lottery``, with their default in
  the composed config (no overrides) as one backticked YAML value;
- ``| key | configs | ...``: keys that only some files of a group have (``model.*``,
  ``optimizer.*``); ``configs`` lists those files backticked, or says ``all``;
- ``| control key | default | ...``, ``| instability key | default | ...`` and
  ``| export key | default | ...``: conf/control.yaml, conf/instability.yaml and
  conf/export.yaml; ``required`` for a value that must be given (``???``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from experiments.pair_schema import register  # every command's schema
from tests.conftest import ROOT

register()
CONF = ROOT / "conf"
DOCS = ROOT / "docs"
CONFIG_DOC = DOCS / "config.md"
GROUP_TABLE_GROUPS = ("model", "optimizer")  # keys differ between a group's files
MAIN_TABLE_GROUPS = ("dataset", "prune")      # every file has the same keys (one schema)


def compose_config(name: str, overrides: list[str] | None = None, *,
                   choices: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """The composed config ``name`` (unresolved, no ``hydra`` node) and the group choices."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides or [],
                      return_hydra_config=choices)
    picked = dict(cfg.hydra.runtime.choices) if choices else {}
    data = OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)
    assert isinstance(data, dict)
    data.pop("hydra", None)
    return data, picked


def leaves(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted leaf key -> value; a list is a leaf."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(leaves(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def cells(line: str) -> list[str]:
    """A markdown table row's cells (``\\|`` is a literal bar inside a cell)."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def key_tables(text: str) -> dict[str, list[list[str]]]:
    """Rows of docs/config.md's key tables by kind: main, group, control, export."""
    kinds = {("key", "default"): "main", ("key", "configs"): "group",
             ("control key", "default"): "control", ("export key", "default"): "export",
             ("distill key", "default"): "distill",
             ("instability key", "default"): "instability",
             ("barrier key", "default"): "barrier",
             ("transport key", "default"): "transport"}
    out: dict[str, list[list[str]]] = {kind: [] for kind in kinds.values()}
    kind, previous = None, ""
    for line in text.splitlines():
        if not line.startswith("|"):
            kind, previous = None, line
            continue
        row = cells(line)
        if not previous.startswith("|"):  # a header
            kind = kinds.get((row[0].lower(), row[1].lower() if len(row) > 1 else ""))
        elif kind and re.fullmatch(r"`[^`]+`", row[0]):
            out[kind].append([row[0].strip("`"), *row[1:]])
        previous = line
    return out


@pytest.fixture(scope="module")
def tables() -> dict[str, list[list[str]]]:
    return key_tables(CONFIG_DOC.read_text())


def documented(rows: list[list[str]]) -> dict[str, str]:
    """Documented key -> its second cell, failing on a key documented twice."""
    keys = [r[0] for r in rows]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    assert not twice, f"documented twice in docs/config.md: {twice}"
    return {r[0]: r[1] for r in rows}


def check_defaults(doc: dict[str, str], composed: dict[str, Any], where: str) -> None:
    wrong = []
    for key, cell in doc.items():
        if cell == "required":
            if composed[key] != "???":
                wrong.append(f"{key}: documented as required, composed {composed[key]!r}")
            continue
        match = re.fullmatch(r"`([^`]*)`", cell)
        if match is None:
            wrong.append(f"{key}: default cell {cell!r} is not one backticked YAML value")
        elif yaml.safe_load(match.group(1)) != composed[key]:
            wrong.append(f"{key}: documented {match.group(1)}, composed {composed[key]!r}")
    assert not wrong, f"{where}: " + "; ".join(wrong)


def check_same_keys(doc: set[str], composed: set[str], where: str) -> None:
    missing, extra = sorted(composed - doc), sorted(doc - composed)
    assert not missing, f"{where}: not documented in docs/config.md: {missing}"
    assert not extra, f"{where}: documented but not in the config: {extra}"


def in_group(key: str, groups: tuple[str, ...]) -> bool:
    return key.split(".", 1)[0] in groups


def group_keys(rows: list[list[str]], group: str, option: str) -> set[str]:
    """The group-table keys that ``group=option`` has, by the ``configs`` column."""
    out = set()
    for key, configs, *_ in rows:
        if key.split(".", 1)[0] != group:
            continue
        named = re.findall(r"`([^`]+)`", configs)
        if configs.strip().lower() == "all" or option in named:
            out.add(key)
    return out


def test_the_key_tables_are_found(tables) -> None:
    assert len(tables["main"]) > 30 and tables["group"] and tables["control"]
    assert tables["export"]
    assert "backticked" in CONFIG_DOC.read_text().split("\n## ")[0]  # the convention is stated


def test_default_config_keys_and_defaults_are_documented(tables) -> None:
    composed = {k: v for k, v in leaves(compose_config("config")[0]).items()
                if not in_group(k, GROUP_TABLE_GROUPS)}
    doc = documented(tables["main"])
    bad = sorted(k for k in doc if in_group(k, GROUP_TABLE_GROUPS))
    assert not bad, f"{bad} belong in the `| key | configs |` table"
    check_same_keys(set(doc), set(composed), "python -m experiments.lottery")
    check_defaults(doc, composed, "python -m experiments.lottery")


@pytest.mark.parametrize("group", MAIN_TABLE_GROUPS)
def test_every_file_of_a_one_schema_group_has_the_documented_keys(tables, group: str) -> None:
    doc = {k for k in documented(tables["main"]) if in_group(k, (group,))}
    for option in options(group):
        composed = leaves(compose_config("config", [f"{group}={option}"])[0])
        check_same_keys(doc, {k for k in composed if in_group(k, (group,))}, f"{group}={option}")


@pytest.mark.parametrize("group", GROUP_TABLE_GROUPS)
def test_every_group_file_has_exactly_its_documented_keys(tables, group: str) -> None:
    rows = tables["group"]
    documented(rows)
    for option in options(group):
        composed = leaves(compose_config("config", [f"{group}={option}"])[0])
        check_same_keys(group_keys(rows, group, option),
                        {k for k in composed if in_group(k, (group,))}, f"{group}={option}")
    named = {n for _, configs, *_ in rows for n in re.findall(r"`([^`]+)`", configs)}
    named_here = {n for n in named if n in options("model") + options("optimizer")}
    assert named == named_here, f"configs that do not exist: {sorted(named - named_here)}"


@pytest.mark.parametrize("preset", options("experiment"))
def test_every_preset_composes_to_documented_keys(tables, preset: str) -> None:
    cfg, choices = compose_config("config", [f"experiment={preset}"], choices=True)
    doc = set(documented(tables["main"]))
    for group in GROUP_TABLE_GROUPS:
        doc |= group_keys(tables["group"], group, choices[group])
    check_same_keys(doc, set(leaves(cfg)), f"experiment={preset}")


@pytest.mark.parametrize("kind", ["control", "export", "distill", "instability", "barrier",
                                  "transport"])
def test_control_export_and_distill_keys_are_documented(tables, kind: str) -> None:
    composed = {k: v for k, v in leaves(compose_config(kind)[0]).items()
                if not in_group(k, GROUP_TABLE_GROUPS)}  # model.*, optimizer.*: group tables
    doc = documented(tables[kind])
    check_same_keys(set(doc), set(composed), f"conf/{kind}.yaml")
    check_defaults(doc, composed, f"conf/{kind}.yaml")


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces -> -."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+ (.+)$", text, re.M)}


def broken_links(page: Path) -> list[str]:
    """Relative links of ``page`` whose file (or heading anchor, in a .md file) is missing."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code is not links
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = (page.parent / path) if path else page
        if not file.exists() or (anchor and file.suffix == ".md"
                                 and anchor not in anchors(file)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files(page: Path) -> None:
    broken = broken_links(page)
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A heading\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-heading) [web](https://x.org) [gone](missing.md) "
                    "[bad anchor](other.md#nope) [self](#nowhere)\n```\n[code](x.md)\n```\n")
    assert broken_links(page) == ["missing.md", "other.md#nope", "#nowhere"]


def test_readme_install_and_test_commands_are_what_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    install = re.search(r'pip install (-e "\.\[[^\]]*\]")', ci)
    test = re.search(r"^python -m pytest.*$", ci, re.M)
    assert install and test
    assert f"pip install {install.group(1)}" in readme
    assert test.group(0) in readme
