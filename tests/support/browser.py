"""A real headless browser for the admin page's tests: Debian's chromium and chromedriver through
Selenium, with a fresh profile and nothing that talks to the network by itself.

    with Browser(tmp_path) as browser:
        browser.get(service.url + "/admin")
        browser.wait_text("#job-state", "completed")
        browser.screenshot(path)

`missing()` says what is not installed (the tests skip with that message); no browser is ever
downloaded (the machine's network only reaches package registries).
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install one with: apt-get install -y chromium chromium-driver (and pip install -r requirements-dev.txt)"
# Without the background-networking flags chromium phones home (updates, sync, field trials),
# and the closed network here refuses those connections one by one.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
WINDOW = (1360, 1000)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromedriver_binary() -> str | None:
    return shutil.which("chromedriver") or next(
        (p for p in ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver") if Path(p).is_file()), None
    )


def missing() -> str | None:
    """Why no browser test can run here, or None when chromium, chromedriver and Selenium are there."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return f"Selenium is not installed; {INSTALL_HINT}"
    if chromium_binary() is None:
        return f"chromium is not installed; {INSTALL_HINT}"
    if chromedriver_binary() is None:
        return f"chromedriver is not installed; {INSTALL_HINT}"
    return None


class Browser:
    def __init__(self, workdir: Path, *, window: tuple[int, int] = WINDOW) -> None:
        self.workdir = Path(workdir)
        self.window = window
        self.driver = None
        self._profile: str | None = None

    def start(self) -> Browser:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        reason = missing()
        if reason is not None:
            raise RuntimeError(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=self.workdir)
        options = webdriver.ChromeOptions()
        options.binary_location = chromium_binary()
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={self.window[0]},{self.window[1]}")
        options.add_argument(f"--user-data-dir={self._profile}")
        # The page's console (CSP violations show up there) is read by `console_errors`.
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path: Selenium Manager (which would download one) is never asked.
        service = Service(executable_path=chromedriver_binary(), log_output=str(self.workdir / "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(30)
        return self

    def stop(self) -> None:
        if self.driver is not None:
            try:
                self.driver.quit()
            finally:
                self.driver = None
        if self._profile is not None:
            shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- driving ------------------------------------------------------------------------------

    def get(self, url: str) -> None:
        self.driver.get(url)

    @property
    def url(self) -> str:
        return self.driver.current_url

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def wait(self, predicate, timeout: float = 20.0, message: str = "condition"):
        """Poll `predicate()` (exceptions count as not yet) until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except Exception as exc:  # the element is not there yet, or was just replaced
                last_error = exc
                value = None
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{message} not met within {timeout:g}s (last error: {last_error!r}; at {self.url})")

    def wait_for(self, css: str, timeout: float = 20.0):
        return self.wait(lambda: self.find(css), timeout, f"element {css}")

    def wait_visible(self, css: str, timeout: float = 20.0):
        return self.wait(lambda: (el := self.find(css)).is_displayed() and el, timeout, f"{css} visible")

    def wait_text(self, css: str, expected: str, timeout: float = 20.0) -> str:
        return self.wait(
            lambda: self.find(css).text.strip() == expected and expected, timeout, f"{css} == {expected!r}"
        )

    def text(self, css: str) -> str:
        return self.find(css).text.strip()

    def type(self, css: str, value: str, *, clear: bool = True) -> None:
        element = self.find(css)
        if clear:
            element.clear()
        element.send_keys(value)

    def click(self, css: str) -> None:
        self.find(css).click()

    def run(self, script: str, *args):
        return self.driver.execute_script(script, *args)

    def console_errors(self) -> list[dict]:
        return [entry for entry in self.driver.get_log("browser") if entry.get("level") == "SEVERE"]

    def screenshot(self, path: Path, *, full_page: bool = True) -> Path:
        """A PNG of the page: the whole page (`full_page`, through the DevTools protocol), or what
        the window shows."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Two animation frames: the last DOM update (a poll's answer, a dialog) is painted.
        self.driver.execute_async_script(
            "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done(true)));"
        )
        if not full_page:
            self.driver.save_screenshot(str(path))
            return path
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1},
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
