"""results.csv: one row per finished run, rebuilt from the run directories, written atomically,
read back by read_rows."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import socket
from collections.abc import Sequence
from pathlib import Path


from knobsim.io import rundir as record
from knobsim.scaling.points import RESULT_COLUMNS
from knobsim.scaling.table import read_csv


# -- the results table -------------------------------------------------------------------


def _row(run: Path, language: dict | None = None) -> dict | None:
    """The run's table row, or None if it is unfinished. With ``language``, a run on another
    language gives only {"other_language": its name} (config.json is read once either way)."""
    s_path = run / "summary.json"
    if not s_path.is_file():
        return None
    s = record.read_json(s_path)
    c = record.read_json(run / "config.json")
    if language is not None and c["language"] != language:
        return {"other_language": run.name}
    pt = record.read_json(run / "point.json") if (run / "point.json").is_file() else {}
    tr = c["train"]
    n, d = s["n_params_total"], s["tokens"]
    return {
        "arch": s["arch"],
        "shape": json.dumps(s["shape"], sort_keys=True, separators=(",", ":")),
        "n_params_total": n,
        "n_params_nonembedding": s["n_params_nonembedding"],
        "tokens": d,
        "compute": 6.0 * n * d,
        "final_eval_loss": s["final_eval_loss"],
        "entropy_floor": s["entropy_floor"],
        "lr": s["lr"],
        "seed": s["seed"],
        "wall_s": s["wall_s"],
        "run_dir": str(run),
        "budget": c["model"]["budget"],
        "lr_source": pt.get("lr_source", ""),
        "tag": pt.get("tag", ""),
        "steps": s["steps"],
        "batch": tr["batch"],
        "seq": tr["seq"],
        "pool_tokens": tr.get("pool_tokens", 0),
        "epochs": s.get("epochs"),
        "zipf": c["language"]["zipf"],
        "final_train_loss": s["final_train_loss"],
        "tokens_per_s": s["tokens_per_s"],
        "n_seeds_together": s.get("n_seeds_together", 1),
        "threads": pt.get("threads"),  # XLA:CPU threads it trained on; empty: before issue 23
    }


def _sweep_language(out: Path) -> dict | None:
    """The language the sweep in `out` was last asked for (its sweep.json), if any."""
    manifest = Path(out) / "sweep.json"
    if not manifest.is_file():
        return None
    return record.read_json(manifest).get("settings", {}).get("language")


def build_table(out: Path, sub: str = "runs") -> list[dict]:
    """One row per finished run under out/sub, sorted by (arch, N, D, pool, seed).

    Only runs on the sweep's language (sweep.json) count: a folder that also holds runs on
    another language (an earlier sweep, before a default changed) would otherwise mix two
    floors in one fit. Those runs stay on disk, left out of the table with a warning."""
    base = Path(out) / sub
    language = _sweep_language(out)
    found = [r for r in (_row(p, language) for p in sorted(base.iterdir()) if p.is_dir())
             if r is not None] if base.is_dir() else []
    other = [r["other_language"] for r in found if "other_language" in r]
    if other:
        record.warn(f"{len(other)} finished run(s) in {base} are on another language than this "
                    f"sweep's (e.g. {other[0]}); left out of results.csv")
    rows = [r for r in found if "other_language" not in r]
    return sorted(rows, key=lambda r: (r["arch"], r["n_params_total"], r["tokens"],
                                       r["pool_tokens"], r["lr"], r["tag"], r["seed"]))


def _write_csv_atomic(path: Path, rows: list[dict], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _cell(r.get(k)) for k in columns})
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        f.write(buf.getvalue())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return v


def write_table(out: Path) -> Path:
    """Rebuild out/results.csv from out/runs/*, atomically."""
    path = Path(out) / "results.csv"
    _write_csv_atomic(path, build_table(out), RESULT_COLUMNS)
    return path


# Columns of results.csv and lr_tune.csv read back as numbers (an empty cell is None).
INT_COLUMNS = frozenset({"n_params_total", "n_params_nonembedding", "tokens", "seed", "budget",
                         "steps", "batch", "seq", "pool_tokens", "n_seeds_together", "threads"})
FLOAT_COLUMNS = frozenset({"compute", "final_eval_loss", "entropy_floor", "lr", "wall_s", "epochs",
                           "zipf", "final_train_loss", "tokens_per_s"})


def read_rows(path: Path) -> list[dict]:
    """results.csv (or lr_tune.csv) back as one dict per run, numbers parsed (shape stays a
    JSON string; other columns stay text). Read by knobsim's one CSV reader,
    :func:`knobsim.scaling.table.read_csv`; :func:`knobsim.scaling.table.read_table` reads
    the same file as a loss table for the fits."""
    header, body = read_csv(path)
    rows = [dict(zip(header, r + [""] * (len(header) - len(r)))) for r in body]
    for r in rows:
        for k in INT_COLUMNS & r.keys():
            r[k] = int(r[k]) if r[k] != "" else None
        for k in FLOAT_COLUMNS & r.keys():
            r[k] = float(r[k]) if r[k] != "" else None
    return rows


def fit_hint(table: Path) -> str:
    """The `knobsim fit` command for a results table."""
    return (f"knobsim fit --csv {table} --n-col n_params_total --d-col tokens "
            "--loss-col final_eval_loss")
