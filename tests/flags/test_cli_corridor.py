"""``partial-trust flags ... --corridor NAME`` through the real entry point: each corridor's
own keys, the others untouched; the risk class's cap and the rollout order refused (exit 2,
file unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

from partial_trust.corridors import flag_keys
from partial_trust.flags import flagfile
from tests.flags.test_cli import run

SHOP, SHOW = flag_keys("add_shopping_item"), flag_keys("show_shopping_list")
SHARE = flag_keys("share_shopping_list")


def served(path: Path, key: str) -> object:
    return flagfile.served_value(flagfile.load(path).flags.get(key))[0]


def test_each_corridor_is_set_resumed_and_killed_apart(flag_file: Path) -> None:
    f = str(flag_file)
    shop_before = served(flag_file, SHOP.enabled)
    done = run("set", SHOP.mode, "shadow", "--corridor", "show_shopping_list", "--file", f)
    assert done.returncode == 0, done.stderr
    assert SHOW.mode in done.stdout  # the shopping-form key named the read corridor's
    assert run("resume", "--corridor", "show_shopping_list", "--file", f).returncode == 0
    assert (served(flag_file, SHOW.enabled), served(flag_file, SHOW.sample_rate)) == (True, 0.01)
    shown = json.loads(
        run("show", "--json", "--corridor", "show_shopping_list", "--file", f).stdout
    )
    assert shown["corridor"] == "show_shopping_list"
    assert [row["flag"] for row in shown["flags"]] == list(SHOW.all())
    assert run("kill", "--corridor", "show_shopping_list", "--file", f).returncode == 0
    assert served(flag_file, SHOW.enabled) is False
    assert served(flag_file, SHOP.enabled) == shop_before  # never touched
    assert served(flag_file, SHOW.mode) == "shadow"


def test_admin_past_shadow_and_canary_out_of_order_are_refused(flag_file: Path) -> None:
    f = str(flag_file)
    assert run("set", SHARE.mode, "shadow", "--file", f).returncode == 0
    assert run("set", SHOW.mode, "shadow", "--file", f).returncode == 0
    before = flag_file.read_bytes()
    admin = run("set", "partial-trust-mode", "canary", "--corridor", "share_shopping_list",
                "--file", f)  # fmt: skip
    assert admin.returncode == 2 and "risk class admin caps" in admin.stderr
    order = run("set", SHOP.mode, "canary", "--file", f)
    assert order.returncode == 2 and "show_shopping_list (read) is at shadow" in order.stderr
    assert flag_file.read_bytes() == before
    unknown = run("kill", "--corridor", "delete_account", "--file", f)
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr
