"""Button actions have names; their wire ids stay what earlier releases sent, so old buttons keep working."""

from __future__ import annotations

from bot.core.actions import VERSIONED, Action, parse_action


def test_action_ids_keep_the_values_buttons_already_sent_carry() -> None:
    assert Action.NEXT(3) == "n:3" and Action.RESUME() == "w" and Action.QUIZ_ANSWER(4, 2) == "a:4:2"
    assert Action.OPEN_SECTION("ab12cd34", "ef56ab78", 2) == "s:ab12cd34:ef56ab78:2"
    assert len({action.value for action in Action}) == len(Action)  # no two names share a wire id


def test_parsing_gives_the_named_action_and_refuses_ids_no_release_sent() -> None:
    assert parse_action("ry:7") == (Action.RESET_YES, ["7"]) and Action.RESET_YES in VERSIONED
    assert parse_action("home") == (Action.HOME, [])
    assert parse_action("zz:1") is None and parse_action("") is None and parse_action("N:1") is None
