"""Browsers as runtimes: Debian's Chromium and Firefox ESR, headless, on the same JavaScript
worker as Node and jsc (`js_protocol.js`, hosted by `browser_host.js` in a page's Web Worker).

`browser_driver.js` (run by the project's Node) serves the request's folder from 127.0.0.1
with COOP/COEP headers, so the page is cross-origin isolated (fine timers,
`SharedArrayBuffer`), and starts the browser through `puppeteer-core` (npm, installed by
`make env` under `.node/tools/puppeteer-core/`; it never downloads a browser). One browser process per
worker, so one per comparison group and round. The timer's tick is measured in the page and
reported, and samples are made at least 200 ticks long.

A browser that is not installed is `unavailable`, with the Debian install command.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from harness.runtimes.base import Runtime
from harness.toolchain import node_dist

DRIVER_JS = Path(__file__).with_name("browser_driver.js")


class BrowserRuntime(Runtime):
    """A headless browser driven by puppeteer-core (a subclass names which one)."""

    HOST_LANGUAGE = "JavaScript"
    EXECUTABLES: ClassVar[tuple[str, ...]] = ()
    DEBIAN_PACKAGE: ClassVar[str] = ""

    def executable(self) -> str | None:
        return next((p for p in self.EXECUTABLES if Path(p).exists()), None)

    def prepare(self) -> None:
        node_dist.install(node_dist.resolve(None))
        node_dist.install(node_dist.tool("puppeteer-core"))

    def worker_argv(self) -> list[str]:
        node = node_dist.resolve(None).binary
        puppeteer = node_dist.tool("puppeteer-core").binary.parent
        return [str(node), str(DRIVER_JS), self.NAME, self.executable() or self.EXECUTABLES[0],
                str(puppeteer)]

    def unavailable_reason(self) -> str | None:
        if self.executable() is None:
            return (f"{self.NAME} is not installed (Debian, as root: apt-get install "
                    f"{self.DEBIAN_PACKAGE}; `make env` does it when run as root)")
        node, tool = node_dist.resolve(None), node_dist.tool("puppeteer-core")
        for build in (node, tool):
            if not node_dist.is_installed(build):
                return f"{build.package} is not installed (run `make env`, or " \
                       f"{build.install_command})"
        return None


class ChromiumRuntime(BrowserRuntime):
    NAME = "chromium"
    DESCRIPTION = "Chromium (Debian's), headless, over CDP via puppeteer-core"
    EXECUTABLES = ("/usr/bin/chromium",)
    DEBIAN_PACKAGE = "chromium"
    #: V8's kV8MaxWasmModuleSize (Node 24: "buffer source exceeds maximum size of 1073741824")
    MAX_MODULE_BYTES = 1 << 30
    MAX_MODULE_SOURCE = "V8's module size limit, kV8MaxWasmModuleSize"


class FirefoxRuntime(BrowserRuntime):
    NAME = "firefox"
    DESCRIPTION = "Firefox ESR (Debian's), headless, over WebDriver BiDi via puppeteer-core"
    EXECUTABLES = ("/usr/bin/firefox-esr", "/usr/lib/firefox-esr/firefox-esr")
    DEBIAN_PACKAGE = "firefox-esr"
    #: SpiderMonkey's MaxModuleBytes
    MAX_MODULE_BYTES = 1 << 30
    MAX_MODULE_SOURCE = "SpiderMonkey's module size limit, MaxModuleBytes"
