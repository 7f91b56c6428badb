"""Property: whatever users who may not approve production do (push, edit descriptions,
comment, approve, reopen, open their own PRs, in any order), nothing that changes
production's render is ever merged. Each example drives the whole bot on a fresh fake."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import responses
from bot_harness import BotHarness, mlflow_model_version_created
from conftest import EXAMPLE_REPO, GITOPS_REPO
from fakegithub import FakeGitHub
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_gate_attacks import PROD_BRANCH, PROD_OVERLAY, edited_meta

SOURCE = "s3://acme-ml-models/fraud-detector/8/artifacts/model"
# who acts: write access but outside ml-platform, read access, and the requester herself
ACTORS = ("mallory", "erin", "dave", "carol")
ACTIONS = (
    "push",  # a production overlay change pushed to the promotion branch
    "edit_env",  # the hidden metadata says staging
    "edit_requester",  # ... or names someone else as the requester
    "approve",
    "merge",  # `/merge`
    "diff",  # `/diff`
    "reopen",  # closed and reopened
    "human_pr",  # their own PR scaling production, then `/merge` on it
)
steps = st.lists(st.tuples(st.sampled_from(ACTIONS), st.sampled_from(ACTORS)), max_size=5)


PRODUCTION_SOURCES = (
    ".gitops-bot.yaml",
    *(f"k8s/overlays/production/{name}" for name in (
        "kustomization.yaml", "model-config.yaml", "experiment-patch.yaml",
        "replacements.yaml", "deployment-resources.yaml",
    )),
    *(f"k8s/base/{name}" for name in (
        "kustomization.yaml", "models.yaml", "model-config.yaml", "deployment.yaml",
        "experiment.yaml", "canary.yaml",
    )),
)  # fmt: skip


def production_files(fake: FakeGitHub) -> dict[str, bytes | None]:
    """What production's render is built from on the default branch (and the config)."""
    return {path: fake.file_at(GITOPS_REPO, "main", path) for path in PRODUCTION_SOURCES}


class World:
    """One bot, one fake GitHub, a production promotion PR waiting for approval."""

    def __init__(self, root: Path, mock: responses.RequestsMock) -> None:
        self.fake = fake = FakeGitHub(root / "fake")
        fake.install(mock)
        fake.create_repo(GITOPS_REPO, source_dir=EXAMPLE_REPO, default_branch="main")
        self.bot = BotHarness(fake, root, (GITOPS_REPO,))
        perms = {"carol": "admin", "bob": "write", "mallory": "write", "erin": "write"}
        for user, perm in {**perms, "dave": "read"}.items():
            fake.set_permission(GITOPS_REPO, user, perm)
        fake.add_team_member("acme", "ml-platform", "carol")
        fake.add_team_member("acme", "ml-platform", "bob")
        self.bot.deliver_mlflow(mlflow_model_version_created("fraud-detector", "8", SOURCE))
        self.bot.drain()
        staging = next(p for p in fake.prs(GITOPS_REPO) if p["merged"])
        self.comment(staging["number"], "carol", "/promote production")
        self.prod = next(p for p in fake.prs(GITOPS_REPO) if p["head"]["ref"] == PROD_BRANCH)
        self.human_prs = 0
        self.pushes = 0

    def comment(self, number: int, user: str, body: str) -> None:
        payload = self.fake.payload_issue_comment(GITOPS_REPO, number, user, body)
        self.bot.deliver_github("issue_comment", payload)
        self.bot.drain()

    def pr_event(self, number: int, action: str, sender: str) -> None:
        payload = self.fake.payload_pull_request(GITOPS_REPO, number, action, sender=sender)
        self.bot.deliver_github("pull_request", payload)
        self.bot.drain()

    def act(self, action: str, user: str) -> None:
        fake, number = self.fake, self.prod["number"]
        if action == "push" and user != "dave":  # read access cannot push
            current = fake.file_at(GITOPS_REPO, PROD_BRANCH, PROD_OVERLAY) or b""
            self.pushes += 1
            bumped = re.sub(rb"count: \d+", b"count: %d" % (10 + self.pushes), current)
            fake.push_commit(GITOPS_REPO, PROD_BRANCH, {PROD_OVERLAY: bumped}, "Scale", user)
            self.pr_event(number, "synchronize", user)
        elif action in ("edit_env", "edit_requester"):
            body = fake.pr(GITOPS_REPO, number)["body"]
            change = {"env": "staging"} if action == "edit_env" else {"requester": "nobody"}
            fake.edit_pr_body(GITOPS_REPO, number, edited_meta(body, **change))
        elif action == "approve":
            review_id = fake.add_review(GITOPS_REPO, number, user, "APPROVED")
            payload = fake.payload_pull_request_review(GITOPS_REPO, number, review_id)
            self.bot.deliver_github("pull_request_review", payload)
            self.bot.drain()
        elif action in ("merge", "diff"):
            self.comment(number, user, f"/{action}")
        elif action == "reopen" and user != "dave":
            fake.close_pr(GITOPS_REPO, number)
            fake.reopen_pr(GITOPS_REPO, number)
            self.pr_event(number, "reopened", user)
        elif action == "human_pr" and user != "dave":
            self.human_prs += 1
            branch = f"{user}-scale-{self.human_prs}"
            current = fake.file_at(GITOPS_REPO, "main", PROD_OVERLAY) or b""
            fake.push_commit(
                GITOPS_REPO, branch, {PROD_OVERLAY: current.replace(b"count: 2", b"count: 9")},
                "Scale", user,
            )  # fmt: skip
            human = fake.open_pr(GITOPS_REPO, branch, title="Scale production", user=user)
            self.pr_event(human, "opened", user)
            self.comment(human, user, "/merge")


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(steps)
# the findings this property guards against, always tried besides the generated sequences
@example([("edit_env", "mallory"), ("merge", "mallory")])
@example([("edit_requester", "carol"), ("approve", "carol")])
@example([("human_pr", "mallory")])
def test_no_pr_changing_production_merges_without_an_eligible_approval(sequence):
    with (
        tempfile.TemporaryDirectory() as tmp,
        responses.RequestsMock(assert_all_requests_are_fired=False) as mock,
    ):
        world = World(Path(tmp), mock)
        before = production_files(world.fake)
        for action, user in sequence:
            world.act(action, user)
        merged = [p["title"] for p in world.fake.prs(GITOPS_REPO) if p["merged"]]
        assert production_files(world.fake) == before, (sequence, merged)
        assert not world.fake.pr(GITOPS_REPO, world.prod["number"])["merged"], sequence
        problems = [*world.fake.validation_errors, *world.fake.response_errors]
        assert not problems, problems
        world.fake.close()
