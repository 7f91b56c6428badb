"""Pull request titles, bodies, follow-up parts and diff comments, within GitHub's size caps."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.core.diff import TOO_LARGE
from bot.core.templating import render_template
from bot.core.types import EnvironmentDiff, Plan, PromotionRequest, PullRequestText, ResourceChange

GITHUB_TEXT_LIMIT = 65536  # characters in an issue/PR body or comment
CHECK_TEXT_LIMIT = 65535  # characters in a check run output summary

META_MARKER = "gitops-bot:meta"
PART_MARKER = "gitops-bot:part"  # follow-up comments of a promotion PR
DIFF_MARKER = "<!-- gitops-bot:diff -->"  # the diff comment on a human PR
DIFF_PART_MARKER = "gitops-bot:diff-part"  # its follow-up comments

_MIN_LIMIT = 8192
_FULL_ERROR_CHARS = 20_000  # Kustomize error text shown next to a full diff
_SHORT_ERROR_CHARS = 2_000  # ... and next to a fallback change list
_FIELDS_PER_RESOURCE = 20
_MAX_FILES = 20
_MAX_EDITS_PER_FILE = 10

_META_LINE = re.compile(r"^<!-- gitops-bot:meta (\{.*\}) -->[ \t]*$")
_PART_LINE = re.compile(r"^<!-- (gitops-bot:part|gitops-bot:diff-part) (\d+)/(\d+) -->$")
_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


# --------------------------------------------------------------------------- title


def _version_label(version: str) -> str:
    return f"v{version}" if version.isdigit() else version


def pr_title(request: PromotionRequest, registry_name: str) -> str:
    """`Promote fraud-detector v8 to staging` / `Roll back fraud-detector to v7 in production`."""
    name = registry_name or request.model
    version = _version_label(request.version)
    if request.kind == "rollback":
        return f"Roll back {name} to {version} in {request.environment}"
    return f"Promote {name} {version} to {request.environment}"


# --------------------------------------------------------------------------- markers


def meta_marker(meta: object) -> str:
    """The hidden `<!-- gitops-bot:meta {json} -->` line; no content can end the comment early.

    `<`, `>` and `&` only occur inside JSON strings, and so does `--` (outside strings `-`
    only starts a number); there they are written as `\\uXXXX` escapes, which leaves no
    `-->`, `--!>`, `<!--` or `--` in the comment text.
    """
    text = json.dumps(meta, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = re.sub(r"-(?=-)", r"\\u002d", text)
    return f"<!-- {META_MARKER} {text} -->"


def _lines_outside_fences(body: str) -> list[str]:
    """The lines of a markdown document that are not inside fenced code blocks."""
    out: list[str] = []
    fence: str | None = None
    for line in body.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if fence is None:
            m = _FENCE_OPEN.match(line)
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                fence = m.group(1)
                continue
            out.append(line)
        else:
            stripped = line.strip()
            if (
                len(line) - len(line.lstrip(" ")) <= 3
                and stripped
                and set(stripped) == {fence[0]}
                and len(stripped) >= len(fence)
            ):
                fence = None
    return out


def parse_meta(body: str) -> dict[str, object] | None:
    """The object stored by `meta_marker` in a PR body, or None when absent or unreadable.

    Only a marker on its own line outside code fences counts, so rendered diffs or error
    text quoted in the body cannot impersonate it.
    """
    for line in _lines_outside_fences(body):
        m = _META_LINE.match(line)
        if m:
            try:
                value = json.loads(m.group(1))
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _first_line(body: str) -> str:
    return body.split("\n", 1)[0].rstrip("\r")


@dataclass(frozen=True)
class PartMarker:
    kind: str  # PART_MARKER or DIFF_PART_MARKER
    index: int  # 1-based
    total: int


def parse_part(body: str) -> PartMarker | None:
    """The `part i/N` marker on the first line of a follow-up comment, if any."""
    m = _PART_LINE.match(_first_line(body))
    if not m:
        return None
    return PartMarker(m.group(1), int(m.group(2)), int(m.group(3)))


def comment_marker(body: str) -> str:
    """The hidden marker that identifies a rendered comment (its first line), for upserts."""
    return _first_line(body)


def is_diff_comment(body: str) -> bool:
    """True for the first (main) diff comment of a human PR."""
    return _first_line(body) == DIFF_MARKER


# --------------------------------------------------------------------------- environments


@dataclass(frozen=True)
class RenderStatus:
    key: str  # ok | broken | still-broken | fixed | too-large
    label: str
    ok: bool


def render_status(diff: EnvironmentDiff) -> RenderStatus:
    """How the overlay's render went at head, compared with the base commit."""
    if diff.head.error.startswith(TOO_LARGE):
        return RenderStatus("too-large", "too large to render", False)
    if diff.head.ok:
        if diff.base.ok:
            return RenderStatus("ok", "rendered", True)
        return RenderStatus("fixed", "fixed by this change", True)
    if diff.base.ok:
        return RenderStatus("broken", "broken by this change", False)
    return RenderStatus("still-broken", "already broken on the base commit", False)


