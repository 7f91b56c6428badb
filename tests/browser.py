"""Headless Chromium driven over the DevTools protocol on a pipe (no extra packages):
navigate, follow redirects, read the DOM, click, set cookies, take screenshots."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = (
    "chromium is not installed: run scripts/install-chromium (apt-get install -y chromium)"
)
WAIT_S = 60.0  # a guard against a hung browser, not a timing assertion
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--remote-debugging-pipe",
)  # fmt: skip


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return path


class Browser:
    """One Chromium process with one page. Use as a context manager."""

    def __init__(self, profile: Path, *, window: tuple[int, int] = (1280, 1000)) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # DevTools reads commands on fd 3 and writes answers on fd 4: a tiny trampoline puts
        # the pipe ends there, then becomes Chromium
        trampoline = (
            "import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); "
            "os.dup2(r, 3); os.dup2(w, 4); [os.close(f) for f in (r, w) if f not in (3, 4)]; "
            "os.execv(sys.argv[3], sys.argv[3:])"
        )
        command = [
            sys.executable, "-c", trampoline, str(to_chrome_r), str(from_chrome_w),
            chromium(), *FLAGS, f"--user-data-dir={profile}",
            f"--window-size={window[0]},{window[1]}", "about:blank",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command,
            pass_fds=(to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session: str = attached["sessionId"]
        self.send("Page.enable", session=self.session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": False},
            session=self.session,
        )

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol --------------------------------------------------------------------------

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_chrome], [], [], WAIT_S)
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._from_chrome, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(raw))

    def send(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._read_message()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))
            if "method" in answer:
                self._events.append(answer)

    def _wait_event(self, name: str) -> dict[str, Any]:
        while True:
            for event in self._events:
                if event["method"] == name and event.get("sessionId") == self.session:
                    self._events.remove(event)
                    return event
            self._events.append(self._read_message())

    # -- page ------------------------------------------------------------------------------

    def goto(self, url: str) -> None:
        """Navigate (following redirects) and wait until the final page has loaded."""
        self._events.clear()
        result = self.send("Page.navigate", {"url": url}, session=self.session)
        if result.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {result['errorText']}")
        self._wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            session=self.session,
        )
        return result["result"].get("value")

    def html(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''"))

    def url(self) -> str:
        return str(self.evaluate("location.href"))

    def click(self, selector: str) -> None:
        """Click the element (as a user would: it may submit a form) and wait for the load."""
        self._events.clear()
        found = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return false; e.click(); return true; })()"
        )
        assert found, f"no element {selector} on {self.url()}"
        self._wait_event("Page.loadEventFired")

    def set_cookie(self, name: str, value: str, url: str) -> None:
        self.send(
            "Network.setCookie",
            {"name": name, "value": value, "url": url, "httpOnly": True},
            session=self.session,
        )

    def cookies(self) -> list[dict[str, Any]]:
        return list(self.send("Network.getCookies", session=self.session)["cookies"])

    def screenshot(self) -> bytes:
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=self.session)
        return base64.b64decode(data["data"])

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError, RuntimeError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_chrome, self._from_chrome):
            with contextlib.suppress(OSError):
                os.close(fd)
