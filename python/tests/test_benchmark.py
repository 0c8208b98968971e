"""Model.benchmark returns the figures `ticket infer --bench` prints, under the same keys."""

import ticket


def test_benchmark_reports_both_paths(conv_model):
    path, _, _ = conv_model
    model = ticket.load(path)
    figures = model.benchmark(threads=1)
    assert figures["threads"] == 1
    for name in ("sparse", "dense"):
        path_figures = figures[name]
        for key in ("batch1_us_p50", "batch1_us_p99", "batch64_us_per_sample",
                    "batch1024_us_per_sample"):
            assert path_figures[key] > 0, (name, key)
        assert path_figures["batch1_us_p50"] <= path_figures["batch1_us_p99"]
    steps = [s["step"] for s in figures["sparse"]["layers"]]
    assert any(s.startswith("conv1") for s in steps) and "fc2" in steps
    assert figures["weight_bytes"]["dense"] == 4 * (4 * 9 + 4 + 6 * 24 + 6 + 24 * 16 + 16 + 16 * 10 + 10)


def test_benchmark_refuses_zero_threads(conv_model):
    import pytest

    with pytest.raises(ticket.TicketError, match="threads"):
        ticket.load(conv_model[0]).benchmark(threads=0)
