"""JSON bodies in GitHub's real response shapes, built from the fake's state."""

from __future__ import annotations

import base64
import zlib
from typing import Any

from .gitrepo import CommitInfo
from .state import (
    CheckRun,
    Comment,
    Deployment,
    DeploymentStatus,
    Issue,
    Reaction,
    Repo,
    Review,
    Status,
    Urls,
    iso,
    node_id,
)

APP_PERMISSIONS = {
    "checks": "write",
    "contents": "write",
    "deployments": "write",
    "issues": "write",
    "members": "read",
    "metadata": "read",
    "pull_requests": "write",
    "statuses": "read",
}
APP_EVENTS = ["check_run", "check_suite", "issue_comment", "pull_request", "pull_request_review"]
EPOCH = 1_700_000_000


def user_id(login: str) -> int:
    return 1_000_000 + zlib.crc32(login.encode()) % 90_000_000


def user(u: Urls, login: str, *, kind: str | None = None) -> dict[str, Any]:
    kind = kind or ("Bot" if login.endswith("[bot]") else "User")
    uid = user_id(login)
    api = f"{u.api}/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": node_id(kind, uid),
        "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
        "gravatar_id": "",
        "url": api,
        "html_url": f"{u.web}/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": kind,
        "user_view_type": "public",
        "site_admin": False,
    }


def repository(u: Urls, r: Repo, *, full: bool = False) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}"
    html = f"{u.web}/{r.full_name}"
    body: dict[str, Any] = {
        "id": r.id,
        "node_id": node_id("Repository", r.id),
        "name": r.name,
        "full_name": r.full_name,
        "private": r.private,
        "owner": user(u, r.owner, kind=r.owner_type),
        "html_url": html,
        "description": None,
        "fork": False,
        "url": api,
        "archive_url": f"{api}/{{archive_format}}{{/ref}}",
        "assignees_url": f"{api}/assignees{{/user}}",
        "blobs_url": f"{api}/git/blobs{{/sha}}",
        "branches_url": f"{api}/branches{{/branch}}",
        "collaborators_url": f"{api}/collaborators{{/collaborator}}",
        "comments_url": f"{api}/comments{{/number}}",
        "commits_url": f"{api}/commits{{/sha}}",
        "compare_url": f"{api}/compare/{{base}}...{{head}}",
        "contents_url": f"{api}/contents/{{+path}}",
        "contributors_url": f"{api}/contributors",
        "deployments_url": f"{api}/deployments",
        "downloads_url": f"{api}/downloads",
        "events_url": f"{api}/events",
        "forks_url": f"{api}/forks",
        "git_commits_url": f"{api}/git/commits{{/sha}}",
        "git_refs_url": f"{api}/git/refs{{/sha}}",
        "git_tags_url": f"{api}/git/tags{{/sha}}",
        "git_url": f"git://{u.web.split('://', 1)[1]}/{r.full_name}.git",
        "hooks_url": f"{api}/hooks",
        "issue_comment_url": f"{api}/issues/comments{{/number}}",
        "issue_events_url": f"{api}/issues/events{{/number}}",
        "issues_url": f"{api}/issues{{/number}}",
        "keys_url": f"{api}/keys{{/key_id}}",
        "labels_url": f"{api}/labels{{/name}}",
        "languages_url": f"{api}/languages",
        "merges_url": f"{api}/merges",
        "milestones_url": f"{api}/milestones{{/number}}",
        "notifications_url": f"{api}/notifications{{?since,all,participating}}",
        "pulls_url": f"{api}/pulls{{/number}}",
        "releases_url": f"{api}/releases{{/id}}",
        "ssh_url": f"git@{u.web.split('://', 1)[1]}:{r.full_name}.git",
        "stargazers_url": f"{api}/stargazers",
        "statuses_url": f"{api}/statuses/{{sha}}",
        "subscribers_url": f"{api}/subscribers",
        "subscription_url": f"{api}/subscription",
        "tags_url": f"{api}/tags",
        "teams_url": f"{api}/teams",
        "trees_url": f"{api}/git/trees{{/sha}}",
        "clone_url": f"{html}.git",
        "mirror_url": None,
        "svn_url": html,
        "homepage": None,
        "language": None,
        "forks_count": 0,
        "forks": 0,
        "stargazers_count": 0,
        "watchers_count": 0,
        "watchers": 0,
        "size": 1,
        "default_branch": r.default_branch,
        "open_issues_count": sum(1 for i in r.issues.values() if i.state == "open"),
        "open_issues": sum(1 for i in r.issues.values() if i.state == "open"),
        "is_template": False,
        "topics": [],
        "has_issues": True,
        "has_projects": False,
        "has_wiki": False,
        "has_pages": False,
        "has_downloads": True,
        "has_discussions": False,
        "archived": False,
        "disabled": False,
        "visibility": "private" if r.private else "public",
        "pushed_at": iso(r.created_at),
        "created_at": iso(r.created_at),
        "updated_at": iso(r.created_at),
        "allow_forking": True,
        "web_commit_signoff_required": False,
        "license": None,
    }
    if full:
        body.update(
            network_count=0,
            subscribers_count=0,
            allow_squash_merge=True,
            allow_merge_commit=True,
            allow_rebase_merge=True,
            allow_auto_merge=False,
            delete_branch_on_merge=False,
            permissions={
                "admin": False,
                "maintain": False,
                "push": True,
                "triage": True,
                "pull": True,
            },
        )
    return body


