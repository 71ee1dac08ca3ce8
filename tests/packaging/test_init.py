"""``partial-trust init``, ``--version`` and the packaged defaults, in process (fast).

The end-to-end use of the same commands from an installed wheel is in
``test_installed_wheel.py``; here are the refusals and edge cases.
"""

from __future__ import annotations

import os
import shlex
from importlib import metadata
from pathlib import Path

import pytest

from partial_trust.apps import cli
from partial_trust.apps.init import init, main, shipped_policy
from partial_trust.flags import flagfile
from partial_trust.middleware.policy import DEFAULT_POLICY_PATH, PolicyRegistry
from tests.support.procs import REPO


def exports(stdout: str) -> dict[str, str]:
    pairs = [shlex.split(line.removeprefix("export ")) for line in stdout.splitlines()]
    return dict(pair[0].split("=", 1) for pair in pairs)


def test_init_writes_a_deployment_with_the_corridor_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "my site"  # a space: the export lines must quote
    assert main([str(site)]) == 0
    out = capsys.readouterr()
    env = exports(out.out)
    assert env == {
        "PARTIAL_TRUST_FLAGS_FILE": str(site / "flags" / "partial-trust.flagd.json"),
        "LLM_POLICY_PATH": str(site / "llm_policy" / "llm-policy.yaml"),
        "PARTIAL_TRUST_RISK_LOG_PATH": str(site / "logs" / "partial_trust_risk.jsonl"),
        "PARTIAL_TRUST_FLAGS_AUDIT_LOG": str(site / "logs" / "partial_trust_flag_audit.jsonl"),
    }
    assert all(line.startswith("export ") for line in out.out.splitlines())
    doc = flagfile.load(Path(env["PARTIAL_TRUST_FLAGS_FILE"]))
    assert flagfile.served_value(doc.flags[flagfile.ENABLED])[0] is False
    assert Path(env["LLM_POLICY_PATH"]).read_bytes() == shipped_policy()
    assert PolicyRegistry.load(env["LLM_POLICY_PATH"]).enabled is False
    # the second switch is named, so `init` + `flags resume` alone does not leave a user puzzled
    assert "export LLM_POLICY_ENABLED=true" in out.err
    assert str(site / "llm_policy" / "llm-policy.yaml") in out.err
    assert (site / "logs").is_dir()
    mode = (site / "flags" / "partial-trust.flagd.json").stat().st_mode & 0o777
    assert mode & 0o600 == 0o600  # the owner can edit it (flags resume)


def test_init_refuses_to_overwrite_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "llm_policy" / "llm-policy.yaml"
    policy.parent.mkdir()
    policy.write_text("mine\n")
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(policy) in err and "--force" in err and len(err.strip().splitlines()) == 1
    assert policy.read_text() == "mine\n"
    assert not (tmp_path / "flags").exists() and not (tmp_path / "logs").exists()


def test_init_never_follows_a_symlink_without_force(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags" / "partial-trust.flagd.json").symlink_to(target)  # dangling
    assert main([str(tmp_path)]) == 2
    assert not target.exists()


def test_init_force_replaces_edited_files(tmp_path: Path) -> None:
    layout = init(tmp_path)
    flagfile.resume(layout.flags_file)
    layout.policy_file.write_text("edited\n")
    assert main([str(tmp_path), "--force"]) == 0
    doc = flagfile.load(layout.flags_file)
    assert flagfile.served_value(doc.flags[flagfile.ENABLED])[0] is False
    assert layout.policy_file.read_bytes() == shipped_policy()


def test_init_defaults_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    assert (tmp_path / "flags" / "partial-trust.flagd.json").is_file()


def test_the_policy_default_is_the_one_shipped_copy_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DEFAULT_POLICY_PATH.is_absolute()
    assert DEFAULT_POLICY_PATH.read_bytes() == shipped_policy()
    if Path(os.path.realpath(DEFAULT_POLICY_PATH)).is_relative_to(os.path.realpath(REPO)):
        # from a checkout, the packaged file is the repository's editable one, not a copy
        assert DEFAULT_POLICY_PATH.samefile(REPO / "llm_policy" / "llm-policy.yaml")
    monkeypatch.chdir(tmp_path)
    assert PolicyRegistry.load(DEFAULT_POLICY_PATH).source == str(DEFAULT_POLICY_PATH)


def test_version_and_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("partial-trust ")
    assert cli.main([]) == 0
    assert "  init " in capsys.readouterr().out


def test_version_outside_an_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert cli.main(["-V"]) == 0
    assert capsys.readouterr().out.strip() == "partial-trust unknown (not installed)"
