"""``bench``, ``forget`` and ``methods`` end to end on models defined outside the package (examples/architectures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from unlearnkit.cli import main
from unlearnkit.engine.train import TrainConfig, train_model
from unlearnkit.methods import METHODS
from unlearnkit.results.leaderboard import CEILING, read_leaderboard
from unlearnkit.runner.setting import make_setting_config, resolve_setting

EXAMPLES = Path(__file__).parents[2] / "examples" / "architectures.py"
DATA = {"people": 40, "image_size": 16, "min_images": 3, "max_images": 5}
TINY = [
    "--set", "dataset.people=40", "--set", "dataset.image_size=16", "--set", "dataset.min_images=3",
    "--set", "dataset.max_images=5", "--set", "train.epochs=1", "--set", "train.precision=fp32",
    "--forget", "identity:0.1", "--workers", "1",
]


def test_bench_runs_a_factory_file_model_in_worker_processes(tmp_path):
    out = tmp_path / "out"
    argv = ["bench", *TINY, "--model", f"{EXAMPLES}:mobilenet", "--set", "model.width=8",
            "--methods", "finetune,cf_k", "--seeds", "8", "--no-ceiling", "--out", str(out),
            "--cache-dir", str(tmp_path / "cache"), "--set", "method.finetune.epochs=1", "--set", "method.cf_k.epochs=1"]
    assert main(argv) == 0
    board = read_leaderboard(out / "leaderboard.json")
    assert board.model == f"{EXAMPLES}:mobilenet"
    assert {r.method for r in board.rows} == {"finetune", "cf_k"} and CEILING not in {r.method for r in board.rows}
    assert all(r.score is not None and r.feature_quality is not None for r in board.rows)
    assert board.setting["model"]["config"] == {"width": 8, "dropout": 0.0}


def test_bench_refuses_a_named_method_that_does_not_apply_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["bench", *TINY, "--model", f"{EXAMPLES}:odd_head", "--methods", "finetune,transposed", "--seeds", "8",
            "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "method transposed does not apply" in err and "square conv kernel" in err
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_methods_lists_the_verdict_for_a_model(capsys):
    assert main(["methods", "--model", f"{EXAMPLES}:odd_head"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"{len(METHODS) - 3} of {len(METHODS)} apply" in text
    for name in ("scramble_relearn", "transposed", "activation_pruning"):
        assert f"{name} │ no" in text


def test_forget_takes_a_state_dict_of_a_factory_model_and_skips_methods_that_do_not_apply(tmp_path):
    name = f"{EXAMPLES}:odd_head"
    setting = resolve_setting(make_setting_config(dataset_options=DATA, forget=None, model=name,
                                                  model_options={"width": 8}))
    recipe = TrainConfig(epochs=3, batch_size=32, precision="fp32", keep_best=False)
    model = train_model(setting.spec, setting.sets.train, None, recipe, seed=0).model
    torch.save(model.state_dict(), tmp_path / "odd.pth")
    argv = ["forget", "--checkpoint", str(tmp_path / "odd.pth"), "--model", name, "--set", "model.width=8",
            *[a for a in TINY[:8]], "--identities", "0,5", "--out", str(tmp_path / "erase")]
    assert main(argv) == 0
    audit = json.loads((tmp_path / "erase" / "audit.json").read_text())
    assert audit["method"]["name"] not in ("scramble_relearn", "transposed", "activation_pruning")
    assert (tmp_path / "erase" / "model.safetensors").is_file()
