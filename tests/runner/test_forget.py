"""``unlearnkit forget`` on tiny data: the erasure works, the audit carries every field, bad input is refused."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from unlearnkit.cli import main
from unlearnkit.engine.checkpoint import load_checkpoint
from unlearnkit.errors import InputError
from unlearnkit.methods import METHODS
from unlearnkit.models import ModelSpec, build_model
from unlearnkit.models.resnet import ResNet18Config
from unlearnkit.report.audit import statements, write_audit
from unlearnkit.results.leaderboard import (CEILING, Accuracy, DivergedRun, Leaderboard, LeaderboardRow, OriginalModel,
                                          RetrainCost)
from unlearnkit.runner.default_method import RECORDED_SCHEMA, default_method, read_recorded, recorded_dir
from unlearnkit.runner.forget import erasure_checks, make_forget_job, run_forget
from unlearnkit.runner.jobs import TrainJob, run_train
from unlearnkit.runner.setting import make_setting_config, resolve_setting
from unlearnkit.runner.units import torch_threads

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


def _forget(job) -> dict:
    """What the command does: run the job, then write its audit (report.audit); returns audit.json."""
    outcome = run_forget(job, log=_log)
    return outcome.audit if outcome.already_done else write_audit(job.out, outcome.audit)


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
    audit = _forget(job)
    m, target = audit["measures"], audit["targets"]
    fb, fa = m["forget_accuracy"]["before"], m["forget_accuracy"]["after"]
    # No references and people, not classes: the target is the original on the test split, never validation.
    assert "test split" in target["from"] and target["accuracy"] == m["test_accuracy"]["before"]
    assert fb >= 0.9 and target["accuracy"] <= 0.3  # the original memorised these people
    assert fa <= (fb + target["accuracy"]) / 2 + 0.05, f"forget accuracy {fb} -> {fa}, target {target}"
    assert m["retain_accuracy"]["after"] >= m["retain_accuracy"]["before"] - 0.02
    assert m["forget_confidence"]["after"] < m["forget_confidence"]["before"]

    # Every listed field, before and after.
    assert set(m) >= {"retain_accuracy", "test_accuracy", "forget_accuracy", "forget_confidence", "loss_mia",
                      "svc_mia_efficacy", "svc_mia_baseline"}
    for name, value in m.items():
        if name != "test_accuracy_kept_classes":
            assert value["before"] is not None and value["after"] is not None, name
    people = audit["per_identity"]
    assert [p["identity"] for p in people] == [0, 5, 6] and sum(p["images"] for p in people) == audit["forget"]["examples"]
    for p in people:
        assert set(p["accuracy"]) == set(p["confidence"]) == {"before", "after"}
    cost = audit["cost"]
    assert cost["steps"] > 0 and cost["seconds"] > 0 and cost["retrain_steps"] > 0 and cost["compute"] > 0
    assert cost["compute_ratio"] == pytest.approx(cost["compute"] / cost["retrain_compute"])
    assert cost["conditions"]["threads"] == 1  # run as the references are, whatever torch's default
    assert audit["method"]["seed"] and audit["method"]["chosen_because"] == "given with --method"
    assert audit["forgetting_quality"]["verified"] is False
    checks = {c["check"]: c for c in audit["checks"]}
    assert checks["eps_delta"]["passed"] is None
    assert any("not computed" in t and "--references 16" in t for t in audit["failed"])
    # The words follow the checks: one statement per passed check under "verified", none elsewhere.
    assert len(audit["verified"]) == sum(c["passed"] is True for c in audit["checks"])
    assert len(audit["failed"]) == sum(c["passed"] is not True for c in audit["checks"])
    assert audit["setting"]["runtime"]["bf16"] is (precision == "bf16")

    # The files: the audit as returned, a page that needs nothing else, and a loadable model.
    assert json.loads((out / "audit.json").read_text()) == audit
    page = (out / "audit.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Not verified / failed" in page and "<svg" in page
    verified_box = page.split("<h2 style='margin-top:.3rem'>Verified</h2>")[1].split("</div>")[0]
    assert "FAILED" not in verified_box and "not computed" not in verified_box
    assert not re.search(r"<script|<link|src=|href=|url\(", page)
    _, spec, info = load_checkpoint(out / "model.safetensors")
    assert spec.name == "small_cnn" and info["forget_fingerprint"] == audit["forget"]["fingerprint"]
    assert info["accuracy"]["forget"] == pytest.approx(fa) and info["kind"] == "unlearn" and info["train"]

    # A rerun finds the finished audit; another request into the same folder is refused.
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    assert _forget(job) == audit
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
    with torch_threads(2):  # another default than the references' 1: forget must still run and time under 1
        first = _forget(make_forget_job(str(ckpt), out=str(tmp_path / "a"), references=8, **args))
    q = first["forgetting_quality"]
    assert q["verified"] and q["n"] == 8 and q["references_trained_now"] == 16
    for row in (q["method"], q["ceiling"]):
        assert 0 <= row["forget_quality"] <= 1 and 0 <= row["forget_quality_bounded"] <= 1 and row["score"] >= 0
    assert len(q["epsilons"]) == len(chosen) == first["forget"]["examples"]
    assert first["forget"]["indices"] == sorted(chosen.tolist())
    checks = {c["check"]: c for c in first["checks"]}
    assert checks["eps_delta"]["passed"] is not None and checks["eps_delta"]["n"] == 8
    eps_words = [t for t in first["verified"] + first["failed"] if "(ε, δ) forgetting quality" in t]
    assert len(eps_words) == 1 and (eps_words[0] in first["verified"]) is checks["eps_delta"]["passed"]
    # Feature F beside F: the same score on a head fitted to each model's features (docs/feature_forgetting.md).
    feature = checks["feature_forgetting"]
    assert feature["method"] == pytest.approx(q["method"]["feature_quality"]) and 0 <= feature["method"] <= 1
    assert feature["ceiling"] == pytest.approx(q["ceiling"]["feature_quality"])
    feature_words = [t for t in first["verified"] + first["failed"] if "feature F =" in t]
    assert len(feature_words) == 1 and (feature_words[0] in first["verified"]) is feature["passed"]
    assert first["per_identity"] and all(p["mean_epsilon"] is not None for p in first["per_identity"])
    # With references, the forget-set target is theirs, not the test split's.
    assert first["targets"]["accuracy"] == pytest.approx(q["retrain_accuracy"]["forget"])
    assert "retrained references" in first["targets"]["from"]
    # The references were trained and timed under one thread, the method run under the same: a time ratio.
    cost = first["cost"]
    assert cost["conditions"]["threads"] == 1 and cost["time_ratio"] is not None
    assert cost["time_ratio"] == pytest.approx(cost["seconds"] / cost["retrain_seconds"])

    # Cached references count without --references, keyed like a bench's.
    second = _forget(make_forget_job(str(ckpt), out=str(tmp_path / "b"), **args))
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
    audit = _forget(job)
    assert audit["checkpoint"]["format"] == "PyTorch state dict"
    assert audit["measures"]["forget_accuracy"]["after"] is not None
    assert any("records no recipe" in t for t in audit["not_covered"])
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


@pytest.mark.parametrize(("name", "content", "says"), [
    ("notes.pth", b"weights: see the shared drive\n", "a text file"),
    ("noise.pth", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "neither a zip archive"),
    ("cut.pth", b"\x80\x02" + bytes(range(200)), "not a readable PyTorch file"),
    ("fake.safetensors", b"not a model at all", "not a readable safetensors file"),
])
def test_a_file_that_is_no_checkpoint_is_refused_before_any_work(tmp_path, monkeypatch, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    if path.suffix == ".safetensors":
        path.with_suffix(".json").write_text(json.dumps({"model": {"name": "test_small_cnn", "num_classes": 10,
                                                                    "in_channels": 3, "image_size": 16}}))

    def no_data(*_args, **_kwargs):
        raise AssertionError("the dataset was built before the checkpoint was checked")

    monkeypatch.setattr("unlearnkit.runner.forget_request.make_setting_config", no_data)
    with pytest.raises(InputError) as info:
        make_forget_job(str(path), out=str(tmp_path / "out"), dataset_options=DATA, identities=PEOPLE, method="finetune")
    message = str(info.value)
    assert name in message and says in message and "pickled" not in message and "\n" not in message


def test_the_command_refuses_a_text_checkpoint_in_one_line_with_exit_2(tmp_path, capsys):
    path = tmp_path / "weights.pth"
    path.write_text("see the shared drive\n")
    out = tmp_path / "out"
    assert main(["forget", "--checkpoint", str(path), "--identities", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "weights.pth" in err and "Traceback" not in err and not out.exists()


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

def _row(method: str, score: float, compute_ratio: float | None, diverged: tuple = ()) -> LeaderboardRow:
    acc = Accuracy(retain=1.0, test=0.3, forget=0.3)
    return LeaderboardRow(
        method=method, score=score, score_bounded=score, forget_quality=score, forget_quality_bounded=0.9,
        accuracy=acc, retrain_accuracy=acc, seconds=1.0, steps=10.0, compute=None if compute_ratio is None else 1e4,
        time_ratio=0.01, step_ratio=0.01, compute_ratio=compute_ratio, over_limit=False, stopped_by_budget=0,
        peak_memory_bytes=None, memory_ratio=None, diverged=diverged, ulira=0.5, ulira_baseline=0.5, loss_mia=None,
        svc_mia_efficacy=None, forget_quality_interval=None, score_interval=None, klom_forget=None, klom_test=None,
        klom_retain_probe=None)


def _recorded(folder, dataset: str, forget: str, rows: list[LeaderboardRow]) -> None:
    """A recorded leaderboard in the shape benchmarks/ship_default_leaderboard.py writes."""
    board = Leaderboard(
        rows=tuple(rows), seeds=8, forget_examples=10, dataset=dataset, model="small_cnn", forget=forget, budget=None,
        retrain_cost=RetrainCost(seconds=None, steps=100.0, compute=1e5, peak_memory_bytes=None, measured_on="test",
                                 conditions=None, timing_note=None),
        original=OriginalModel(accuracy={"test": 0.3}, seed=1, seconds=1.0, compute=1e5),
        setting={"config": {"forget_kind": forget.partition(":")[0]}}, provenance={})
    record = {"recorded_schema": RECORDED_SCHEMA, "leaderboard": board.to_json(),
              "recorded": {"command": "unlearnkit bench", "commit": "abc123", "date": "2026-12-03T00:00:00Z"}}
    (folder / f"{dataset}-{forget.partition(':')[0]}-small_cnn.json").write_text(json.dumps(record))


def test_default_method_is_the_best_one_within_the_budget_on_compute(tmp_path):
    rows = [_row(CEILING, 0.3, 1.0), _row("seif", 0.14, 0.18), _row("salun", 0.13, 0.46), _row("finetune", 0.05, 0.05),
            _row("not_a_method", 0.9, 0.01), _row("kookmin", 0.5, None), _row("scrub", 0.6, 0.01, (DivergedRun(seed_index=0, seed=1, where="forget"),)),
            _row("fanchuan", 0.02, 0.0)]
    _recorded(tmp_path, "synthetic", "identity_skewed:0.02", rows)
    choice = default_method(None, dataset="synthetic", forget_kind="identities", results_dir=tmp_path)
    # kookmin has no measured compute and scrub diverged: neither can be chosen, whatever their score.
    assert choice.method == "seif" and choice.same_setting and "20%" in choice.reason
    assert "synthetic-identity_skewed-small_cnn.json" in choice.reason and "abc123" in choice.reason
    assert default_method(0.5, dataset="synthetic", forget_kind="identity", results_dir=tmp_path).method == "seif"
    assert default_method(0.1, dataset="synthetic", forget_kind="identity", results_dir=tmp_path).method == "finetune"
    # A compute ratio of 0.0 is a measured cost, not a missing one.
    assert default_method(0.001, dataset="synthetic", forget_kind="identity", results_dir=tmp_path).method == "fanchuan"
    with pytest.raises(InputError, match="no recorded leaderboard"):
        default_method(None, dataset="synthetic", forget_kind="identity", results_dir=tmp_path / "none")


def test_default_method_prefers_the_same_dataset_and_kind_and_says_when_none_exists(tmp_path):
    _recorded(tmp_path, "synthetic", "identity_skewed:0.02", [_row("seif", 0.14, 0.18)])
    _recorded(tmp_path, "digits", "class:3", [_row("salun", 0.3, 0.1)])
    _recorded(tmp_path, "synthetic", "random:0.1", [_row("finetune", 0.2, 0.1)])
    assert default_method(None, dataset="digits", forget_kind="class", results_dir=tmp_path).method == "salun"
    assert default_method(None, dataset="synthetic", forget_kind="examples", results_dir=tmp_path).method == "finetune"
    other = default_method(None, dataset="synthetic", forget_kind="class", results_dir=tmp_path)
    assert not other.same_setting and "no recorded leaderboard matches" in other.reason
    assert "none of synthetic with a forget set of classes" in other.reason
    assert default_method(None, dataset="digits", forget_kind="identity", results_dir=tmp_path).method == "salun"
    elsewhere = default_method(None, dataset="fashion_mnist", forget_kind="random", results_dir=tmp_path)
    assert elsewhere.method == "finetune" and "none of fashion_mnist" in elsewhere.reason


def test_the_shipped_leaderboards_are_readable_and_choose_a_registered_method():
    files = sorted(recorded_dir().glob("*.json"))
    assert files, f"no recorded leaderboard ships in {recorded_dir()}"
    for path in files:
        rec = read_recorded(path)
        assert rec.recorded["command"] and rec.recorded["commit"] and rec.recorded["date"], path
        choice = default_method(None, dataset=rec.board.dataset, forget_kind=rec.forget_kind)
        assert choice.method in METHODS and choice.same_setting and path.name in choice.reason
        assert rec.board.row(choice.method).compute_ratio <= 0.2


# -- the checks and the audit's words -------------------------------------------------------------------

def _measures(forget_after: float, conf_after: float, retain_after: float = 0.99) -> dict:
    return {"forget_accuracy": {"before": 1.0, "after": forget_after},
            "forget_confidence": {"before": 0.9, "after": conf_after},
            "retain_accuracy": {"before": 0.99, "after": retain_after},
            "test_accuracy": {"before": 0.9, "after": 0.8},
            "test_accuracy_kept_classes": {"before": 0.9, "after": 0.9},
            "loss_mia": {"before": 0.9, "after": 0.95}, "svc_mia_efficacy": {"before": 0.0, "after": 1.0},
            "svc_mia_baseline": {"before": 0.5, "after": 0.5}}


CLASS_TARGET = {"accuracy": 0.0, "confidence": 0.1, "confidence_is_bound": True,
                "from": "a model that never saw the forgotten classes (0 accuracy; confidence at most chance)"}
NO_REFS = {"verified": False, "why_not": "no references"}


def test_erasing_a_whole_class_to_zero_passes_and_leaving_it_fails():
    cost = {"compute_ratio": 0.0, "step_ratio": 0.5}
    good = {c["check"]: c for c in erasure_checks(_measures(0.0, 0.01), CLASS_TARGET, NO_REFS, cost, None, (3,), 50)}
    assert good["forget_accuracy"]["passed"] and good["forget_confidence"]["passed"]
    # The kept classes' test accuracy is what must hold (the erased class's share of test accuracy goes).
    assert good["test_accuracy_kept_classes"]["passed"] and "test_accuracy" not in good
    assert "loss_mia" not in good and "svc_mia" not in good  # label alone tells a whole class apart
    assert good["cost"]["passed"] and good["cost"]["unit"] == "compute"  # 0.0 is a cost, judged on compute
    bad = {c["check"]: c for c in erasure_checks(_measures(0.6, 0.5, 0.9), CLASS_TARGET, NO_REFS, cost, None, (3,), 50)}
    assert bad["forget_accuracy"]["passed"] is False and bad["forget_confidence"]["passed"] is False
    assert bad["retain_accuracy"]["passed"] is False


def test_failed_checks_stand_apart_from_verified_in_plain_words():
    checks = erasure_checks(_measures(0.6, 0.5), CLASS_TARGET, NO_REFS, {"compute_ratio": 0.1}, None, (3,), 50)
    audit = {"checks": checks, "forget": {"examples": 50, "people": [], "request": {"forget": "class:3"}, "classes": [3],
                                           "kind": "class", "fingerprint": "f"},
             "targets": CLASS_TARGET, "forgetting_quality": NO_REFS,
             "cost": {"seconds": 1.0, "conditions": {"threads": 1}, "time_ratio": None, "compute": 10.0,
                      "compute_ratio": 0.1, "steps": 3, "step_ratio": 0.1, "retrain_seconds_from": None,
                      "no_time_ratio_because": "none timed", "peak_memory_bytes": None},
             "checkpoint": {"format": "unlearnkit safetensors", "path": "x.safetensors", "recipe_from": "sidecar"}}
    verified, failed, _ = statements(audit)
    assert not any("erased images went" in t for t in verified)
    assert any(t.startswith("FAILED: accuracy on the 50 erased images") and "still recognises" in t for t in failed)
    assert all(not t.startswith("FAILED") for t in verified) and any("within the limit" in t for t in verified)
