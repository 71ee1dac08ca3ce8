"""Every ``partial-trust`` command and subcommand answers ``--help`` with its help, exit 0.

argparse expands ``%`` in help strings when it prints them, so a literal "1%" in one help
text made ``partial-trust flags --help`` a traceback; this walks them all.
"""

from __future__ import annotations

import re

import pytest

from partial_trust.apps.cli import SUBCOMMANDS, main

#: The ``{a,b,c}`` of a usage line: the subcommands a parser offers.
_CHOICES = re.compile(r"\{([a-z][a-z0-9_,-]*)\}")


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        code: object = main([*argv, "--help"])  # some commands return argparse's exit code
    except SystemExit as exited:
        code = exited.code
    out = capsys.readouterr().out
    assert code in (0, None), (argv, out)
    assert "usage:" in out, argv
    return out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_command_and_its_subcommands_print_their_help(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of([name], capsys)
    usage = text.split("\n\n", 1)[0]
    for group in _CHOICES.findall(usage):
        for sub in group.split(","):
            assert sub in help_of([name, sub], capsys)
