"""The shared fake GitHub behaves like GitHub for real PyGithub calls, over real git."""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import github
import jwt
import pytest
import requests
import responses
from conftest import EXAMPLE_REPO
from fakegithub import HEAD_MODIFIED, SECONDARY_RATE_LIMIT, VALIDATION_STATUS, FakeGitHub
from github import Auth, Github, InputGitTreeElement

REPO = "acme/gitops"
EXAMPLES = (
    Path(__file__).parent
    / "corpora/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
)


def client(fake: FakeGitHub, repo: str = REPO, base_url: str | None = None, **kw: Any) -> Github:
    auth = Auth.AppAuth(fake.app_id, fake.private_key_pem).get_installation_auth(
        fake.installation_id(repo)
    )
    return Github(
        auth=auth,
        base_url=base_url or fake.api_url,
        retry=None,
        seconds_between_requests=None,
        seconds_between_writes=None,
        **kw,
    )


def token(fake: FakeGitHub, repo: str = REPO) -> str:
    app_jwt = Auth.AppAuth(fake.app_id, fake.private_key_pem).create_jwt()
    resp = requests.post(
        f"{fake.api_url}/app/installations/{fake.installation_id(repo)}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt}", "Accept": "application/vnd.github+json"},
        timeout=10,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["token"])


def commit_files(gh: Github, branch: str, files: dict[str, str | None], base: str = "main") -> str:
    """The bot's way: tree with base_tree, commit, ref. Returns the commit sha."""
    repo = gh.get_repo(REPO)
    parent = repo.get_git_commit(repo.get_git_ref(f"heads/{base}").object.sha)
    elements = [
        InputGitTreeElement(path, "100644", "blob", content=text)
        if text is not None
        else InputGitTreeElement(path, "100644", "blob", sha=None)
        for path, text in files.items()
    ]
    tree = repo.create_git_tree(elements, base_tree=parent.tree)
    commit = repo.create_git_commit("Promote fraud-detector v8 to staging", tree, [parent])
    repo.create_git_ref(f"refs/heads/{branch}", commit.sha)
    return commit.sha


@pytest.fixture
def repo(fake_github: FakeGitHub) -> str:
    fake_github.create_repo(
        REPO,
        files={
            "k8s/overlays/staging/model.yaml": b"version: 7\n",
            "k8s/base/models.yaml": b"kind: Model\n",
            "README.md": b"hello\n",
        },
    )
    return REPO


def test_seeded_example_repo_is_committed_from_the_directory(
    fake_github: FakeGitHub, gitops_repo: str
) -> None:
    config = (EXAMPLE_REPO / ".gitops-bot.yaml").read_bytes()
    assert fake_github.file_at(gitops_repo, "main", ".gitops-bot.yaml") == config
    gh = client(fake_github, gitops_repo)
    listing = gh.get_repo(gitops_repo).get_contents("k8s/overlays", ref="main")
    assert sorted(c.path for c in listing) == sorted(
        f"k8s/overlays/{p.name}" for p in (EXAMPLE_REPO / "k8s/overlays").iterdir()
    )


