"""experiments/explosion.py: the chart names only rows the zoo has, draws every row of the
explainer's two tables (open and closed apart) and the brain's two references, and no two
of its labels overlap. The end-to-end --tiny run is in test_experiments.py."""

from __future__ import annotations

import importlib
import sys

import numpy as np
import pytest

from knobsim import scaling
from knobsim import zoo as Z
from knobsim.models.counting import count_decoder
from tiny_experiments import ROOT

# The explainer's two tables ("Explosion of Parameters in LLMs", "Open Source Models"),
# its small end, and its brain, as zoo keys.
CLOSED = {"gpt1", "gpt2-xl", "gpt3-175b", "gpt-4", "frontier"}
OPEN = {"gemma-2b", "llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "llama-3.1-70b",
        "llama-3.1-405b"}
SMALL = {"linear", "early-dnn"}
BRAIN = {"brain-neurons", "brain-synapses"}


@pytest.fixture(scope="module")
def X():
    sys.path.insert(0, str(ROOT / "experiments"))
    try:
        yield importlib.import_module("explosion")
    finally:
        sys.path.remove(str(ROOT / "experiments"))


def _keys(X, lane: str) -> set[str]:
    return {k for name, _, entries in X.LANES if name == lane for keys in entries for k in keys}


def test_every_key_the_chart_names_resolves_in_the_zoo(X):
    keys = [k for _, _, entries in X.LANES for e in entries for k in e]
    assert len(keys) == len(set(keys))
    for k in keys:
        assert Z.find(k).key == k  # a key, not an alias that happens to match


def test_the_chart_draws_the_explainers_rows_in_their_lanes(X):
    assert _keys(X, "closed") == CLOSED
    assert _keys(X, "open") == OPEN
    assert _keys(X, "knobsim") == SMALL
    assert _keys(X, "brain") == BRAIN


def test_every_reference_carries_the_zoos_count_and_a_source(X):
    for f in X.references():
        for p in f["parts"]:
            row = Z.find(p["key"])
            if isinstance(row, Z.Model):
                assert p["n"] == count_decoder(row.spec)["total"] and p["kind"] == "architecture"
            else:
                assert row.low <= p["n"] <= row.high and p["kind"] == row.kind
            assert p["source"]
    brain = [f for f in X.references() if f["lane"] == "brain"]
    assert [f["parts"][0]["n"] for f in brain] == [86e9, 1e14]
    assert all(f["kind"] == "biology" for f in brain)


@pytest.fixture(scope="module")
def drawn(X, tmp_path_factory):
    """The figure over a made-up sweep (the rows' numbers do not matter here)."""
    n = np.repeat([1e3, 1e4, 1e5], 2)
    loss = 1.0 + 5.0 * n ** -0.3 + np.tile([0.0, 0.01], 3)
    rows = [{"n_params_total": a, "final_eval_loss": b, "entropy_floor": 0.9, "seed": i % 2}
            for i, (a, b) in enumerate(zip(n, loss))]
    fit = scaling.fit_power_law(n, loss, var="n", bootstrap=6)
    refs = X.references()
    fig = X.draw(rows, fit, refs)
    yield fig, refs, X.summary(rows, fit, refs)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_the_brain_is_drawn_with_its_caveat(drawn):
    fig, _, _ = drawn
    strip = fig.axes[1]
    texts = [t.get_text() for t in strip.texts]
    assert "~86 billion neurons" in texts and "~100 trillion synapses" in texts
    assert any("not comparable one to one" in t for t in texts)
    lanes = [t.get_text() for t in strip.get_yticklabels()]
    assert any("human brain" in t for t in lanes)


def test_no_two_labels_overlap_and_none_leaves_the_figure(drawn):
    fig, refs, _ = drawn
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    strip = fig.axes[1]
    boxes = [(t.get_text(), t.get_window_extent(r)) for t in strip.texts]
    assert len(boxes) == len(refs) + 1  # a label per reference, and the brain's note
    for i, (a, ba) in enumerate(boxes):
        assert strip.get_window_extent(r).contains(ba.x0, ba.y0), a
        assert strip.get_window_extent(r).contains(ba.x1, ba.y1), a
        for b, bb in boxes[i + 1:]:
            assert not ba.overlaps(bb), (a, b)
    legend = fig.legends[0].get_window_extent(r)
    assert fig.bbox.contains(legend.x0, legend.y0) and fig.bbox.contains(legend.x1, legend.y1)


def test_summary_lists_every_drawn_reference_with_count_and_source(drawn):
    _, refs, s = drawn
    listed = {x["key"]: x for x in s["references"]}
    assert set(listed) == CLOSED | OPEN | SMALL | BRAIN
    for x in listed.values():
        assert x["count"] > 0 and x["source"] and x["lane"]
    assert listed["brain-synapses"]["unit"] == "synapses"
    assert listed["llama-3.1-70b"]["count"] == 70_553_706_496
    # the law is extrapolated to models only, never to the brain
    assert {e["key"] for e in s["extrapolations"]} == CLOSED | OPEN
