"""The GitHub gateway: real PyGithub calls against plain `responses` stubs and the fake GitHub."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import requests
import responses
from fakegithub import FakeGitHub
from fakegithub.keys import app_key_pair

from bot.core.errors import TransientError
from bot.gateways.github import (
    BaseModifiedError,
    GitHubApp,
    GitHubError,
    InstallationClient,
    MergeConflictError,
    MergeNotAllowedError,
    truncate,
)
from bot.gateways.github_archive import FILE_OVERHEAD_BYTES, SnapshotCache, extract_tarball
from bot.gateways.github_http import classify, path_template

API = "https://api.github.com"


def git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
    }
    out = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return out.stdout.decode().strip()


# --------------------------------------------------------------------------- archives


@pytest.fixture
def real_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a" / "b").mkdir(parents=True)
    (repo / "a" / "b" / "k.yaml").write_bytes(b"x: 1\n")
    (repo / "run.sh").write_bytes(b"#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("a/b/k.yaml")
    (repo / "sp ace.txt").write_bytes(b"hi\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    return repo


def archive(repo: Path) -> bytes:
    out = subprocess.run(
        ["git", "archive", "--format=tar.gz", "--prefix=o-r-1234567/", "HEAD"],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    return out.stdout


def test_snapshot_holds_regular_files_only_with_the_archive_prefix_stripped(
    real_repo: Path,
) -> None:
    entry = extract_tarball(archive(real_repo), max_bytes=1 << 20)
    assert entry.files == {"a/b/k.yaml": b"x: 1\n", "run.sh": b"#!/bin/sh\n", "sp ace.txt": b"hi\n"}
    assert entry.links == {"link": b"a/b/k.yaml"}


def test_local_tree_id_matches_git_before_and_after_changes(real_repo: Path) -> None:
    entry = extract_tarball(archive(real_repo), max_bytes=1 << 20)
    assert entry.tree_sha() == git(real_repo, "rev-parse", "HEAD^{tree}")

    changes: dict[str, bytes | None] = {
        "sp ace.txt": None,
        "a/new/f.yaml": b"n: 2\n",
        "run.sh": b"#!/bin/bash\n",
    }
    (real_repo / "sp ace.txt").unlink()
    (real_repo / "a" / "new").mkdir()
    (real_repo / "a" / "new" / "f.yaml").write_bytes(b"n: 2\n")
    (real_repo / "run.sh").write_bytes(b"#!/bin/bash\n")
    git(real_repo, "add", "-A")
    assert entry.tree_sha(changes) == git(real_repo, "write-tree")


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buf.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


def test_snapshot_refuses_escaping_paths_links_and_devices() -> None:
    data = tar_gz(
        [
            (member("p/ok.yaml"), b"ok"),
            (member("p/../../etc/passwd"), b"evil"),
            (member("/abs/file"), b"evil"),
            (member("p/hard", tarfile.LNKTYPE, "p/ok.yaml"), b""),
            (member("p/escape", tarfile.SYMTYPE, "../../etc/passwd"), b""),
            (member("p/dev", tarfile.CHRTYPE), b""),
        ]
    )
    entry = extract_tarball(data, max_bytes=1 << 20)
    assert entry.files == {"ok.yaml": b"ok"}
    assert entry.complete is False  # a tree id cannot be trusted from this archive
    assert entry.tree_sha() is None


def test_snapshot_larger_than_the_limit_is_refused() -> None:
    data = tar_gz([(member("p/big"), b"x" * 2000)])
    with pytest.raises(Exception, match="exceeds 1000 bytes"):
        extract_tarball(data, max_bytes=1000)


def test_snapshot_cache_evicts_least_recently_used_by_bytes() -> None:
    cache = SnapshotCache(max_bytes=2600)
    entries = {sha: extract_tarball(tar_gz([(member("p/f"), b"x" * 1000)]), max_bytes=5000)
               for sha in ("a" * 40, "b" * 40, "c" * 40)}  # fmt: skip
    cache.put("o/r", "a" * 40, entries["a" * 40])
    cache.put("o/r", "b" * 40, entries["b" * 40])
    assert cache.get("o/r", "a" * 40) is not None  # a is now the most recent
    cache.put("o/r", "c" * 40, entries["c" * 40])
    assert cache.get("o/r", "b" * 40) is None
    assert cache.get("O/R", "a" * 40) is not None
    assert entries["a" * 40].size == 1000 + len("f") + FILE_OVERHEAD_BYTES
    assert cache.size == 2 * entries["a" * 40].size
    cache.put("o/r", "main", entries["a" * 40])  # a branch name is not an immutable key
    assert cache.get("o/r", "main") is None


def test_many_empty_files_with_long_paths_are_not_free_to_the_cache() -> None:
    long = "d" * 200
    data = tar_gz([(member(f"p/{long}/{i:05d}.yaml"), b"") for i in range(20_000)])
    entry = extract_tarball(data, max_bytes=64 << 20)
    assert entry.size >= 20_000 * (len(long) + FILE_OVERHEAD_BYTES)  # was 0: never evicted
    cache = SnapshotCache(max_bytes=10 << 20)
    for i in range(3):
        cache.put("o/r", f"{i:040d}", entry)
    assert cache.size <= 10 << 20 and len(cache) == 1


def test_snapshot_with_more_files_than_allowed_is_refused() -> None:
    data = tar_gz([(member(f"p/{i}.yaml"), b"") for i in range(11)])
    with pytest.raises(Exception, match="snapshot has more than 10 files"):
        extract_tarball(data, max_bytes=1 << 20, max_files=10)


# --------------------------------------------------------------------------- small pieces


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/repos/o/r", "/repos/{owner}/{repo}"),
        ("/repos/o/r/git/ref/heads/gitops-bot/staging/m-1", "/repos/{owner}/{repo}/git/ref/{ref}"),
        ("/repos/o/r/issues/comments/55", "/repos/{owner}/{repo}/issues/comments/{comment_id}"),
        ("/repos/o/r/issues/7/comments?a", "/repos/{owner}/{repo}/issues/{issue_number}/comments"),
        ("/repositories/9/pulls?page=2", "/repos/{owner}/{repo}/pulls"),
        ("/repos/o/r/commits/abc/check-runs", "/repos/{owner}/{repo}/commits/{ref}/check-runs"),
        ("/repos/o/r/contents/a/b.yaml", "/repos/{owner}/{repo}/contents/{path}"),
        ("/orgs/o/teams/t/memberships/u", "/orgs/{org}/teams/{team_slug}/memberships/{username}"),
    ],
)  # fmt: skip
def test_request_paths_are_counted_under_their_contract_template(path: str, template: str) -> None:
    assert path_template(path) == template


def test_truncation_keeps_the_limit_and_closes_an_open_code_fence() -> None:
    text = "intro\n```diff\n" + "+line\n" * 20000
    cut = truncate(text, 65535)
    assert len(cut) <= 65535
    assert cut.count("```") % 2 == 0
    assert "truncated" in cut
    assert truncate("short", 10) == "short"


def http_error(status: int, body: dict[str, object], headers: dict[str, str]) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update(headers)
    return requests.HTTPError(response=response)


def test_primary_rate_limit_waits_until_the_reset() -> None:
    error = classify(
        http_error(
            403,
            {"message": "API rate limit exceeded for installation ID 1."},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1300"},
        ),
        "op",
        now=lambda: 1000.0,
    )
    assert isinstance(error, TransientError)
    assert error.retry_after == 300.0


def test_a_plain_403_is_permanent() -> None:
    error = classify(
        http_error(403, {"message": "Resource not accessible by integration"}, {}), "op"
    )
    assert isinstance(error, GitHubError) and not isinstance(error, TransientError)
    assert error.status == 403
    assert "Resource not accessible" in str(error)


@pytest.mark.parametrize(("status", "transient"), [(500, True), (502, True), (501, False)])
def test_only_5xx_that_can_heal_are_retried(status: int, transient: bool) -> None:
    error = classify(http_error(status, {"message": "Not Implemented"}, {}), "op")
    assert isinstance(error, TransientError) is transient
    assert isinstance(error, GitHubError) or transient


def test_validation_error_details_are_part_of_the_message() -> None:
    body = {
        "message": "Validation Failed",
        "errors": [{"message": "A pull request already exists"}],
    }
    error = classify(http_error(422, body, {}), "op")
    assert str(error) == "GitHub 422: Validation Failed: A pull request already exists"


# --------------------------------------------------------------------------- plain responses stubs


@pytest.fixture
def app() -> GitHubApp:
    slept: list[float] = []
    gh = GitHubApp(123, app_key_pair()[0], API, sleep=slept.append)
    gh.slept = slept  # type: ignore[attr-defined]
    return gh


def stub_token(mock: responses.RequestsMock, installation: int = 7) -> None:
    mock.add(
        "POST",
        f"{API}/app/installations/{installation}/access_tokens",
        json={"token": "ghs_secret", "expires_at": "2099-01-01T00:00:00Z"},
        status=201,
    )


def test_connection_errors_are_retried_then_reported_without_secrets(app: GitHubApp) -> None:
    with responses.RequestsMock() as mock:
        stub_token(mock)
        url = f"{API}/repos/o/r/pulls/1"
        mock.add("GET", url, body=requests.ConnectionError(f"{url}?token=ghs_secret refused"))
        client = app.client(7)
        with pytest.raises(TransientError) as info:
            client.get_pr("o/r", 1)
    assert "ghs_secret" not in str(info.value)
    assert "ConnectionError" in str(info.value)
    assert app.slept == [1.0, 2.0, 4.0]  # type: ignore[attr-defined]
    assert client.calls["GET /repos/{owner}/{repo}/pulls/{pull_number}"] == 4


def test_a_long_retry_after_is_left_to_the_job_queue(app: GitHubApp) -> None:
    with responses.RequestsMock() as mock:
        stub_token(mock)
        mock.add(
            "GET",
            f"{API}/repos/o/r/pulls/1",
            status=403,
            json={"message": "You have exceeded a secondary rate limit."},
            headers={"Retry-After": "600"},
        )
        with pytest.raises(TransientError) as info:
            app.client(7).get_pr("o/r", 1)
    assert info.value.retry_after == 600.0
    assert app.slept == []  # type: ignore[attr-defined]


def test_enterprise_api_url_prefixes_every_path(app: GitHubApp) -> None:
    ghe = GitHubApp(123, app_key_pair()[0], "https://ghe.example/api/v3", sleep=lambda s: None)
    with responses.RequestsMock() as mock:
        mock.add(
            "POST",
            "https://ghe.example/api/v3/app/installations/7/access_tokens",
            json={"token": "ghs_x", "expires_at": "2099-01-01T00:00:00Z"},
            status=201,
        )
        mock.add("GET", "https://ghe.example/api/v3/repos/o/r/collaborators/u/permission",
                 json={"permission": "write", "role_name": "maintain"})  # fmt: skip
        client = ghe.client(7)
        assert client.permission("o/r", "u") == "maintain"
    assert client.calls == {
        "GET /repos/{owner}/{repo}/collaborators/{username}/permission": 1,
        "total": 1,
    }
    assert ghe.calls["POST /app/installations/{installation_id}/access_tokens"] == 1


def test_an_unusable_private_key_fails_at_startup_without_echoing_it() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nnot-a-key-s3cr3t\n-----END RSA PRIVATE KEY-----\n"
    with pytest.raises(Exception) as info:
        GitHubApp(1, key)
    assert "s3cr3t" not in str(info.value)
    assert re.search("private key", str(info.value))


# ------------------------------------------------------------------------- against the fake GitHub

REPO = "acme/gitops"
FILES = {
    ".gitops-bot.yaml": b"version: 1\n",
    "overlays/staging/kustomization.yaml": b"images:\n- name: m\n  newTag: '7'\n",
    "overlays/production/kustomization.yaml": b"images:\n- name: m\n  newTag: '6'\n",
    "base/model.yaml": b"kind: Model\n",
}


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def gh(fake_github: FakeGitHub, sleeps: Sleeps) -> GitHubApp:
    fake_github.create_repo(REPO, files=FILES)
    return GitHubApp(fake_github.app_id, fake_github.private_key_pem, sleep=sleeps)


@pytest.fixture
def client(gh: GitHubApp) -> InstallationClient:
    return gh.client_for_repo(REPO)


def writes(fake: FakeGitHub) -> list[str]:
    """Requests that change repository state (installation tokens excluded)."""
    return [
        f"{c.method} {c.operation}"
        for c in fake.calls
        if c.method != "GET" and "access_tokens" not in c.path
    ]


def test_installation_is_looked_up_once_and_tokens_are_reused(
    fake_github: FakeGitHub, gh: GitHubApp
) -> None:
    client = gh.client_for_repo(REPO)
    assert gh.client_for_repo(REPO) is client
    client.default_branch(REPO)
    client.default_branch(REPO)
    assert gh.calls == {
        "GET /repos/{owner}/{repo}/installation": 1,
        "POST /app/installations/{installation_id}/access_tokens": 1,
        "total": 2,
    }
    assert gh.app_slug == fake_github.app_slug


def test_snapshot_equals_the_repository_files_and_is_cached(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    branch, sha = client.default_branch(REPO)
    assert branch == "main"
    assert sha == fake_github.branch_sha(REPO, "main")
    assert client.snapshot(REPO, sha) == FILES
    assert client.snapshot(REPO, sha) == FILES
    assert client.calls["GET /repos/{owner}/{repo}/tarball/{ref}"] == 1
    assert client.calls["GET {archive}"] == 1


def test_commit_files_changes_exactly_the_given_files_and_is_idempotent(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    _, base = client.default_branch(REPO)
    client.snapshot(REPO, base)
    files: dict[str, bytes | None] = {
        "overlays/staging/kustomization.yaml": b"images:\n- name: m\n  newTag: '8'\n",
        "base/model.yaml": None,
        "overlays/staging/new.yaml": b"new: true\n",
    }
    branch = "gitops-bot/staging/m-8"
    head = client.commit_files(REPO, branch=branch, base_sha=base, files=files, message="Promote")

    assert fake_github.branch_sha(REPO, branch) == head
    assert fake_github.branch_sha(REPO, "main") == base
    expected = {**FILES, **files}
    for path, content in expected.items():
        assert fake_github.file_at(REPO, head, path) == content
    assert client.read_file(REPO, "overlays/staging/new.yaml", head) == b"new: true\n"
    assert client.read_file(REPO, "base/model.yaml", head) is None

    before = len(writes(fake_github))
    again = client.commit_files(REPO, branch=branch, base_sha=base, files=files, message="Promote")
    assert again == head
    assert writes(fake_github)[before:] == []
    assert fake_github.branch_sha(REPO, branch) == head


def test_commit_files_without_a_cached_snapshot_reuses_the_commit_after_one_tree_write(
    fake_github: FakeGitHub, gh: GitHubApp, client: InstallationClient
) -> None:
    _, base = client.default_branch(REPO)
    files: dict[str, bytes | None] = {"overlays/staging/new.yaml": b"new: true\n"}
    head = client.commit_files(REPO, branch="b", base_sha=base, files=files, message="m")
    fresh = GitHubApp(fake_github.app_id, fake_github.private_key_pem).client_for_repo(REPO)
    before = len(writes(fake_github))
    assert fresh.commit_files(REPO, branch="b", base_sha=base, files=files, message="m") == head
    assert writes(fake_github)[before:] == ["POST /repos/{owner}/{repo}/git/trees"]


def test_commit_files_moves_a_branch_holding_other_content(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    _, base = client.default_branch(REPO)
    client.snapshot(REPO, base)
    old = client.commit_files(
        REPO, branch="b", base_sha=base, files={"a.yaml": b"1\n"}, message="first"
    )
    new_base = fake_github.push_commit(REPO, "main", {"other.txt": b"x\n"})
    new = client.commit_files(
        REPO, branch="b", base_sha=new_base, files={"a.yaml": b"2\n"}, message="second"
    )
    assert new != old
    assert fake_github.branch_sha(REPO, "b") == new
    assert fake_github.file_at(REPO, new, "a.yaml") == b"2\n"
    assert fake_github.file_at(REPO, new, "other.txt") == b"x\n"


def test_path_history_lists_commits_touching_the_path_newest_first(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    _, first = client.default_branch(REPO)
    second = fake_github.push_commit(REPO, "main", {"base/model.yaml": b"kind: Model\n# 2\n"})
    fake_github.push_commit(REPO, "main", {"unrelated.txt": b"u\n"})
    third = fake_github.push_commit(REPO, "main", {"base/model.yaml": b"kind: Model\n# 3\n"})
    assert client.path_history(REPO, "base/model.yaml", ref="main") == [third, second, first]
    assert client.path_history(REPO, "base/model.yaml", ref="main", limit=2) == [third, second]
    assert client.path_history(REPO, "base/model.yaml", ref=second) == [second, first]


def test_pull_request_lifecycle_is_idempotent(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    _, base = client.default_branch(REPO)
    branch = "gitops-bot/staging/m-8"
    client.commit_files(REPO, branch=branch, base_sha=base, files={"x": b"1\n"}, message="m")
    assert client.find_open_pr(REPO, branch) is None
    pr = client.create_pr(REPO, branch=branch, base="main", title="Promote m v8", body="b1")
    assert (pr.head_ref, pr.base_ref, pr.state, pr.author) == (
        branch,
        "main",
        "open",
        "gitops-bot[bot]",
    )
    again = client.create_pr(REPO, branch=branch, base="main", title="Promote m v8", body="b1")
    assert again.number == pr.number
    assert len(fake_github.prs(REPO)) == 1
    found = client.find_open_pr(REPO, branch)
    assert found is not None and found.number == pr.number

    before = len(writes(fake_github))
    client.update_pr(REPO, pr.number, title="Promote m v8", body="b1", current=found)
    assert writes(fake_github)[before:] == []
    updated = client.update_pr(REPO, pr.number, body="b2")
    assert updated.body == "b2"
    assert writes(fake_github)[before:] == ["PATCH /repos/{owner}/{repo}/pulls/{pull_number}"]

    got = client.get_pr(REPO, pr.number)
    assert (got.body, got.head_sha, got.mergeable) == (
        "b2",
        fake_github.branch_sha(REPO, branch),
        True,
    )
    assert [p.number for p in client.list_open_prs(REPO)] == [pr.number]
    assert client.list_open_prs(REPO, head_prefix="gitops-bot/production/") == []
    assert client.pr_files(REPO, pr.number) == ["x"]
    client.close_pr(REPO, pr.number)
    assert client.get_pr(REPO, pr.number).state == "closed"
    assert client.list_open_prs(REPO) == []


def test_a_lost_create_response_is_retried_into_the_existing_pr(
    fake_github: FakeGitHub, client: InstallationClient, sleeps: Sleeps
) -> None:
    _, base = client.default_branch(REPO)
    client.commit_files(REPO, branch="b", base_sha=base, files={"x": b"1\n"}, message="m")
    fake_github.fail_next("POST", r"/pulls$", status=502, after=True)
    pr = client.create_pr(REPO, branch="b", base="main", title="t", body="b")
    assert [p["number"] for p in fake_github.prs(REPO)] == [pr.number]
    assert sleeps == [1.0]


def test_pr_files_names_both_sides_of_a_rename(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    fake_github.push_commit(
        REPO, "mv", {"base/model.yaml": None, "base/renamed.yaml": FILES["base/model.yaml"]}
    )
    number = fake_github.open_pr(REPO, "mv")
    assert sorted(client.pr_files(REPO, number)) == ["base/model.yaml", "base/renamed.yaml"]


def test_upsert_comment_updates_in_place_and_leftovers_are_deleted(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    number = fake_github.open_issue(REPO, "t")
    fake_github.add_comment(REPO, number, "mallory", "<!-- m:1 --> impostor")
    first = client.upsert_comment(REPO, number, "<!-- m:1 -->", "<!-- m:1 -->\nv1")
    second = client.upsert_comment(REPO, number, "<!-- m:2 -->", "<!-- m:2 -->\nother")
    before = len(writes(fake_github))
    assert client.upsert_comment(REPO, number, "<!-- m:1 -->", "<!-- m:1 -->\nv1") == first
    assert writes(fake_github)[before:] == []
    assert client.upsert_comment(REPO, number, "<!-- m:1 -->", "<!-- m:1 -->\nv2") == first
    assert writes(fake_github)[before:] == [
        "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}"
    ]
    bodies = {c["id"]: c["body"] for c in fake_github.comments(REPO, number)}
    assert bodies[first] == "<!-- m:1 -->\nv2"
    assert len(bodies) == 3

    assert client.delete_comments(REPO, number, "<!-- m:", keep={first}) == [second]
    remaining = [(c.author, c.body) for c in client.list_comments(REPO, number)]
    assert remaining == [
        ("mallory", "<!-- m:1 --> impostor"),
        ("gitops-bot[bot]", "<!-- m:1 -->\nv2"),
    ]


def test_labels_are_added(fake_github: FakeGitHub, client: InstallationClient) -> None:
    number = fake_github.open_issue(REPO, "t")
    client.add_labels(REPO, number, ["gitops-bot", "env:staging"])
    client.add_labels(REPO, number, [])
    assert set(fake_github.labels(REPO, number)) == {"gitops-bot", "env:staging"}
    assert client.calls["POST /repos/{owner}/{repo}/issues/{issue_number}/labels"] == 1


def test_reactions_are_idempotent(fake_github: FakeGitHub, client: InstallationClient) -> None:
    number = fake_github.open_issue(REPO, "t")
    comment = fake_github.add_comment(REPO, number, "alice", "/promote m 8 to staging")
    client.add_reaction(REPO, comment)
    client.add_reaction(REPO, comment)
    assert fake_github.reactions(REPO, comment) == [("gitops-bot[bot]", "eyes")]


def test_a_502_is_retried_after_a_backoff(
    fake_github: FakeGitHub, client: InstallationClient, sleeps: Sleeps
) -> None:
    fake_github.fail_next("GET", r"/repos/acme/gitops$", status=502)
    assert client.default_branch(REPO)[0] == "main"
    assert sleeps == [1.0]
    assert client.calls["GET /repos/{owner}/{repo}"] == 2


def test_secondary_rate_limit_sleeps_for_retry_after_then_succeeds(
    fake_github: FakeGitHub, client: InstallationClient, sleeps: Sleeps
) -> None:
    number = fake_github.open_issue(REPO, "t")
    fake_github.rate_limit_next("POST", r"/comments$", count=2, retry_after=7)
    comment_id = client.upsert_comment(REPO, number, "<!-- x -->", "<!-- x -->\nhello")
    assert sleeps == [7.0, 7.0]
    assert [c["id"] for c in fake_github.comments(REPO, number)] == [comment_id]


def test_secondary_rate_limit_beyond_max_retries_raises_transient_error(
    fake_github: FakeGitHub, client: InstallationClient, sleeps: Sleeps
) -> None:
    fake_github.rate_limit_next("GET", r"/collaborators/", count=10, retry_after=3)
    with pytest.raises(TransientError) as info:
        client.permission(REPO, "alice")
    assert info.value.retry_after == 3.0
    assert "secondary rate limit" in str(info.value)
    assert sleeps == [3.0, 3.0, 3.0]  # max_retries=3: four attempts in all
    assert len(fake_github.calls_to("GET", r"/collaborators/")) == 4


def test_a_permanent_error_is_not_retried(
    fake_github: FakeGitHub, client: InstallationClient, sleeps: Sleeps
) -> None:
    with pytest.raises(GitHubError) as info:
        client.get_pr(REPO, 999)
    assert info.value.status == 404
    assert sleeps == []


@pytest.mark.parametrize("role", ["admin", "maintain", "write", "triage", "read", "none"])
def test_permission_reports_the_fine_grained_role(
    fake_github: FakeGitHub, client: InstallationClient, role: str
) -> None:
    fake_github.set_permission(REPO, "alice", role)
    assert client.permission(REPO, "alice") == role


def test_permission_of_an_unknown_user_is_none(client: InstallationClient) -> None:
    assert client.permission(REPO, "nobody-at-all") == "none"


def test_team_membership_counts_active_members_only(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    fake_github.add_team_member("acme", "ml-leads", "alice")
    assert client.is_team_member("acme", "ml-leads", "alice") is True
    assert client.is_team_member("acme", "ml-leads", "bob") is False
    assert client.is_team_member("acme", "no-such-team", "alice") is False


@pytest.fixture
def open_pr(fake_github: FakeGitHub, client: InstallationClient) -> tuple[int, str]:
    _, base = client.default_branch(REPO)
    head = client.commit_files(REPO, branch="b", base_sha=base, files={"x": b"1\n"}, message="m")
    pr = client.create_pr(REPO, branch="b", base="main", title="t", body="b")
    return pr.number, head


def test_merge_with_a_stale_sha_is_a_conflict(
    fake_github: FakeGitHub, client: InstallationClient, open_pr: tuple[int, str]
) -> None:
    number, _ = open_pr
    with pytest.raises(MergeConflictError) as info:
        client.merge_pr(REPO, number, sha="0" * 40, method="squash")
    assert info.value.status == 409
    assert client.get_pr(REPO, number).merged is False


def test_merge_of_an_unmergeable_pr_reports_githubs_message(
    fake_github: FakeGitHub, client: InstallationClient, open_pr: tuple[int, str]
) -> None:
    number, head = open_pr
    fake_github.set_mergeable(REPO, number, False)
    with pytest.raises(MergeNotAllowedError) as info:
        client.merge_pr(REPO, number, sha=head, method="squash")
    assert info.value.status == 405
    assert info.value.message


def test_merge_when_the_base_moved_is_retryable(
    fake_github: FakeGitHub, client: InstallationClient, open_pr: tuple[int, str]
) -> None:
    number, head = open_pr
    body = {"message": "Base branch was modified. Review and try the merge again."}
    fake_github.fail_next("PUT", r"/merge$", status=405, body=body)
    with pytest.raises(BaseModifiedError):
        client.merge_pr(REPO, number, sha=head, method="squash")
    merged = client.merge_pr(REPO, number, sha=head, method="squash", title="Promote m v8")
    assert fake_github.branch_sha(REPO, "main") == merged
    pr = client.get_pr(REPO, number)
    assert (pr.merged, pr.merge_commit_sha) == (True, merged)


def test_reviews_checks_and_statuses_are_read(
    fake_github: FakeGitHub, client: InstallationClient, open_pr: tuple[int, str]
) -> None:
    number, head = open_pr
    fake_github.add_review(REPO, number, "carol", "CHANGES_REQUESTED")
    review = fake_github.add_review(REPO, number, "carol", "APPROVED")
    fake_github.add_check_run(REPO, head, "ci/test", conclusion="failure")
    fake_github.set_status(REPO, head, "ci/lint", "success")
    reviews = client.reviews(REPO, number)
    assert [(r.user, r.state, r.commit_id) for r in reviews] == [
        ("carol", "CHANGES_REQUESTED", head),
        ("carol", "APPROVED", head),
    ]
    assert reviews[-1].id == review and reviews[-1].submitted_at
    assert [
        (c.name, c.status, c.conclusion, c.app_slug) for c in client.check_runs(REPO, head)
    ] == [("ci/test", "completed", "failure", "ci")]
    assert client.combined_status(REPO, head) == [("ci/lint", "success")]


def test_upsert_check_run_creates_updates_and_skips_unchanged(
    fake_github: FakeGitHub, client: InstallationClient, open_pr: tuple[int, str]
) -> None:
    _, head = open_pr
    fake_github.add_check_run(REPO, head, "gitops-bot/render", app_slug="someone-else")
    summary = "```diff\n" + "+x\n" * 40000
    run = client.upsert_check_run(
        REPO, head, "gitops-bot/render", status="completed", conclusion="failure",
        title="Rendering failed", summary="...",
    )  # fmt: skip
    same = client.upsert_check_run(
        REPO, head, "gitops-bot/render", status="completed", conclusion="success",
        title="Rendered", summary=summary, text="t" * 70000,
    )  # fmt: skip
    assert same == run
    before = len(writes(fake_github))
    client.upsert_check_run(
        REPO, head, "gitops-bot/render", status="completed", conclusion="success",
        title="Rendered", summary=summary, text="t" * 70000,
    )  # fmt: skip
    assert writes(fake_github)[before:] == []
    ours = [c for c in fake_github.check_runs(REPO, head) if c["app"]["slug"] == "gitops-bot"]
    assert len(ours) == 1
    output = ours[0]["output"]
    assert (ours[0]["conclusion"], output["title"]) == ("success", "Rendered")
    assert len(output["summary"]) <= 65535 and output["summary"].count("```") == 2
    assert len(output["text"]) <= 65535


def test_each_operation_costs_the_documented_number_of_calls(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    def cost(fn: object, *args: object, **kwargs: object) -> dict[str, int]:
        before = dict(client.calls)
        fn(*args, **kwargs)  # type: ignore[operator]
        return {k: n - before.get(k, 0) for k, n in client.calls.items() if n != before.get(k, 0)}

    assert cost(client.default_branch, REPO) == {
        "GET /repos/{owner}/{repo}": 1,
        "GET /repos/{owner}/{repo}/git/ref/{ref}": 1,
        "total": 2,
    }
    _, base = client.default_branch(REPO)
    assert cost(client.default_branch, REPO) == {  # the name is known for a while
        "GET /repos/{owner}/{repo}/git/ref/{ref}": 1,
        "total": 1,
    }
    assert cost(client.snapshot, REPO, base)["total"] == 2
    assert cost(client.snapshot, REPO, base) == {}
    files = {"a.yaml": b"1\n"}
    # a branch the bot never pushed to: created without looking first; the base tree id
    # comes from the snapshot
    assert cost(
        client.commit_files, REPO, branch="c", base_sha=base, files=files, message="m",
        look_first=False,
    ) == {
        "POST /repos/{owner}/{repo}/git/trees": 1,
        "POST /repos/{owner}/{repo}/git/commits": 1,
        "POST /repos/{owner}/{repo}/git/refs": 1,
        "total": 3,
    }  # fmt: skip
    assert cost(client.commit_files, REPO, branch="c", base_sha=base, files=files, message="m") == {
        "GET /repos/{owner}/{repo}/git/ref/{ref}": 1,
        "total": 1,  # the branch commit was just created: its parent and tree are known
    }
    assert client.rate_limit_remaining is not None and client.rate_limit_remaining < 5000


def test_a_revoked_token_is_replaced_once(
    fake_github: FakeGitHub, gh: GitHubApp, client: InstallationClient, sleeps: Sleeps
) -> None:
    client.default_branch(REPO)
    fake_github.revoke_tokens()
    assert client.permission(REPO, "nobody") == "none"
    assert gh.calls["POST /app/installations/{installation_id}/access_tokens"] == 2
    assert sleeps == []


def test_comments_of_other_apps_are_left_alone_when_the_slug_is_unknown(
    fake_github: FakeGitHub, sleeps: Sleeps
) -> None:
    fake_github.create_repo(REPO, files=FILES)
    app = GitHubApp(fake_github.app_id, fake_github.private_key_pem, sleep=sleeps)
    client = app.client(fake_github.installation_id(REPO))  # no lookup: slug unknown
    number = fake_github.open_issue(REPO, "t")
    human = fake_github.add_comment(REPO, number, "alice", "quoting <!-- m --> here")
    ours = client.upsert_comment(REPO, number, "<!-- m -->", "<!-- m -->\nbody")
    assert ours != human
    assert client.delete_comments(REPO, number, "<!-- m", keep=set()) == [ours]
    assert [c["id"] for c in fake_github.comments(REPO, number)] == [human]


def test_a_self_hosted_api_url_works_over_real_http(
    fake_github: FakeGitHub, sleeps: Sleeps
) -> None:
    fake_github.create_repo(REPO, files=FILES)
    base_url = fake_github.serve()  # archives are served from the API host itself, as on GHE
    app = GitHubApp(fake_github.app_id, fake_github.private_key_pem, base_url, sleep=sleeps)
    client = app.client_for_repo(REPO)
    _, sha = client.default_branch(REPO)
    assert client.snapshot(REPO, sha) == FILES
    assert client.calls["GET {archive}"] == 1
    assert client.calls["GET /repos/{owner}/{repo}/tarball/{ref}"] == 1


def test_a_snapshot_whose_tree_github_does_not_know_falls_back_to_the_commits_tree(
    fake_github: FakeGitHub, gh: GitHubApp, client: InstallationClient
) -> None:
    # an archive can lack files (`export-ignore`), so the tree id computed from it may name
    # a tree GitHub never saw: the commit's own tree is read and the commit is still right
    _, base = client.default_branch(REPO)
    entry = gh.snapshots.get(REPO, base) or client._snapshot_entry(REPO, base)
    lacking = dict(entry.files)
    lacking.pop("base/model.yaml")
    gh.snapshots.put(REPO, base, replace(entry, files=lacking, _memo={}))
    files: dict[str, bytes | None] = {"overlays/staging/new.yaml": b"new: true\n"}
    calls = len(fake_github.calls)
    head = client.commit_files(
        REPO, branch="e", base_sha=base, files=files, message="m", look_first=False
    )
    ops = [c.operation for c in fake_github.calls[calls:]]
    assert ops.count("/repos/{owner}/{repo}/git/trees") == 2
    assert "/repos/{owner}/{repo}/git/commits/{commit_sha}" in ops
    assert fake_github.file_at(REPO, head, "base/model.yaml") == FILES["base/model.yaml"]
    assert fake_github.file_at(REPO, head, "overlays/staging/new.yaml") == b"new: true\n"


def test_creating_first_on_a_branch_that_exists_moves_it_once(
    fake_github: FakeGitHub, client: InstallationClient
) -> None:
    _, base = client.default_branch(REPO)
    client.snapshot(REPO, base)
    fake_github.repo(REPO).git.update_ref("refs/heads/stale", base)
    files: dict[str, bytes | None] = {"overlays/staging/new.yaml": b"new: true\n"}
    head = client.commit_files(
        REPO, branch="stale", base_sha=base, files=files, message="m", look_first=False
    )
    assert fake_github.branch_sha(REPO, "stale") == head != base
    again = client.commit_files(
        REPO, branch="stale", base_sha=base, files=files, message="m", look_first=False
    )
    assert again == head  # the commit already there is kept: the PR head does not move
