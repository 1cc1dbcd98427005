"""A run's segments: its fresh start and each ``--resume``, and the timing they add up to.

A resumed run's summary must time the whole run, not its last segment. Each segment's
timing is kept in RUN/segments.json, rewritten after every checkpoint (so it always
describes the state a resume restores); a resume reads the earlier segments from it and the
summary adds them all up (docs/file-formats.md, summary.json). A segment counts up to its
last checkpoint: time after it, lost to a kill, is replayed and not counted twice.

segments.json also keeps what the summary needs beyond the weights at that checkpoint: the
last chunk's mean train loss and the latest evaluation (``train_loss``, ``eval_loss``). A
run resumed from its final checkpoint trains nothing and takes them from there.
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
    """After each checkpoint: RUN/segments.json = the earlier segments, this one so far, and
    the progress's losses at that checkpoint (``progress``: the loop's; one seed)."""

    def __init__(self, run, ckpt, earlier: list[dict], current: Callable[[], dict], progress):
        self.run, self.ckpt, self.earlier, self.current = run, ckpt, earlier, current
        self.progress = progress

    def chunk(self, c):
        if self.ckpt.latest_step() == c.step:
            p = self.progress
            self.run.write_json(SEGMENTS_FILE, {"checkpoint_step": c.step,
                                                "segments": [*self.earlier, self.current()],
                                                "train_loss": float(p.chunk_losses[0]),
                                                "eval_loss": float(p.last_eval[0])})


def resume_point(run, start: int) -> tuple[list[dict], dict | None]:
    """What segments.json says about a resume from the checkpoint of ``start``: the segments
    before it ([] for a run that has none recorded) and its losses ({"train_loss",
    "eval_loss"}; None when segments.json was not written at that checkpoint, or by a
    knobsim from before it kept them)."""
    from knobsim.io.rundir import read_json

    path = run.path / SEGMENTS_FILE
    if not path.is_file():
        return [], None
    d = read_json(path)
    earlier = [g for g in d.get("segments", []) if g.get("from_step", 0) < start]
    kept = d.get("checkpoint_step") == start and "train_loss" in d and "eval_loss" in d
    return earlier, {k: d[k] for k in ("train_loss", "eval_loss")} if kept else None


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