def test_git_data_commit_lands_in_git_and_in_the_tarball(
    fake_github: FakeGitHub, repo: str
) -> None:
    gh = client(fake_github)
    sha = commit_files(
        gh,
        "gitops-bot/staging/fraud-detector-8",
        {
            "k8s/overlays/staging/model.yaml": "version: 8\n",
            "README.md": None,
            "new/deep/f.txt": "x",
        },
    )
    branch = "gitops-bot/staging/fraud-detector-8"
    assert fake_github.branch_sha(repo, branch) == sha
    assert fake_github.file_at(repo, branch, "k8s/overlays/staging/model.yaml") == b"version: 8\n"
    assert fake_github.file_at(repo, branch, "README.md") is None
    assert fake_github.file_at(repo, branch, "new/deep/f.txt") == b"x"
    assert fake_github.file_at(repo, branch, "k8s/base/models.yaml") == b"kind: Model\n"
    git = fake_github.repo(repo).git
    assert git.commit_info(sha).parents == [fake_github.branch_sha(repo, "main")]  # type: ignore[union-attr]

    r = gh.get_repo(repo)
    commit = r.get_git_commit(sha)
    assert commit.verification.verified is True
    assert commit.author.name == "gitops-bot[bot]"
    assert r.get_git_ref(f"heads/{branch}").object.sha == sha

    resp = requests.get(
        f"{fake_github.api_url}/repos/{repo}/tarball/{sha}",
        headers={"Authorization": f"token {token(fake_github)}"},
        timeout=10,
    )
    assert resp.status_code == 200
    assert resp.history[0].status_code == 302
    assert resp.history[0].headers["Location"].startswith(fake_github.codeload_url)
    with tarfile.open(fileobj=io.BytesIO(resp.content), mode="r:gz") as tar:
        prefix = f"acme-gitops-{sha[:7]}/"
        names = tar.getnames()
        assert f"{prefix}new/deep/f.txt" in names
        assert f"{prefix}README.md" not in names
        member = tar.extractfile(f"{prefix}k8s/overlays/staging/model.yaml")
        assert member is not None and member.read() == b"version: 8\n"


def test_deleting_a_missing_path_is_rejected(fake_github: FakeGitHub, repo: str) -> None:
    r = client(fake_github).get_repo(repo)
    base = r.get_git_commit(fake_github.branch_sha(repo, "main")).tree  # type: ignore[arg-type]
    with pytest.raises(github.GithubException) as err:
        r.create_git_tree([InputGitTreeElement("nope.txt", "100644", "blob", sha=None)], base)
    assert err.value.status == 422


def test_ref_update_refuses_non_fast_forward_unless_forced(
    fake_github: FakeGitHub, repo: str
) -> None:
    gh = client(fake_github)
    first = commit_files(gh, "feature", {"a.txt": "1"})
    r = gh.get_repo(repo)
    other = r.create_git_commit("unrelated", r.get_git_commit(first).tree, [])  # no parent
    ref = r.get_git_ref("heads/feature")
    with pytest.raises(github.GithubException) as err:
        ref.edit(other.sha, force=False)
    assert err.value.status == 422
    assert err.value.data["message"] == "Update is not a fast forward"
    ref.edit(other.sha, force=True)
    assert fake_github.branch_sha(repo, "feature") == other.sha


def test_pull_request_lifecycle_with_merge_sha_guard(fake_github: FakeGitHub, repo: str) -> None:
    gh = client(fake_github)
    branch = "gitops-bot/staging/fraud-detector-8"
    head = commit_files(gh, branch, {"k8s/overlays/staging/model.yaml": "version: 8\n"})
    r = gh.get_repo(repo)
    pr = r.create_pull(base="main", head=branch, title="Promote fraud-detector v8", body="body")
    assert (pr.number, pr.head.sha, pr.head.ref, pr.base.ref) == (1, head, branch, "main")
    assert pr.user.login == "gitops-bot[bot]" and pr.mergeable and not pr.draft

    with pytest.raises(github.GithubException) as dup:
        r.create_pull(base="main", head=branch, title="again")
    assert dup.value.status == 422

    assert [p.number for p in r.get_pulls(state="open", head=f"acme:{branch}")] == [1]
    assert list(r.get_pulls(state="open", head="acme:other")) == []
    assert [f.filename for f in pr.get_files()] == ["k8s/overlays/staging/model.yaml"]

    fake_github.add_review(repo, 1, "carol", "APPROVED")
    reviews = list(pr.get_reviews())
    assert [(v.user.login, v.state, v.commit_id) for v in reviews] == [("carol", "APPROVED", head)]

    stale = head
    newer = fake_github.push_commit(repo, branch, {"extra.txt": b"human"}, "human push", "dave")
    with pytest.raises(github.GithubException) as conflict:
        pr.merge(merge_method="squash", sha=stale)
    assert conflict.value.status == 409
    assert conflict.value.data["message"] == HEAD_MODIFIED

    result = pr.merge(merge_method="squash", sha=newer)
    assert result.merged
    merged = r.get_pull(1)
    assert merged.merged and merged.state == "closed" and merged.merge_commit_sha == result.sha
    assert fake_github.branch_sha(repo, "main") == result.sha
    assert fake_github.file_at(repo, "main", "k8s/overlays/staging/model.yaml") == b"version: 8\n"
    with pytest.raises(github.GithubException) as again:
        merged.merge(sha=newer)
    assert again.value.status == 405