def app(u: Urls, app_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": app_info["id"],
        "slug": app_info["slug"],
        "client_id": f"Iv1.{app_info['id']:016x}",
        "node_id": node_id("App", app_info["id"]),
        "owner": user(u, app_info.get("owner", "acme"), kind="Organization"),
        "name": app_info["name"],
        "description": "",
        "external_url": f"https://{app_info['slug']}.example",
        "html_url": f"{u.web}/apps/{app_info['slug']}",
        "created_at": iso(EPOCH),
        "updated_at": iso(EPOCH),
        "permissions": APP_PERMISSIONS,
        "events": APP_EVENTS,
    }


def installation(u: Urls, r: Repo, app_info: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r.installation_id,
        "client_id": f"Iv1.{app_info['id']:016x}",
        "account": user(u, r.owner, kind=r.owner_type),
        "repository_selection": "selected",
        "access_tokens_url": f"{u.api}/app/installations/{r.installation_id}/access_tokens",
        "repositories_url": f"{u.api}/installation/repositories",
        "html_url": f"{u.web}/organizations/{r.owner}/settings/installations/{r.installation_id}",
        "app_id": app_info["id"],
        "app_slug": app_info["slug"],
        "target_id": user_id(r.owner),
        "target_type": r.owner_type,
        "permissions": APP_PERMISSIONS,
        "events": APP_EVENTS,
        "created_at": iso(EPOCH),
        "updated_at": iso(EPOCH),
        "single_file_name": None,
        "has_multiple_single_files": False,
        "single_file_paths": [],
        "suspended_by": None,
        "suspended_at": None,
    }


def git_ref(u: Urls, r: Repo, ref: str, sha: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "node_id": node_id("Ref", zlib.crc32(f"{r.full_name}:{ref}".encode())),
        "url": f"{u.api}/repos/{r.full_name}/git/{ref}",
        "object": {
            "type": "commit",
            "sha": sha,
            "url": f"{u.api}/repos/{r.full_name}/git/commits/{sha}",
        },
    }


def _git_person(p: Any) -> dict[str, Any]:
    return {"name": p.name, "email": p.email, "date": iso(p.date)}


def verification(c: CommitInfo, signed: bool, raw: str) -> dict[str, Any]:
    if signed:
        return {
            "verified": True,
            "reason": "valid",
            "signature": "-----BEGIN PGP SIGNATURE-----\n\nfake\n-----END PGP SIGNATURE-----\n",
            "payload": raw,
            "verified_at": iso(c.committer.date),
        }
    return {
        "verified": False,
        "reason": "unsigned",
        "signature": None,
        "payload": None,
        "verified_at": None,
    }


