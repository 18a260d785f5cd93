"""Docs that cannot drift: docs/cli.md against the parser, docs/reliability.md against the code."""

import argparse
import re
from pathlib import Path

import pytest

from napari_emseg.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
CLI_DOC = REPO / "docs" / "cli.md"
SECTION = re.compile(r"^## `napari-emseg ([a-z -]+)`$", re.MULTILINE)
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-o)(?![\w-])")


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every runnable command ("train membrane" included) and its parser."""
    found = {}

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in subs:
            for name, child in action.choices.items():
                walk(child, [*path, name])
        if path and not subs:
            found[" ".join(path)] = parser

    walk(build_parser(), [])
    return found


def options(parser: argparse.ArgumentParser) -> list[tuple[str, ...]]:
    """Each option of ``parser`` as its spellings (``("-o", "--output")``), --help left out."""
    return [
        tuple(a.option_strings)
        for a in parser._actions
        if a.option_strings and not isinstance(a, argparse._HelpAction)
    ]


GLOBAL = {"--debug", "--version", "--help"}


def sections() -> dict[str, str]:
    text = CLI_DOC.read_text()
    marks = list(SECTION.finditer(text))
    return {
        m.group(1): text[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(text)]
        for i, m in enumerate(marks)
    }


def test_every_command_has_a_section_and_every_section_a_command():
    assert sorted(sections()) == sorted(commands())


def test_every_command_line_in_the_docs_names_a_real_command():
    named = re.findall(
        r"^\s*napari-emseg ([a-z-]+(?: (?:membrane|propagation))?)", CLI_DOC.read_text(), re.M
    )
    assert named and set(named) <= set(commands())


@pytest.mark.parametrize("command", sorted(commands()))
def test_every_option_is_documented_in_its_section_and_every_documented_one_exists(command):
    text = sections()[command]
    mentioned = set(OPTION.findall(text))
    spellings = options(commands()[command])
    known = {s for option in spellings for s in option} | GLOBAL
    assert mentioned <= known, f"documented for {command} but not accepted: {mentioned - known}"
    undocumented = [option for option in spellings if not mentioned & set(option)]
    assert not undocumented, f"{command} accepts but docs/cli.md does not show: {undocumented}"


def test_options_in_the_general_part_exist_somewhere():
    text = CLI_DOC.read_text()
    general = text[: SECTION.search(text).start()]
    known = {s for parser in commands().values() for o in options(parser) for s in o} | GLOBAL
    assert set(OPTION.findall(general)) <= known


@pytest.mark.slow
def test_reliability_doc_is_what_the_code_prints_now():
    import torch

    if torch.cuda.is_available():
        pytest.skip("the 'GPU asked for, none present' case needs a machine without a GPU")
    from napari_emseg.cli.reliability import report_table, with_table

    document = (REPO / "docs" / "reliability.md").read_text()
    regenerated = with_table(document, report_table())
    assert regenerated == document, (
        "docs/reliability.md is stale: run .venv/bin/python scripts/reliability_report.py"
    )