def test_merge_after_base_moved_is_a_real_three_way_merge(
    fake_github: FakeGitHub, repo: str
) -> None:
    gh = client(fake_github)
    commit_files(gh, "bot", {"k8s/overlays/staging/model.yaml": "version: 8\n"})
    pr = gh.get_repo(repo).create_pull(base="main", head="bot", title="t", body="")
    fake_github.push_commit(repo, "main", {"README.md": b"changed on main\n"})
    pr.merge(merge_method="squash")
    assert fake_github.file_at(repo, "main", "README.md") == b"changed on main\n"
    assert fake_github.file_at(repo, "main", "k8s/overlays/staging/model.yaml") == b"version: 8\n"

    commit_files(gh, "bot2", {"README.md": "bot version\n"}, base="main")
    pr2 = gh.get_repo(repo).create_pull(base="main", head="bot2", title="t2", body="")
    fake_github.push_commit(repo, "main", {"README.md": b"human version\n"})
    assert gh.get_repo(repo).get_pull(pr2.number).mergeable is False
    with pytest.raises(github.GithubException) as err:
        pr2.merge()
    assert err.value.status == 405


def test_comments_reactions_and_labels(fake_github: FakeGitHub, repo: str) -> None:
    fake_github.push_commit(repo, "feature", {"a.txt": b"a"})
    number = fake_github.open_pr(repo, "feature", title="Human PR", user="alice")
    issue = client(fake_github).get_repo(repo).get_issue(number)
    assert issue.pull_request is not None

    comment = issue.create_comment("part 1/2")
    comment.edit("part 1/2 (updated)")
    comment.create_reaction("eyes")
    other = issue.create_comment("part 2/2")
    assert [c.body for c in issue.get_comments()] == ["part 1/2 (updated)", "part 2/2"]
    other.delete()
    assert [c["body"] for c in fake_github.comments(repo, number)] == ["part 1/2 (updated)"]
    assert fake_github.reactions(repo, comment.id) == [("gitops-bot[bot]", "eyes")]

    resp = client(fake_github).requester.requestJsonAndCheck(
        "POST", f"/repos/{repo}/issues/{number}/labels", input={"labels": ["promotion"]}
    )
    assert [label["name"] for label in resp[1]] == ["promotion"]
    assert fake_github.labels(repo, number) == ["promotion"]

    with pytest.raises(github.GithubException) as err:
        issue.create_comment("x" * 65537)
    assert err.value.status == 422


