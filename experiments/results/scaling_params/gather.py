"""Gather the full run's finished runs from the sweeps that trained them (issue 22, item 2).

    python experiments/results/scaling_params/gather.py SWEEP_DIR [SWEEP_DIR ...]

A sweep names each run's folder by a hash of everything asked of the run (size, tokens,
seed, lr, batch, seq, language: knobsim.scaling.points.run_name), so a run that another
script asked for with the same request is the very run the full mode asks for: the
half-rule runs of experiments/results/lr_full_budget/run.py, the rule's runs of the
earlier full mode. For each point of the full mode (experiments/_common.py, LN_SWEEP and
FULL_LR_MULTIPLE) this links its finished folder (hard links, no copy) from the first
SWEEP_DIR that has it into experiments/out/scaling_params/sweep/runs, where
`python experiments/scaling_params.py` finds it finished and trains only what is missing.
It never overwrites a folder and prints what it linked and what is still to train.
"""
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import _common as C  # noqa: E402
from knobsim.scaling import sweep as S  # noqa: E402

if len(sys.argv) < 2:
    sys.exit(__doc__.strip().splitlines()[2].strip())
sources = [Path(d) / "runs" for d in sys.argv[1:]]
target = HERE.parents[1] / "out" / "scaling_params" / "sweep" / "runs"
target.mkdir(parents=True, exist_ok=True)
sett = C.settings("full")
missing = []
for p in C.ln_points("full"):
    name = S.run_name(p, sett, p.lr)
    if (target / name).exists():
        print(f"there   {name}")
        continue
    found = next((d / name for d in sources if (d / name / "summary.json").exists()), None)
    if found is None:
        missing.append(name)
        continue
    shutil.copytree(found, target / name, copy_function=os.link)
    print(f"linked  {name}  from {found.parent.parent}")
for name in missing:
    print(f"to train {name}")