def git_commit(u: Urls, r: Repo, c: CommitInfo, signed: bool, raw: str) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}"
    return {
        "sha": c.sha,
        "node_id": node_id("Commit", zlib.crc32(c.sha.encode())),
        "url": f"{api}/git/commits/{c.sha}",
        "html_url": f"{u.web}/{r.full_name}/commit/{c.sha}",
        "author": _git_person(c.author),
        "committer": _git_person(c.committer),
        "tree": {"sha": c.tree, "url": f"{api}/git/trees/{c.tree}"},
        "message": c.message,
        "parents": [
            {
                "sha": p,
                "url": f"{api}/git/commits/{p}",
                "html_url": f"{u.web}/{r.full_name}/commit/{p}",
            }
            for p in c.parents
        ],
        "verification": verification(c, signed, raw),
    }


def commit(u: Urls, r: Repo, c: CommitInfo, signed: bool, raw: str) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}"
    g = git_commit(u, r, c, signed, raw)
    author_login = r.logins_by_email.get(c.author.email)
    committer_login = r.logins_by_email.get(c.committer.email)
    if committer_login is None and c.committer.email == "noreply@github.com":
        committer_login = "web-flow"  # GitHub's committer for commits it signs (Git Data API)
    return {
        "url": f"{api}/commits/{c.sha}",
        "sha": c.sha,
        "node_id": g["node_id"],
        "html_url": g["html_url"],
        "comments_url": f"{api}/commits/{c.sha}/comments",
        "commit": {
            "url": g["url"],
            "author": g["author"],
            "committer": g["committer"],
            "message": c.message,
            "comment_count": 0,
            "tree": g["tree"],
            "verification": g["verification"],
        },
        "author": user(u, author_login) if author_login else None,
        "committer": user(u, committer_login) if committer_login else None,
        "parents": [
            {"sha": p, "url": f"{api}/commits/{p}", "html_url": f"{u.web}/{r.full_name}/commit/{p}"}
            for p in c.parents
        ],
    }


def tree(
    u: Urls, r: Repo, sha: str, entries: list[tuple[str, str, str, str, int | None]]
) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}"
    return {
        "sha": sha,
        "url": f"{api}/git/trees/{sha}",
        "truncated": False,
        "tree": [
            {
                "path": path,
                "mode": mode,
                "type": typ,
                "sha": esha,
                **({"size": size} if size is not None else {}),
                "url": f"{api}/git/{typ}s/{esha}",
            }
            for mode, typ, esha, path, size in entries
        ],
    }


def content(
    u: Urls, r: Repo, ref: str, path: str, typ: str, sha: str, data: bytes | None
) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}"
    kind = "blob" if typ == "file" else "tree"
    self_url = f"{api}/contents/{path}?ref={ref}"
    html = f"{u.web}/{r.full_name}/{kind}/{ref}/{path}"
    git_url = f"{api}/git/{'blobs' if typ == 'file' else 'trees'}/{sha}"
    body: dict[str, Any] = {
        "type": typ,
        "size": len(data) if data is not None else 0,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "url": self_url,
        "git_url": git_url,
        "html_url": html,
        "download_url": (
            f"https://raw.githubusercontent.localhost/{r.full_name}/{ref}/{path}"
            if typ == "file"
            else None
        ),
        "_links": {"self": self_url, "git": git_url, "html": html},
    }
    if data is not None:
        encoded = base64.b64encode(data).decode()
        body["content"] = "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))
        body["encoding"] = "base64"
    return body


def label(u: Urls, r: Repo, name: str, ident: int) -> dict[str, Any]:
    return {
        "id": ident,
        "node_id": node_id("Label", ident),
        "url": f"{u.api}/repos/{r.full_name}/labels/{name}",
        "name": name,
        "color": "ededed",
        "default": False,
        # "" rather than null: the pull-request-simple schema does not allow null here
        "description": "",
    }


def _author_association(r: Repo, login: str) -> str:
    if login == r.owner:
        return "OWNER"
    if r.permissions.get(login, "none") != "none":
        return "COLLABORATOR"
    return "NONE"


