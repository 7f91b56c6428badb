"""PR titles, bodies, follow-up parts and diff comments: content, escaping and size limits."""

from __future__ import annotations

import re

import jinja2
import pytest

from bot.core.report import (
    DIFF_MARKER,
    DIFF_PART_MARKER,
    GITHUB_TEXT_LIMIT,
    PART_MARKER,
    comment_marker,
    is_diff_comment,
    meta_marker,
    parse_meta,
    parse_part,
    pr_title,
    render_diff_check_summary,
    render_diff_comment,
    render_pull_request,
    render_status,
)
from bot.core.templating import code_span, fenced, render_template
from bot.core.types import (
    Approvals,
    Environment,
    EnvironmentDiff,
    FieldChange,
    FileChange,
    Model,
    Plan,
    PromotionRequest,
    PullRequestText,
    RenderResult,
    ResourceChange,
    SetRule,
)

# --------------------------------------------------------------------------- helpers

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")


def markdown_structure(text: str) -> tuple[list[str], list[str]]:
    """(lines outside fenced code, contents of each fenced block), per CommonMark fences.

    Fails the test if a fence is left open at the end of the text.
    """
    outside: list[str] = []
    blocks: list[str] = []
    fence: str | None = None
    current: list[str] = []
    for line in text.split("\n"):
        if fence is None:
            m = _FENCE.match(line)
            if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
                fence, current = m.group(1), []
            else:
                outside.append(line)
            continue
        body = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if indent <= 3 and body and set(body) == {fence[0]} and len(body) >= len(fence):
            blocks.append("\n".join(current))
            fence = None
        else:
            current.append(line)
    assert fence is None, "a code fence is left open"
    return outside, blocks


def strip_code_spans(line: str) -> str:
    """`line` with inline code spans (CommonMark: matching backtick runs) removed."""
    out: list[str] = []
    i = 0
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            out.append(line[i : i + 2])
            i += 2
            continue
        if line[i] != "`":
            out.append(line[i])
            i += 1
            continue
        run = re.match(r"`+", line[i:])
        assert run is not None
        ticks = run.group(0)
        close = re.search(rf"(?<!`){ticks}(?!`)", line[i + len(ticks) :])
        if close is None:
            out.append(ticks)
            i += len(ticks)
        else:
            out.append("<code/>")
            i += len(ticks) + close.end()
    return "".join(out)


def assert_well_formed(text: str, limit: int = GITHUB_TEXT_LIMIT) -> tuple[list[str], list[str]]:
    assert len(text) <= limit, f"{len(text)} characters > {limit}"
    outside, blocks = markdown_structure(text)
    outside = [strip_code_spans(line) for line in outside]
    opened = sum(line.count("<details>") for line in outside)
    closed = sum(line.count("</details>") for line in outside)
    assert opened == closed, "unbalanced <details>"
    return outside, blocks


def render(ok: bool = True, output: str = "", error: str = "") -> RenderResult:
    return RenderResult(overlay="k8s/overlays/x", ok=ok, output=output, error=error)


def env_diff(
    name: str = "staging",
    *,
    changes: tuple[ResourceChange, ...] = (),
    unified_diff: str = "",
    base: RenderResult | None = None,
    head: RenderResult | None = None,
) -> EnvironmentDiff:
    return EnvironmentDiff(
        environment=name,
        overlay=f"k8s/overlays/{name}",
        base=base or render(),
        head=head or render(),
        changes=changes,
        unified_diff=unified_diff,
    )


STORAGE_CHANGE = ResourceChange(
    "Model/fraud-v2-candidate",
    "changed",
    (FieldChange("spec.storageUri", "s3://models/fraud/7", "s3://models/fraud/8"),),
)
SMALL_DIFF = (
    "--- base/Model/fraud-v2-candidate\n+++ head/Model/fraud-v2-candidate\n@@ -3 +3 @@\n"
    "-  storageUri: s3://models/fraud/7\n+  storageUri: s3://models/fraud/8\n"
)


