"""A run's segments: its fresh start and each ``--resume``, and the timing they add up to.

A resumed run's summary must time the whole run, not its last segment. Each segment's
timing is kept in RUN/segments.json, rewritten after every checkpoint (so it always
describes the state a resume restores); a resume reads the earlier segments from it and the
summary adds them all up (docs/file-formats.md, summary.json). A segment counts up to its
last checkpoint: time after it, lost to a kill, is replayed and not counted twice.
"""

from __future__ import annotations

import time
from typing import Callable

from knobsim.core.hooks import Hook

SEGMENTS_FILE = "segments.json"
KEYS = ("from_step", "to_step", "wall_s", "train_s", "train_tokens")


def segment(progress, start: int, t_start: float, tokens_per_step: int) -> dict:
    """This segment so far: steps ``start`` to ``progress.step``, wall seconds since
    ``t_start``, and (for the throughput) the tokens and seconds of its chunks after the
    first, which compiles (``progress.steady_tokens``, ``progress.steady_s``)."""
    return {"from_step": start, "to_step": progress.step, "wall_s": time.perf_counter() - t_start,
            "tokens": (progress.step - start) * tokens_per_step,
            "train_tokens": progress.steady_tokens, "train_s": progress.steady_s}


class SegmentsHook(Hook):
    """After each checkpoint: RUN/segments.json = the earlier segments and this one so far."""

    def __init__(self, run, ckpt, earlier: list[dict], current: Callable[[], dict]):
        self.run, self.ckpt, self.earlier, self.current = run, ckpt, earlier, current

    def chunk(self, c):
        if self.ckpt.latest_step() == c.step:
            self.run.write_json(SEGMENTS_FILE, {"checkpoint_step": c.step,
                                                "segments": [*self.earlier, self.current()]})


def earlier_segments(run, start: int) -> list[dict]:
    """The segments before a resume from the checkpoint of ``start`` ([] for a run that has
    none recorded)."""
    from knobsim.io.rundir import read_json

    path = run.path / SEGMENTS_FILE
    if not path.is_file():
        return []
    return [g for g in read_json(path).get("segments", []) if g.get("from_step", 0) < start]


def timing(segments: list[dict]) -> dict:
    """The summary's timing over every segment: wall_s is their wall time added up
    (compilation, evaluation and checkpoints included); tokens_per_s is the tokens of every
    chunk after a segment's first over the seconds they took; with no such chunk, all tokens
    trained over all wall time (nan when nothing was trained)."""
    wall = float(sum(g["wall_s"] for g in segments))
    train_s = float(sum(g["train_s"] for g in segments))
    train_tokens = int(sum(g["train_tokens"] for g in segments))
    tokens = int(sum(g.get("tokens", 0) for g in segments))
    if train_s > 0:
        tps = train_tokens / train_s
    else:
        tps = tokens / wall if tokens and wall > 0 else float("nan")
    return {"wall_s": wall, "tokens_per_s": tps, "train_s": train_s, "train_tokens": train_tokens,
            "segments": [{k: g[k] for k in KEYS} for g in segments]}
