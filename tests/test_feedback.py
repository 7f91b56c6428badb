"""The pure core of the feedback loop: Argo CD states, ordering, soak times.

Notification shapes: the README's template over Argo CD Application status values
(tests/argocd_fixtures.py names the sources)."""

from __future__ import annotations

import json

import pytest
from argocd_fixtures import application, notification_body

from bot.core.config import parse_duration
from bot.core.events import PayloadError
from bot.core.feedback import (
    ArgoNotification,
    EnvironmentHealth,
    deployment_state,
    format_duration,
    is_stale,
    next_health,
    parse_argocd,
    soak_status,
    unchanged,
)

SHA = "a" * 40
APP = "fraud-detection-staging"


def note(**app_fields) -> ArgoNotification:
    return parse_argocd(json.loads(notification_body(application(APP, SHA, **app_fields))))


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({}, "success"),
        ({"health": "Progressing", "phase": "Running"}, "in_progress"),
        ({"sync": "OutOfSync", "health": "Healthy"}, "in_progress"),
        ({"health": "Degraded"}, "failure"),
        ({"phase": "Failed", "health": "Healthy"}, "failure"),
        ({"phase": "Error", "health": "Progressing"}, "failure"),
        ({"health": "Missing", "phase": None}, "in_progress"),
        ({"health": "Suspended"}, "in_progress"),
    ],
    ids=["synced-healthy", "progressing", "out-of-sync", "degraded", "sync-failed", "error",
         "missing", "suspended"],
)  # fmt: skip
def test_argo_cd_states_map_to_deployment_states(fields, state):
    assert deployment_state(note(**fields)) == state


def test_a_template_field_go_prints_as_no_value_reads_as_empty():
    body = json.loads(notification_body(application(APP, SHA)))
    body["revision"] = "<no value>"
    assert parse_argocd(body).revision == ""


def test_a_notification_is_checked_field_by_field():
    body = json.loads(notification_body(application(APP, SHA)))
    for key, value, message in [
        ("revision", "a b", "revision: not a git revision"),
        ("sync_status", 3, "sync_status: expected a string"),
        ("application", "x" * 300, "application: not an Argo CD application name"),
    ]:
        with pytest.raises(PayloadError, match=message):
            parse_argocd({**body, key: value})


def test_a_long_sync_message_is_kept_to_one_bounded_line():
    parsed = note(message="line one\nline two " + "x" * 5000)
    assert "\n" not in parsed.operation_message and len(parsed.operation_message) == 2000


def test_a_notification_older_than_the_recorded_one_is_stale():
    current = next_health(None, "staging", note(finished_at="2026-12-02T09:40:00Z"), ours=True,
                          now=100.0)  # fmt: skip
    older = note(finished_at="2026-12-02T09:39:59Z")
    assert is_stale(current, older, older_revision=False)
    assert not is_stale(current, note(finished_at="2026-12-02T09:40:00Z"), older_revision=False)
    other = parse_argocd({**older.to_payload(), "revision": "b" * 40, "finished_at": ""})
    assert is_stale(current, other, older_revision=True)
    assert not is_stale(current, other, older_revision=False)
    assert not is_stale(None, older, older_revision=True)


def test_healthy_since_survives_repeats_and_resets_when_health_is_lost():
    first = next_health(None, "staging", note(), ours=True, now=100.0)
    assert first.healthy_since == 100.0
    repeat = next_health(first, "staging", note(), ours=True, now=500.0)
    assert repeat.healthy_since == 100.0 and unchanged(first, repeat)
    degraded = next_health(repeat, "staging", note(health="Degraded"), ours=True, now=600.0)
    assert degraded.healthy_since is None and not unchanged(repeat, degraded)
    back = next_health(degraded, "staging", note(), ours=True, now=700.0)
    assert back.healthy_since == 700.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800.0), ("1h30m", 5400.0), ("2d", 172800.0), ("45s", 45.0), ("1h1s", 3601.0)],
)
def test_durations_read_as_seconds(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "m", "1.5h", "30 m", "-5m"])
def test_malformed_durations_are_refused(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (45, "45s"), (750, "12m 30s"), (3600, "1h"), (3660.2, "1h 1m"), (90061, "1d 1h")],
)
def test_durations_are_shown_for_people(seconds, shown):
    assert format_duration(seconds) == shown