def issue(u: Urls, r: Repo, i: Issue) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}/issues/{i.number}"
    body: dict[str, Any] = {
        "id": i.id,
        "node_id": node_id("Issue", i.id),
        "url": api,
        "repository_url": f"{u.api}/repos/{r.full_name}",
        "labels_url": f"{api}/labels{{/name}}",
        "comments_url": f"{api}/comments",
        "events_url": f"{api}/events",
        "html_url": f"{u.web}/{r.full_name}/{'pull' if i.pull else 'issues'}/{i.number}",
        "number": i.number,
        "state": i.state,
        "state_reason": None,
        "title": i.title,
        "body": i.body,
        "user": user(u, i.user),
        "labels": [label(u, r, n, r.labels[n]) for n in i.labels],
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "locked": False,
        "active_lock_reason": None,
        "comments": sum(1 for c in r.comments.values() if c.issue_number == i.number),
        "closed_at": iso(i.closed_at),
        "created_at": iso(i.created_at),
        "updated_at": iso(i.updated_at),
        "closed_by": None,
        "author_association": _author_association(r, i.user),
        "reactions": {
            "url": f"{api}/reactions",
            "total_count": 0,
            **{
                k: 0 for k in ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")
            },
        },
    }
    if i.pull:
        pr_api = f"{u.api}/repos/{r.full_name}/pulls/{i.number}"
        body["draft"] = i.pull.draft
        body["pull_request"] = {
            "url": pr_api,
            "html_url": body["html_url"],
            "diff_url": f"{body['html_url']}.diff",
            "patch_url": f"{body['html_url']}.patch",
            "merged_at": iso(i.pull.merged_at),
        }
    return body


def reaction_rollup(u: Urls, r: Repo, c: Comment) -> dict[str, Any]:
    counts = {k: 0 for k in ("+1", "-1", "laugh", "confused", "heart", "hooray", "eyes", "rocket")}
    for x in c.reactions:
        counts[x.content] += 1
    return {
        "url": f"{u.api}/repos/{r.full_name}/issues/comments/{c.id}/reactions",
        "total_count": len(c.reactions),
        **counts,
    }


def comment(u: Urls, r: Repo, c: Comment, app_info: dict[str, Any]) -> dict[str, Any]:
    i = r.issues[c.issue_number]
    html = f"{u.web}/{r.full_name}/{'pull' if i.pull else 'issues'}/{i.number}#issuecomment-{c.id}"
    return {
        "id": c.id,
        "node_id": node_id("IssueComment", c.id),
        "url": f"{u.api}/repos/{r.full_name}/issues/comments/{c.id}",
        "html_url": html,
        "body": c.body,
        "user": user(u, c.user),
        "created_at": iso(c.created_at),
        "updated_at": iso(c.updated_at),
        "issue_url": f"{u.api}/repos/{r.full_name}/issues/{i.number}",
        "author_association": _author_association(r, c.user),
        "performed_via_github_app": app(u, app_info) if c.via_app else None,
        "reactions": reaction_rollup(u, r, c),
    }


def reaction(u: Urls, x: Reaction) -> dict[str, Any]:
    return {
        "id": x.id,
        "node_id": node_id("Reaction", x.id),
        "user": user(u, x.user),
        "content": x.content,
        "created_at": iso(x.created_at),
    }


def _branch(u: Urls, r: Repo, ref: str, sha: str) -> dict[str, Any]:
    return {
        "label": f"{r.owner}:{ref}",
        "ref": ref,
        "sha": sha,
        "user": user(u, r.owner, kind=r.owner_type),
        "repo": repository(u, r),
    }


