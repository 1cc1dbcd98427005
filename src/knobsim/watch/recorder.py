"""The knob records of a run directory: the writer a watched run uses, and tolerant readers.

    runs/<name>/
      watch/index.json                 tensors (name, shape, kind, layer), the sampled dials
                                       (tensor, flat and multi-index), stat names and units
      watch/steps_000001_000025.npz    one file per chunk: step (n,), tensor (P,) names,
                                       <stat> (n, P) per tensor, global_<stat> (n,),
                                       knobs (n, K) dial values, knob_tensor (K,) column of
                                       each dial's tensor, knob_index (K,) its flat index
      snapshots/step_000008.npz        every weight after step 8, keyed by leaf path (lossless)
      tensorboard/events.out.tfevents.*   with --tensorboard

Every file is written whole under a temporary name and renamed, once per chunk, so a run
killed midway keeps everything up to its last finished chunk. numpy alone reads all of it
(docs/watching.md shows how); nothing here computes a statistic (watch/stats.py does, in jit).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from knobsim.watch import stats as knobs
from knobsim.errors import KnobsimError
from knobsim.io.rundir import KNOB_CHUNK_RE as _CHUNK_RE
from knobsim.io.rundir import SNAPSHOT_RE as _SNAP_RE
from knobsim.io.rundir import RunDir, read_json

INDEX = "watch/index.json"

UNITS = {
    "weight_norm": "||W||_F (weight units)",
    "drift": "||W - W_ref||_F (weight units)",
    "rel_drift": "||W - W_ref||_F / ||W_ref||_F (dimensionless; NaN if W_ref = 0)",
    "update_norm": "||dW||_F of the step (weight units)",
    "update_ratio": "||dW||_F / ||W||_F per step (dimensionless)",
    "grad_norm": "||g||_F before clipping (loss units / weight units)",
    "sign_flip": "fraction of knobs with sign(W) = -sign(W_ref), of those nonzero in W_ref",
}


def tensor_kind(name: str, shape) -> str:
    """'matrix' (2-D, not an embedding), 'embedding', or 'vector' (biases, norm gains)."""
    if name.startswith("embed"):
        return "embedding"
    return "matrix" if len(shape) == 2 else "vector"


def tensor_layer(name: str) -> str:
    """'blocks.3.mlp.w_in_DF' -> 'block 3'; 'embed.tok_VD' -> 'embed'; 'ln_f.scale_D' -> 'ln_f'."""
    parts = name.split(".")
    if parts[0] == "blocks" and len(parts) > 1:
        return f"block {parts[1]}"
    return parts[0]


def snapshot_name(step: int) -> str:
    return f"snapshots/step_{step:06d}.npz"


class WatchRecorder:
    """Writes the knob records of one run; the host loop calls it once per chunk."""

    def __init__(self, run: RunDir, names, shapes: dict, sample: dict, watch: knobs.WatchConfig,
                 steps: int, reference: str = "init"):
        self.run, self.watch = run, watch
        self.names = list(names)
        self.knob_tensor, self.knob_index = knobs.sample_table(self.names, sample)
        self.knob_column = np.asarray([self.names.index(t) for t in self.knob_tensor], np.int32)
        dials = [{"tensor": t, "flat_index": int(i),
                  "index": [int(j) for j in np.unravel_index(int(i), shapes[t])]}
                 for t, i in zip(self.knob_tensor, self.knob_index)]
        self.index = {
            "format": 1,
            "reference": reference,
            "every": watch.every,
            "steps": steps,
            "snapshots": knobs.snapshot_steps(steps) if watch.snapshots else [],
            "stats": {k: UNITS[k] for k in knobs.STATS},
            "tensors": [{"name": n, "shape": list(shapes[n]), "size": int(np.prod(shapes[n])),
                         "kind": tensor_kind(n, shapes[n]), "layer": tensor_layer(n)}
                        for n in self.names],
            "dials": dials,
        }

    def write_index(self) -> None:
        """watch/index.json, once, when the run starts (a resumed run has it already)."""
        self.run.write_json(INDEX, self.index)

    def record(self, steps: np.ndarray, watch: dict) -> None:
        """One chunk's recorded rows: steps (n,), watch = knobs.watch_stats stacked (n, ...)."""
        if len(steps) == 0:
            return
        arrays = {"step": np.asarray(steps, np.int64), "tensor": np.asarray(self.names)}
        for k in knobs.STATS:
            arrays[k] = np.asarray(watch["tensor"][k], np.float32)
            arrays[f"global_{k}"] = np.asarray(watch["global"][k], np.float32)
        arrays["knobs"] = np.asarray(watch["knobs"], np.float32)
        arrays["knob_tensor"] = self.knob_column  # dial j is tensor[knob_tensor[j]].flat[knob_index[j]]
        arrays["knob_index"] = self.knob_index
        self.run.save_npz(f"watch/steps_{int(steps[0]):06d}_{int(steps[-1]):06d}.npz", arrays,
                          compressed=True)

    def snapshot(self, step: int, flat: dict[str, np.ndarray]) -> None:
        self.run.save_npz(snapshot_name(step), flat)