def _health(**fields) -> EnvironmentHealth:
    base = {"environment": "staging", "application": APP, "revision": SHA, "sync_status": "Synced",
            "health_status": "Healthy", "ours": True, "healthy_since": 1000.0}  # fmt: skip
    return EnvironmentHealth(**{**base, **fields})


def _soak(health, live=("fraud", "8"), now=1000.0 + 1800, version="8"):
    return soak_status(health, upstream="staging", model="fraud", version=version,
                       revision_version=live, healthy_for_s=1800.0, now=now)  # fmt: skip


def test_the_soak_is_done_when_the_version_ran_healthy_for_the_whole_time():
    assert _soak(_health()).done
    early = _soak(_health(), now=1000.0 + 600)
    assert not early.done and early.remaining_s == 1200.0
    assert early.reason.endswith("healthy in staging for 10m; the soak time is 30m, 20m remain")


@pytest.mark.parametrize(
    ("health", "live", "version", "reason"),
    [
        (None, None, "8", "Argo CD has not reported on staging yet"),
        (_health(ours=False), None, "8", "which gitops-bot did not merge"),
        (_health(), ("fraud", "9"), "8", "staging runs v9, not v8"),
        (_health(), ("other", "8"), "8", "staging runs other v8, not v8"),
        (_health(healthy_since=None, health_status="Degraded"), ("fraud", "8"), "8",
         "reports it Synced/Degraded, not Synced/Healthy"),
    ],
    ids=["no-report", "foreign", "other-version", "other-model", "unhealthy"],
)  # fmt: skip
def test_the_soak_is_not_done_and_says_why(health, live, version, reason):
    soak = _soak(health, live=live, version=version)
    assert not soak.done and reason in soak.reason


def test_no_soak_time_means_nothing_to_wait_for():
    assert soak_status(None, upstream="staging", model="m", version="1", revision_version=None,
                       healthy_for_s=0.0, now=0.0).done  # fmt: skip


def test_an_application_read_from_argo_cds_api_reads_like_its_notification():
    from bot.core.feedback import notification_from_application

    app = application(APP, SHA, health="Degraded", phase="Failed", message="hook failed")
    assert notification_from_application(app) == parse_argocd(json.loads(notification_body(app)))
    never_synced = application(APP, "", sync="OutOfSync", health="Missing", phase=None)
    parsed = notification_from_application(never_synced)
    assert (parsed.revision, parsed.operation_phase, parsed.finished_at) == ("", "", "")
    with pytest.raises(PayloadError, match="application: missing"):
        notification_from_application({"kind": "Status", "message": "not found"})


def test_argo_cds_api_needs_both_its_server_and_a_token():
    from bot.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="ARGOCD_TOKEN is required with ARGOCD_SERVER"):
        load_settings({"ARGOCD_SERVER": "https://argocd.example.com"})
    with pytest.raises(SettingsError, match="ARGOCD_SERVER is required with ARGOCD_TOKEN"):
        load_settings({"ARGOCD_TOKEN": "t"})
    env = {"ARGOCD_SERVER": "https://argocd.example.com/", "ARGOCD_TOKEN": "argocd-tok-123"}
    settings = load_settings(env)
    assert settings.argocd_server == "https://argocd.example.com"
    assert (
        "argocd-tok-123" not in repr(settings)
        and settings.argocd_token.get() == env["ARGOCD_TOKEN"]
    )


def test_a_new_revision_running_the_same_deployment_keeps_its_healthy_time():
    first = next_health(None, "staging", note(), ours=True, now=100.0, runs=("fraud", "8"))
    later = parse_argocd({**note().to_payload(), "revision": "b" * 40})
    same = next_health(first, "staging", later, ours=False, now=900.0, runs=("fraud", "8"))
    assert (same.revision, same.ours, same.healthy_since, same.version) == ("b" * 40, False,
                                                                           100.0, "8")  # fmt: skip
    other = next_health(first, "staging", later, ours=False, now=900.0, runs=None)
    assert (other.healthy_since, other.version) == (900.0, "")
