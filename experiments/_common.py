"""What every experiment script shares: its three modes, its sweep, its summary.json.

Modes: full (the documented run), --quick (minutes), and a hidden --tiny (or
KNOBSIM_TINY=1) that only exercises the plumbing in seconds, for tests. The numbers a
tiny run prints mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from knobsim.io import rundir as record
from knobsim.scaling import sweep as S

HERE = Path(__file__).resolve().parent

# The training shape every experiment uses: 16 sequences of 64 characters per step.
# Why not train's default 32 x 128: at these sizes runs are limited by optimizer steps,
# not by context (the word chain is first order, so 64 characters, ~16 words, is ample),
# and at a fixed token budget the smaller step gives 4x the updates. Measured on the first,
# English-like language (now --preset english) at 1e5 knobs and 1M tokens: eval loss 2.12 at 32 x 128, 1.64 at 32 x 64, 1.45
# at 16 x 64 (mean of 3 seeds, scaling_params --quick).
BATCH, SEQ = 16, 64
TINY = dict(batch=4, seq=16)  # --tiny: 64 tokens per step

# The L(N) sweep: scaling_params trains it; learning_curves and explosion read the same runs
# (same points, same run names, so one sweep folder serves all three). Per mode: sizes,
# seeds, tokens per run (None: the full-mode rule below).
# fit_from: the smallest size the L(N) fits use (0: every size). Full mode fits from 3e3
# knobs: its 1e3-knob runs sit off the law (they know 10..20 words where K = c N^gamma of
# the larger sizes says ~27, and their seeds spread over 1.01..1.33 nats at every lr from
# 0.25x to 2x the rule; experiments/results/lr_full_budget/README.md), as the pilot said of
# sizes knowing fewer than ~K_EFF_MIN words. The fit over every run is kept beside it.
LN_SWEEP = {
    "full": dict(sizes="1000,3162,9997,31609,99935,316000,1000000", seeds=3, tokens=None,
                 fit_from=3000),
    "quick": dict(sizes="1e3:3.16e5:6", seeds=3, tokens=1_000_000, fit_from=0),
    "tiny": dict(sizes="200,400,800", seeds=2, tokens=256, fit_from=0),
}
# Full mode: D = max(32M, 64 N) characters per run (64M at 1e6 knobs): doubling the text up
# to these budgets changed 3.2e4, 1e5 and 3.16e5 knobs' eval loss by 0.6..1.1% (seed 0;
# experiments/results/scaling_doubling). Near the floor that test is too weak: every size
# from 1e4 to 1e5 knobs keeps improving with more steps up to 128M characters (0.75-1.65%
# below its 32M point; 1e4 on to 512M), not text (experiments/results/capacity_corner).
FULL_MIN_TOKENS = 32_000_000
FULL_TOKENS_PER_KNOB = 64
# Full mode's learning rates, as multiples of the default rule (optim.default_lr): the best
# of the grid measured at these very budgets (experiments/results/lr_full_budget, 0.25x to
# 2x the rule, 3 seeds). The rule is best at 3.2e3 knobs; from 1e4 up half the rule is
# (0.3% to 0.8% lower loss), the optimum drifting below the rule as N grows. 1e3: no lr
# is better (seeds spread 1.01..1.33 at every lr); 1e6: not measured, half the rule as
# from 3.2e4 up. A multiple of 1 leaves the point's lr to the rule (lr None).
FULL_LR_MULTIPLE = {1000: 1.0, 3162: 1.0, 9997: 0.5, 31609: 0.5, 99935: 0.5, 316000: 0.5,
                    1000000: 0.5}


def parse(doc: str, name: str, extra=None) -> argparse.Namespace:
    from knobsim.core import runtime

    runtime.setup()  # huge pages (may re-exec once) and the compilation cache
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small version (minutes)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"output folder (default experiments/out/{name}[-quick])")
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    if extra:
        extra(ap)
    a = ap.parse_args()
    if os.environ.get("KNOBSIM_TINY") == "1":
        a.tiny = True
    a.mode = "tiny" if a.tiny else ("quick" if a.quick else "full")
    if a.out is None:
        preset = getattr(a, "preset", None)  # a language other than the default names its folder
        a.out = HERE / "out" / (name + ("" if a.mode == "full" else f"-{a.mode}")
                                + ("" if preset in (None, "scale-free") else f"-{preset}"))
    a.out.mkdir(parents=True, exist_ok=True)
    a.t0 = time.perf_counter()
    return a


def shape(mode: str) -> dict:
    return TINY if mode == "tiny" else {"batch": BATCH, "seq": SEQ}


def ln_points(mode: str) -> list[S.Point]:
    """The L(N) sweep's points in this mode (LN_SWEEP)."""
    m = LN_SWEEP[mode]
    sh = shape(mode)
    if m["tokens"] is not None:
        return S.sweep_points(S.parse_sizes(m["sizes"]), m["seeds"], tokens=m["tokens"], **sh)
    pts = []
    for b in S.parse_sizes(m["sizes"]):
        pts += S.sweep_points([b], m["seeds"], tokens=max(FULL_MIN_TOKENS, FULL_TOKENS_PER_KNOB * b),
                              lr=full_lr(b), **sh)
    return pts


def rule_lr(budget: int) -> float:
    """The default lr rule (optim.default_lr) at the knob count of this budget's shape."""
    from knobsim.core.optim import default_lr
    from knobsim.data.language import VOCAB
    from knobsim.models import sizing

    n = sizing.count_params("transformer", sizing.shape_for_budget("transformer", budget, VOCAB, SEQ))
    return default_lr("transformer", n.total)