class TensorBoardLog:
    """Scalars and weight histograms in TensorBoard's event format (via tensorboardX, the
    TensorFlow-free writer). Flushed once per chunk, like the other records."""

    def __init__(self, path: Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:  # pragma: no cover - it is a dependency; a broken install
            raise KnobsimError("--tensorboard needs tensorboardX: pip install tensorboardX") from None
        self.writer = SummaryWriter(logdir=str(path), flush_secs=3600)

    def scalars(self, rows: list[dict], prefix: str = "") -> None:
        for r in rows:
            for k, v in r.items():
                if k in ("step", "tokens") or v is None or not np.isfinite(v):
                    continue
                self.writer.add_scalar(f"{prefix}{k}", float(v), int(r["step"]))

    def knob_scalars(self, steps: np.ndarray, names: list[str], watch: dict) -> None:
        for j, step in enumerate(steps):
            for k in ("rel_drift", "update_ratio", "sign_flip"):
                v = float(watch["global"][k][j])
                if np.isfinite(v):
                    self.writer.add_scalar(f"knobs/{k}", v, int(step))
            for k in ("rel_drift", "update_ratio"):
                col = watch["tensor"][k][j]
                for name, v in zip(names, col):
                    if np.isfinite(v):
                        self.writer.add_scalar(f"{k}/{name}", float(v), int(step))

    def histograms(self, step: int, flat: dict[str, np.ndarray]) -> None:
        for name, w in flat.items():
            self.writer.add_histogram(f"weights/{name}", np.asarray(w, np.float32).ravel(), int(step))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


# -- readers ----------------------------------------------------------------------------


@dataclasses.dataclass
class KnobRecord:
    """Everything a watched run recorded, as arrays (rows = recorded steps, ascending)."""

    path: Path
    index: dict
    names: list[str]  # tensor names: the columns of every per-tensor array
    steps: np.ndarray  # (N,)
    tensor: dict[str, np.ndarray]  # stat -> (N, P)
    glob: dict[str, np.ndarray]  # stat -> (N,)
    knobs: np.ndarray  # (N, K) dial values
    knob_tensor: list[str]  # (K,) tensor of each dial
    knob_index: np.ndarray  # (K,) flat index of each dial in its tensor
    snapshots: dict[int, Path]  # step -> file, ascending
    skipped: list[str]  # unreadable files that were left out (a torn copy)

    def tensor_info(self, name: str) -> dict:
        return next(t for t in self.index["tensors"] if t["name"] == name)

    def snapshot(self, step: int) -> dict[str, np.ndarray]:
        with np.load(self.snapshots[step]) as z:
            return {k: z[k] for k in z.files}


def _load_npz(path: Path) -> dict | None:
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # a truncated or foreign file: the reader leaves it out, says so
        return None


def read_watch(run: Path) -> KnobRecord:
    """Read a run's knob records; one clear KnobsimError when there are none to read."""
    run = Path(run)
    if not run.exists():
        raise KnobsimError(f"{run} does not exist; give a run directory (e.g. runs/<name>)")
    if not run.is_dir():
        raise KnobsimError(f"{run} is not a directory; give a run directory (e.g. runs/<name>)")
    if not (run / "config.json").exists():
        raise KnobsimError(f"{run} has no config.json: not a knobsim run directory (or it was "
                           "killed before it started); give a run directory")
    read_json(run / "config.json")  # a torn config is a one-line error too
    if not (run / INDEX).exists():
        raise KnobsimError(f"{run} has no knob records ({INDEX} is missing): it was trained with "
                           "--no-watch; train it again without --no-watch")
    index = read_json(run / INDEX)
    try:
        names = [t["name"] for t in index["tensors"]]
    except (KeyError, TypeError):
        raise KnobsimError(f"{run / INDEX} is not a knob index; re-run the training") from None

    chunks, skipped = [], []
    files = sorted(((int(m.group(1)), p) for p in (run / "watch").iterdir()
                    if (m := _CHUNK_RE.match(p.name))), key=lambda t: t[0])
    for _, p in files:
        d = _load_npz(p)
        if d is None or "step" not in d:
            skipped.append(p.name)
            continue
        chunks.append(d)
    if not chunks:
        raise KnobsimError(f"{run} has no readable knob records in {run / 'watch'} (killed before "
                           "its first chunk?); train it again")
    cat = lambda k: np.concatenate([c[k] for c in chunks])  # noqa: E731
    snaps = {}
    if (run / "snapshots").is_dir():
        for p in (run / "snapshots").iterdir():
            if (m := _SNAP_RE.match(p.name)):
                snaps[int(m.group(1))] = p
    return KnobRecord(
        path=run, index=index, names=names, steps=cat("step"),
        tensor={k: cat(k) for k in knobs.STATS},
        glob={k: cat(f"global_{k}") for k in knobs.STATS},
        knobs=cat("knobs"), knob_tensor=[names[int(i)] for i in chunks[0]["knob_tensor"]],
        knob_index=chunks[0]["knob_index"],
        snapshots=dict(sorted(snaps.items())), skipped=skipped,
    )