def test_check_runs_and_combined_status(fake_github: FakeGitHub, repo: str) -> None:
    gh = client(fake_github, lazy=True)
    sha = fake_github.branch_sha(repo, "main")
    assert sha
    r = gh.get_repo(repo)
    run = r.create_check_run(
        "gitops-bot/render", sha, status="in_progress", output={"title": "t", "summary": "s"}
    )
    run.edit(conclusion="success", output={"title": "done", "summary": "ok", "text": "diff"})
    fake_github.add_check_run(repo, sha, "ci/test", conclusion="failure")
    fake_github.add_check_run(repo, sha, "ci/test", conclusion="success")
    runs = {c.name: c for c in r.get_commit(sha).get_check_runs()}
    assert {n: (c.status, c.conclusion) for n, c in runs.items()} == {
        "gitops-bot/render": ("completed", "success"),
        "ci/test": ("completed", "success"),
    }
    assert runs["gitops-bot/render"].app.id == fake_github.app_id
    assert runs["gitops-bot/render"].output.text == "diff"

    fake_github.set_status(repo, sha, "legacy/ci", "pending")
    fake_github.set_status(repo, sha, "legacy/ci", "success")
    combined = r.get_commit(sha).get_combined_status()
    assert (combined.state, combined.total_count) == ("success", 1)

    with pytest.raises(github.GithubException) as err:  # the spec's maxLength catches it
        run.edit(output={"title": "t", "summary": "s" * 65536})
    assert err.value.status == VALIDATION_STATUS
    assert "/output/summary" in fake_github.validation_errors.pop()


def test_permissions_and_team_membership(fake_github: FakeGitHub, repo: str) -> None:
    gh = client(fake_github)
    fake_github.set_permission(repo, "carol", "maintain")
    assert gh.get_repo(repo).get_collaborator_permission("carol") == "write"
    assert gh.get_repo(repo).get_collaborator_permission("mallory") == "none"
    fake_github.add_team_member("acme", "ml-approvers", "carol")
    _, body = gh.requester.requestJsonAndCheck(
        "GET", "/orgs/acme/teams/ml-approvers/memberships/carol"
    )
    assert body["state"] == "active"
    with pytest.raises(github.UnknownObjectException):
        gh.requester.requestJsonAndCheck("GET", "/orgs/acme/teams/ml-approvers/memberships/dave")


def test_history_of_a_path_is_newest_first(fake_github: FakeGitHub, repo: str) -> None:
    first = fake_github.push_commit(repo, "main", {"k8s/overlays/staging/model.yaml": b"v: 8\n"})
    fake_github.push_commit(repo, "main", {"README.md": b"unrelated\n"})
    second = fake_github.push_commit(repo, "main", {"k8s/overlays/staging/model.yaml": b"v: 9\n"})
    r = client(fake_github).get_repo(repo)
    shas = [c.sha for c in r.get_commits(sha="main", path="k8s/overlays/staging/model.yaml")]
    assert shas[:2] == [second, first] and len(shas) == 3
    assert r.get_commits(sha="main")[0].author.login == "alice"


def test_invalid_requests_are_caught_by_openapi_validation(
    fake_github: FakeGitHub, repo: str
) -> None:
    headers = {"Authorization": f"token {token(fake_github)}"}
    resp = requests.post(
        f"{fake_github.api_url}/repos/{repo}/pulls",
        json={"title": "no head", "base": "main"},
        headers=headers,
        timeout=10,
    )
    assert resp.status_code == VALIDATION_STATUS
    assert "'head' is a required property" in fake_github.validation_errors[0]
    resp = requests.get(
        f"{fake_github.api_url}/repos/{repo}/pulls?state=bogus", headers=headers, timeout=10
    )
    assert resp.status_code == VALIDATION_STATUS
    resp = requests.get(f"{fake_github.api_url}/repos/{repo}/branches", headers=headers, timeout=10)
    assert resp.status_code == VALIDATION_STATUS
    assert "not an operation" in fake_github.validation_errors[2]
    assert len(fake_github.validation_errors) == 3
    fake_github.validation_errors.clear()  # expected here; the fixture fails tests on them


