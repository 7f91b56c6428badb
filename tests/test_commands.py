"""The ChatOps grammar: commands, replies, and what is ignored."""

from __future__ import annotations

import pytest

from bot.core.commands import (
    Diff,
    Help,
    Merge,
    Promote,
    Reply,
    Rollback,
    parse_comment,
    parse_traffic,
)

PARSED = [
    ("/promote production", Promote("production", line="/promote production")),
    (
        "/promote fraud-v2-candidate 8 to production --traffic 90/10",
        Promote(
            "production",
            model="fraud-v2-candidate",
            version="8",
            traffic=(90, 10),
            line="/promote fraud-v2-candidate 8 to production --traffic 90/10",
        ),
    ),
    (
        "/promote fraud-detector @champion to staging --dry-run",
        Promote(
            "staging",
            model="fraud-detector",
            alias="champion",
            dry_run=True,
            line="/promote fraud-detector @champion to staging --dry-run",
        ),
    ),
    (
        "/promote staging --traffic=50/50",
        Promote("staging", traffic=(50, 50), line="/promote staging --traffic=50/50"),
    ),
    ("/rollback production", Rollback("production", line="/rollback production")),
    ("/rollback production to 7", Rollback("production", "7", line="/rollback production to 7")),
    ("/diff", Diff()),
    ("/merge", Merge()),
    ("/help", Help()),
    ("  /merge", Merge("/merge")),
]


@pytest.mark.parametrize(("body", "expected"), PARSED, ids=[p[0] for p in PARSED])
def test_valid_commands_parse_to_typed_commands(body, expected):
    assert parse_comment(body) == [expected]


REPLIES = [
    ("/promtoe production", "did_you_mean", "promote", "Unknown command `/promtoe`"),
    ("/rollbak production", "did_you_mean", "rollback", "Unknown command"),
    ("/promote production --traffic 90/20", "usage", "promote", "must sum to 100"),
    ("/promote production --traffic 90", "usage", "promote", "BASELINE/CANDIDATE"),
    ("/promote production --traffic 50.5/49.5", "usage", "promote", "BASELINE/CANDIDATE"),
    ("/promote production --traffic", "usage", "promote", "needs a value"),
    ("/promote production --trafic 90/10", "usage", "promote", "Did you mean `--traffic`"),
    ("/promote fraud 8 into production", "usage", "promote", "Expected"),
    ("/promote fraud eight to production", "usage", "promote", "is not a version"),
    ("/promote", "usage", "promote", "Expected"),
    ("/rollback production to latest", "usage", "rollback", "not a version number"),
    ("/merge now", "usage", "merge", "takes no arguments"),
    ('/promote "unterminated', "usage", "promote", "Cannot read the arguments"),
]


@pytest.mark.parametrize(("body", "kind", "command", "text"), REPLIES, ids=[r[0] for r in REPLIES])
def test_mistakes_get_a_specific_reply(body, kind, command, text):
    [outcome] = parse_comment(body)
    assert isinstance(outcome, Reply)
    assert (outcome.kind, outcome.command) == (kind, command)
    assert text in outcome.message


IGNORED = [
    "LGTM, ship it",
    "see /etc/hosts for details",
    "```\n/promote production\n```",
    "~~~\n/merge\n~~~",
    "> /promote production",
    "    /promote production",
    "<!-- /merge -->",
    "<!--\n/merge\n-->",
    "text /promote production in the middle of a line",
    "/usr/bin/env",
]


@pytest.mark.parametrize("body", IGNORED)
def test_text_that_is_not_a_command_is_ignored(body):
    assert parse_comment(body) == []


def test_several_commands_in_one_comment_run_in_order():
    body = "Thanks!\n/diff\n```\n/merge\n```\n/promote production --dry-run\r\n/help"
    outcomes = parse_comment(body)
    assert [type(o) for o in outcomes] == [Diff, Promote, Help]
    assert outcomes[1].dry_run is True


def test_unclosed_fence_hides_the_rest_of_the_comment():
    assert parse_comment("```yaml\n/merge") == []


@pytest.mark.parametrize(("value", "expected"), [("90/10", (90, 10)), ("0/100", (0, 100))])
def test_traffic_weights_are_integers_summing_to_100(value, expected):
    assert parse_traffic(value) == expected


@pytest.mark.parametrize("value", ["-10/110", "10/10", "a/b", "100", "1/2/97"])
def test_invalid_traffic_weights_are_refused(value):
    with pytest.raises(ValueError):
        parse_traffic(value)
