#!/usr/bin/env bash
# Issue 22 pilot: eval loss vs tokens at three sizes (1 seed, default lr rule, 16 x 64).
cd "$(dirname "$0")/../../.."
K=.venv/bin/knobsim
for spec in "3e3 1M" "3e3 2M" "3e3 4M" "3e3 8M" "3e4 2M" "3e4 4M" "3e4 8M" "3e4 16M" "3e5 4M" "3e5 8M" "3e5 16M"; do
  set -- $spec
  $K sweep --params $1 --seeds 1 --tokens $2 --out experiments/out/scaling_pilot/n$1-d$2 -q 2>&1 | tail -3
done
echo PILOT DONE
