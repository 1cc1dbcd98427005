"""One sweep worker process: the Unit it trains, and its main loop.

    Unit, make_unit(...)          what one process trains at a time: one run, or a size's
                                  seeds in one vmapped program, on a fixed number of threads
    train_unit(unit, lang, ...)   trains it in this process (the sweep's own, or a worker)
    python -m knobsim.scaling.worker IN OUT PPID CORES   a worker (started by workers.Pool)

A worker's XLA:CPU pool size comes from PJRT_NPROC, which its parent puts in its environment
before it starts (core/runtime.py); it pins itself to CORES, starts JAX's backend and says
("ready", pid, threads counted). Then, per ("unit", id, Unit) it reads: ("chunk", id, tokens,
loss) after every chunk, and ("done", id, timing), ("failed", id, message, exit code,
traceback) or ("stopped", id, message, exit code). It writes run directories only. It runs
in a session of its own, so a terminal's Ctrl-C reaches only the sweep, which passes one
SIGTERM on: that stops the run after its chunk, with a checkpoint, and then the worker; a
second signal stops it at once; its parent's death sends it SIGTERM (prctl PDEATHSIG).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path

from knobsim.core import runtime
from knobsim.core.hooks import STOP, Stopped
from knobsim.errors import KnobsimError
from knobsim.io import rundir as record
from knobsim.scaling.points import _fresh_run_dir

# A unit's cost, only to start the longest first: tokens x (knobs + this), since small
# models pay about as much per token for their many small ops as a model of this size.
COST_FLOOR = 20_000


@dataclasses.dataclass(frozen=True)
class Unit:
    """What one process trains at a time: one run, or (``together``) a size's seeds vmapped."""

    label: str  # what the progress bar says
    cfgs: tuple  # RunConfig per run
    paths: tuple  # run directory per run (str)
    metas: tuple  # point.json per run, "threads" included
    together: bool
    threads: int  # XLA:CPU threads it trains on
    cost: float = 0.0  # rough, to start the longest first
    programs: tuple = ()  # what its compiled programs depend on, roughly


def make_unit(label: str, cfgs, paths, metas, together: bool, threads: int) -> Unit:
    n = cfgs[0].model.n_params_total
    cost = float(sum(c.train.tokens for c in cfgs)) * (n + COST_FLOOR)
    c = cfgs[0]
    programs = (c.model.arch, n, c.train.batch, c.train.seq, c.train.steps, together, len(cfgs))
    return Unit(label, tuple(cfgs), tuple(str(p) for p in paths),
                tuple({**m, "threads": threads} for m in metas), together, threads, cost, programs)


def train_unit(unit: Unit, lang, advance=None) -> None:
    """Train ``unit`` in this process; ``advance(tokens, loss)`` after every chunk. A killed
    single run with a checkpoint resumes (bit for bit); other leftovers start over."""
    from knobsim.core import train as T

    runs, resumes = [], []
    for path, meta in zip(unit.paths, unit.metas):
        run, resume = _fresh_run_dir(Path(path), allow_resume=not unit.together)
        record.write_json_atomic(run.path / "point.json", meta)
        runs.append(run)
        resumes.append(resume)
    mult, last = len(unit.cfgs), [0]

    def on_chunk(r):
        if advance is not None:
            advance((r.tokens - last[0]) * mult, r.loss)
        last[0] = r.tokens

    if unit.together:
        T.train_seeds(unit.cfgs[0], [c.train.seed for c in unit.cfgs], runs, on_chunk=on_chunk,
                      lang=lang)
    else:
        T.train(unit.cfgs[0], run=runs[0], on_chunk=on_chunk, lang=lang, resume=resumes[0])


# -- the worker's main loop ---------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _language(cfg):
    from knobsim.data.language import build_language

    return build_language(cfg)


def _die_with_parent(ppid: int) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != ppid:  # the parent died before prctl
        os._exit(1)


_SIGNALS: list[int] = []  # the signals this worker has had


def _on_signal(signum, frame):
    """The first SIGINT/SIGTERM stops the run after its chunk (with a checkpoint) and the
    worker after it; a second one stops at once."""
    _SIGNALS.append(signum)
    STOP["signal"] = signum
    if len(_SIGNALS) > 1:
        raise KeyboardInterrupt


def _train_one(outbox: Connection, uid: int, unit: Unit) -> bool:
    """Train one unit and say how it went; False when the worker should exit."""
    t0, c0, start = time.perf_counter(), time.process_time(), time.time()
    try:
        train_unit(unit, _language(unit.cfgs[0].language),
                   lambda n, loss: outbox.send(("chunk", uid, n, loss)))
    except Stopped as e:
        outbox.send(("stopped", uid, str(e), e.exit_code))
        return False
    except KnobsimError as e:
        outbox.send(("failed", uid, str(e), e.exit_code, None))
        return True
    except Exception as e:  # a bug: the parent shows its traceback
        outbox.send(("failed", uid, f"{type(e).__name__}: {e}", 1, traceback.format_exc()))
        return True
    outbox.send(("done", uid, {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
                               "start": start, "end": time.time()}))
    return True


def _worker_main(argv: list[str]) -> int:
    """``python -m knobsim.scaling.worker IN OUT PPID CORES``: PJRT_NPROC is in the
    environment already (the parent sets it), so XLA starts with the unit's threads."""
    fd_in, fd_out, ppid = int(argv[0]), int(argv[1]), int(argv[2])
    runtime.pin([int(c) for c in argv[3].split(",") if c])
    _die_with_parent(ppid)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    inbox, outbox = Connection(fd_in, writable=False), Connection(fd_out, readable=False)
    runtime.enable_compilation_cache()
    import jax

    jax.devices()  # start the backend now: its pool takes its size from PJRT_NPROC
    outbox.send(("ready", os.getpid(), runtime.pool_threads()))
    while not _SIGNALS:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            break
        # train() clears STOP when it starts: a signal that came while this worker waited
        # is honoured here, before it trains anything
        if msg[0] != "unit" or _SIGNALS or not _train_one(outbox, msg[1], msg[2]):
            break
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
