"""Sweeps on every core: worker processes, each with XLA:CPU's thread count fixed before JAX
starts (not pinned to cores: see Pool._workers).

    Pool(jobs)                    one sweep call's workers
    pool.run(units, reporter, lang, after_each)

XLA:CPU sizes its thread pool once, when its backend starts, and the size changes a run's
bits (core/runtime.py), so a one-thread unit cannot train in a process that started with two.
Each unit's thread count is fixed before it is scheduled (points.point_threads: the point's
size and the machine's cores), never by what runs beside it: the same point gives the same
bits alone, beside others, or with ``jobs=1``. Units of t threads run ``jobs // t`` at once in
workers (knobsim.scaling.worker), the costliest first; then the units
of this process's own thread count train here, one at a time, as every unit did before
issue 23. Workers live as long as the Pool (the lr grid and the main runs share them).

The parent alone writes results.csv (atomically, in after_each); workers write run
directories. Stopping (an exception, Ctrl-C, the CLI's STOP): every worker is sent SIGTERM
and stops after its chunk with a checkpoint; what is left after STOP_WAIT_S is killed; a
rerun resumes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from multiprocessing.connection import Connection, wait

from knobsim.core import runtime
from knobsim.core.hooks import STOP, Stopped
from knobsim.errors import KnobsimError
from knobsim.scaling.progress import Reporter
from knobsim.scaling.worker import Unit, make_unit, train_unit

__all__ = ["Pool", "Unit", "make_unit", "train_unit"]

# How often the parent wakes while it waits for workers (seconds): keeps signals responsive.
POLL_S = 0.5
# How long stopped workers get to finish their chunk and checkpoint before they are killed.
STOP_WAIT_S = 60.0
# How long idle workers get to exit at the end of a sweep.
CLOSE_WAIT_S = 10.0


# -- in the sweep's process --------------------------------------------------------------


class _Worker:
    """One worker process (threads, cores) and its two pipes."""

    def __init__(self, threads: int, cores: list[int]):
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        self.log = tempfile.TemporaryFile()
        self.threads, self.cores, self.unit, self.last = threads, cores, None, None
        env = {**os.environ, **runtime.thread_env(threads)}
        argv = [sys.executable, "-m", "knobsim.scaling.worker", str(r_in), str(w_out),
                str(os.getpid()), ",".join(map(str, cores))]
        try:
            with warnings.catch_warnings():  # JAX warns of any fork; this one execs at once
                warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
                # a session of its own: Ctrl-C reaches the sweep, which stops it (one signal)
                self.proc = subprocess.Popen(argv, env=env, pass_fds=(r_in, w_out),
                                             stdin=subprocess.DEVNULL, stdout=self.log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            os.close(r_in)
            os.close(w_out)
        self.inbox = Connection(w_in, readable=False)
        self.outbox = Connection(r_out, writable=False)

    def give(self, uid: int, unit: Unit) -> None:
        self.unit, self.last = unit, unit.programs
        self.inbox.send(("unit", uid, unit))

    def receive(self):
        try:
            msg = self.outbox.recv()
        except (EOFError, OSError):
            self.proc.wait()
            what = f" while training {self.unit.label}" if self.unit else ""
            raise KnobsimError(f"a sweep worker died{what} (exit code {self.proc.returncode}; "
                               f"its last words: {self.tail()}); rerun the same command to resume",
                               exit_code=1) from None
        if msg[0] == "ready" and msg[2] is not None and msg[2] != self.threads:
            raise RuntimeError(f"a sweep worker asked for {self.threads} XLA thread(s) started "
                               f"with {msg[2]}: its runs would not have the bits they record")
        return msg

    def tail(self, n: int = 300) -> str:
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - n))
        return " ".join(self.log.read().decode(errors="replace").split()) or "nothing"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        for conn in (self.inbox, self.outbox):
            conn.close()
        self.log.close()


class Pool:
    """The worker processes of one sweep call. ``with Pool(jobs) as pool: pool.run(...)``;
    an exception (a failed run, Ctrl-C) stops every worker before it propagates."""

    def __init__(self, jobs: int | None = None, inline: bool = True):
        self.cores = runtime.core_ids()
        self.jobs = jobs or len(self.cores)
        self.inline = inline  # False: every unit in a worker (benchmarks: all start alike)
        self.workers: list[_Worker] = []
        self.finished: list[tuple[Unit, dict]] = []  # (unit, timing) as each ended: wall_s,
        #                                                cpu_s (the process's), start, end (epoch s)
        self._uid = 0
        STOP["signal"] = None  # a stop left over from an earlier run in this process

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None:
            self.close()
        else:
            self.stop()
        return False

    def run(self, units, rep: Reporter, lang, after_each=lambda unit: None) -> None:
        """Train every unit: those of other thread counts than this process's in workers,
        then this process's own here, one at a time; ``after_each(unit)`` as each ends."""
        here = runtime.xla_threads() if self.inline else 0
        pooled = [u for u in units if u.threads != here]
        if pooled:
            from knobsim.core import hardware

            for dtype in {u.cfgs[0].dtype for u in pooled}:
                hardware.peak_flops(dtype)  # measured here, on every core, before workers read it
        for t in sorted({u.threads for u in pooled}):
            self._run_pooled(t, [u for u in pooled if u.threads == t], rep, after_each)
        for u in units:
            if u.threads == here:
                _check_stop()
                rep.group(u.label)
                t0, c0, start = time.perf_counter(), time.process_time(), time.time()
                train_unit(u, lang, rep.advance)
                self._finished(u, {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                                   "start": start, "end": time.time()}, rep, after_each)

    def _run_pooled(self, t: int, units, rep: Reporter, after_each) -> None:
        todo = sorted(units, key=lambda u: -u.cost)  # stable: equal costs keep sweep order
        workers = self._workers(t, max(1, min(len(todo), self.jobs // t)))
        busy: dict[_Worker, Unit] = {}
        while todo or busy:
            for w in workers:
                if w not in busy and todo:
                    self._uid += 1
                    busy[w] = _pick(todo, w, {u.programs for u in busy.values()})
                    w.give(self._uid, busy[w])
            rep.group(_label(busy.values(), t))
            _check_stop()
            for conn in wait([w.outbox for w in busy], timeout=POLL_S):
                w = next(w for w in busy if w.outbox is conn)
                msg = w.receive()
                if msg[0] == "chunk":
                    rep.advance(msg[2], msg[3])
                elif msg[0] == "done":
                    w.unit = None
                    self._finished(busy.pop(w), msg[2], rep, after_each)
                elif msg[0] == "stopped":
                    raise Stopped(f"{msg[2]}; rerun the same sweep to resume", msg[3])
                elif msg[0] == "failed":
                    _raise_failed(busy[w], msg)

    def _finished(self, unit: Unit, timing: dict, rep: Reporter, after_each) -> None:
        self.finished.append((unit, timing))
        for _ in unit.paths:
            rep.finished_run({})
        after_each(unit)

    def _workers(self, t: int, n: int) -> list[_Worker]:
        """n live workers of t threads (reused, or started), left for the OS to place.

        Not pinned: a one-thread worker pinned to one core shares it between its Python
        thread and XLA's pool thread, and every hand-over between them waits for the
        scheduler. Measured (1e4 knobs, 600k tokens, two workers of PJRT_NPROC=1 side by side
        on the 2-core Xeon): 70k tokens/s each pinned to a core, 183k unpinned, same bits
        (docs/performance.md, "Sweeps on every core")."""
        mine = [w for w in self.workers if w.threads == t and w.alive()]
        while len(mine) < n:
            mine.append(_Worker(t, []))
            self.workers.append(mine[-1])
        return mine[:n]

    def close(self) -> None:
        """Idle workers exit (their inbox closes); any still there after CLOSE_WAIT_S are killed."""
        self._end(CLOSE_WAIT_S, signal_them=False)

    def stop(self) -> None:
        """Every worker stops after its chunk (with a checkpoint) within STOP_WAIT_S, or is
        killed; a second Ctrl-C kills them at once."""
        try:
            self._end(STOP_WAIT_S, signal_them=True)
        except KeyboardInterrupt:
            for w in self.workers:
                if w.alive():
                    w.proc.kill()
            raise

    def _end(self, wait_s: float, signal_them: bool) -> None:
        for w in self.workers:
            w.inbox.close()
            if signal_them and w.alive():
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while any(w.alive() for w in self.workers) and time.monotonic() < deadline:
            live = [w.outbox for w in self.workers if w.alive() and not w.outbox.closed]
            if not live:
                time.sleep(POLL_S)
            for conn in wait(live, timeout=POLL_S) if live else []:
                try:
                    conn.recv()  # drain: a worker blocked on a full pipe never exits
                except (EOFError, OSError):
                    conn.close()
        for w in self.workers:
            if w.alive():
                w.proc.kill()
            w.proc.wait()
            w.close()
        self.workers = []


def _pick(todo: list, w: _Worker, running: set) -> Unit:
    """The next unit for worker w (todo is costliest first): one whose programs w compiled
    for its last unit (loaded from its memory), else the costliest whose programs no other
    worker is compiling now (never the same compile twice at once), else the costliest."""
    for ok in (lambda u: w.last == u.programs, lambda u: u.programs not in running):
        for i, u in enumerate(todo):
            if ok(u):
                return todo.pop(i)
    return todo.pop(0)


def _label(units, t: int) -> str:
    units = list(units)
    names = "; ".join(u.label for u in units[:2]) + (f"; +{len(units) - 2}" if len(units) > 2 else "")
    return f"{len(units)} at once, {t} thread{'s' if t > 1 else ''} each: {names}"


def _check_stop() -> None:
    sig = STOP["signal"]
    if sig is not None:
        raise Stopped(f"stopped by {signal.Signals(sig).name}: the runs in training keep their "
                      "checkpoints; rerun the same sweep to resume", exit_code=128 + sig)


def _raise_failed(unit: Unit, msg) -> None:
    _, _, text, code, tb = msg
    if tb is None:
        raise KnobsimError(f"{unit.label}: {text}", exit_code=code)
    raise RuntimeError(f"{unit.label}: {text}\n--- in the sweep worker ---\n{tb}")