def test_authentication_is_enforced(fake_github: FakeGitHub, repo: str) -> None:
    other = fake_github.create_repo("other/repo", files={"a": b"a"})
    url = f"{fake_github.api_url}/repos/{repo}"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": "token nope"}, timeout=10).status_code == 401
    foreign = token(fake_github, other.full_name)
    resp = requests.get(url, headers={"Authorization": f"token {foreign}"}, timeout=10)
    assert resp.status_code == 404

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    wrong_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    now = int(time.time())
    for key, iss in ((wrong_key, str(fake_github.app_id)), (fake_github.private_key_pem, "1")):
        forged = jwt.encode({"iat": now - 60, "exp": now + 300, "iss": iss}, key, "RS256")
        resp = requests.get(
            f"{url}/installation", headers={"Authorization": f"Bearer {forged}"}, timeout=10
        )
        assert resp.status_code == 401
    fake_github.revoke_tokens()
    with pytest.raises(github.BadCredentialsException):
        Github(auth=Auth.Token(foreign), retry=None).get_repo(other.full_name)


def test_fault_injection(fake_github: FakeGitHub, repo: str) -> None:
    gh = client(fake_github)
    r = gh.get_repo(repo)
    fake_github.fail_next("GET", r"/pulls$", status=502)
    with pytest.raises(github.GithubException) as err:
        list(r.get_pulls())
    assert err.value.status == 502
    assert list(r.get_pulls()) == []

    fake_github.rate_limit_next("GET", r"/pulls$")
    resp = requests.get(
        f"{fake_github.api_url}/repos/{repo}/pulls",
        headers={"Authorization": f"token {token(fake_github)}"},
        timeout=10,
    )
    assert resp.status_code == 403 and resp.headers["Retry-After"] == "1"
    assert resp.json()["message"].startswith(SECONDARY_RATE_LIMIT.split(".")[0])

    fake_github.push_commit(repo, "feature", {"a.txt": b"a"})
    number = fake_github.open_pr(repo, "feature")
    fake_github.fail_next("POST", r"/comments$", status=502, after=True)
    with pytest.raises(github.GithubException):
        r.get_issue(number).create_comment("lost response")
    assert [c["body"] for c in fake_github.comments(repo, number)] == ["lost response"]
    statuses = [c.status for c in fake_github.calls_to("GET", r"/pulls$")]
    assert statuses == [502, 200, 403]


def test_http_server_adapter_serves_the_same_fake(fake_github: FakeGitHub, repo: str) -> None:
    base = fake_github.serve()
    gh = client(fake_github, base_url=base)
    r = gh.get_repo(repo)
    assert r.url == f"{base}/repos/{repo}"
    fake_github.push_commit(repo, "feature", {"a.txt": b"served"})
    number = fake_github.open_pr(repo, "feature")
    r.get_issue(number).create_comment("over real HTTP")
    assert fake_github.comments(repo, number)[0]["body"] == "over real HTTP"

    app_jwt = Auth.AppAuth(fake_github.app_id, fake_github.private_key_pem).create_jwt()
    session = requests.Session()
    got = session.post(
        f"{base}/app/installations/{fake_github.installation_id(repo)}/access_tokens",
        headers={"Authorization": f"Bearer {app_jwt}"},
        timeout=10,
    ).json()
    tar = session.get(
        f"{base}/repos/{repo}/tarball/feature",
        headers={"Authorization": f"token {got['token']}"},
        timeout=10,
    )
    assert tar.history[0].headers["Location"].startswith(f"{base}/_codeload/")
    with tarfile.open(fileobj=io.BytesIO(tar.content), mode="r:gz") as archive:
        assert any(n.endswith("/a.txt") for n in archive.getnames())


def test_enterprise_base_url(tmp_path: Path) -> None:
    fake = FakeGitHub(tmp_path, api_url="https://ghe.example/api/v3")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        fake.install(mock)
        fake.create_repo(REPO, files={"a": b"a"})
        r = client(fake).get_repo(REPO)
        assert r.html_url == "https://ghe.example/acme/gitops"
        assert r.get_git_ref("heads/main").object.sha == fake.branch_sha(REPO, "main")
    assert fake.validation_errors == [] and fake.response_errors == []