def big_diff(chars: int, tag: str) -> str:
    lines = []
    size = 0
    i = 0
    while size < chars:
        line = f"+  {tag}-line-{i}: {'x' * 60}"
        lines.append(line)
        size += len(line) + 1
        i += 1
    return "\n".join(lines) + "\n"


def make_plan(
    diffs: tuple[EnvironmentDiff, ...] = (),
    *,
    environment: Environment | None = None,
    request: PromotionRequest | None = None,
    meta: dict[str, object] | None = None,
) -> Plan:
    env = environment or Environment(name="staging", path="k8s/overlays/staging", auto_merge=True)
    req = request or PromotionRequest(
        model="fraud-v2-candidate",
        version="8",
        environment=env.name,
        source_uri="s3://models/fraud/8",
        requester="mlflow",
        trigger="MLflow model_version.created",
        run_id="0f3c9a",
    )
    model = Model(
        name="fraud-v2-candidate",
        registry_name="fraud-detector",
        set=(SetRule("model-config.yaml", "data.fraud-v2-storage-uri", "{storage_uri}"),),
    )
    return Plan(
        request=req,
        branch=f"gitops-bot/{env.name}/fraud-v2-candidate-8",
        title=pr_title(req, "fraud-detector"),
        changes=(
            FileChange(
                path=f"{env.path}/model-config.yaml",
                before=b"",
                after=b"",
                edits=(
                    ("data.fraud-v2-storage-uri", "s3://models/fraud/7", "s3://models/fraud/8"),
                ),
            ),
        ),
        diffs=diffs or (env_diff(env.name, changes=(STORAGE_CHANGE,), unified_diff=SMALL_DIFF),),
        environment=env,
        model=model,
        meta=meta if meta is not None else {"model": "fraud-v2-candidate", "version": "8"},
    )


def all_pieces(text: PullRequestText) -> list[str]:
    return [text.body, *text.parts]


# --------------------------------------------------------------------------- titles


def test_title_names_registry_model_version_and_environment() -> None:
    request = PromotionRequest(model="fraud-v2-candidate", version="8", environment="staging")
    assert pr_title(request, "fraud-detector") == "Promote fraud-detector v8 to staging"


def test_rollback_title_says_roll_back_to_version_in_environment() -> None:
    request = PromotionRequest(
        model="fraud-v2-candidate", version="7", environment="production", kind="rollback"
    )
    assert pr_title(request, "fraud-detector") == "Roll back fraud-detector to v7 in production"


def test_title_does_not_prefix_non_numeric_versions() -> None:
    request = PromotionRequest(model="m", version="v2.1-rc", environment="staging")
    assert pr_title(request, "m") == "Promote m v2.1-rc to staging"


# --------------------------------------------------------------------------- body content


def test_body_holds_summary_table_details_approvals_commands_and_meta() -> None:
    text = render_pull_request(make_plan())
    body = text.body
    assert text.title == "Promote fraud-detector v8 to staging"
    assert text.parts == ()
    # summary
    for expected in ("`fraud-v2-candidate`", "`fraud-detector`", "`8`", "`s3://models/fraud/8`"):
        assert expected in body
    assert "`0f3c9a`" in body and "MLflow model\\_version.created" in body
    # table row: environment, overlay, status and counts
    assert re.search(
        r"^\| \*\*staging\*\* \| `k8s/overlays/staging` \| ✅ rendered \| 0 \| 1 \| 0 \|$",
        body,
        re.MULTILINE,
    )
    # details with the semantic change and the rendered diff
    assert "<details>" in body
    assert "`Model/fraud-v2-candidate` changed" in body
    assert "`spec.storageUri`: `s3://models/fraud/7` → `s3://models/fraud/8`" in body
    _, blocks = assert_well_formed(body)
    assert SMALL_DIFF.rstrip("\n") in blocks
    assert "```diff" in body
    # files changed, approvals, commands, meta
    assert "`k8s/overlays/staging/model-config.yaml`" in body
    assert "Merges automatically once checks pass" in body
    for command in ("/promote", "/rollback", "/diff", "/merge", "/help"):
        assert f"`{command}" in body
    assert body.startswith("<!-- gitops-bot:meta ")
    assert parse_meta(body) == {"model": "fraud-v2-candidate", "version": "8"}
    assert text.check_summary == body


