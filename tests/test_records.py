"""The bot's records of its PRs, on SQLite and on the real PostgreSQL of this machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from queue_helpers import open_queue, pg_schema

from bot.gateways.records import PromotionRecords

META = {"v": 1, "kind": "promote", "model": "fraud-v2-candidate", "version": "8",
        "env": "production", "requester": "carol", "source_uri": "s3://m/8"}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PromotionRecords]:
    if request.param == "sqlite":
        queue = open_queue("sqlite", tmp_path)
        yield PromotionRecords(queue)
        queue.close()
        return
    with pg_schema() as schema:
        queue = open_queue("postgresql", schema)
        yield PromotionRecords(queue)
        queue.close()


def test_a_promotion_is_found_by_number_and_its_metadata_survives_unchanged(records):
    records.save_promotion("Acme/GitOps", 12, "gitops-bot/production/fraud-v2-candidate-8", META)
    found = records.promotion("acme/gitops", 12)  # names are case-insensitive on GitHub
    assert found is not None and dict(found.meta) == META
    assert (found.environment, found.model, found.requester) == (
        "production", "fraud-v2-candidate", "carol",
    )  # fmt: skip
    assert records.promotion("acme/gitops", 13) is None
    assert records.promotion("acme/other", 12) is None


def test_saving_a_promotion_twice_keeps_one_record_with_the_latest_metadata(records):
    records.save_promotion("acme/gitops", 12, "b", META)
    records.save_promotion("acme/gitops", 12, "b", {**META, "trigger": "again"})
    assert records.promotions("acme/gitops", [12, 12, 99]).keys() == {12}
    assert records.promotion("acme/gitops", 12).meta["trigger"] == "again"


def test_commits_pushers_and_flags_are_remembered_once(records):
    records.record_commit("acme/gitops", "a" * 40, "b")
    records.record_commit("acme/gitops", "a" * 40, "b")
    assert records.is_bot_commit("acme/gitops", "a" * 40)
    assert not records.is_bot_commit("acme/gitops", "b" * 40)
    records.add_pusher("acme/gitops", 3, "Mallory")
    records.add_pusher("acme/gitops", 3, "mallory")
    assert records.pushers("acme/gitops", 3) == {"mallory"}
    assert records.pushers("acme/gitops", 4) == frozenset()
    assert not records.has_flag("acme/gitops", 3, "merge-refused")
    records.set_flag("acme/gitops", 3, "merge-refused")
    records.set_flag("acme/gitops", 3, "merge-refused")
    assert records.has_flag("acme/gitops", 3, "merge-refused")
    records.set_flag("acme/gitops", 3, "merge-refused", on=False)
    assert not records.has_flag("acme/gitops", 3, "merge-refused")


def test_a_render_is_found_only_for_its_exact_head_and_base_branch(records):
    head = "c" * 40
    records.save_render(
        "acme/gitops", 5, head_sha=head, base_ref="main", merge_base="d" * 40,
        environments=["staging", "production", "staging"],
    )  # fmt: skip
    render = records.render("acme/gitops", 5, head, "main")
    assert render is not None and render.environments == ("production", "staging")
    assert render.merge_base == "d" * 40
    assert records.render("acme/gitops", 5, "e" * 40, "main") is None  # another head
    assert records.render("acme/gitops", 5, head, "release") is None  # the base was changed
    records.save_render(
        "acme/gitops", 5, head_sha=head, base_ref="main", merge_base="d" * 40, environments=[]
    )
    assert records.render("acme/gitops", 5, head, "main").environments == ()


def test_a_deployment_is_reserved_once_and_remembers_its_id_and_state(records):
    first, new = records.reserve_deployment(
        "Acme/GitOps", "staging", "c" * 40, number=7, meta=META, approvers=("bob",), now=100.0
    )
    assert new and first.deployment_id == 0 and first.state == ""
    again, new_again = records.reserve_deployment(
        "acme/gitops", "staging", "c" * 40, number=7, meta=META, now=200.0
    )
    assert not new_again and again.created_at == 100.0  # the first reservation stands
    records.set_deployment_id("acme/gitops", "staging", "c" * 40, 4242)
    records.set_deployment_state("acme/gitops", "staging", "c" * 40, "queued")
    found = records.deployment("acme/gitops", "staging", "c" * 40)
    assert (found.deployment_id, found.state, found.number, found.approvers) == (
        4242, "queued", 7, ("bob",),
    )  # fmt: skip
    assert (found.model, found.version) == ("fraud-v2-candidate", "8")
    assert records.deployment("acme/gitops", "production", "c" * 40) is None


def test_an_environments_deployments_are_listed_newest_first(records):
    for at, sha in ((100.0, "a" * 40), (300.0, "c" * 40), (200.0, "b" * 40)):
        records.reserve_deployment("acme/gitops", "staging", sha, number=1, meta=META, now=at)
    records.reserve_deployment("acme/gitops", "production", "d" * 40, number=2, meta=META)
    shas = [d.sha[0] for d in records.deployments("acme/gitops", "staging")]
    assert shas == ["c", "b", "a"]


def test_the_health_argo_cd_reported_is_kept_per_environment(records):
    from bot.core.feedback import EnvironmentHealth

    assert records.health("acme/gitops", "staging") is None
    healthy = EnvironmentHealth(
        "staging", "fraud-staging", "c" * 40, "Synced", "Healthy", "Succeeded", "ok",
        "2026-12-02T09:00:00Z", ours=True, healthy_since=100.0, observed_at=101.0,
    )  # fmt: skip
    records.save_health("Acme/GitOps", healthy)
    assert records.health("acme/gitops", "staging") == healthy
    degraded = EnvironmentHealth(
        "staging", "fraud-staging", "d" * 40, "Synced", "Degraded", observed_at=150.0
    )
    records.save_health("acme/gitops", degraded)
    assert records.health("acme/gitops", "staging") == degraded  # healthy_since back to None
    assert records.health("acme/gitops", "production") is None
