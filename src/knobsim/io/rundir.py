"""The run directory: everything a run writes, in open formats, and nothing else does I/O.

    runs/<name>/
      config.json     the fully resolved RunConfig
      metrics.jsonl   one JSON object per logged step (appended and flushed per chunk)
      summary.json    final figures (written at the end, atomically)
      params.npz      final weights, one array per knob tensor, keyed by dotted leaf path
      watch/, snapshots/, tensorboard/   knob records of a watched run (watch/recorder.py,
                      docs/watching.md)

Files that are replaced are written to a temporary name and renamed, so a reader never
sees half a file. Metrics are appended as whole lines, so only the last line can be torn (by
a kill mid-write): the reader skips it and says so on stderr. A bad line anywhere else is
corruption, not a kill, and is an error naming the file and the line (exit code 2); the
reader never cuts the data short in silence.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from knobsim.errors import KnobsimError

# The knob records of a watched run (watch/recorder.py writes them, a resume drops the later
# ones): one file per recorded chunk of steps, one per weight snapshot.
KNOB_CHUNK_RE = re.compile(r"^steps_(\d+)_(\d+)\.npz$")  # watch/steps_<first>_<last>.npz
SNAPSHOT_RE = re.compile(r"^step_(\d+)\.npz$")  # snapshots/step_<step>.npz
# A temp file of an atomic write (".<name>.tmp<pid>", ".<name>.tmp<pid>.npz"): left behind
# only when its writer was killed between writing and renaming it.
STALE_TMP_RE = re.compile(r"^\..+\.tmp\d+(\.npz)?$")


def clean_json(x):
    """Strict JSON: numpy scalars and arrays become Python values; NaN and inf become null
    (json.dump would write the non-standard NaN that other readers reject)."""
    if isinstance(x, dict):
        return {str(k): clean_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean_json(v) for v in x]
    if isinstance(x, np.ndarray):
        return clean_json(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(clean_json(obj), f, indent=2, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@contextlib.contextmanager
def exclusive(folder: Path, what: str, name: str = ".lock"):
    """Hold an advisory lock on ``folder`` (its file ``name``) while the block runs, so that
    two processes never train into the same folder at once: the second gets one line, exit
    code 2, and writes nothing. The OS drops the lock when its holder ends, however it ends
    (kill -9 included), so a lock never goes stale. Where the file system cannot lock (some
    network mounts) the block runs unlocked, as before."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise KnobsimError(f"{folder} is in use by {what}{f' (pid {pid})' if pid else ''}: wait for it "
                               "to finish, stop it, or give this one another folder", exit_code=2) from None
        except OSError:
            pass  # no locks on this file system
        else:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def default_run_name(arch: str, budget_text: str, seed: int) -> str:
    return f"{arch}-{budget_text}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_out_dir(path: Path, overwrite: bool = False) -> None:
    """Refuse an existing run directory before anything is trained or written."""
    if path.exists() and not overwrite:
        raise KnobsimError(
            f"--out {path} already exists; choose another --out, or --overwrite to replace it"
        )
    if path.exists() and not path.is_dir():
        raise KnobsimError(f"--out {path} exists and is not a directory; choose another --out")


def remove_run_dir(path: Path) -> None:
    """--overwrite: remove an earlier run, but only something that is one (or empty)."""
    path = Path(path)
    if not path.exists():
        return
    if any(path.iterdir()) and not (path / "config.json").exists():
        raise KnobsimError(f"--overwrite: {path} is not a knobsim run directory; not removing it")
    import shutil

    shutil.rmtree(path)