def test_source_note_and_traffic_are_shown() -> None:
    request = PromotionRequest(
        model="fraud-v2-candidate",
        version="8",
        environment="staging",
        traffic=(90, 10),
        source_note="source not resolved: no MLFLOW_TRACKING_URI configured",
    )
    body = render_pull_request(make_plan(request=request)).body
    assert "baseline 90 % / candidate 10 %" in body
    assert "source not resolved\\: no MLFLOW\\_TRACKING\\_URI configured" in body
    assert "_unknown_" in body  # no source URI


def test_approval_requirements_list_count_users_and_teams() -> None:
    env = Environment(
        name="production",
        path="k8s/overlays/production",
        approvals=Approvals(required=2, users=("alice", "carol"), teams=("ml-platform",)),
        required_checks=("ci/test",),
    )
    body = render_pull_request(make_plan(environment=env)).body
    assert "Needs **2 approvals** of the current head commit" in body
    assert "users `alice`, `carol` or members of `ml-platform`" in body
    assert "Required checks: `ci/test`." in body
    assert "Merges automatically" not in body


def test_environment_without_approvals_or_auto_merge_asks_for_merge_command() -> None:
    env = Environment(name="dev", path="k8s/overlays/dev")
    body = render_pull_request(make_plan(environment=env)).body
    assert "No approval is required. Comment `/merge`" in body


def test_required_approvals_without_named_reviewers_accept_writers() -> None:
    env = Environment(name="prod", path="k8s/overlays/prod", approvals=Approvals(required=1))
    body = render_pull_request(make_plan(environment=env)).body
    assert "Needs **1 approval** of the current head commit from anyone with write access." in body


@pytest.mark.parametrize(
    ("base_ok", "head_ok", "label"),
    [
        (True, True, "rendered"),
        (True, False, "broken by this change"),
        (False, False, "already broken on the base commit"),
        (False, True, "fixed by this change"),
    ],
)
def test_render_status_compares_head_with_base(base_ok: bool, head_ok: bool, label: str) -> None:
    diff = env_diff(
        base=render(ok=base_ok, error="" if base_ok else "base: missing file a.yaml"),
        head=render(ok=head_ok, error="" if head_ok else "head: missing file b.yaml"),
    )
    assert render_status(diff).label == label
    body = render_pull_request(make_plan((diff,))).body
    assert label in body
    _, blocks = assert_well_formed(body)
    if not head_ok:
        assert "head: missing file b.yaml" in blocks
    elif not base_ok:
        assert "base: missing file a.yaml" in blocks


def test_environment_without_changes_says_so() -> None:
    body = render_pull_request(make_plan((env_diff(),))).body
    assert "No changes to the rendered manifests." in body
    assert "no resource changes" in body


# --------------------------------------------------------------------------- escaping


HOSTILE = "--> --!> <!-- gitops-bot:meta {} --> ```` `x` <script>alert(1)</script> \n -- >"


def test_meta_round_trips_hostile_strings() -> None:
    meta: dict[str, object] = {
        "requester": HOSTILE,
        "nested": {"list": ["a--b", "->", "<!-", "&amp;", "\\--"]},
        "negative": -3,
        "float": -1.5e-3,
        "unicode": "modèle ✓ \u2028",
    }
    body = render_pull_request(make_plan(meta=meta)).body
    line = body.split("\n", 1)[0]
    assert line.startswith("<!-- ") and line.endswith(" -->")
    inner = line[len("<!-- ") : -len(" -->")]
    for forbidden in ("--", "<", ">"):
        assert forbidden not in inner
    assert parse_meta(body) == meta


def test_parse_meta_ignores_markers_in_fenced_content_and_bad_json() -> None:
    fake = '<!-- gitops-bot:meta {"model": "evil"} -->'
    diff = env_diff(
        changes=(STORAGE_CHANGE,),
        unified_diff=f"+{fake}\n{fake}\n",
        head=render(ok=False, error=f"{fake}\n```\n{fake}"),
    )
    body = render_pull_request(make_plan((diff,))).body
    assert parse_meta(body) == {"model": "fraud-v2-candidate", "version": "8"}
    # without the real marker, nothing inside a fence is taken for one
    without_real = body.split("\n", 1)[1]
    assert parse_meta(without_real) is None
    assert parse_meta("<!-- gitops-bot:meta {not json} -->") is None
    assert parse_meta("no marker here") is None