def _example(event: str, action: str | None) -> dict[str, Any]:
    data = json.loads(EXAMPLES.read_text())
    examples = next(e["examples"] for e in data if e["name"] == event)
    matching = [x for x in examples if x.get("action") == action]
    return max(matching, key=lambda x: "installation" in x)  # a GitHub App delivery if any


def _missing(real: dict[str, Any], ours: dict[str, Any], keys: list[str]) -> dict[str, set[str]]:
    gaps = {"": set(real) - set(ours) - {"enterprise"}}
    for key in keys:
        gaps[key] = set(real[key]) - set(ours[key])
    return {k: v for k, v in gaps.items() if v}


def test_webhook_payloads_carry_the_fields_of_real_examples(
    fake_github: FakeGitHub, repo: str
) -> None:
    fake_github.push_commit(repo, "feature", {"a.txt": b"a"})
    number = fake_github.open_pr(repo, "feature", user="alice")
    sha = fake_github.branch_sha(repo, "feature")
    assert sha

    comment = fake_github.payload_issue_comment(repo, number, "carol", "/promote production")
    assert comment["comment"]["body"] == "/promote production"
    assert comment["installation"]["id"] == fake_github.installation_id(repo)
    assert comment["issue"]["pull_request"]["url"].endswith(f"/pulls/{number}")
    assert fake_github.comments(repo, number)[0]["id"] == comment["comment"]["id"]
    pull = fake_github.payload_pull_request(repo, number, "opened")
    review_id = fake_github.add_review(repo, number, "carol", "APPROVED")
    review = fake_github.payload_pull_request_review(repo, number, review_id)
    run = fake_github.payload_check_run(repo, fake_github.add_check_run(repo, sha, "ci"))
    suite = fake_github.payload_check_suite(repo, sha)
    status = fake_github.payload_status(repo, fake_github.set_status(repo, sha, "ci", "success"))

    assert (
        _missing(_example("issue_comment", "created"), comment, ["issue", "comment", "sender"])
        == {}
    )
    assert _missing(_example("pull_request", "opened"), pull, ["pull_request", "repository"]) == {}
    assert _missing(_example("pull_request_review", "submitted"), review, ["review"]) == {}
    assert _missing(_example("check_run", "completed"), run, ["check_run"]) == {}
    assert _missing(_example("check_suite", "completed"), suite, ["check_suite"]) == {}
    assert _missing(_example("status", None), status, ["commit"]) == {}


# --------------------------------------------------------------------------- OAuth (user-to-server)

CALLBACK = "https://bot.example/oauth/callback"


def authorize(fake: FakeGitHub, **params: str) -> requests.Response:
    query = {"client_id": fake.client_id, "redirect_uri": CALLBACK, "state": "st-1", **params}
    return requests.get(
        "https://github.com/login/oauth/authorize", params=query, allow_redirects=False, timeout=10
    )


