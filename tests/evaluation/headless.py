"""A headless Chromium for the report's browser tests: the DOM after the scripts ran, the console messages,
and screenshots. Debian's package: `apt-get install chromium chromium-driver` (.ci/run installs it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

#: The names Chromium goes by on PATH.
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

#: The page's console messages in Chromium's log (--enable-logging=stderr).
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?[:\]].*")


def find_chromium() -> str | None:
    """The path of a Chromium on PATH (or $CHROMIUM), or None."""
    named = os.environ.get("CHROMIUM")
    if named:
        return shutil.which(named)
    return next((path for path in map(shutil.which, NAMES) if path), None)


def _run(browser: str, url: str, *flags: str, budget_ms: int = 5000) -> tuple[str, str, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0", f"--virtual-time-budget={budget_ms}", *flags, url],
        capture_output=True, text=True, timeout=120)
    return done.stdout, done.stderr, time.perf_counter() - start


def dump_dom(browser: str, url: str, budget_ms: int = 5000) -> tuple[str, list[str], float]:
    """`(DOM after the scripts ran, console messages, seconds)` of `url`."""
    dom, log, seconds = _run(browser, url, "--dump-dom", budget_ms=budget_ms)
    return dom, CONSOLE.findall(log), seconds


def screenshot(browser: str, url: str, path: str, size: tuple[int, int] = (1280, 1400)) -> list[str]:
    """Save a PNG of `url` (window `size`); returns the console messages."""
    _, log, _ = _run(browser, url, f"--screenshot={path}", f"--window-size={size[0]},{size[1]}")
    return CONSOLE.findall(log)


def _as_fds_3_and_4(read: int, write: int) -> None:
    """In the child: `read` as fd 3 and `write` as fd 4, inheritable (moved above 9 first, so that neither
    overwrites the other). Python's other descriptors are close-on-exec (PEP 446)."""
    import fcntl
    high_read, high_write = fcntl.fcntl(read, fcntl.F_DUPFD, 10), fcntl.fcntl(write, fcntl.F_DUPFD, 10)
    os.dup2(high_read, 3)
    os.dup2(high_write, 4)


class DevTools:
    """A headless Chromium driven through the DevTools protocol over a pipe (`--remote-debugging-pipe`:
    JSON messages ended by NUL on file descriptors 3 and 4), so that a test clicks and types as a user does
    (`Input.dispatchMouseEvent`, `Input.insertText`, key events), with no driver or websocket library.

    Use as a context manager: `with DevTools(browser) as page: page.open(url); page.click("#next")`.
    `errors` collects the page's console errors and uncaught exceptions.
    """

    def __init__(self, browser: str, size: tuple[int, int] = (1280, 1000), timeout: float = 60.0):
        import tempfile
        self._profile = tempfile.mkdtemp(prefix="trinet-chromium-")
        commands_read, self._commands = os.pipe()  # the browser reads fd 3
        self._replies, replies_write = os.pipe()  # and writes fd 4
        self._process = subprocess.Popen(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
             f"--window-size={size[0]},{size[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, close_fds=False,
            preexec_fn=lambda: _as_fds_3_and_4(commands_read, replies_write))
        os.close(commands_read)
        os.close(replies_write)
        self.timeout, self._next_id, self._buffer = timeout, 0, b""
        self._events: list[dict] = []
        self.errors: list[str] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=True)

    def __enter__(self) -> "DevTools":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (OSError, RuntimeError, TimeoutError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read(self) -> dict:
        import json
        import select
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._replies], [], [], left)[0]:
                raise TimeoutError(f"Chromium sent nothing for {self.timeout:.0f} s")
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _note(self, event: dict) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(details.get("exception", {}).get("description") or details.get("text", ""))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            words = (str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.errors.append(" ".join(words))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            self.errors.append(params["entry"].get("text", ""))
        self._events.append(event)

    def send(self, method: str, session: bool = False, **params) -> dict:
        """Send one command (to the page with `session`) and return its result."""
        import json
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._note(reply)

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 20.0):
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + seconds
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"still false after {seconds:.0f} s: {expression}")
            time.sleep(0.05)

    def open(self, url: str) -> None:
        """Navigate and wait for the load event."""
        self._events.clear()
        self.send("Page.navigate", session=True, url=url)
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} did not load in {self.timeout:.0f} s")
            self._note(self._read())

    def click(self, selector: str) -> None:
        """Scroll the element into view and click its centre with the mouse, as a user does."""
        import json
        box = self.evaluate(
            f"(function () {{ var e = document.querySelector({json.dumps(selector)}); if (!e) return null;"
            " e.scrollIntoView({block: 'center'}); var r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        if box is None:
            raise LookupError(f"no element matches {selector!r}")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", session=True, type=kind, x=box[0], y=box[1], button="left",
                      clickCount=0 if kind == "mouseMoved" else 1)

    def type(self, text: str) -> None:
        """Type `text` into the focused element."""
        self.send("Input.insertText", session=True, text=text)

    def press_enter(self) -> None:
        for kind in ("rawKeyDown", "char", "keyUp"):
            extra = {"text": "\r"} if kind == "char" else {}
            self.send("Input.dispatchKeyEvent", session=True, type=kind, key="Enter", code="Enter",
                      windowsVirtualKeyCode=13, **extra)