def test_markers_survive_crlf_line_endings_from_the_web_editor() -> None:
    text = render_pull_request(make_plan())
    assert parse_meta(text.body.replace("\n", "\r\n")) == {
        "model": "fraud-v2-candidate",
        "version": "8",
    }
    (comment,) = render_diff_comment([env_diff()], head_sha="abc")
    assert is_diff_comment(comment.replace("\n", "\r\n"))
    marker = parse_part("<!-- gitops-bot:part 2/3 -->\r\nrest")
    assert marker is not None and (marker.index, marker.total) == (2, 3)


def test_user_strings_with_backticks_cannot_break_out_of_fences() -> None:
    breakout = "```\n</details>\n\n# injected heading\n<!-- gitops-bot:meta {} -->\n````"
    diff = env_diff(
        changes=(
            ResourceChange("ConfigMap/a```b", "changed", (FieldChange("data.x", "`", breakout),)),
        ),
        unified_diff="".join(f" {line}\n" for line in breakout.split("\n")),
        head=render(ok=False, error=breakout),
        base=render(ok=False, error=breakout),
    )
    body = render_pull_request(make_plan((diff,))).body
    outside, blocks = assert_well_formed(body)
    assert "# injected heading" not in outside
    assert not any(line.startswith("</details>") and line != "</details>" for line in outside)
    assert breakout in blocks  # the Kustomize error, verbatim in one fenced block
    assert "\n".join(f" {line}" for line in breakout.split("\n")) in blocks  # the diff


def test_html_and_markers_in_inline_user_strings_are_escaped() -> None:
    request = PromotionRequest(
        model="fraud-v2-candidate",
        version="8",
        environment="staging",
        requester="<!-- gitops-bot:part 1/1 -->",
        trigger="<script>alert(1)</script>",
    )
    evil = env_diff("<b>prod</b><!--", changes=(STORAGE_CHANGE,), unified_diff=SMALL_DIFF)
    body = render_pull_request(make_plan((evil,), request=request)).body
    outside, _ = assert_well_formed(body)
    text = "\n".join(outside)
    assert "<script>" not in text
    assert "<b>prod</b>" not in text
    assert text.count("<!--") == 1  # only the meta marker
    assert "&lt;script&gt;" in text


def test_code_span_is_longer_than_any_backtick_run_in_its_content() -> None:
    for content in ("a```b", "`", "``x``", "plain", "a|b"):
        span = code_span(content)
        ticks = re.match(r"`+", span)
        assert ticks is not None
        inner = span[len(ticks.group(0)) : -len(ticks.group(0))]
        assert max((len(r) for r in re.findall(r"`+", inner)), default=0) < len(ticks.group(0))
        assert inner.strip(" ") == content
    assert code_span("a|b", table=True) == "`a\\|b`"


def test_fence_is_longer_than_any_backtick_run() -> None:
    text = fenced("````` inside\n```", "diff")
    assert text.startswith("``````diff\n")
    _, blocks = markdown_structure(text)
    assert blocks == ["````` inside\n```"]


# --------------------------------------------------------------------------- size limits


def test_large_diffs_move_to_numbered_parts_each_within_the_limit() -> None:
    diffs = tuple(
        env_diff(name, changes=(STORAGE_CHANGE,), unified_diff=big_diff(40_000, name))
        for name in ("staging", "canary", "production")
    )
    text = render_pull_request(make_plan(diffs))
    assert len(text.parts) == 3  # 40k each: two never fit in one comment
    for piece in all_pieces(text):
        assert_well_formed(piece)
    assert "part 1/3" in text.body and "part 3/3" in text.body
    assert "<summary><b>" not in text.body  # no environment details in the body
    assert "| **canary** |" in text.body  # but the full table
    assert "Merges automatically" in text.body and "/rollback" in text.body
    assert parse_meta(text.body) == {"model": "fraud-v2-candidate", "version": "8"}
    for i, (part, d) in enumerate(zip(text.parts, diffs, strict=True), start=1):
        marker = parse_part(part)
        assert marker is not None
        assert (marker.kind, marker.index, marker.total) == (PART_MARKER, i, 3)
        assert f"part {i}/3" in part.split("\n")[1]
        _, blocks = markdown_structure(part)
        assert d.unified_diff.rstrip("\n") in blocks
    assert text.check_summary == text.body  # body + parts exceed the check run's limit too


