#!/usr/bin/env bash
# Issue 22, item 1: does doubling the text change each size's eval loss by < 1%?
# The full run's own shapes (scaling_params full mode: budgets 3.16e4, 1e5, 3.16e5), seed 0,
# default lr rule, 16 x 64, at half the full run's characters; compare with its results.csv.
cd "$(dirname "$0")/../../.."
K=.venv/bin/knobsim
for spec in "3.16e4 16M" "1e5 16M" "3.16e5 32M"; do
  set -- $spec
  $K sweep --params $1 --seeds 1 --tokens $2 --out experiments/out/scaling_doubling/n$1-d$2 -q 2>&1 | tail -3
done
echo DOUBLING DONE
