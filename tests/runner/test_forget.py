"""``unlearnkit forget`` on tiny data: the erasure works, the audit carries every field, bad input is refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from unlearnkit.engine.checkpoint import load_checkpoint
from unlearnkit.errors import InputError
from unlearnkit.methods import METHODS
from unlearnkit.models import ModelSpec, build_model
from unlearnkit.models.resnet import ResNet18Config
from unlearnkit.runner.forget import RESULTS_DIR, default_method, make_forget_job, run_forget
from unlearnkit.runner.jobs import TrainJob, run_train
from unlearnkit.runner.setting import make_setting_config, resolve_setting

# 40 synthetic people, 3-5 images each (115 training images), 16x16, 10 classes.
DATA = {"people": 40, "min_images": 3, "max_images": 5}
# A model that memorises the training people (forget accuracy 1.0, unseen people about 0.05).
MEMORISE = {"epochs": 20, "batch_size": 16, "keep_best": False, "precision": "fp32"}
# Fine-tuning hard enough on the retain set that the forget set is forgotten (measured: forget accuracy
# 0.0-0.46 from 1.0 over 3 originals x 2 seeds, fp32 and bf16, retain accuracy >= 0.98).
FORGET_HARD = {"epochs": 10, "lr": 0.05, "batch_size": 16, "cosine": True}
PEOPLE = "0,5,6"  # training people of DATA (ids 1-4 are in the val/test splits)


def _log(_text: str) -> None:
    pass


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    root = tmp_path_factory.mktemp("forget")
    setting = make_setting_config(dataset_options=DATA, forget=None, model="small_cnn", model_options={"width": 16},
                                  train_options=MEMORISE)
    (path,) = run_train(TrainJob(setting, (0,), out=str(root / "orig")), log=_log)
    return root, path


@pytest.fixture(scope="module")
def cheap_original(tmp_path_factory):
    """A quickly trained tiny model, for the tests that train 16 references."""
    root = tmp_path_factory.mktemp("cheap")
    setting = make_setting_config(dataset_options=DATA, forget=None, model="test_small_cnn",
                                  train_options={"epochs": 3, "batch_size": 32, "precision": "fp32"})
    (path,) = run_train(TrainJob(setting, (0,), out=str(root / "orig")), log=_log)
    return root, path


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_forget_moves_forget_accuracy_to_unseen_level_and_keeps_retain(original, tmp_path, precision):
    _, ckpt = original
    out = tmp_path / "out"
    job = make_forget_job(str(ckpt), out=str(out), dataset_options=DATA, identities=PEOPLE, method="finetune",
                          method_options=FORGET_HARD, train_options={"precision": precision},
                          cache_dir=str(tmp_path / "cache"))
    audit = run_forget(job, log=_log)
    m = audit["measures"]
    fb, fa, unseen = m["forget_accuracy"]["before"], m["forget_accuracy"]["after"], m["unseen_accuracy"]["before"]
    assert fb >= 0.9 and unseen <= 0.3  # the original memorised these people
    assert fa <= (fb + unseen) / 2 + 0.05, f"forget accuracy {fb} -> {fa}, unseen people {unseen}"
    assert m["retain_accuracy"]["after"] >= m["retain_accuracy"]["before"] - 0.02
    assert m["forget_confidence"]["after"] < m["forget_confidence"]["before"]

    # Every listed field, before and after.
    assert set(m) >= {"retain_accuracy", "test_accuracy", "forget_accuracy", "forget_confidence", "unseen_accuracy",
                      "unseen_confidence", "loss_mia", "svc_mia_efficacy", "svc_mia_baseline"}
    for name, value in m.items():
        assert value["before"] is not None and value["after"] is not None, name
    people = audit["per_identity"]
    assert [p["identity"] for p in people] == [0, 5, 6] and sum(p["images"] for p in people) == audit["forget"]["examples"]
    for p in people:
        assert set(p["accuracy"]) == set(p["confidence"]) == {"before", "after"}
    cost = audit["cost"]
    assert cost["steps"] > 0 and cost["seconds"] > 0 and cost["retrain_steps"] > 0
    assert cost["step_ratio"] == pytest.approx(cost["steps"] / cost["retrain_steps"])
    assert cost["time_ratio"] is not None  # the original's sidecar records its training time
    assert audit["method"]["seed"] and audit["method"]["chosen_because"] == "given with --method"
    assert audit["forgetting_quality"]["verified"] is False
    assert any("not verified" in t and "--references 16" in t for t in audit["not_verified"])
    assert audit["verified"] and audit["setting"]["runtime"]["bf16"] is (precision == "bf16")

    # The files: the audit as returned, a page that needs nothing else, and a loadable model.
    assert json.loads((out / "audit.json").read_text()) == audit
    page = (out / "audit.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Not verified" in page and "<svg" in page
    assert not re.search(r"<script|<link|src=|href=|url\(", page)
    _, spec, info = load_checkpoint(out / "model.safetensors")
    assert spec.name == "small_cnn" and info["forget_fingerprint"] == audit["forget"]["fingerprint"]
    assert info["accuracy"]["forget"] == pytest.approx(fa)

    # A rerun finds the finished audit; another request into the same folder is refused.
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert run_forget(job, log=_log) == audit
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    other = make_forget_job(str(ckpt), out=str(out), dataset_options=DATA, identities="0", method="finetune",
                            train_options={"precision": precision}, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(InputError, match="another forget run"):
        run_forget(other, log=_log)


def test_references_give_the_eps_delta_score_and_are_reused_from_the_cache(cheap_original, tmp_path):
    _, ckpt = cheap_original
    cache = str(tmp_path / "cache")
    examples = tmp_path / "examples.txt"
    ds = resolve_setting(make_setting_config(dataset_options=DATA, forget=None)).dataset  # the checkpoint's data
    chosen = ds.indices("train")[:12]
    examples.write_text("# images to erase\n" + "\n".join(map(str, chosen)) + "\n\n")
    args = {"dataset_options": DATA, "examples": str(examples), "method": "finetune", "cache_dir": cache}
    first = run_forget(make_forget_job(str(ckpt), out=str(tmp_path / "a"), references=8, **args), log=_log)
    q = first["forgetting_quality"]
    assert q["verified"] and q["n"] == 8 and q["references_trained_now"] == 16
    for row in (q["method"], q["ceiling"]):
        assert 0 <= row["forget_quality"] <= 1 and 0 <= row["forget_quality_bounded"] <= 1 and row["score"] >= 0
    assert len(q["epsilons"]) == len(chosen) == first["forget"]["examples"]
    assert first["forget"]["indices"] == sorted(chosen.tolist())
    assert any("(ε, δ) forgetting quality" in t for t in first["verified"])
    assert first["per_identity"] and all(p["mean_epsilon"] is not None for p in first["per_identity"])
    assert first["cost"]["retrain_seconds_from"] == "retrained references trained one at a time"

    # Cached references count without --references, keyed like a bench's.
    second = run_forget(make_forget_job(str(ckpt), out=str(tmp_path / "b"), **args), log=_log)
    q2 = second["forgetting_quality"]
    assert q2["verified"] and q2["n"] == 8 and q2["references_trained_now"] == 0
    assert q2["method"]["forget_quality"] == pytest.approx(q["method"]["forget_quality"])


def test_a_torchvision_style_resnet18_state_dict_loads_and_runs(tmp_path):
    spec = ModelSpec("resnet18", 10, 3, 16, ResNet18Config(stem="imagenet"))
    torch.manual_seed(0)
    state = build_model(spec).state_dict()
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
            "layer4.1.bn2.weight", "fc.weight", "fc.bias"} <= set(state)
    assert tuple(state["conv1.weight"].shape) == (64, 3, 7, 7)  # torchvision's stem
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    job = make_forget_job(str(path), out=str(tmp_path / "out"), dataset_options=DATA, identities=PEOPLE,
                          method="finetune", train_options={"precision": "fp32"}, cache_dir=str(tmp_path / "cache"))
    assert job.setting.model == "resnet18" and job.setting.model_config.stem == "imagenet"  # inferred from the tensors
    audit = run_forget(job, log=_log)
    assert audit["checkpoint"]["format"] == "PyTorch state dict"
    assert audit["measures"]["forget_accuracy"]["after"] is not None
    assert any("records no recipe" in t for t in audit["not_verified"])
    assert (tmp_path / "out" / "model.safetensors").is_file()


# -- bad input ---------------------------------------------------------------------------------------

def _refuse(tmp_path, ckpt, *patterns, **kwargs):
    out = tmp_path / "out"
    nothing = kwargs.pop("nothing", False)
    args = {"dataset_options": DATA, "method": "finetune", "cache_dir": str(tmp_path / "cache"),
            "train_options": {"precision": "fp32"}, **kwargs}
    if not nothing and not any(args.get(k) for k in ("identities", "examples", "forget")):
        args["identities"] = PEOPLE
    with pytest.raises(InputError) as info:
        run_forget(make_forget_job(str(ckpt), out=str(out), **args), log=_log)
    for pattern in patterns:
        assert pattern in str(info.value), str(info.value)
    assert not out.exists()
    return str(info.value)


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_a_pickled_model_is_refused_with_how_to_convert_it(tmp_path):
    model = build_model(ModelSpec("test_small_cnn", 10, 3, 16))
    path = _save(tmp_path, "whole_model.pth", model)
    _refuse(tmp_path, path, "whole_model.pth", "pickled", "torch.save(model.state_dict()")


@pytest.mark.parametrize(("spec", "patterns"), [
    (ModelSpec("resnet18", 5, 3, 16, ResNet18Config(stem="imagenet")), ["5 classes", "has 10"]),
    (ModelSpec("small_cnn", 10, 1, 16), ["1-channel", "3 channels"]),
    (ModelSpec("test_mlp", 10, 3, 8), ["input size", "192 inputs"]),
])
def test_a_state_dict_that_does_not_fit_says_which_part(tmp_path, spec, patterns):
    path = _save(tmp_path, "model.pth", build_model(spec).state_dict())
    _refuse(tmp_path, path, "model.pth", *patterns)


def test_an_unknown_architecture_and_a_missing_file_are_refused(tmp_path):
    path = _save(tmp_path, "odd.pt", {"encoder.weight": torch.zeros(3, 3)})
    _refuse(tmp_path, path, "odd.pt", "does not match any registered architecture", "--model")
    _refuse(tmp_path, path, "odd.pt", "model small_cnn", model="small_cnn")
    _refuse(tmp_path, tmp_path / "absent.pth", "absent.pth", "no such file")
    text = tmp_path / "weights.txt"
    text.write_text("not a model")
    _refuse(tmp_path, text, "weights.txt", ".safetensors")


def test_our_checkpoint_on_other_data_is_refused(original, tmp_path):
    _, ckpt = original
    _refuse(tmp_path, ckpt, "was trained on dataset", dataset_options={**DATA, "seed": 1}, forget="identity:0.1")


def test_people_outside_the_training_split_are_listed(original, tmp_path):
    _, ckpt = original
    message = _refuse(tmp_path, ckpt, "--identities", "3 of 4 people", identities="0,1,2,999")
    assert "1 (only in the val split)" in message and "2 (only in the test split)" in message
    assert "999 (not in the dataset)" in message


def test_examples_outside_the_training_split_or_unknown_are_listed(original, tmp_path):
    _, ckpt = original
    ds = resolve_setting(make_setting_config(dataset_options=DATA, forget=None)).dataset
    test_idx = ds.indices("test")[:7]
    listed = tmp_path / "forget.txt"
    listed.write_text("\n".join(map(str, [*ds.indices("train")[:2], *test_idx])))
    _refuse(tmp_path, ckpt, "forget.txt", "7 examples are not in synthetic's training split",
                      f"{test_idx[0]} (test split)", "and 2 more", examples=str(listed))
    listed.write_text("0\nface_0001.jpg\n99999\n")
    _refuse(tmp_path, ckpt, "2 lines name no example", "face_0001.jpg", "99999", "records no image names",
            examples=str(listed))


@pytest.mark.parametrize("content", ["", "# nothing here\n\n"])
def test_an_empty_forget_set_is_refused(original, tmp_path, content):
    _, ckpt = original
    empty = tmp_path / "empty.txt"
    empty.write_text(content)
    _refuse(tmp_path, ckpt, "empty.txt", "the forget set would be empty", examples=str(empty))
    _refuse(tmp_path, ckpt, "--identities", "empty", identities=",")


def test_what_to_forget_must_be_said_once(original, tmp_path):
    _, ckpt = original
    _refuse(tmp_path, ckpt, "exactly one of", nothing=True)
    _refuse(tmp_path, ckpt, "--identities and --forget", identities="0", forget="identity:0.1")
    _refuse(tmp_path, ckpt, "train.epochs comes from the checkpoint", train_options={"epochs": 3})
    _refuse(tmp_path, ckpt, "--references 4", references=4)


# -- the default method -------------------------------------------------------------------------------

def _board(dataset, rows):
    return {"dataset": dataset, "model": "small_cnn", "seeds": 8, "rows": [
        {"method": name, "score": score, "time_ratio": ratio, "step_ratio": None, "diverged": []}
        for name, score, ratio in rows]}


def test_default_method_is_the_best_recorded_one_within_the_budget(tmp_path):
    rows = [("retrain (ceiling)", 0.2, 1.0), ("seif", 0.14, 0.18), ("salun", 0.13, 0.46), ("finetune", 0.05, 0.05),
            ("not_a_method", 0.9, 0.01)]
    (tmp_path / "main_leaderboard.json").write_text(json.dumps(_board("synthetic", rows)))
    (tmp_path / "celeba_leaderboard.json").write_text(json.dumps(_board("celeba", [("salun", 0.99, 0.01)])))
    name, why = default_method(None, dataset="synthetic", model="test_small_cnn", results_dir=tmp_path)
    assert name == "seif" and "20%" in why and "main_leaderboard.json" in why
    assert default_method(0.5, dataset="synthetic", model="small_cnn", results_dir=tmp_path)[0] == "seif"
    assert default_method(0.1, dataset="synthetic", model="small_cnn", results_dir=tmp_path)[0] == "finetune"
    assert default_method(None, dataset="celeba", model="small_cnn", results_dir=tmp_path)[0] == "salun"
    with pytest.raises(InputError, match="cheapest, finetune"):
        default_method(0.01, dataset="synthetic", model="small_cnn", results_dir=tmp_path)
    with pytest.raises(InputError, match="--method"):
        default_method(None, dataset="synthetic", model="small_cnn", results_dir=tmp_path / "none")


@pytest.mark.skipif(not RESULTS_DIR.is_dir(), reason="no recorded leaderboards outside a source checkout")
def test_default_method_reads_our_recorded_leaderboards():
    name, why = default_method(None, dataset="synthetic", model="small_cnn")
    assert name in METHODS and "leaderboard" in why
    assert np.isfinite(float(re.search(r"best score \(([0-9.]+)", why).group(1)))
