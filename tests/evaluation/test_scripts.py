"""Every script in scripts/ imports, and each that parses arguments answers ``--help`` (its
first docstring line as the description); run in this process, so it costs one import each."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
NO_ARGUMENTS = {"run_gui", "gui_helpers"}  # open a viewer at once / a helper module


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def scripts_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # scripts import gui_helpers


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.py")), ids=lambda p: p.stem)
def test_each_script_imports_and_answers_help(path, monkeypatch, capsys):
    module = load(path)  # its imports resolve; main() only runs for --help, never for work
    if path.stem in NO_ARGUMENTS:
        assert module.__doc__
        return
    assert "parse_args(" in path.read_text(), f"{path.name} must parse its arguments (--help)"
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as exit_info:
        module.main()
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:")
    if "script_parser(__doc__" in path.read_text():  # described by its docstring's first line
        assert module.__doc__.strip().splitlines()[0][:40] in " ".join(out.split())