def pull(u: Urls, r: Repo, i: Issue, *, simple: bool, extra: dict[str, Any]) -> dict[str, Any]:
    assert i.pull is not None
    p = i.pull
    api = f"{u.api}/repos/{r.full_name}/pulls/{i.number}"
    issue_api = f"{u.api}/repos/{r.full_name}/issues/{i.number}"
    html = f"{u.web}/{r.full_name}/pull/{i.number}"
    body: dict[str, Any] = {
        "url": api,
        "id": p.id,
        "node_id": node_id("PullRequest", p.id),
        "html_url": html,
        "diff_url": f"{html}.diff",
        "patch_url": f"{html}.patch",
        "issue_url": issue_api,
        "commits_url": f"{api}/commits",
        "review_comments_url": f"{api}/comments",
        "review_comment_url": f"{u.api}/repos/{r.full_name}/pulls/comments{{/number}}",
        "comments_url": f"{issue_api}/comments",
        "statuses_url": f"{u.api}/repos/{r.full_name}/statuses/{p.head_sha}",
        "number": i.number,
        "state": i.state,
        "locked": False,
        "title": i.title,
        "user": user(u, i.user),
        "body": i.body,
        "labels": [label(u, r, n, r.labels[n]) for n in i.labels],
        "milestone": None,
        "active_lock_reason": None,
        "created_at": iso(i.created_at),
        "updated_at": iso(i.updated_at),
        "closed_at": iso(i.closed_at),
        "merged_at": iso(p.merged_at),
        "merge_commit_sha": p.merge_commit_sha,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [],
        "requested_teams": [],
        "head": _branch(u, r, p.head_ref, p.head_sha),
        "base": _branch(u, r, p.base_ref, p.base_sha),
        "_links": {
            "self": {"href": api},
            "html": {"href": html},
            "issue": {"href": issue_api},
            "comments": {"href": f"{issue_api}/comments"},
            "review_comments": {"href": f"{api}/comments"},
            "review_comment": {"href": f"{u.api}/repos/{r.full_name}/pulls/comments{{/number}}"},
            "commits": {"href": f"{api}/commits"},
            "statuses": {"href": f"{u.api}/repos/{r.full_name}/statuses/{p.head_sha}"},
        },
        "author_association": _author_association(r, i.user),
        "auto_merge": None,
        "draft": p.draft,
    }
    if not simple:
        body.update(
            merged=p.merged,
            merged_by=user(u, p.merged_by) if p.merged_by else None,
            comments=sum(1 for c in r.comments.values() if c.issue_number == i.number),
            review_comments=0,
            maintainer_can_modify=p.maintainer_can_modify,
            **extra,
        )
    return body


def review(u: Urls, r: Repo, number: int, rv: Review) -> dict[str, Any]:
    pr_api = f"{u.api}/repos/{r.full_name}/pulls/{number}"
    html = f"{u.web}/{r.full_name}/pull/{number}#pullrequestreview-{rv.id}"
    body: dict[str, Any] = {
        "id": rv.id,
        "node_id": node_id("PullRequestReview", rv.id),
        "user": user(u, rv.user),
        "body": rv.body,
        "state": rv.state,
        "html_url": html,
        "pull_request_url": pr_api,
        "_links": {"html": {"href": html}, "pull_request": {"href": pr_api}},
        "commit_id": rv.commit_id,
        "author_association": _author_association(r, rv.user),
    }
    if rv.state != "PENDING":
        body["submitted_at"] = iso(rv.submitted_at)
    return body


def check_run(u: Urls, r: Repo, c: CheckRun, prs: list[dict[str, Any]]) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}/check-runs/{c.id}"
    out = c.output
    return {
        "id": c.id,
        "head_sha": c.head_sha,
        "node_id": node_id("CheckRun", c.id),
        "external_id": c.external_id or "",
        "url": api,
        "html_url": f"{u.web}/{r.full_name}/runs/{c.id}",
        "details_url": c.details_url or f"{u.web}/{r.full_name}/runs/{c.id}",
        "status": c.status,
        "conclusion": c.conclusion,
        "started_at": iso(c.started_at),
        "completed_at": iso(c.completed_at),
        "output": {
            "title": out.get("title"),
            "summary": out.get("summary"),
            "text": out.get("text"),
            "annotations_count": len(out.get("annotations", [])),
            "annotations_url": f"{api}/annotations",
        },
        "name": c.name,
        "check_suite": {"id": c.suite_id},
        "app": app(u, c.app),
        "pull_requests": prs,
    }


def pull_minimal(u: Urls, r: Repo, i: Issue) -> dict[str, Any]:
    assert i.pull is not None
    repo_min = {"id": r.id, "url": f"{u.api}/repos/{r.full_name}", "name": r.name}
    return {
        "id": i.pull.id,
        "number": i.number,
        "url": f"{u.api}/repos/{r.full_name}/pulls/{i.number}",
        "head": {"ref": i.pull.head_ref, "sha": i.pull.head_sha, "repo": repo_min},
        "base": {"ref": i.pull.base_ref, "sha": i.pull.base_sha, "repo": repo_min},
    }