def test_small_diffs_are_packed_into_as_few_parts_as_fit() -> None:
    diffs = tuple(
        env_diff(f"env{i}", changes=(STORAGE_CHANGE,), unified_diff=big_diff(15_000, f"e{i}"))
        for i in range(6)
    )
    text = render_pull_request(make_plan(diffs))
    assert len(text.parts) == 2  # 90k of diffs: two comments of up to 64k
    for part in text.parts:
        assert_well_formed(part)
    assert sum(part.count("<details>") for part in text.parts) == 6


def test_single_environment_with_huge_diff_falls_back_to_the_change_list() -> None:
    changes = tuple(
        ResourceChange(f"Deployment/app-{i}", "changed", (FieldChange("spec.replicas", "1", "2"),))
        for i in range(50)
    )
    diff = env_diff("production", changes=changes, unified_diff=big_diff(200_000, "p"))
    text = render_pull_request(make_plan((diff,)))
    pieces = all_pieces(text)
    for piece in pieces:
        assert_well_formed(piece)
    joined = "\n".join(pieces)
    assert "p-line-0" not in joined
    assert "The rendered diff (200,0" in joined and "is too large to show here" in joined
    for i in range(50):
        assert f"`Deployment/app-{i}` changed" in joined
    assert len(text.check_summary) <= 65535


def test_five_megabyte_change_list_is_truncated_with_a_count() -> None:
    value = "v" * 80
    changes = tuple(
        ResourceChange(
            f"ConfigMap/cm-{i}", "changed", (FieldChange("data.key", value, value + "2"),)
        )
        for i in range(30_000)
    )
    assert sum(len(c.resource) + 2 * len(value) for c in changes) > 5_000_000
    text = render_pull_request(make_plan((env_diff("staging", changes=changes),)))
    pieces = all_pieces(text)
    for piece in pieces:
        assert_well_formed(piece)
    joined = "\n".join(pieces)
    shown = len(re.findall(r"`ConfigMap/cm-\d+` changed", joined))
    more = re.search(r"… and ([\d,]+) more resources not shown here", joined)
    assert more is not None
    assert shown > 100
    assert shown + int(more.group(1).replace(",", "")) == 30_000


def test_many_fields_in_one_resource_are_capped() -> None:
    fields = tuple(FieldChange(f"data.k{i}", "a", "b") for i in range(500))
    change = ResourceChange("ConfigMap/big", "changed", fields)
    body = render_pull_request(make_plan((env_diff(changes=(change,)),))).body
    assert "… and 480 more fields" in body
    assert "`data.k19`" in body and "`data.k20`" not in body


def test_check_summary_has_the_full_text_when_it_fits() -> None:
    diffs = tuple(
        env_diff(name, changes=(STORAGE_CHANGE,), unified_diff=big_diff(20_000, name))
        for name in ("a", "b", "c")
    )
    text = render_pull_request(make_plan(diffs), limit=50_000)
    assert text.parts  # 60k does not fit in a 50k body...
    assert text.check_summary == text.body  # ...nor in a check summary of the same limit
    for name in ("a", "b", "c"):
        assert f"{name}-line-0" not in text.body
    text_full = render_pull_request(make_plan(diffs[:2]), limit=GITHUB_TEXT_LIMIT)
    assert text_full.parts == ()
    assert "a-line-0" in text_full.check_summary and "b-line-0" in text_full.check_summary


def test_limit_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        render_pull_request(make_plan(), limit=1000)


# --------------------------------------------------------------------------- diff comment


