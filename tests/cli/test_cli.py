"""The command line end to end on tiny data: train, retrain, unlearn, resume, and bad input."""

from __future__ import annotations

import json

import pytest

from unlearnkit.cli import main

TINY = [
    "--set", "dataset.people=24", "--set", "dataset.image_size=16",
    "--set", "dataset.min_images=3", "--set", "dataset.max_images=5",
]
TRAIN = ["--model", "test_small_cnn", "--set", "train.epochs=1", "--set", "train.precision=fp32"]


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    out = tmp_path_factory.mktemp("orig")
    assert main(["train", *TINY, *TRAIN, "--seeds", "0:2", "--out", str(out)]) == 0
    return out


def test_train_writes_checkpoints_and_a_run_record(original):
    run = json.loads((original / "run.json").read_text())
    assert run["job"] == "original" and run["setting"]["train"]["epochs"] == 1
    assert run["provenance"]["unlearnkit"]
    side = json.loads((original / "models" / "seed_0001.json").read_text())
    assert side["k"] == 1 and set(side["accuracy"]) == {"train", "val", "test"}
    assert not list(original.rglob("*.tmp"))


def test_train_resumes_and_refuses_a_different_run(original, capsys):
    before = (original / "models" / "seed_0000.safetensors").stat().st_mtime_ns
    assert main(["train", *TINY, *TRAIN, "--seeds", "0:3", "--out", str(original)]) == 0
    assert "resuming: 2 of 3" in capsys.readouterr().out
    assert (original / "models" / "seed_0000.safetensors").stat().st_mtime_ns == before
    assert main(["train", *TINY, *TRAIN, "--set", "train.lr=0.5", "--seeds", "0:1", "--out", str(original)]) == 2
    assert "holds a different run" in capsys.readouterr().err


def test_retrain_and_unlearn(original, tmp_path):
    retrain = tmp_path / "retrain"
    assert main(["train", *TINY, *TRAIN, "--forget", "identity:0.2", "--seeds", "0:1", "--out", str(retrain)]) == 0
    forget = json.loads((retrain / "forget.json").read_text())
    assert forget["size"] > 0 and json.loads((retrain / "run.json").read_text())["job"] == "retrain"
    out = tmp_path / "ft"
    ckpt = original / "models" / "seed_0000.safetensors"
    args = ["unlearn", *TINY, "--method", "finetune", "--checkpoint", str(ckpt), "--forget", "identity:0.2",
            "--seeds", "0:2", "--out", str(out), "--set", "method.epochs=1"]
    assert main(args) == 0
    side = json.loads((out / "models" / "seed_0001.json").read_text())
    assert side["method"] == "finetune" and side["cost"]["steps"] > 0
    assert {"time_ratio", "step_ratio", "over_time_limit"} <= set(side["cost"])
    assert set(side["accuracy"]) == {"forget", "retain", "val", "test"}
    assert json.loads((out / "forget.json").read_text())["fingerprint"] == forget["fingerprint"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--dataset", "celebaa", "--out", "{out}"], "unknown dataset 'celebaa'"),
        (["train", "--model", "resnet81", "--out", "{out}"], "Did you mean 'resnet18'"),
        (["train", *TINY, "--forget", "class:0,1,2,3,4,5,6,7,8,9", "--out", "{out}"], "selects all"),
        (["train", *TINY, "--forget", "identities:99999", "--out", "{out}"], "not among the"),
        (["train", "--dataset", "celeba", "--data-root", "{out}/nowhere", "--out", "{out}"], "nowhere"),
        (["train", "--set", "train.epochs=zero", "--out", "{out}"], "train.epochs: expected an integer"),
        (["train", "--set", "nope.x=1", "--out", "{out}"], "unknown setting section 'nope'"),
        (["train", "--seeds", "5:5", "--out", "{out}"], "selects no seeds"),
        (["unlearn", "--method", "scrubb", "--checkpoint", "x.safetensors", "--forget", "random:0.1", "--out", "{out}"],
         "Did you mean 'scrub'"),
        (["unlearn", "--method", "finetune", "--checkpoint", "{out}/none.safetensors", "--forget", "random:0.1",
          "--out", "{out}"], "does not exist"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, argv, message):
    out = tmp_path / "out"
    argv = [a.replace("{out}", str(out)) for a in argv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() or not any(out.rglob("*.safetensors"))


def test_help_shows_examples(capsys):
    assert main(["train", "--help"]) == 0
    assert "examples:" in capsys.readouterr().out