def status(u: Urls, r: Repo, s: Status) -> dict[str, Any]:
    return {
        "url": f"{u.api}/repos/{r.full_name}/statuses/{s.sha}",
        "avatar_url": None,
        "id": s.id,
        "node_id": node_id("StatusContext", s.id),
        "state": s.state,
        "description": s.description,
        "target_url": s.target_url,
        "context": s.context,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.created_at),
        "creator": user(u, s.creator),
    }


def diff_entry(u: Urls, r: Repo, head: str, ch: Any) -> dict[str, Any]:
    return {
        "sha": ch.blob_sha,
        "filename": ch.path,
        "status": ch.status,
        "additions": ch.additions,
        "deletions": ch.deletions,
        "changes": ch.additions + ch.deletions,
        "blob_url": f"{u.web}/{r.full_name}/blob/{head}/{ch.path}",
        "raw_url": f"{u.web}/{r.full_name}/raw/{head}/{ch.path}",
        "contents_url": f"{u.api}/repos/{r.full_name}/contents/{ch.path}?ref={head}",
        "patch": ch.patch,
    }


def error(message: str, doc: str = "https://docs.github.com/rest", **extra: Any) -> dict[str, Any]:
    return {"message": message, "documentation_url": doc, **extra}


def role_permissions(role: str) -> dict[str, bool]:
    """A repository's `permissions` hash for a collaborator role."""
    return {
        "admin": role == "admin",
        "maintain": role in ("admin", "maintain"),
        "push": role in ("admin", "maintain", "write"),
        "triage": role in ("admin", "maintain", "write", "triage"),
        "pull": role != "none",
    }


def private_user(u: Urls, login: str) -> dict[str, Any]:
    """GET /user with a user-to-server token: the signed-in user's own (private) view."""
    return {
        **user(u, login),
        "user_view_type": "private",
        "name": login.title(),
        "company": None,
        "blog": "",
        "location": None,
        "email": None,
        "hireable": None,
        "bio": None,
        "twitter_username": None,
        "public_repos": 0,
        "public_gists": 0,
        "followers": 0,
        "following": 0,
        "created_at": iso(EPOCH),
        "updated_at": iso(EPOCH),
        "private_gists": 0,
        "total_private_repos": 0,
        "owned_private_repos": 0,
        "disk_usage": 0,
        "collaborators": 0,
        "two_factor_authentication": True,
    }


def deployment(u: Urls, r: Repo, d: Deployment, app_info: dict[str, Any]) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}/deployments/{d.id}"
    updated = max([d.created_at, *(s.created_at for s in d.statuses)])
    return {
        "url": api,
        "id": d.id,
        "node_id": node_id("Deployment", d.id),
        "sha": d.sha,
        "ref": d.ref,
        "task": d.task,
        "payload": d.payload,
        "original_environment": d.environment,
        "environment": d.environment,
        "description": d.description,
        "creator": user(u, d.creator),
        "created_at": iso(d.created_at),
        "updated_at": iso(updated),
        "statuses_url": f"{api}/statuses",
        "repository_url": f"{u.api}/repos/{r.full_name}",
        "transient_environment": d.transient_environment,
        "production_environment": d.production_environment,
        "performed_via_github_app": app(u, app_info),
    }


def deployment_status(
    u: Urls, r: Repo, d: Deployment, s: DeploymentStatus, app_info: dict[str, Any]
) -> dict[str, Any]:
    api = f"{u.api}/repos/{r.full_name}/deployments/{d.id}"
    return {
        "url": f"{api}/statuses/{s.id}",
        "id": s.id,
        "node_id": node_id("DeploymentStatus", s.id),
        "state": s.state,
        "creator": user(u, s.creator),
        "description": s.description,
        "environment": s.environment,
        "target_url": s.log_url,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.created_at),
        "deployment_url": api,
        "repository_url": f"{u.api}/repos/{r.full_name}",
        "environment_url": s.environment_url,
        "log_url": s.log_url,
        "performed_via_github_app": app(u, app_info),
    }