def _change_item(change: ResourceChange) -> str:
    text = render_template("change.md.j2", change=change, max_fields=_FIELDS_PER_RESOURCE)
    return text.rstrip("\n")


def _take(render: Callable[[int], str], count: int, budget: int) -> list[str]:
    """Render items 0.. in order while their newline-joined length stays within `budget`."""
    items: list[str] = []
    used = 0
    for i in range(count):
        item = render(i)
        cost = len(item) + (1 if items else 0)
        if used + cost > budget:
            break
        items.append(item)
        used += cost
    return items


def _environment_block(diff: EnvironmentDiff, budget: int) -> str:
    """One collapsible `<details>` block for `diff`, at the best fidelity within `budget`.

    Full change list and rendered diff if they fit; else the change list without the diff;
    else as much of the change list as fits, with a count of what was left out.
    """
    status = render_status(diff)

    def block(items: list[str], *, show_diff: bool, error_chars: int) -> str:
        return render_template(
            "environment_details.md.j2",
            diff=diff,
            counts=diff.counts,
            status=status,
            items=items,
            omitted=len(diff.changes) - len(items),
            show_diff=show_diff,
            diff_chars=len(diff.unified_diff),
            diff_lines=diff.unified_diff.count("\n"),
            error_chars=error_chars,
        )

    def item(i: int) -> str:
        return _change_item(diff.changes[i])

    items = _take(item, len(diff.changes), budget)
    if len(items) == len(diff.changes):
        full = block(items, show_diff=True, error_chars=_FULL_ERROR_CHARS)
        if len(full) <= budget:
            return full
    skeleton = block([], show_diff=False, error_chars=_SHORT_ERROR_CHARS)
    items = _take(item, len(diff.changes), budget - len(skeleton) - 2)
    while True:
        text = block(items, show_diff=False, error_chars=_SHORT_ERROR_CHARS)
        if len(text) <= budget or not items:
            return text
        items = items[:-1]


def _environment_row(diff: EnvironmentDiff) -> dict[str, object]:
    return {"diff": diff, "counts": diff.counts, "status": render_status(diff)}


# --------------------------------------------------------------------------- splitting


@dataclass(frozen=True)
class _Split:
    inline: str  # main text with every environment block inline
    main: str  # the text to post as body / first comment
    parts: tuple[str, ...]


def _split(
    diffs: Sequence[EnvironmentDiff],
    *,
    limit: int,
    render_main: Callable[[list[str], int, int], str],
    render_part: Callable[[list[str], int, int], str],
) -> _Split:
    """Place environment blocks inline in the main text if they fit, else in numbered parts.

    `render_main(blocks, parts_total, max_rows)` renders the main text (summary, table...);
    `render_part(blocks, index, total)` one follow-up comment.
    """
    if limit < _MIN_LIMIT:
        raise ValueError(f"text limit {limit} is too small (minimum {_MIN_LIMIT})")
    reserve = len(render_part([], 99_999, 99_999)) + 2
    budget = limit - reserve
    blocks = [_environment_block(d, budget) for d in diffs]
    everything = len(diffs)
    inline = render_main(blocks, 0, everything)
    if len(inline) <= limit:
        return _Split(inline, inline, ())

    groups: list[list[str]] = []
    used = 0
    for b in blocks:
        cost = len(b) + 2
        if groups and used + cost <= budget:
            groups[-1].append(b)
            used += cost
        else:
            groups.append([b])
            used = cost
    total = len(groups)
    parts = tuple(render_part(g, i, total) for i, g in enumerate(groups, start=1))

    # The table lists every environment unless that alone would overflow (hundreds of them).
    rows = everything
    main = render_main([], total, rows)
    while len(main) > limit and rows > 0:
        rows //= 2
        main = render_main([], total, rows)
    if len(main) > limit:
        raise ValueError(f"text limit {limit} is too small for the summary")
    return _Split(inline, main, parts)


