"""Regenerate the README's four pictures and docs/scaling.md's lesson in docs/figures/
(`make figures`: ~6 min on a 2-core CPU, measured, 5 of them the L(N) fits' bootstraps;
+9 min when the English-like quick sweep must run).

The three L(N) pictures are drawn from the committed full run, experiments/results/
scaling_params/ (results.csv and curves.csv; its README says the command, CPU and commit
that trained it), with --table: nothing is trained for them. Without that folder they
fall back to the --quick runs.

    explosion.png        experiments/explosion.py --table ...: 20 knobs to ~10T, and the brain
    l_of_n.png           experiments/scaling_params.py --table ...: L(N), the exact floor, the fit band
    learning_curves.png  experiments/learning_curves.py --table ...: every size against compute
    dials.gif            `knobsim train --params 1e5` then `knobsim watch`: knobs turning
    english_lesson.png   experiments/scaling_params.py --quick --preset english, real_vs_ideal.png:
                         why an E-free fit misses the floor of the English-like language

Each figure is made by the command a user would type (nothing is drawn here), then copied
and shrunk (PNGs to at most 1200 pixels wide, the GIF to 560) so that the repository stays small. Outputs of the
experiments stay in experiments/out/ as usual; an experiment already run with --quick is
reused (delete experiments/out/<name>-quick to redo it).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs" / "figures"
OUT = HERE / "out"
COMMITTED = HERE / "results" / "scaling_params" / "results.csv"  # the full run's table
MAX_WIDTH = 1200
GIF_WIDTH = 560  # the README shows it at about this size; 1 MB at full size, ~1/3 here


def _run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT)


def _experiment(name: str, png: str, preset: str | None = None) -> Path:
    out = OUT / (f"{name}-quick" + (f"-{preset}" if preset else ""))
    if not (out / "summary.json").is_file():
        _run(sys.executable, str(HERE / f"{name}.py"), "--quick", "-q",
             *(("--preset", preset) if preset else ()))
    return out / png


def _from_results(name: str, png: str) -> Path:
    """The L(N) figures: drawn from the committed full run (experiments/results/
    scaling_params: results.csv and curves.csv) when it is there, training nothing;
    otherwise from the quick run."""
    if not COMMITTED.is_file():
        return _experiment(name, png)
    out = OUT / f"{name}-committed"
    _run(sys.executable, str(HERE / f"{name}.py"), "-q", "--table", str(COMMITTED), "--out", str(out))
    return out / png


def _knobsim() -> str:
    exe = Path(sys.executable).with_name("knobsim")
    return str(exe) if exe.exists() else "knobsim"


def _dials() -> Path:
    run = OUT / "train-params-1e5"  # its name titles the GIF
    if not (run / "summary.json").is_file():
        _run(_knobsim(), "train", "--params", "1e5", "--out", str(run), "--overwrite")
    _run(_knobsim(), "watch", str(run))
    return run / "figures" / "dials.gif"


def _shrink_png(src: Path, dst: Path) -> None:
    from PIL import Image

    im = Image.open(src)
    if im.width > MAX_WIDTH:
        im = im.resize((MAX_WIDTH, round(im.height * MAX_WIDTH / im.width)), Image.LANCZOS)
    im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)


def _shrink_gif(src: Path, dst: Path) -> None:
    """Smaller frames, one shared 32-colour palette, no dithering: 1 MB -> about 200 KB."""
    from PIL import Image, ImageSequence

    im = Image.open(src)
    size = (GIF_WIDTH, round(im.height * GIF_WIDTH / im.width))
    frames = [fr.convert("RGB").resize(size, Image.LANCZOS) for fr in ImageSequence.Iterator(im)]
    durations = [fr.info.get("duration", 120) for fr in ImageSequence.Iterator(im)]
    palette = frames[-1].quantize(colors=32, method=Image.Quantize.MEDIANCUT)
    q = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    q[0].save(dst, save_all=True, append_images=q[1:], duration=durations, loop=0, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.parse_args()
    DOCS.mkdir(parents=True, exist_ok=True)
    _shrink_png(_from_results("scaling_params", "scaling_params.png"), DOCS / "l_of_n.png")
    _shrink_png(_from_results("explosion", "explosion.png"), DOCS / "explosion.png")
    _shrink_png(_from_results("learning_curves", "learning_curves.png"), DOCS / "learning_curves.png")
    _shrink_gif(_dials(), DOCS / "dials.gif")
    _shrink_png(_experiment("scaling_params", "real_vs_ideal.png", "english"), DOCS / "english_lesson.png")
    for p in sorted(DOCS.iterdir()):
        print(f"{p.relative_to(ROOT)}  {p.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