class RunDir:
    """Writer of one run directory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._metrics = None

    @classmethod
    def create(cls, path: Path, unique: bool = False) -> "RunDir":
        """Make the directory; with ``unique``, add -2, -3... if the name is taken (two runs
        started in the same second never share a directory: mkdir is atomic)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate, i = path, 1
        while True:
            try:
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                if not unique:
                    raise KnobsimError(
                        f"--out {path} already exists; choose another --out or remove it first"
                    ) from None
                i += 1
                candidate = path.with_name(f"{path.name}-{i}")

    def write_config(self, config: dict) -> None:
        write_json_atomic(self.path / "config.json", config)

    def append_metrics(self, rows: list[dict]) -> None:
        if self._metrics is None:
            self._metrics = open(self.path / "metrics.jsonl", "a")
        lines = "".join(json.dumps(clean_json(r), allow_nan=False) + "\n" for r in rows)
        self._metrics.write(lines)
        self._metrics.flush()

    def write_summary(self, summary: dict) -> None:
        write_json_atomic(self.path / "summary.json", summary)

    def save_params(self, flat: dict[str, np.ndarray], name: str = "params.npz") -> None:
        self.save_npz(name, flat)

    def save_npz(self, rel: str, arrays: dict[str, np.ndarray], compressed: bool = False) -> Path:
        """Write ``rel`` (a path inside the run) whole or not at all: temp file, rename."""
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
        tmp.replace(path)
        return path

    def write_json(self, rel: str, obj) -> Path:
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, obj)
        return path

    def truncate_after(self, step: int) -> list[dict]:
        """Resuming from the checkpoint of ``step``: keep the metrics of steps <= ``step``
        (the file rewritten atomically) and drop the knob records of later steps; the
        resumed run writes them again, identically. Returns the kept metrics rows."""
        self.close()
        if not (self.path / "metrics.jsonl").is_file():
            raise KnobsimError(f"{self.path} has no metrics.jsonl: it is not a knobsim run")
        rows = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        if not rows or rows[0].get("step") != 0 or "eval_loss" not in rows[0]:
            raise KnobsimError(f"{self.path}/metrics.jsonl is corrupt (no initial evaluation); start the run again")
        tmp = self.path / f".metrics.jsonl.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write("".join(json.dumps(clean_json(r), allow_nan=False) + "\n" for r in rows))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path / "metrics.jsonl")
        truncate_records(self.path, step)
        return rows

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None


def truncate_records(path: Path, step: int) -> None:
    """Delete a run directory's knob records (watch/steps_*.npz, snapshots/step_*.npz) of
    steps after ``step``: what a resume from that step's checkpoint writes again. Also the
    temp files of atomic writes that a kill interrupted (a SIGKILL between a record's write
    and its rename leaves ``watch/.steps_..npz.tmp<pid>.npz``): the killed writer is gone,
    and the resumed run writes the record again."""
    path = Path(path)
    for sub, pattern in (("watch", KNOB_CHUNK_RE), ("snapshots", SNAPSHOT_RE)):
        if (path / sub).is_dir():
            for p in (path / sub).iterdir():
                m = pattern.match(p.name)
                if (m and int(m.group(1)) > step) or STALE_TMP_RE.match(p.name):
                    p.unlink()
    for p in path.iterdir():
        if p.is_file() and STALE_TMP_RE.match(p.name):
            p.unlink()


# -- readers ---------------------------------------------------------------------------


def warn(message: str) -> None:
    """One line on stderr: something a reader worked around, which the user should know."""
    print(f"knobsim: warning: {message}", file=sys.stderr, flush=True)


def read_jsonl(path: Path, what: str = "object per line", on_warning=warn) -> list[dict]:
    """The JSON objects of a JSON Lines file that is only ever appended whole lines.

    Only the last line can be torn (a kill mid-write): it is skipped, with a warning. A bad
    line before the last one is corruption, and an error naming the file and the line: a
    reader that stopped there would hide every row after it. Blank lines are ignored. A
    missing or empty file gives [] with a warning (``on_warning=None`` to stay quiet)."""
    path = Path(path)
    say = on_warning or (lambda _msg: None)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        say(f"{path} does not exist: no {what} to read")
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise KnobsimError(f"cannot read {path} ({e}); check the file, or re-run") from None
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        say(f"{path} is empty: no {what} to read")
        return []
    rows = []
    for k, (lineno, line) in enumerate(numbered):
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError(f"a JSON {type(row).__name__}, not an object")
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            why = (f"{e.msg}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e))
            if k == len(numbered) - 1:
                say(f"{path} line {lineno} is torn (a kill mid-write?): skipped it, "
                    f"kept the {len(rows):,} lines before it")
                break
            raise KnobsimError(
                f"{path} line {lineno} is corrupt ({why}) and {len(numbered) - k - 1:,} lines "
                "follow it, so it is not a torn last line; fix or delete that line, or re-run"
            ) from None
        rows.append(row)
    return rows


def read_metrics(run: Path, on_warning=warn) -> list[dict]:
    """RUN/metrics.jsonl as a list of rows (see :func:`read_jsonl` for what is tolerated)."""
    return read_jsonl(Path(run) / "metrics.jsonl", "logged metrics", on_warning)


def read_json(path: Path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise KnobsimError(f"{path} not found: is this a knobsim run directory?") from None
    except json.JSONDecodeError as e:
        raise KnobsimError(f"{path} is corrupt ({e.msg} at line {e.lineno}); re-run it") from None


def load_params(run: Path, name: str = "params.npz") -> dict[str, np.ndarray]:
    with np.load(Path(run) / name) as z:
        return {k: z[k] for k in z.files}
