"""Timing helpers shared by the benchmark scripts: interleaved rounds with medians (and the per-round times, for
paired ratios), the ``--torch-threads`` list, this process's peak memory, and a worker process driven by command
(`Commanded`, `reply`: a side timed in a process of its own). No JAX and no torch here: `bench_pcd.py`'s official
worker process imports this and must never start JAX."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

import numpy as np


class Medians(dict):
    """``{name: median seconds}``, with ``rounds = {name: [seconds of each round]}`` (for paired ratios)."""

    rounds: dict

    def per_second(self, counts: dict | float) -> dict:
        """``{name: median of counts[name] / seconds over the rounds}`` (steps/s, images/s, ...), each round's rate
        taken before the median; `counts` may be one number for every name."""
        if not isinstance(counts, dict):
            counts = dict.fromkeys(self.rounds, counts)
        return {name: float(np.median([counts[name] / s for s in v])) for name, v in self.rounds.items()}


def interleaved_medians(fns: dict, rounds: int, *, self_timed: bool = False) -> Medians:
    """The medians of `rounds` rounds of ``fns = {name: run}`` or ``{name: (run, setup)}``: each round runs every
    ``setup()`` (untimed) and ``run()`` (timed by the wall clock) once, in turn, so that a change of machine load hits
    all of them alike. With `self_timed`, each ``run()`` returns the seconds it measured itself (in another process,
    say) and those are taken instead."""
    times: dict = {name: [] for name in fns}
    for _ in range(rounds):
        for name, entry in fns.items():
            run, *setup = entry if isinstance(entry, tuple) else (entry,)
            for f in setup:
                f()
            t = time.perf_counter()
            sec = run()
            times[name].append(sec if self_timed else time.perf_counter() - t)
    med = Medians({name: float(np.median(v)) for name, v in times.items()})
    med.rounds = times
    return med


def jax_cores() -> int:
    """The cores this process may run on: the size of XLA:CPU's thread pool."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_threads(text: str | None) -> list[int]:
    """``"2,1"`` -> ``[2, 1]``: the torch thread counts to time the official code with; None -> JAX's core
    count (`jax_cores`)."""
    if text is None:
        return [jax_cores()]
    try:
        threads = [int(t) for t in text.split(",")]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise SystemExit(f"--torch-threads wants a comma-separated list of positive integers, e.g. 2,1; got {text!r}")
    return threads


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB: Linux's ``VmHWM`` (the high-water mark of this program's
    memory, which starts afresh at ``exec``), else ``ru_maxrss``. Not ``ru_maxrss`` on Linux: it survives
    ``fork`` + ``exec``, so a child process started by a large parent reports the parent's size."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)


def allocator_note(zoo_settings: bool) -> str:
    """A benchmark header's line on the C allocator: glibc with zoo's settings (`zoo_settings`:
    ``zoo._malloc.applied()``; `zoo train`'s default, ``ZOO_MALLOC=1`` for a script), else the C library's
    defaults. They hold for every library in the process: for the official code timed beside zoo in it too."""
    if zoo_settings:
        return ("allocator: glibc with zoo's settings (ZOO_MALLOC=1, as zoo train runs; zoo/_malloc.py: one "
                "arena, large blocks from the heap and reused, the heap settled after each program's first call), "
                "for every library in this process, the official code's included")
    return ("allocator: the C library's defaults (a script importing zoo; zoo train sets zoo/_malloc.py's "
            "settings, ZOO_MALLOC=1 here)")


def reply(tag: str, obj: dict) -> None:
    """A worker's answer to its driver (`Commanded`): one `tag`-prefixed JSON line on stdout."""
    sys.stdout.write(tag + json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(tag: str, fn, set_threads) -> None:
    """A timing worker's loop (driven by `Commanded`): for each ``run CALLS THREADS`` line on stdin, `set_threads`
    (an untimed call of `fn` the first time at that thread count), then time `CALLS` calls of `fn` and `reply` their
    seconds; at ``quit`` (or the end of stdin) reply this process's peak RSS."""
    warm = set()
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        calls, threads = int(cmd[1]), int(cmd[2])
        set_threads(threads)
        if threads not in warm:
            fn()
            warm.add(threads)
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        reply(tag, {"seconds": time.perf_counter() - start})
    reply(tag, {"peak_rss_mib": peak_rss_mib()})


class Commanded:
    """A worker process (`cmd`) driven by command lines on its stdin, answering each with one `reply` line (prefix
    `tag`); whatever else it prints on stdout is passed on to stderr."""

    def __init__(self, cmd: list[str], tag: str, name: str, env: dict | None = None):
        self.tag, self.name = tag, name
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     env=env)

    def read(self) -> dict:
        """The worker's next answer, or ``{"error": ...}`` if it exited first."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(self.tag):
                return json.loads(line[len(self.tag):])
            sys.stderr.write(line)  # the worker's (or the code it runs) own output
        return {"error": f"the {self.name} worker exited with status {self.proc.wait()}"}

    def ask(self, command: str) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> dict:
        """Send ``quit``; the worker's last answer (``{}`` if it had exited)."""
        out = self.ask("quit") if self.proc.poll() is None else {}
        self.proc.wait()
        return out
