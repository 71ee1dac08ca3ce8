"""Corridors besides the shopping one, for the risk-class tests: small on purpose.

``ShowListCorridor`` is a ``read``-class corridor (intent ``show_shopping_list``), and
``ShareListCorridor`` an ``admin``-class one; both are on the code's allowlist
(``partial_trust.corridors.CORRIDOR_ALLOWLIST``). They reuse the shopping corridor's command
model, prompt and rules; only the name, the class and the pre-check differ, which is all the
engine and the flags read.
"""

from __future__ import annotations

from collections.abc import Callable

from partial_trust.corridors import RiskClass
from partial_trust.middleware.corridor import ShoppingCorridor


def _first_word_is(word: str, intent: str) -> Callable[[str], str]:
    def classify(text: str) -> str:
        return intent if text.split(" ", 1)[0].casefold() == word else "unknown"

    return classify


class ShowListCorridor(ShoppingCorridor):
    risk_class = RiskClass.READ

    def __init__(self) -> None:
        super().__init__(_first_word_is("show", "show_shopping_list"), name="show_shopping_list")


class ShareListCorridor(ShoppingCorridor):
    risk_class = RiskClass.ADMIN

    def __init__(self) -> None:
        classify = _first_word_is("share", "share_shopping_list")
        super().__init__(classify, name="share_shopping_list")