def test_diff_comment_starts_with_marker_and_names_the_head_commit() -> None:
    diff = env_diff("staging", changes=(STORAGE_CHANGE,), unified_diff=SMALL_DIFF)
    comments = render_diff_comment([diff], head_sha="0123456789abcdef0123")
    assert len(comments) == 1
    (comment,) = comments
    assert comment.startswith(DIFF_MARKER + "\n")
    assert is_diff_comment(comment)
    assert "`0123456789abcdef0123`" in comment
    _, blocks = assert_well_formed(comment)
    assert SMALL_DIFF.rstrip("\n") in blocks
    assert parse_part(comment) is None


def test_diff_comment_splits_into_diff_parts() -> None:
    diffs = [env_diff(f"env{i}", unified_diff=big_diff(30_000, f"e{i}")) for i in range(4)]
    comments = render_diff_comment(diffs, head_sha="abc")
    assert is_diff_comment(comments[0])
    total = len(comments) - 1
    assert total == 2
    for i, comment in enumerate(comments[1:], start=1):
        assert_well_formed(comment)
        marker = parse_part(comment)
        assert marker is not None
        assert (marker.kind, marker.index, marker.total) == (DIFF_PART_MARKER, i, total)
        assert not is_diff_comment(comment)
    assert_well_formed(comments[0])


def test_diff_comment_with_thousands_of_overlays_stays_within_the_limit() -> None:
    diffs = [
        env_diff(f"overlay-{i:04d}-" + "n" * 60, changes=(STORAGE_CHANGE,), unified_diff=SMALL_DIFF)
        for i in range(2000)
    ]
    comments = render_diff_comment(diffs, head_sha="abc")
    for comment in comments:
        assert_well_formed(comment)
    assert re.search(r"… and [\d,]+ more", comments[0])
    assert sum(c.count("<details>") for c in comments) == 2000


def test_diff_check_summary_is_inline_when_it_fits_and_never_cut_mid_fence() -> None:
    small = [env_diff("staging", changes=(STORAGE_CHANGE,), unified_diff=SMALL_DIFF)]
    summary = render_diff_check_summary(small, head_sha="abc")
    _, blocks = assert_well_formed(summary, 65535)
    assert SMALL_DIFF.rstrip("\n") in blocks
    big = [env_diff(f"env{i}", unified_diff=big_diff(30_000, f"e{i}")) for i in range(4)]
    summary = render_diff_check_summary(big, head_sha="abc")
    assert_well_formed(summary, 65535)
    assert summary == render_diff_comment(big, head_sha="abc")[0]
    assert comment_marker(summary) == DIFF_MARKER


def test_empty_diff_comment_says_no_overlay_is_affected() -> None:
    (comment,) = render_diff_comment([], head_sha="abc")
    assert "no overlay affected" in comment


# --------------------------------------------------------------------------- templates


def test_help_lists_the_command_grammar() -> None:
    text = render_template("help.md.j2", environments=["staging", "production"])
    for line in (
        "/promote <model> <version|@alias> to <env> [--traffic B/C] [--dry-run]",
        "/promote <env>",
        "/rollback <env> [to <version>]",
        "/diff",
        "/merge",
        "/help",
    ):
        assert line in text
    assert "`staging`, `production`" in text
    assert "Environments" not in render_template("help.md.j2")


def test_templates_fail_loudly_on_missing_variables() -> None:
    with pytest.raises(jinja2.UndefinedError):
        render_template("part.md.j2", marker="x", heading="h", index=1, total=1)


def test_meta_marker_is_a_single_line() -> None:
    assert "\n" not in meta_marker({"a": "line1\nline2", "b": ["\u2028"]})


def test_templates_come_from_the_installed_share_dir_without_a_checkout(monkeypatch, tmp_path):
    from bot.core import templating

    monkeypatch.setattr(templating, "TEMPLATES_DIR", tmp_path / "no-checkout" / "templates")
    monkeypatch.setattr(templating.sys, "prefix", str(tmp_path))
    assert templating.templates_dir() == tmp_path / "share" / "gitops-bot" / "templates"