def full_lr(budget: int) -> float | None:
    """The full mode's lr at a size: FULL_LR_MULTIPLE x the default rule (None: the rule)."""
    mult = FULL_LR_MULTIPLE[budget]
    return None if mult == 1.0 else float(rule_lr(budget) * mult)


def ln_fitted(rows, mode: str) -> list[dict]:
    """The runs the L(N) fits use in this mode: every size from LN_SWEEP's fit_from up
    (every run where fewer than 2 sizes would be left)."""
    use = [r for r in rows if r["n_params_total"] >= LN_SWEEP[mode]["fit_from"]]
    return use if len({r["n_params_total"] for r in use}) >= 2 else rows


def add_table_option(ap: argparse.ArgumentParser) -> None:
    """--table: draw from a finished L(N) sweep's results.csv (e.g. the committed
    experiments/results/scaling_params/results.csv) instead of training."""
    ap.add_argument("--table", type=Path, default=None, metavar="RESULTS_CSV",
                    help="draw from this L(N) results table (e.g. experiments/results/"
                         "scaling_params/results.csv); trains nothing")


def ln_rows(a, sett: S.Settings) -> list[dict]:
    """The L(N) sweep's rows: read from --table when given (checked: one language, the
    settings' floor), else trained or resumed in the mode's sweep folder beside --out."""
    if getattr(a, "table", None) is None:
        return run(ln_points(a.mode), sett, ln_sweep_dir(a.out, a.mode), a.quiet)
    return table_rows(a.table, sett)


TABLE_COLUMNS = ("n_params_total", "final_eval_loss", "entropy_floor", "seed", "tokens", "batch", "seq")


def table_rows(path: Path, sett: S.Settings) -> list[dict]:
    """A results table's rows, checked: the columns the L(N) figures read, one language
    (the settings' floor). Bad input: one line, exit 2."""
    from knobsim.data.language import build_language
    from knobsim.errors import KnobsimError

    try:
        rows = S.read_rows(path)
    except (OSError, KnobsimError, ValueError) as e:
        fail(f"--table {path} cannot be read ({e}); give a sweep's results.csv")
    missing = [c for c in TABLE_COLUMNS if rows and c not in rows[0]]
    if missing:
        fail(f"--table {path} lacks the column(s) {', '.join(missing)}; give a sweep's results.csv")
    if not rows:
        fail(f"--table {path} has no runs; give a finished sweep's results.csv")
    floor = build_language(sett.language).entropy_rate
    floors = sorted({round(r["entropy_floor"], 6) for r in rows})
    if floors != [round(floor, 6)]:
        fail(f"--table {path} was trained on another language (floor {floors} vs "
             f"{floor:.6f}); give the --preset it was trained with")
    return rows


def fail(message: str) -> None:
    """Bad input: one line on stderr naming the problem and the fix, exit code 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def ln_sweep_dir(out: Path, mode: str) -> Path:
    """Where the L(N) sweep of this mode lives beside ``out``: scaling_params' own sweep
    folder (OUT/../scaling_params[-quick]/sweep), so the runs are trained once."""
    return out.parent / ("scaling_params" + ("" if mode == "full" else f"-{mode}")) / "sweep"


def settings(mode: str, **kw) -> S.Settings:
    sh = shape(mode)
    # --tiny trains in this process (threads "all"): the tests run it in-process, where the
    # programs other tests compiled are reused; worker processes would each start JAX and
    # compile again. The sweep's own tests cover the workers.
    tiny = dict(check_memory=False, threads="all") if mode == "tiny" else {}
    return S.Settings(batch=sh["batch"], seq=sh["seq"], **{**tiny, **kw})


def run(points, sett: S.Settings, out: Path, quiet: bool) -> list[dict]:
    """Train what is not finished (resumable) and return the sweep's table rows.

    Ctrl-C or SIGTERM stops the sweep as `knobsim sweep` does (the runs in training write a
    checkpoint and stop; rerun the same command to resume): one line and exit code 130 /
    143, as any other refusal of the library (one line, its exit code), no traceback. A
    second one stops at once (exit 130); so does another sweep on the same folder (exit 2)."""
    from knobsim.cli.train import stop_handlers
    from knobsim.errors import KnobsimError

    rep = S.Reporter() if quiet else S.RichReporter()
    try:
        with stop_handlers():
            res = S.run_sweep(points, sett, out, reporter=rep)
    except KnobsimError as e:
        stopped = e.exit_code in (130, 143)  # a requested stop is no error
        print(f"{'' if stopped else 'error: '}{e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:  # a second Ctrl-C / SIGTERM while the first was stopping the workers
        print("interrupted: stopped at once; the runs in training resume from their last "
              "checkpoint when the same command runs again", file=sys.stderr)
        raise SystemExit(130) from None
    return S.read_rows(res.table)


def finish(a, summary: dict, pngs: list[Path]) -> None:
    summary = {"mode": a.mode, "runtime_s": round(time.perf_counter() - a.t0, 1), **summary,
               "figures": [p.name for p in pngs]}
    record.write_json_atomic(a.out / "summary.json", summary)
    # The headline: scalars and intervals; nested tables stay in summary.json.
    for k, v in record.clean_json(summary).items():
        if v is None or isinstance(v, (int, float, str)) or (
                isinstance(v, list) and len(v) <= 4 and all(isinstance(x, (int, float)) for x in v)):
            print(f"{k:>24}: {json.dumps(v)}")
    print(f"wrote {', '.join(str(p) for p in pngs)} and {a.out / 'summary.json'}")


def fit_dict(fit) -> dict:
    """A scaling fit as plain numbers (constants and their 95% intervals)."""
    from knobsim.scaling.frontier import fit_to_dict

    return record.clean_json(fit_to_dict(fit))