# --------------------------------------------------------------------------- promotion PR


def _file_entries(plan: Plan) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for change in plan.changes[:_MAX_FILES]:
        entries.append(
            {
                "path": change.path,
                "edits": change.edits[:_MAX_EDITS_PER_FILE],
                "more_edits": max(len(change.edits) - _MAX_EDITS_PER_FILE, 0),
            }
        )
    return entries


def render_pull_request(plan: Plan, *, limit: int = GITHUB_TEXT_LIMIT) -> PullRequestText:
    """Title, body, follow-up parts and check-run summary of a promotion PR.

    The body always holds the summary, environment table, files, approval requirements and
    commands. Per-environment details follow inline when everything fits in `limit`, else in
    `parts` (each starting with `<!-- gitops-bot:part i/N -->`), and the body says so.
    """
    request = plan.request
    common: dict[str, object] = {
        "title": plan.title,
        "request": request,
        "model": plan.model,
        "environment": plan.environment,
        "others": [env for env in plan.affected if env.name != plan.environment.name],
        "unchanged": plan.unchanged,
        "broken": [
            {"name": d.environment, "overlay": d.overlay, "label": render_status(d).label}
            for d in plan.diffs
            if not d.head.ok
        ],
        "duplicates": plan.duplicates,
        "branch": plan.branch,
        "meta_marker": meta_marker(plan.meta),
        "files": _file_entries(plan),
        "files_omitted": max(len(plan.changes) - _MAX_FILES, 0),
    }

    def render_main(blocks: list[str], parts_total: int, max_rows: int) -> str:
        return render_template(
            "pr_body.md.j2",
            **common,
            rows=[_environment_row(d) for d in plan.diffs[:max_rows]],
            rows_omitted=len(plan.diffs) - min(max_rows, len(plan.diffs)),
            details=blocks,
            parts_total=parts_total,
        )

    def render_part(blocks: list[str], index: int, total: int) -> str:
        return render_template(
            "part.md.j2",
            marker=f"<!-- {PART_MARKER} {index}/{total} -->",
            heading=plan.title,
            index=index,
            total=total,
            blocks=blocks,
        )

    split = _split(plan.diffs, limit=limit, render_main=render_main, render_part=render_part)
    check_limit = min(CHECK_TEXT_LIMIT, limit)
    check = split.inline if len(split.inline) <= check_limit else split.main
    if len(check) > check_limit:
        check = render_main([], len(split.parts), 0)
    return PullRequestText(
        title=plan.title, body=split.main, parts=split.parts, check_summary=check
    )


# --------------------------------------------------------------------------- human PR diff


def _split_diff_comment(diffs: Sequence[EnvironmentDiff], *, head_sha: str, limit: int) -> _Split:
    def render_main(blocks: list[str], parts_total: int, max_rows: int) -> str:
        return render_template(
            "diff_comment.md.j2",
            marker=DIFF_MARKER,
            head_sha=head_sha,
            rows=[_environment_row(d) for d in diffs[:max_rows]],
            rows_omitted=len(diffs) - min(max_rows, len(diffs)),
            details=blocks,
            parts_total=parts_total,
        )

    def render_part(blocks: list[str], index: int, total: int) -> str:
        return render_template(
            "part.md.j2",
            marker=f"<!-- {DIFF_PART_MARKER} {index}/{total} -->",
            heading=f"Rendered manifests at {head_sha[:12]}",
            index=index,
            total=total,
            blocks=blocks,
        )

    return _split(diffs, limit=limit, render_main=render_main, render_part=render_part)


def render_diff_comment(
    diffs: Sequence[EnvironmentDiff], *, head_sha: str, limit: int = GITHUB_TEXT_LIMIT
) -> tuple[str, ...]:
    """The rendered-diff comment for a PR not opened by the bot: 1..N comment bodies.

    The first starts with `<!-- gitops-bot:diff -->`, any others with
    `<!-- gitops-bot:diff-part i/N -->`.
    """
    split = _split_diff_comment(diffs, head_sha=head_sha, limit=limit)
    return (split.main, *split.parts)


def render_diff_check_summary(
    diffs: Sequence[EnvironmentDiff], *, head_sha: str, limit: int = CHECK_TEXT_LIMIT
) -> str:
    """Check-run summary for a human PR: every detail inline if it fits, else the summary."""
    split = _split_diff_comment(diffs, head_sha=head_sha, limit=limit)
    return split.inline if len(split.inline) <= limit else split.main
