#!/bin/bash
# Wall time of `knobsim train --params 1e5` and of every experiment's --quick mode at two
# commits, one after the other on this machine; and whether their summaries are the same.
#
#   bash benchmarks/before_after.sh BEFORE_REV [AFTER_REV]     # AFTER_REV defaults to HEAD
#
# Each commit is checked out in a temporary git worktree and run with this checkout's
# virtualenv (PYTHONPATH points at the worktree's src/), each with its own initially empty
# KNOBSIM_CACHE; "after-warm" reruns `knobsim train` on the after-cache. Takes ~30 minutes
# on a 2-core laptop. Writes OUT/times.tsv (OUT defaults to /tmp/knobsim-before-after) and
# prints whether each experiment's summary.json is the same before and after (all but
# its runtime_s).
set -u
BEFORE=${1:?usage: before_after.sh BEFORE_REV [AFTER_REV]}
AFTER=${2:-HEAD}
PY=${PYTHON:-$(pwd)/.venv/bin/python}
OUT=${OUT:-/tmp/knobsim-before-after}
rm -rf "$OUT"; mkdir -p "$OUT"/{before,after,after-warm}
for v in before after; do
  rev=$BEFORE; [ $v = after ] && rev=$AFTER
  git worktree add -q --detach "$OUT/src-$v" "$rev"
done
trap 'git worktree remove --force "$OUT/src-before"; git worktree remove --force "$OUT/src-after"' EXIT
log=$OUT/times.tsv
echo -e "what\tvariant\twall_s\trc" > "$log"
t() {  # variant label command...
  local v=$1 label=$2; shift 2
  local s; s=$(date +%s.%N)
  PYTHONPATH="$OUT/src-${v%-warm}/src" "$@" > "$OUT/$v/$label.log" 2>&1
  local rc=$?
  echo -e "$label\t$v\t$(echo "$(date +%s.%N) - $s" | bc)\t$rc" >> "$log"
}
for i in 1 2 3; do
  KNOBSIM_CACHE=$OUT/cache-before t before train1e5-$i "$PY" -m knobsim train --params 1e5 -q --json --out "$OUT/before/train-$i"
  KNOBSIM_CACHE=$OUT/cache-after-$i t after train1e5-$i "$PY" -m knobsim train --params 1e5 -q --json --out "$OUT/after/train-$i"
  KNOBSIM_CACHE=$OUT/cache-after-$i t after-warm train1e5-$i "$PY" -m knobsim train --params 1e5 -q --json --out "$OUT/after-warm/train-$i"
done
for e in scaling_params learning_curves explosion data_scaling zipf_exponent isoflop knob_drift finetune_plasticity; do
  for v in before after; do
    KNOBSIM_CACHE=$OUT/cache-$v t $v "$e" "$PY" "$OUT/src-$v/experiments/$e.py" --quick -q --out "$OUT/$v/$e-quick"
  done
  "$PY" - "$OUT/before/$e-quick/summary.json" "$OUT/after/$e-quick/summary.json" "$e" <<'EOF2'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a.pop("runtime_s", None); b.pop("runtime_s", None)  # the only field allowed to differ
print(f"{sys.argv[3]}: summary.json {'the same' if a == b else 'DIFFERS'} (runtime_s aside)")
EOF2
done
column -t "$log"
