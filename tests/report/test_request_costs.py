"""The cost of R requests: one-time plus R x per request, retraining as the first row."""

import pytest

from unlearnkit.report.request_costs import RequestCost, request_cost_table


def test_totals_add_the_one_time_cost_once():
    prepared = RequestCost("shadow_matching", per_request=0.09, one_time=28.0)
    assert prepared.total(1) == pytest.approx(28.09)
    assert prepared.total(100) == pytest.approx(37.0)
    table = request_cost_table([prepared, RequestCost("salun", 0.5)])
    lines = table.splitlines()
    assert lines[2].startswith("| retrain | 0.00 | 1.000 | 1.0 | 10.0 | 100.0 |")
    assert lines[3] == "| shadow_matching | 28.00 | 0.090 | 28.1 | 28.9 | 37.0 |"
    assert lines[4].endswith("| 0.5 | 5.0 | 50.0 |")


def test_negative_costs_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        RequestCost("x", -1.0)
