"""Renders of untrusted content never reach the network, the bot's own loopback included:
checked with a real listener on 127.0.0.1 that counts every connection it gets."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from bot_harness import BotHarness

from bot.gateways.kustomize import Renderer, _Job, default_binary

SECRET_TOKEN = "loopback-service-token-9f2c"
CONFIGMAP = (
    f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  token: {SECRET_TOKEN}\n"
).encode()


class Listener:
    """A loopback HTTP service that answers with a ConfigMap holding a token."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(CONFIGMAP)}\r\n\r\n"
                    conn.sendall(head.encode() + CONFIGMAP)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    served = Listener()
    yield served
    served.close()


def kustomization_fetching(url: str) -> bytes:
    head = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
    return f"{head}resources:\n  - {url}\n".encode()


def test_a_pr_cannot_make_the_render_fetch_from_the_bots_loopback(
    fake_github, gitops_repo, tmp_path, listener
):
    repo, fake = gitops_repo, fake_github
    bot = BotHarness(fake, tmp_path, (repo,))
    url = f"http://127.0.0.1:{listener.port}/x"
    path = "k8s/overlays/staging/kustomization.yaml"
    kustomization = fake.file_at(repo, "main", path).replace(
        b"resources:\n  - ../../base\n", f"resources:\n  - ../../base\n  - {url}\n".encode()
    )
    assert url.encode() in kustomization
    # the file the URL normalises to, so that a graph asking "is it local?" first says yes
    decoy = f"k8s/overlays/staging/http:/127.0.0.1:{listener.port}/x"
    fake.push_commit(repo, "fetch", {path: kustomization, decoy: CONFIGMAP}, "Add", "mallory")
    fake.set_permission(repo, "mallory", "write")
    number = fake.open_pr(repo, "fetch", title="Add a resource", user="mallory")
    payload = fake.payload_pull_request(repo, number, "opened", sender="mallory")
    assert bot.deliver_github("pull_request", payload).status_code == 202
    bot.drain()

    assert listener.connections == 0
    texts = [c["body"] for c in fake.comments(repo, number)]
    head = fake.pr(repo, number)["head"]["sha"]
    checks = {c["name"]: c for c in fake.check_runs(repo, head)}
    texts += [checks["gitops-bot/render"]["output"]["summary"]]
    assert not any(SECRET_TOKEN in text for text in texts)
    assert any("remote references are not allowed" in text for text in texts)
    assert checks["gitops-bot/render"]["conclusion"] == "failure"


def _build_fetching(renderer: Renderer, tmp_path: Path, url: str) -> object:
    """Run one untrusted build of a kustomization that names `url`, past the graph's
    refusal: the namespace has to hold on its own."""
    root = tmp_path / "render"
    (root / "o").mkdir(parents=True)
    (root / "o" / "kustomization.yaml").write_bytes(kustomization_fetching(url))
    return renderer._build(_Job("o", str(root), trusted=False))


KUBECTL = default_binary()


def test_the_network_namespace_alone_stops_a_fetch_the_checks_missed(tmp_path, listener):
    url = f"http://127.0.0.1:{listener.port}/x"
    jailed = _build_fetching(Renderer(KUBECTL), tmp_path / "jailed", url)
    assert listener.connections == 0
    assert not jailed.ok and SECRET_TOKEN not in jailed.error  # type: ignore[attr-defined]
    # the same build without the namespace does reach the listener: the test can fail
    _build_fetching(Renderer(KUBECTL, isolation="off"), tmp_path / "open", url)
    assert listener.connections >= 1


def test_untrusted_renders_fail_closed_where_no_namespace_can_be_made(tmp_path):
    renderer = Renderer(KUBECTL, unshare=str(tmp_path / "no-such-unshare"))
    snapshot = {
        "o/kustomization.yaml": b"resources:\n  - cm.yaml\n",
        "o/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    }
    result = renderer.render(snapshot, ["o"])["o"]
    assert not result.ok
    assert "cannot create a network namespace" in result.error
    assert "RENDER_NETWORK_ISOLATION=off" in result.error
    trusted = renderer.render(snapshot, ["o"], trusted=True)["o"]
    assert trusted.ok, trusted.error  # the bot's own edits of default-branch content


@pytest.mark.parametrize(
    "ref",
    [
        "http://127.0.0.1:8080/x",
        "https://example.com/manifest.yaml",
        "//127.0.0.1/x",
        "git@github.com:org/repo.git",
        "ssh://git@host/org/repo",
        "github.com/org/repo/path?ref=v1",
        "deploy@build-host:repo",
        "./local?ref=main",
    ],
)
def test_every_form_kustomize_fetches_is_refused_even_with_a_local_decoy(ref):
    from bot.core.graph import KustomizationGraph, ParseCache

    decoy = "o/" + ref.replace("//", "/").lstrip("./")
    snapshot = {"o/kustomization.yaml": f"resources:\n  - {ref}\n".encode(), decoy: CONFIGMAP}
    closure = KustomizationGraph(snapshot, ParseCache()).closure("o")
    assert closure.remote == (f"o/kustomization.yaml: {ref}",)
