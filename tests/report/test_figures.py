"""The forgetting-vs-utility scatter's labels: beside their markers, never on top of each other."""

import numpy as np

from unlearnkit.report.figures import LABEL_SLOTS, _label_offsets, forgetting_vs_utility


def _points(n, seed=0, spread=1.0):
    rng = np.random.default_rng(seed)
    return [{"name": f"method_{i}", "test": 0.3 + spread * 0.05 * rng.random(), "forget_quality": spread * 0.05 * rng.random(),
             "cost_ratio": 0.1, "ceiling": False} for i in range(n)]


def test_spread_markers_are_labelled_to_their_right():
    points = [{"name": n, "test": t, "forget_quality": f, "cost_ratio": 0.1, "ceiling": False}
              for n, t, f in (("a", 0.1, 0.0), ("b", 0.5, 0.5), ("c", 0.9, 1.0))]
    assert set(_label_offsets(points).values()) == {LABEL_SLOTS[0]}


def _crowd():
    """A tight cluster of 23 rows and two far away, like a bench of every method and its ceiling."""
    far = [{"name": "ceiling", "test": 0.33, "forget_quality": 0.24, "cost_ratio": 1.0, "ceiling": True},
           {"name": "outlier", "test": 0.18, "forget_quality": 0.15, "cost_ratio": 0.2, "ceiling": False}]
    return _points(23, spread=0.2) + far


def test_a_crowd_gets_slots_near_its_markers_and_a_key_for_the_rest():
    points = _crowd()
    offsets = _label_offsets(points)
    assert set(offsets) == {p["name"] for p in points}
    placed = [o for o in offsets.values() if o is not None]
    assert placed and all(o in LABEL_SLOTS for o in placed)  # never further than the last slot
    assert None in offsets.values()  # 25 labels cannot all fit beside one cluster
    # The picture draws (a key is added for the numbered markers).
    assert forgetting_vs_utility(points, 0.32, 0.2).startswith("data:image/png;base64,")


def test_placed_labels_do_not_overlap():
    points = _crowd()
    xs, ys = [p["test"] for p in points], [p["forget_quality"] for p in points]
    boxes = []
    for p in points:
        slot = _label_offsets(points)[p["name"]]
        if slot is None:
            continue
        x = (p["test"] - min(xs)) / (max(xs) - min(xs)) + slot[0] / 300
        y = (p["forget_quality"] - min(ys)) / (max(ys) - min(ys)) + slot[1] / 200
        boxes.append(((x, x + 0.25) if slot[2] == "left" else (x - 0.25, x), y))
    for i, ((l1, r1), y1) in enumerate(boxes):
        for (l2, r2), y2 in boxes[i + 1:]:
            assert not (l1 < r2 and l2 < r1 and abs(y1 - y2) < 0.05)
