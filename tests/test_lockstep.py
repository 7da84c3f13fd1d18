"""Lockstep A/B: the gate protocol between the harness and two live workers."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.worker.lockstep import Channel, conduct
from harness.worker.measure import MeasureSettings, time_steady

#: a stand-in worker: passes its gates like harness.worker.main does (set-up, each sample,
#: after the last) and logs what it did to a shared file; it dies after `die_after` samples
FAKE = """
import os, sys
from harness.worker.lockstep import Gate
name, go, ready, samples, die_after, log = sys.argv[1:]
gate = Gate(int(go), int(ready))
def say(what):
    with open(log, "a") as f:
        f.write(f"{name} {what}\\n")
gate.wait()
say("setup")
for i in range(int(samples)):
    gate.wait()
    if i == int(die_after):
        os._exit(3)
    say(f"sample {i}")
gate.wait()
say("end")
"""


def _start(ch: Channel, samples: int, log: Path, die_after: int = -1) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", FAKE, ch.name, str(ch.go_r), str(ch.ready_w),
                             str(samples), str(die_after), str(log)], pass_fds=ch.child_fds())
    ch.started()
    return proc


def _run_pair(tmp_path: Path, samples: int, die_after: int = -1) -> tuple[bool, list[str]]:
    log = tmp_path / "log"
    a, b = Channel.open("A"), Channel.open("B")
    procs = [_start(a, samples, log), _start(b, samples, log, die_after)]
    try:
        paired = conduct(a, b, samples, 60)
        for ch, proc in zip((a, b), procs, strict=True):
            ch.release()
            proc.wait(timeout=60)
    finally:
        for ch in (a, b):
            ch.close()
    return paired, log.read_text().splitlines()


def test_setups_in_turn_then_samples_alternate_abba(tmp_path: Path) -> None:
    paired, log = _run_pair(tmp_path, 4)
    assert paired
    assert log == ["A setup", "B setup",
                   "A sample 0", "B sample 0", "B sample 1", "A sample 1",
                   "A sample 2", "B sample 2", "B sample 3", "A sample 3",
                   "A end", "B end"]


def test_a_side_that_dies_leaves_the_other_to_finish_unpaired(tmp_path: Path) -> None:
    paired, log = _run_pair(tmp_path, 5, die_after=2)
    assert not paired
    assert [ln for ln in log if ln.startswith("A")] == [
        "A setup", *(f"A sample {i}" for i in range(5)), "A end"]
    assert [ln for ln in log if ln.startswith("B")] == ["B setup", "B sample 0", "B sample 1"]


def test_a_silent_worker_times_out_at_its_gate(tmp_path: Path) -> None:
    a, b = Channel.open("A"), Channel.open("B")
    try:  # nobody ever writes to ready: each times out once, then is skipped
        t0 = time.monotonic()
        assert not conduct(a, b, 3, 0.2)
        assert time.monotonic() - t0 < 5 and a.why == b.why == "timed out at a gate"
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("samples", [1, 4])
def test_time_steady_passes_a_gate_before_each_sample_and_after_the_last(samples: int) -> None:
    calls: list[int] = []
    s = MeasureSettings(warmup_s=0.0, warmup_runs=1, warmup_max_s=0.01, sample_s=0.0,
                        samples=samples)
    t = time_steady(lambda: None, s, 1e-6, gate=lambda: calls.append(len(calls)))
    assert len(t.samples_s) == samples and len(calls) == samples + 1


def test_injected_slowdown_is_busy_work_inside_each_sample() -> None:
    """With a clock that each inference advances by 1 us, `slowdown=0.1` makes every sample
    exactly 10% longer: the busy work runs inside the timed sample, after its inferences."""
    now = [0]

    def clock() -> int:
        now[0] += 1  # reading the clock costs 1 ns, so busy work ends
        return now[0]

    def run() -> None:
        now[0] += 1000

    s = MeasureSettings(warmup_s=0.0, warmup_runs=1, warmup_max_s=0.0, sample_s=1e-5,
                        samples=3)
    plain = time_steady(run, s, 1e-6, clock)
    slowed = time_steady(run, s, 1e-6, clock, slowdown=0.1)
    assert plain.inner == slowed.inner == 10
    for p, q in zip(plain.samples_s, slowed.samples_s, strict=True):
        assert q / p == pytest.approx(1.10, abs=0.002)
