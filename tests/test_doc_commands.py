"""Every command in README.md and docs/ works as written: each ``python -m experiments.<x>``
line of a code block composes (its groups, keys and launcher exist; sweeps take their first
value), and each ``python -m scripts.<x>`` line parses with that script's own arguments."""

from __future__ import annotations

import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from experiments.pair_schema import register  # every command's schema
from tests.conftest import ROOT

register()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LAUNCHER_PLUGINS = {"joblib": "hydra_plugins.hydra_joblib_launcher",
                    "slurm": "hydra_plugins.hydra_submitit_launcher",
                    "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
                    "submitit_local": "hydra_plugins.hydra_submitit_launcher"}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


SHARED_CONFIG = {"lottery": "config", "replicas": "config"}  # the others: conf/<entry>.yaml
PLACEHOLDER = re.compile(r"<[^<>]+>")


def commands(page: Path) -> list[str]:
    """The ``python -m`` lines of the page's fenced code blocks (continuations joined)."""
    out = []
    for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", page.read_text(), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if "python -m experiments." in line or "python -m scripts." in line:
                out.append(line[line.index("python -m "):])
    return out


def split(command: str) -> tuple[str, list[str]]:
    """(module, arguments), placeholders filled in, a synopsis's ``[--opt v]`` taken as
    given, comments dropped."""
    text = re.sub(r"\[(--[^\[\]]*)\]", r"\1", PLACEHOLDER.sub("x", command))
    words = shlex.split(text, comments=True)
    return words[2], words[3:]


def first_of_sweep(override: str) -> str:
    """``seed=0,1,2`` -> ``seed=0``; lists and single values stay as they are."""
    key, _, value = override.partition("=")
    if "," in value and not value.startswith(("[", "{", "'", '"')):
        value = value.split(",")[0]
    return f"{key}={value}"


ALL = [(page.relative_to(ROOT).as_posix(), c) for page in PAGES for c in commands(page)]


def test_the_pages_have_commands() -> None:
    assert len([c for _, c in ALL if "experiments." in c]) > 25
    assert len([c for _, c in ALL if "scripts." in c]) > 10


@pytest.mark.parametrize("page,command", [x for x in ALL if "experiments." in x[1]],
                         ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_each_entry_point_command_composes(page: str, command: str) -> None:
    module, args = split(command)
    launcher = next((a.split("=", 1)[1] for a in args if a.startswith("hydra/launcher=")), None)
    plugin = LAUNCHER_PLUGINS.get(launcher or "")
    if plugin and not installed(plugin):
        pytest.skip(f"hydra/launcher={launcher} needs the cluster extra "
                    '(pip install -e ".[cluster]"; without it: tests/test_first_hour.py)')
    entry = module.removeprefix("experiments.")
    overrides = [first_of_sweep(a) for a in args
                 if "=" in a and not a.startswith("-")]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name=SHARED_CONFIG.get(entry, entry), overrides=overrides,
                      return_hydra_config=True)
    assert cfg is not None, f"{page}: {command}"


@pytest.mark.parametrize("page,command", [x for x in ALL if "scripts." in x[1]],
                         ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None)
def test_each_script_command_parses(page: str, command: str) -> None:
    module, args = split(command)
    script = importlib.import_module(module)
    if hasattr(script, "parse_args"):
        script.parse_args(args)  # argparse exits on an unknown option or a missing argument
    else:  # options parsed inside main(): each one used must be in the script's source
        source = Path(script.__file__).read_text()
        assert all(f'"{a.split("=")[0]}"' in source for a in args if a.startswith("--")), \
            f"{page}: {command}"


def test_a_command_that_does_not_work_fails_here() -> None:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    with pytest.raises((HydraException, OmegaConfBaseException)):
        test_each_entry_point_command_composes("x", "python -m experiments.lottery prune.nope=1")
    with pytest.raises((HydraException, OmegaConfBaseException)):
        test_each_entry_point_command_composes("x", "python -m experiments.lottery "
                                                    "hydra/launcher=nope")
    with pytest.raises(SystemExit):
        test_each_script_command_parses("x", "python -m scripts.runs runs --nope")