def exchange(fake: FakeGitHub, code: str, **params: str) -> dict[str, Any]:
    form = {"client_id": fake.client_id, "client_secret": fake.client_secret, "code": code}
    resp = requests.post(
        "https://github.com/login/oauth/access_token",
        data={**form, **params},
        headers={"Accept": "application/json"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def code_from(resp: requests.Response) -> str:
    assert resp.status_code == 302, resp.text
    location = resp.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    query = dict(parse_qsl(location.split("?", 1)[1]))
    assert query["state"] == "st-1"
    return query["code"]


def user_get(fake: FakeGitHub, token: str, path: str) -> requests.Response:
    return requests.get(
        f"{fake.api_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


@pytest.fixture
def two_repos(fake_github: FakeGitHub) -> FakeGitHub:
    fake_github.create_repo("acme/alpha", files={"a.txt": b"a"})
    fake_github.create_repo("other/beta", files={"b.txt": b"b"})
    fake_github.set_permission("acme/alpha", "alice", "read")
    fake_github.set_permission("other/beta", "bob", "write")
    fake_github.set_permission("acme/alpha", "bob", "none")
    fake_github.register_callback(CALLBACK)
    return fake_github


def test_oauth_web_flow_gives_a_user_token_that_sees_only_that_users_repositories(
    two_repos: FakeGitHub,
) -> None:
    fake = two_repos
    fake.sign_in_web("alice")
    token = exchange(fake, code_from(authorize(fake)))
    assert token["access_token"].startswith("ghu_") and token["token_type"] == "bearer"
    assert token["expires_in"] == 28800 and token["refresh_token"].startswith("ghr_")
    assert user_get(fake, token["access_token"], "/user").json()["login"] == "alice"
    installs = user_get(fake, token["access_token"], "/user/installations").json()
    assert [i["account"]["login"] for i in installs["installations"]] == ["acme"]
    inst = installs["installations"][0]["id"]
    repos = user_get(fake, token["access_token"], f"/user/installations/{inst}/repositories")
    [repo] = repos.json()["repositories"]
    assert repo["full_name"] == "acme/alpha" and repo["permissions"]["pull"] is True
    beta = fake.installation_id("other/beta")
    denied = user_get(fake, token["access_token"], f"/user/installations/{beta}/repositories")
    assert denied.status_code == 404


def test_oauth_codes_are_single_use_and_bound_to_client_and_redirect(
    two_repos: FakeGitHub,
) -> None:
    fake = two_repos
    fake.sign_in_web("bob")
    code = code_from(authorize(fake))
    assert exchange(fake, code, redirect_uri=CALLBACK + "/x")["error"] == "redirect_uri_mismatch"
    assert exchange(fake, code)["error"] == "bad_verification_code"  # used by the failed try
    wrong = exchange(fake, code_from(authorize(fake)), client_secret="nope")
    assert wrong["error"] == "incorrect_client_credentials"
    good = code_from(authorize(fake))
    assert "access_token" in exchange(fake, good)
    assert exchange(fake, good)["error"] == "bad_verification_code"


def test_oauth_authorize_checks_client_redirect_and_the_github_session(
    two_repos: FakeGitHub,
) -> None:
    fake = two_repos
    assert authorize(fake, client_id="Iv1.unknown").status_code == 404
    mismatch = authorize(fake, redirect_uri="https://evil.example/oauth/callback")
    assert mismatch.status_code == 302
    assert "error=redirect_uri_mismatch" in mismatch.headers["Location"]
    assert mismatch.headers["Location"].startswith(CALLBACK)
    signed_out = authorize(fake)  # nobody signed in to GitHub in this browser
    assert signed_out.status_code == 200 and "Sign in to GitHub" in signed_out.text


def test_user_endpoints_take_only_user_tokens(two_repos: FakeGitHub) -> None:
    fake = two_repos
    installation = token(fake, "acme/alpha")
    assert user_get(fake, installation, "/user/installations").status_code == 403
    assert user_get(fake, "ghu_forged", "/user").status_code == 401
    user = fake.user_token_for("alice")
    assert user_get(fake, user, "/repos/acme/alpha").status_code == 401  # not the bot's calls


# --------------------------------------------------------------------------- deployments


def _deploy_client(fake):
    from bot.gateways.github import GitHubApp

    app = GitHubApp(fake.app_id, fake.private_key_pem, sleep=lambda s: None)
    return app.client_for_repo("acme/gitops")


def test_fake_deployments_follow_githubs_rules(fake_github, gitops_repo):
    import pytest
    from github.GithubException import GithubException

    from bot.gateways.github_http import GitHubError

    client = _deploy_client(fake_github)
    sha = fake_github.branch_sha(gitops_repo, "main")
    kwargs = {"payload": {"v": 1}, "description": "d", "look_first": False}
    with pytest.raises(GitHubError) as unknown:
        client.ensure_deployment(gitops_repo, sha="f" * 40, environment="staging",
                                 production=False, **kwargs)  # fmt: skip
    assert unknown.value.status == 422
    # without required_contexts GitHub checks every commit status context first
    fake_github.set_status(gitops_repo, sha, "ci/test", "failure")
    with pytest.raises(GithubException) as conflict:
        client._request("POST", f"/repos/{gitops_repo}/deployments", body={"ref": sha})
    assert conflict.value.status == 409
    first = client.ensure_deployment(gitops_repo, sha=sha, environment="staging",
                                     production=False, **kwargs)  # fmt: skip
    client.set_deployment_status(gitops_repo, first, "success")
    second = client.ensure_deployment(
        gitops_repo, sha=sha, environment="staging", production=False, **kwargs
    )
    assert second != first  # look_first=False: a new one, as asked
    client.set_deployment_status(gitops_repo, second, "success")
    # auto_inactive: the earlier successful non-production deployment becomes inactive
    assert client.deployment_states(gitops_repo, first) == ["inactive", "success"]
    # looking first finds this app's newest deployment of the sha and environment
    looking = {**kwargs, "look_first": True}
    again = client.ensure_deployment(
        gitops_repo, sha=sha, environment="staging", production=False, **looking
    )
    assert again == second
    prod = client.ensure_deployment(gitops_repo, sha=sha, environment="production",
                                    production=True, **kwargs)  # fmt: skip
    client.set_deployment_status(gitops_repo, prod, "success")
    newer = client.ensure_deployment(gitops_repo, sha=sha, environment="production",
                                     production=True, **kwargs)  # fmt: skip
    client.set_deployment_status(gitops_repo, newer, "success")
    assert client.deployment_states(gitops_repo, prod) == ["success"]  # production: untouched
    with pytest.raises(GitHubError) as missing:
        client.set_deployment_status(gitops_repo, 999_999_999, "success")
    assert missing.value.status == 404


def test_conditional_gets_answer_304_free_of_rate_and_a_change_gets_a_new_etag(
    fake_github: FakeGitHub, repo: str
) -> None:
    fake = fake_github
    fake.push_commit(repo, "feature", {"README.md": b"changed\n"})
    number = fake.open_pr(repo, "feature", title="Feature")
    fake.set_rate_limit(fake.installation_id(repo), 100, limit=100)
    auth = {"Authorization": f"token {token(fake)}", "Accept": "application/vnd.github+json"}
    url = f"{fake.api_url}/repos/{repo}/pulls/{number}"

    first = requests.get(url, headers=auth, timeout=10)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('W/"')
    left = int(first.headers["X-RateLimit-Remaining"])

    for tags in (etag, etag.removeprefix("W/"), f'"other", {etag}', "*"):  # weak comparison
        same = requests.get(url, headers={**auth, "If-None-Match": tags}, timeout=10)
        assert (same.status_code, same.content) == (304, b"")
        assert same.headers["ETag"] == etag
        assert int(same.headers["X-RateLimit-Remaining"]) == left  # not counted
    assert fake.rate_windows[fake.installation_id(repo)].remaining == left
    assert [c.status for c in fake.calls[-4:]] == [304] * 4

    fake.add_comment(repo, number, "carol", "looks good")  # the issue's comment count moves
    fake.push_commit(repo, "feature", {"README.md": b"again\n"})  # the head moves
    changed = requests.get(url, headers={**auth, "If-None-Match": etag}, timeout=10)
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert changed.json()["head"]["sha"] == fake.branch_sha(repo, "feature")
    assert int(changed.headers["X-RateLimit-Remaining"]) == left - 1
    # writes carry no validator and are never answered 304
    post = requests.post(
        f"{url.replace('/pulls/', '/issues/')}/comments",
        headers={**auth, "If-None-Match": "*"},
        json={"body": "hi"},
        timeout=10,
    )
    assert post.status_code == 201 and "ETag" not in post.headers
