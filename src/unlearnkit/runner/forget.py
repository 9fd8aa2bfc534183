"""``unlearnkit forget``: erase people or images from a trained model, with an audit of the erasure.

The job an erasure request needs: a trained model (our checkpoint, or a plain PyTorch state dict of a
registered architecture), a dataset, and what to forget (people, images, or any forget spec). It runs
one unlearning method under a budget and writes, into ``OUT``::

    OUT/model.safetensors, OUT/model.json   the unlearned model (our checkpoint format)
    OUT/audit.html                          the audit, one self-contained page
    OUT/audit.json                          the audit's numbers (written last: it marks a finished job)

Everything is computed before the first file is written, and each file is written atomically, so a
bad input or a failure leaves ``OUT`` as it was.

The audit measures the model before and after on the retain, test and forget sets and on people the
model never saw (the validation and test splits: the level a model retrained without the forget set
would reach), runs the loss and SVC membership-inference attacks, breaks the forget set down per
person, and costs the run against one retrain. Where retrained references for this setting exist in
the bench cache (or ``references`` asks for them to be trained), it also runs the method N times and
scores the (ε, δ) forgetting quality against them, with the retrain ceiling beside it.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import typing
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from unlearnkit.config import from_dict, to_dict
from unlearnkit.data.base import DATASETS, SPLIT_NAMES, ImageDataset
from unlearnkit.data.cache import resolve_cache_dir
from unlearnkit.data.splits import ForgetSet
from unlearnkit.engine.checkpoint import checkpoint_bytes, spec_from_dict
from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError
from unlearnkit.io import provenance, read_json, write_bytes
from unlearnkit.methods import METHODS, run_method
from unlearnkit.metrics.efficiency import COMPETITION_TIME_LIMIT, cost_ratios, retrain_steps
from unlearnkit.metrics.forgetting import MIN_MODELS, final_score, forgetting_quality, logit_scaled_confidence
from unlearnkit.metrics.mia import loss_mia, svc_mia
from unlearnkit.models import MODELS, ModelSpec, build_model, model_parts
from unlearnkit.runner.jobs import BenchJob, checkpoint_for_setting, resolve_method_config
from unlearnkit.runner.score import CEILING
from unlearnkit.runner.setting import Setting, SettingConfig, make_setting_config, resolve_setting, setting_to_dict
from unlearnkit.results.store import RESULTS_VERSION, BenchStore, load_run, run_meta
from unlearnkit.runner.units import Unit, budget_steps, execute, model_seed

# Where the recorded leaderboards live (a source checkout; an installed package has none).
RESULTS_DIR = Path(__file__).resolve().parents[3] / "benchmarks" / "results"
# Suffixes read as plain PyTorch state dicts (torch.load with weights_only=True).
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")
# Train-recipe fields that only say where and how fast a model runs; the rest come from the checkpoint.
RUNTIME_FIELDS = ("precision", "device", "channels_last")
# How many bad identities, examples or tensors an error message lists.
LISTED = 5
AUDIT_VERSION = 1


@dataclass(frozen=True)
class ForgetJob:
    """One erasure request, resolved (see :func:`make_forget_job`).

    Attributes:
        setting: Dataset, forget set, the checkpoint's architecture and training recipe, run seed.
        checkpoint: The trained model: a ``.safetensors`` written by unlearnkit or a state dict.
        method: The unlearning method.
        method_config: Its resolved config.
        method_preset: The preset the config came from (None: reference defaults).
        method_reason: Why this method (the leaderboard row that chose it, or "given with --method").
        request: What the user asked to forget, as given (for the audit).
        budget: Cap the method at this fraction of one retrain's optimizer steps (None: no cap).
        references: N: train missing retrained references (2N, the second N the ceiling) and run the
            method N times to score (ε, δ); 0 uses references already cached, if there are 2 x 8.
        cache_dir: The bench cache the references are read from and trained into ("" = default).
        out: The output folder.
    """

    setting: SettingConfig
    checkpoint: str
    method: str
    method_config: Any
    method_preset: str | None = None
    method_reason: str = "given with --method"
    request: dict = field(default_factory=dict)
    budget: float | None = None
    references: int = 0
    cache_dir: str = ""
    out: str = "runs/forget"


def make_forget_job(
    checkpoint: str,
    *,
    out: str,
    dataset: str = "synthetic",
    dataset_options: dict | None = None,
    data_root: str | None = None,
    identities: str | None = None,
    examples: str | None = None,
    forget: str | None = None,
    forget_options: dict | None = None,
    model: str | None = None,
    model_options: dict | None = None,
    train_options: dict | None = None,
    method: str | None = None,
    method_options: dict | None = None,
    preset: str | None = "auto",
    budget: float | None = None,
    references: int = 0,
    cache_dir: str = "",
    run_seed: int = 0,
) -> ForgetJob:
    """Check an erasure request and resolve it into a :class:`ForgetJob`.

    Exactly one of ``identities`` (``"12,57"``), ``examples`` (a file of image names or dataset
    indices, one per line) and ``forget`` (a forget spec or a forget.json) says what to forget.

    Args:
        checkpoint: Our ``.safetensors`` checkpoint, or a ``.pt``/``.pth``/``.bin`` state dict.
        out: The output folder.
        dataset, dataset_options, data_root: The data the model was trained on.
        identities, examples, forget, forget_options: What to forget.
        model, model_options: A state dict's architecture (default: inferred from its tensors);
            our checkpoints carry theirs.
        train_options: The training recipe (for a state dict; for our checkpoints only
            ``precision``, ``device`` and ``channels_last``, the rest is the checkpoint's).
        method, method_options, preset: The method (default: :func:`default_method`) and its settings.
        budget: A fraction of one retrain's optimizer steps, in (0, 10].
        references: N >= 8 models per side for the (ε, δ) score, or 0.
        cache_dir: The bench cache.
        run_seed: The run seed (a bench's, for its cached references to apply).

    Raises:
        InputError: anything that does not fit; nothing has been written to ``out``.
    """
    if budget is not None and not 0 < budget <= 10:
        raise InputError(f"--budget {budget}: expected a fraction of one retrain's steps in (0, 10], e.g. 0.2")
    if references and references < MIN_MODELS:
        raise InputError(f"--references {references}: the (ε, δ) score needs at least {MIN_MODELS} models per side")
    if references < 0:
        raise InputError(f"--references {references}: expected 0 or at least {MIN_MODELS}")
    asked = [name for name, value in (("--identities", identities), ("--examples", examples), ("--forget", forget)) if value]
    if len(asked) != 1:
        raise InputError("say what to forget with exactly one of --identities 12,57, --examples FILE or --forget SPEC"
                         + (f" (got {' and '.join(asked)})" if asked else ""))
    if forget_options and not forget:
        raise InputError("forget.* settings apply to --forget SPEC only")
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise InputError(f"--checkpoint {checkpoint}: no such file")
    ours = path.suffix == ".safetensors"
    if not ours and path.suffix not in STATE_DICT_SUFFIXES:
        raise InputError(f"--checkpoint {checkpoint}: expected a .safetensors checkpoint written by unlearnkit or a "
                         f"PyTorch state dict ({', '.join(STATE_DICT_SUFFIXES)})")

    # The data first, unconditioned on any model: identities, examples and a state dict's shape are checked against it.
    base = make_setting_config(dataset=dataset, dataset_options=dataset_options, data_root=data_root, forget=None,
                               train_options=_runtime_only(train_options) if ours else train_options, run_seed=run_seed)
    ds = DATASETS.get(base.dataset)(base.dataset_config)
    if identities:
        request = {"identities": _parse_ids(identities)}
        spec = _identities_spec(request["identities"], ds)
    elif examples:
        indices = read_examples(examples, ds)
        request = {"examples": str(Path(examples).expanduser().resolve()), "count": len(indices)}
        spec = str(_save_examples_forget_set(indices, ds, cache_dir))
    else:
        request, spec = {"forget": forget}, forget

    if ours:
        if model or model_options:
            raise InputError(f"--checkpoint {checkpoint} carries its architecture; drop --model and model.* settings")
        name, model_config, recipe = _our_architecture(path)
        train = {**recipe, **_runtime_only(train_options)}
    else:
        name, model_config = infer_architecture(_read_state_dict(path), ds, model=model, model_options=model_options,
                                                where=f"--checkpoint {checkpoint}")
        train = dict(train_options or {})
    setting = make_setting_config(dataset=dataset, dataset_options=dataset_options, data_root=data_root, forget=spec,
                                  forget_options=forget_options, model=name, model_options=to_dict(model_config),
                                  train_options=train, run_seed=run_seed)
    if method is None:
        method, reason = default_method(budget, dataset=setting.dataset, model=setting.model)
    else:
        METHODS.entry(method)
        reason = "given with --method"
    cfg, used = resolve_method_config(method, preset, setting, method_options)
    return ForgetJob(setting, str(path), method, cfg, used, reason, request, budget, references, cache_dir, str(out))


def _runtime_only(train_options: dict | None) -> dict:
    extra = sorted(set(train_options or {}) - set(RUNTIME_FIELDS))
    if extra:
        raise InputError(f"train.{extra[0]} comes from the checkpoint's sidecar (how the model was trained); "
                         f"only train.{', train.'.join(RUNTIME_FIELDS)} may be set")
    return dict(train_options or {})


def _our_architecture(path: Path) -> tuple[str, Any, dict]:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        raise InputError(f"--checkpoint {path} has no sidecar {sidecar.name}; it is incomplete or not from unlearnkit "
                         "(a plain state dict should be saved as .pth)")
    try:
        info = read_json(sidecar)
        spec = spec_from_dict(info["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"checkpoint sidecar {sidecar}: cannot read the model description ({exc})") from None
    return spec.name, spec.config, dict(info.get("train") or {})


# -- what to forget --------------------------------------------------------------------------------

def _parse_ids(text: str) -> list[int]:
    try:
        ids = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise InputError(f"--identities {text!r}: expected person ids separated by commas, e.g. 12,57") from None
    if not ids:
        raise InputError(f"--identities {text!r} names nobody; the forget set would be empty")
    return ids


def _identities_spec(ids: list[int], ds: ImageDataset) -> str:
    if not ds.has_groups:
        raise InputError(f"--identities: dataset {ds.name} records no people; name images with --examples FILE instead")
    train = ds.groups[ds.indices("train")]
    missing = [i for i in ids if not (train == i).any()]
    if missing:
        where = []
        for i in missing[:LISTED]:
            splits = sorted({SPLIT_NAMES[s] for s in ds.split[ds.groups == i]})
            where.append(f"{i} ({'only in the ' + '/'.join(splits) + ' split' if splits else 'not in the dataset'})")
        more = f" and {len(missing) - LISTED} more" if len(missing) > LISTED else ""
        raise InputError(f"--identities: {len(missing)} of {len(ids)} people are not in {ds.name}'s training split, "
                         f"so the model never learnt them: {', '.join(where)}{more}")
    return "identities:" + ",".join(map(str, ids))


def read_examples(path: str | Path, ds: ImageDataset) -> np.ndarray:
    """The dataset indices an examples file names: one image name or dataset index per line.

    Blank lines and lines starting with ``#`` are skipped. Names are matched against the dataset's
    ``meta["image_names"]`` (full names, or the file name without its folder).

    Raises:
        InputError: the file is missing or names nothing, a name or index is not in the dataset, or an
            example is not in the training split (the first few are listed).
    """
    path = Path(path).expanduser()
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--examples {path}: cannot read it ({exc})") from None
    tokens = [t for t in lines if t and not t.startswith("#")]
    if not tokens:
        raise InputError(f"--examples {path} names no example; the forget set would be empty")
    names = ds.meta.get("image_names")
    lookup: dict[str, int] = {}
    if names is not None:
        for i, name in enumerate(names):
            lookup.setdefault(str(name), i)
            lookup.setdefault(Path(str(name)).name, i)
    indices, unknown = [], []
    for token in tokens:
        if token in lookup:
            indices.append(lookup[token])
        elif token.isdigit() and int(token) < len(ds.labels):
            indices.append(int(token))
        else:
            unknown.append(token)
    if unknown:
        how = ("" if names is not None else
               f" ({ds.name} records no image names, so lines must be dataset indices 0..{len(ds.labels) - 1})")
        raise InputError(f"--examples {path}: {len(unknown)} lines name no example of {ds.name}{how}: "
                         f"{_first(unknown)}")
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    outside = idx[ds.split[idx] != 0]
    if len(outside):
        listed = [f"{tokens[indices.index(int(i))]} ({SPLIT_NAMES[ds.split[i]]} split)" for i in outside]
        raise InputError(f"--examples {path}: {len(outside)} examples are not in {ds.name}'s training split, so the "
                         f"model never learnt them: {_first(listed)}")
    return idx


def _first(items: list) -> str:
    more = f" and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return ", ".join(map(str, items[:LISTED])) + more


def _save_examples_forget_set(indices: np.ndarray, ds: ImageDataset, cache_dir: str) -> Path:
    """Store the forget set in the cache, named by its fingerprint, so equal requests share references."""
    if len(indices) >= len(ds.indices("train")):
        raise InputError("--examples names every training example; nothing would be retained")
    fs = ForgetSet(indices=indices, kind="examples", config={}, dataset_fingerprint=ds.fingerprint)
    path = resolve_cache_dir(cache_dir) / "forget_sets" / f"{fs.fingerprint}.json"
    if not path.is_file():
        fs.save(path)
    return path


# -- checkpoints -------------------------------------------------------------------------------------

def load_any_checkpoint(path: str | Path, setting: Setting) -> tuple[torch.nn.Module, dict]:
    """Load the model at ``path`` for ``setting``, checking that it fits; returns (model in eval mode, info).

    ``.safetensors``: our checkpoint (its sidecar names the architecture and data). ``.pt``, ``.pth``,
    ``.bin``: a plain state dict (or a dict holding one under ``state_dict`` or ``model``) of
    ``setting``'s architecture, read with ``torch.load(weights_only=True)``.

    Raises:
        InputError: an unreadable or pickled file, or an architecture, class count or input size that
            does not fit the setting's dataset (saying which).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        model, info = checkpoint_for_setting(str(path), setting)
        name, cfg = info["model"]["name"], info["model"].get("config")
        if name != setting.spec.name or cfg != to_dict(setting.spec.config):
            raise InputError(f"checkpoint {path} is a {name} ({cfg}); the setting asks for {setting.spec.name} "
                             f"({to_dict(setting.spec.config)})")
        return model.eval(), {**info, "format": "unlearnkit safetensors"}
    state = _read_state_dict(path)
    with torch.device("meta"):
        probe = build_model(setting.spec)
    problem = _mismatch(state, probe, setting.spec, setting.dataset)
    if problem:
        raise InputError(f"checkpoint {path}: {problem}")
    model = build_model(setting.spec)
    model.load_state_dict(state, strict=True)
    return model.to(setting.runtime.device).eval(), {"format": "PyTorch state dict", "model": {
        "name": setting.spec.name, "config": to_dict(setting.spec.config)}}


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    convert = ("load it where its code is available and save only the weights: "
               "torch.save(model.state_dict(), 'model.pth')")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"checkpoint {path} is a pickled object that needs arbitrary code to load ({first}); "
                         f"unlearnkit reads only plain state dicts. To convert it, {convert}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"checkpoint {path} is not a readable PyTorch file ({exc})") from None
    if isinstance(raw, dict) and not _tensors_only(raw):
        inner = next((raw[k] for k in ("state_dict", "model", "model_state_dict") if isinstance(raw.get(k), dict)), None)
        raw = inner if inner is not None else raw
    if not isinstance(raw, dict) or not raw or not _tensors_only(raw):
        what = f"a dict with keys {_first(list(raw))}" if isinstance(raw, dict) else type(raw).__name__
        raise InputError(f"checkpoint {path} holds {what}, not a state dict of tensors; {convert}")
    if all(k.startswith("module.") for k in raw):  # saved from DataParallel / DistributedDataParallel
        raw = {k.removeprefix("module."): v for k, v in raw.items()}
    return raw


def _tensors_only(d: dict) -> bool:
    return all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in d.items())


def infer_architecture(state: dict[str, torch.Tensor], ds: ImageDataset, *, model: str | None = None,
                       model_options: dict | None = None, where: str = "checkpoint") -> tuple[str, Any]:
    """The registered architecture and config whose parameters ``state`` holds, for ``ds``'s images.

    Tries ``model`` (default: every registered model, full-size first) with each combination of its
    config's choice fields (e.g. resnet18's ``stem``), other fields from ``model_options`` or defaults.

    Raises:
        InputError: no architecture matches; where one has the same tensors but another class count,
            input channels or input size, says which.
    """
    names = [model] if model else sorted(MODELS.names(), key=lambda n: MODELS.entry(n).meta.get("test", False))
    near: list[tuple[int, str]] = []
    c, size = ds.image_shape[0], ds.image_shape[1]
    for name in names:
        entry = MODELS.entry(name)
        for cfg in _config_variants(entry.config, model_options, name):
            spec = ModelSpec(name, ds.num_classes, c, size, cfg)
            with torch.device("meta"):
                probe = build_model(spec)
            problem = _mismatch(state, probe, spec, ds)
            if problem is None:
                return name, cfg
            if not problem.startswith("it holds"):  # the same tensors, some of another shape
                wrong = sum(tuple(v.shape) != tuple(state[k].shape) for k, v in probe.state_dict().items())
                near.append((wrong, problem))
    if near:
        raise InputError(f"{where}: {min(near)[1]}")
    asked = f"model {model}" if model else f"any registered architecture ({', '.join(MODELS.names())})"
    raise InputError(f"{where} does not match {asked}: it holds tensors {_first(list(state))}. "
                     "Name the architecture with --model NAME and its settings with --set model.FIELD=VALUE")


def _config_variants(config_cls: type | None, options: dict | None, name: str) -> list[Any]:
    if config_cls is None:
        return [None]
    hints = typing.get_type_hints(config_cls)
    choices = {f.name: typing.get_args(hints[f.name]) for f in dataclasses.fields(config_cls)
               if typing.get_origin(hints[f.name]) is typing.Literal and f.name not in (options or {})}
    combos: list[dict] = [{}]
    for key, values in choices.items():
        combos = [{**c, key: v} for c in combos for v in values]
    return [from_dict(config_cls, {**c, **(options or {})}, where=f"model.{name}") for c in combos]


def _mismatch(state: dict[str, torch.Tensor], probe: torch.nn.Module, spec: ModelSpec, ds: ImageDataset) -> str | None:
    """None if ``state`` loads into ``probe``; else what differs, the class count and input first."""
    want = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state.items()}
    if set(want) != set(have):
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        return (f"it holds {len(have)} tensors, {spec.name} has {len(want)}"
                + (f"; missing {_first(missing)}" if missing else "") + (f"; unexpected {_first(extra)}" if extra else ""))
    wrong = [k for k in want if want[k] != have[k]]
    if not wrong:
        return None
    parts = model_parts(probe)
    names = {id(p): n for n, p in probe.named_parameters()}
    head = {names[id(p)] for p in parts.classifier.parameters()}
    stem = {names[id(p)] for p in parts.stem.parameters()}
    what = []
    head_w = next((k for k in wrong if k in head and len(want[k]) == 2), None)
    if head_w:
        what.append(f"its classifier has {have[head_w][0]} classes ({head_w} {list(have[head_w])}); "
                    f"{ds.name} has {ds.num_classes}")
    stem_w = next((k for k in wrong if k in stem and k.endswith("weight")), None)
    if stem_w and len(want[stem_w]) == 4 and have[stem_w][1] != want[stem_w][1]:
        what.append(f"its first layer takes {have[stem_w][1]}-channel images ({stem_w} {list(have[stem_w])}); "
                    f"{ds.name}'s have {ds.image_shape[0]} channels")
    elif stem_w and len(want[stem_w]) == 2:
        what.append(f"its first layer takes {have[stem_w][1]} inputs ({stem_w} {list(have[stem_w])}), "
                    f"{ds.name}'s {ds.image_shape[0]}x{ds.image_shape[1]}x{ds.image_shape[2]} images give "
                    f"{want[stem_w][1]}: the input size differs")
    rest = [k for k in wrong if k not in (head_w, stem_w)]
    if rest and not what:
        what.append(f"a {spec.name} with config {to_dict(spec.config)} has other shapes: "
                    + _first([f"{k} {list(have[k])} vs {list(want[k])}" for k in rest])
                    + "; set its fields with --set model.FIELD=VALUE")
    return "; ".join(what)


# -- the default method ------------------------------------------------------------------------------

def default_method(budget: float | None, *, dataset: str, model: str, results_dir: str | Path = RESULTS_DIR) -> tuple[str, str]:
    """The best method on our recorded leaderboards that fits the budget; returns (name, why).

    Reads every ``*leaderboard*.json`` in ``results_dir`` (those of ``dataset`` and ``model``, with
    ``test_`` models read as their full-size ones, where any exist; else all), keeps the rows whose
    cost (optimizer steps, or time, x one retrain) fits ``budget`` (None: the competition's 20 %),
    leaves out the retrain ceiling and methods no longer registered, and picks the highest score.
    """
    limit = budget if budget is not None else COMPETITION_TIME_LIMIT
    boards = []
    for path in sorted(Path(results_dir).glob("*leaderboard*.json")):
        try:
            board = read_json(path)
        except (OSError, ValueError):
            continue
        if isinstance(board, dict) and isinstance(board.get("rows"), list):
            boards.append((path, board))
    if not boards:
        raise InputError(f"no recorded leaderboard in {results_dir} to choose a method from; pass --method NAME "
                         "(see `unlearnkit methods`)")
    same = [(p, b) for p, b in boards if b.get("dataset") == dataset and b.get("model") == model.removeprefix("test_")]
    boards = same or boards
    fits, cheapest = [], None
    for path, board in boards:
        for row in board["rows"]:
            name, ratio = row.get("method"), row.get("step_ratio") or row.get("time_ratio")
            if name == CEILING or name not in METHODS or ratio is None or row.get("diverged") or row.get("score") is None:
                continue
            cheapest = min(cheapest or (ratio, name), (ratio, name))
            if ratio <= limit:
                fits.append((row["score"], name, ratio, path, board))
    if not fits:
        cheap = f" (the cheapest, {cheapest[1]}, costs {cheapest[0]:.0%} of a retrain)" if cheapest else ""
        raise InputError(f"no recorded method fits within {limit:.0%} of a retrain{cheap}; pass --method NAME or a larger --budget")
    score, name, ratio, path, board = max(fits, key=lambda f: f[0])
    within = f"--budget {budget}" if budget is not None else f"the competition's {COMPETITION_TIME_LIMIT:.0%} time limit"
    return name, (f"the best score ({score:.3f}, at {ratio:.0%} of a retrain) among methods within {within} on the "
                  f"recorded leaderboard {path.name} ({board.get('dataset')} / {board.get('model')}, "
                  f"N = {board.get('seeds')})")


# -- the job -----------------------------------------------------------------------------------------

def forget_to_dict(job: ForgetJob) -> dict[str, Any]:
    return {"setting": setting_to_dict(job.setting), "checkpoint": job.checkpoint, "method": job.method,
            "method_config": to_dict(job.method_config), "method_preset": job.method_preset,
            "method_reason": job.method_reason, "request": job.request, "budget": job.budget,
            "references": job.references, "cache_dir": job.cache_dir, "out": job.out}


# What makes two jobs the same erasure (a rerun into the same folder returns the finished audit).
_IDENTITY = ("setting", "checkpoint", "method", "method_config", "budget", "references")


def run_forget(job: ForgetJob, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Unlearn the job's forget set from its checkpoint, audit the result, and write both to ``job.out``.

    Returns the audit (what ``OUT/audit.json`` holds). A folder that already holds this job's audit
    is left as it is; one holding another job's is refused.

    Raises:
        InputError: bad input (a checkpoint that does not fit, a forget set the dataset does not
            have, an ``OUT`` that holds another run); nothing has been written to ``OUT``.
    """
    from unlearnkit.report.audit import audit_files

    out = Path(job.out)
    record = json.loads(json.dumps(forget_to_dict(job), default=str))
    existing = out / "audit.json"
    if existing.is_file():
        old = read_json(existing)
        differs = [k for k in _IDENTITY if (old.get("job") or {}).get(k) != record[k]]
        if differs:
            raise InputError(f"--out {out} holds the audit of another forget run ({', '.join(differs)} differ); "
                             "use a new --out")
        log(f"{out} already holds this run's audit")
        return old
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")

    setting = resolve_setting(job.setting)
    data = setting.unlearn_data
    original, info = load_any_checkpoint(job.checkpoint, setting)
    log(f"forgetting {len(setting.forget.indices)} training examples of {setting.dataset.name} "
        f"from {job.checkpoint} with {job.method}")
    before = measure_model(original, setting)
    cap = budget_steps(job.budget, setting)
    seed = model_seed(setting.config.run_seed, f"unlearn/{job.method}", 0)
    result = run_method(job.method, original, data, job.method_config, seed=seed, max_steps=cap)
    after = measure_model(result.model, setting)
    store = BenchStore.for_setting(out, job.cache_dir, setting)
    quality = verify_with_references(job, setting, original, result, store, cap, log=log)
    cost = _cost(result, setting, info, quality)
    log(f"{job.method}: {result.cost.seconds:.1f}s, forget accuracy {before['accuracy']['forget']:.3f} -> "
        f"{after['accuracy']['forget']:.3f} (unseen people: {before['accuracy']['unseen']:.3f}), retain "
        f"{before['accuracy']['retain']:.3f} -> {after['accuracy']['retain']:.3f}")

    audit = {
        "audit_version": AUDIT_VERSION,
        "results_version": RESULTS_VERSION,
        "job": record,
        "setting": setting.summary(),
        "checkpoint": {"path": job.checkpoint, "format": info["format"], "model": info.get("model"),
                       "recipe_from": "the checkpoint's sidecar" if info["format"].startswith("unlearnkit")
                       else "the architecture's default recipe and train.* settings (a state dict records none)"},
        "forget": {"request": job.request, "kind": setting.forget.kind, "examples": len(setting.forget.indices),
                   "people": _people(setting), "fingerprint": setting.forget.fingerprint,
                   "indices": setting.forget.indices.tolist()},
        "method": {"name": job.method, "config": result.config, "preset": job.method_preset,
                   "chosen_because": job.method_reason, "seed": seed, "budget": job.budget, "budget_steps": cap,
                   "stopped_by_budget": result.stopped_by_budget},
        "measures": _before_after(before, after),
        "per_identity": _per_identity(setting, before, after, quality),
        "cost": cost,
        "forgetting_quality": {k: v for k, v in quality.items() if not k.startswith("_")},
        "provenance": provenance(),
    }
    audit["verified"], audit["not_verified"] = statements(audit)
    weights, sidecar = checkpoint_bytes(result.model, setting.spec, {
        "kind": "unlearn", "method": job.method, "k": 0, "seed": seed, "config": result.config,
        "cost": cost, "stopped_by_budget": result.stopped_by_budget, "accuracy": after["accuracy"],
        "train": to_dict(setting.recipe), "dataset_fingerprint": setting.dataset.fingerprint,
        "forget_fingerprint": setting.forget.fingerprint, "source_checkpoint": job.checkpoint,
        "provenance": audit["provenance"],
    })
    files = {"model.safetensors": weights, "model.json": sidecar, **audit_files(audit)}
    # Every byte exists before the first write; audit.json goes last and marks the folder finished.
    for name in ("model.safetensors", "model.json", "audit.html", "audit.json"):
        write_bytes(out / name, files[name])
    log(f"unlearned model: {out / 'model.safetensors'}; audit: {out / 'audit.html'}")
    return json.loads(files["audit.json"])


# -- measuring a model -------------------------------------------------------------------------------

def measure_model(model: torch.nn.Module, setting: Setting) -> dict[str, Any]:
    """One model's accuracies, mean confidences, MIAs and per-example outputs on the setting's sets.

    ``unseen`` is the validation and test splits together: people (or images) the model never
    trained on, whose level a model retrained without the forget set would reach on the forget set.
    """
    sets, rt = setting.sets, setting.runtime
    logits = {name: predict(model, getattr(sets, name), runtime=rt) for name in ("retain", "forget", "val", "test", "retain_probe")}
    labels = {name: getattr(sets, name).y.cpu() for name in logits}
    logits["unseen"] = torch.cat([logits["val"], logits["test"]]) if len(sets.val) else logits["test"]
    labels["unseen"] = torch.cat([labels["val"], labels["test"]])
    probs = {k: torch.softmax(v.double(), 1) if len(v) else v for k, v in logits.items()}
    correct = {k: (logits[k].argmax(1) == labels[k]).double() if len(labels[k]) else torch.zeros(0) for k in logits}
    conf = {k: probs[k][torch.arange(len(labels[k])), labels[k]] if len(labels[k]) else torch.zeros(0) for k in logits}
    out: dict[str, Any] = {
        "accuracy": {k: _mean(correct[k]) for k in ("retain", "test", "forget", "unseen")},
        "confidence": {k: _mean(conf[k]) for k in ("retain", "test", "forget", "unseen")},
        "_forget_correct": correct["forget"].numpy(), "_forget_confidence": conf["forget"].numpy(),
        "_forget_logits": logits["forget"].numpy(),
    }
    forget_y, test_y = labels["forget"].numpy(), labels["test"].numpy()
    try:
        losses = {k: F.cross_entropy(logits[k], labels[k], reduction="none").numpy() for k in ("forget", "test")}
        out["loss_mia"] = loss_mia(losses["forget"], losses["test"], seed=0).accuracy
    except InputError as exc:  # too few forget or test examples for 5-fold cross-validation
        out["loss_mia"], out["loss_mia_why_not"] = None, str(exc)
    try:
        svc = svc_mia(probs["retain_probe"].numpy(), labels["retain_probe"].numpy(), probs["test"].numpy(), test_y,
                      probs["forget"].numpy(), forget_y, seed=0)
        out["svc_mia_efficacy"], out["svc_mia_baseline"] = svc.efficacy, svc.baseline
    except InputError as exc:
        out["svc_mia_efficacy"], out["svc_mia_baseline"], out["svc_mia_why_not"] = None, None, str(exc)
    return out


def _mean(x: torch.Tensor) -> float | None:
    return float(x.mean()) if len(x) else None


# What the audit lists before and after, with what each number should move towards.
MEASURES = {
    "retain_accuracy": ("accuracy", "retain", "should stay where it was"),
    "test_accuracy": ("accuracy", "test", "should stay where it was"),
    "forget_accuracy": ("accuracy", "forget", "should move to the unseen-people level"),
    "forget_confidence": ("confidence", "forget", "should move to the unseen-people level"),
    "unseen_accuracy": ("accuracy", "unseen", "the target: people the model never saw"),
    "unseen_confidence": ("confidence", "unseen", "the target: people the model never saw"),
    "loss_mia": ("loss_mia", None, "0.5 = the attack cannot tell forget images from unseen ones"),
    "svc_mia_efficacy": ("svc_mia_efficacy", None, "should move to svc_mia_baseline"),
    "svc_mia_baseline": ("svc_mia_baseline", None, "the SVC attack's rate on unseen images"),
}


def _before_after(before: dict, after: dict) -> dict[str, dict]:
    out = {}
    for name, (key, sub, reading) in MEASURES.items():
        b, a = (m[key][sub] if sub else m[key] for m in (before, after))
        out[name] = {"before": b, "after": a, "reading": reading}
    for key in ("loss_mia", "svc_mia"):
        why = before.get(f"{key}_why_not")
        if why:
            out[f"{key}_efficacy" if key == "svc_mia" else key]["not_computed"] = why
    return out


def _people(setting: Setting) -> list[int]:
    groups = setting.dataset.groups[setting.forget.indices]
    return sorted(int(g) for g in np.unique(groups[groups >= 0]))


def _per_identity(setting: Setting, before: dict, after: dict, quality: dict) -> list[dict]:
    groups = setting.dataset.groups[setting.forget.indices]
    eps = quality.get("_epsilons")
    rows = []
    for person in _people(setting):
        mask = groups == person
        row = {"identity": person, "images": int(mask.sum())}
        for name, key in (("accuracy", "_forget_correct"), ("confidence", "_forget_confidence")):
            row[name] = {"before": float(before[key][mask].mean()), "after": float(after[key][mask].mean())}
        row["mean_epsilon"] = float(eps[mask].mean()) if eps is not None else None
        rows.append(row)
    return rows


def _cost(result, setting: Setting, info: dict, quality: dict) -> dict[str, Any]:
    steps = retrain_steps(len(setting.sets.retain), setting.recipe.batch_size, setting.recipe.epochs)
    seconds, source = quality.get("_retrain_seconds"), "retrained references trained one at a time"
    if seconds is None and info.get("seconds") and info.get("train_examples"):
        seconds = info["seconds"] * len(setting.sets.retain) / info["train_examples"]
        source = "the original's training time in its sidecar, scaled to the retain set"
    ratios = cost_ratios(result.cost, retrain_seconds=seconds, retrain_steps=steps)
    return {**result.cost.to_dict(), "retrain_steps": steps, "retrain_seconds": seconds,
            "retrain_seconds_from": source if seconds is not None else None, **ratios}


# -- the (ε, δ) score against retrained references -----------------------------------------------------

def cached_references(store: BenchStore) -> int:
    """How many retrained references 0, 1, ... the cache holds for the store's setting."""
    k = 0
    while store.reference(k).is_file():
        k += 1
    return k


def verify_with_references(job: ForgetJob, setting: Setting, original: torch.nn.Module, first, store: BenchStore,
                           cap: int | None, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The (ε, δ) score of N runs of the method against N cached retrains, beside N more (the ceiling).

    With ``job.references`` = N, missing references 0..2N-1 are trained into the cache first (as a
    bench's references unit trains them, so benches over this setting reuse them); otherwise N is
    half of what the cache already holds, if that is at least 8. Run 0 of the method is ``first``
    (the delivered model); runs 1..N-1 use the bench's seeds for the method and are discarded.
    """
    have = cached_references(store)
    n = job.references or (have // 2 if have // 2 >= MIN_MODELS else 0)
    base = {"verified": False, "references_cache": str(store.reference(0).parent), "references_cached": have}
    if n == 0:
        return {**base, "why_not": (f"no retrained references for this setting were available ({have} cached, "
                                    f"{2 * MIN_MODELS} needed); pass --references {2 * MIN_MODELS}")}
    trained = 0
    if have < 2 * n:
        todo = [k for k in range(2 * n) if not store.reference(k).is_file()]
        log(f"training {len(todo)} retrained references into {store.reference(0).parent} (cached for later runs)")
        # One thread per model, as a bench trains them: the cache then holds the same bits either way.
        bench = BenchJob(job.setting, (job.method,), {job.method: job.method_config}, seeds=n, budget=job.budget,
                         threads=1, block=len(todo), out=str(job.out), cache_dir=job.cache_dir)
        execute(bench, Unit("references", None, 0, 2 * n), todo, store, write_bytes)
        trained = len(todo)
    refs = [load_run(store.reference(k)) for k in range(2 * n)]
    metas = [run_meta(r) for r in refs]
    if any("diverged" in m for m in metas):
        return {**base, "why_not": "some retrained references diverged (non-finite outputs); the recipe is unstable"}
    y = setting.sets.forget.y.cpu().numpy()
    conf = np.stack([logit_scaled_confidence(r["forget_logits"], y) for r in refs])
    ref_conf, ceil_conf = conf[:n], conf[n:]
    ref_acc = {k: float(np.mean([m["accuracy"][k] for m in metas[:n]])) for k in ("retain", "test", "forget")}
    ceil_acc = {k: float(np.mean([m["accuracy"][k] for m in metas[n:]])) for k in ("retain", "test", "forget")}
    log(f"running {job.method} {n} times to score it against {n} references")
    runs = [first.model] + [
        run_method(job.method, original, setting.unlearn_data, job.method_config,
                   seed=model_seed(setting.config.run_seed, f"unlearn/{job.method}", k), max_steps=cap).model
        for k in range(1, n)]
    u_conf, u_acc = [], {"retain": [], "test": [], "forget": []}
    for model in runs:
        m = measure_accuracy(model, setting)
        u_conf.append(logit_scaled_confidence(m.pop("_forget_logits"), y))
        for k in u_acc:
            u_acc[k].append(m[k])
    u_conf = np.stack(u_conf)
    if not np.isfinite(u_conf).all():
        return {**base, "why_not": f"some of the {n} runs of {job.method} diverged (non-finite outputs)"}
    acc = {k: float(np.mean(v)) for k, v in u_acc.items()}
    rows = {}
    for name, c, a in (("method", u_conf, acc), ("ceiling", ceil_conf, ceil_acc)):
        compat, bounded = (forgetting_quality(c, ref_conf, mode=mode) for mode in ("compat", "bounded"))
        rows[name] = {"forget_quality": compat.forget_quality, "forget_quality_bounded": bounded.forget_quality,
                      "score": final_score(compat.forget_quality, a["retain"], a["test"], ref_acc["retain"], ref_acc["test"]),
                      "accuracy": a, "_eps": compat.epsilons}
    timed = [m["seconds"] for m in metas if m.get("timed_alone")]
    return {**base, "verified": True, "n": n, "references_trained_now": trained, "delta": 1e-5,
            "method": {k: v for k, v in rows["method"].items() if k != "_eps"},
            "ceiling": {k: v for k, v in rows["ceiling"].items() if k != "_eps"},
            "retrain_accuracy": ref_acc,
            "epsilons": rows["method"]["_eps"].tolist(),
            "_epsilons": rows["method"]["_eps"],
            "_retrain_seconds": float(np.mean(timed)) if timed else None}


def measure_accuracy(model: torch.nn.Module, setting: Setting) -> dict[str, Any]:
    """Retain, test and forget accuracy of ``model``, and its forget-set logits (``_forget_logits``)."""
    sets, rt = setting.sets, setting.runtime
    out = {}
    for name in ("retain", "test", "forget"):
        logits = predict(model, getattr(sets, name), runtime=rt)
        out[name] = float((logits.argmax(1) == getattr(sets, name).y.cpu()).float().mean()) if len(logits) else float("nan")
        if name == "forget":
            out["_forget_logits"] = logits.numpy()
    return out


# -- what the audit says in words ----------------------------------------------------------------------

def statements(audit: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What was verified and what was not, in plain words (the audit's two lists)."""
    m, q, cost = audit["measures"], audit["forgetting_quality"], audit["cost"]
    done, not_done = [], []
    fb, fa, target = m["forget_accuracy"]["before"], m["forget_accuracy"]["after"], m["unseen_accuracy"]["before"]
    if fb is not None and fa is not None and target is not None:
        gap_b, gap_a = abs(fb - target), abs(fa - target)
        moved = ("closed " + (f"{1 - gap_a / gap_b:.0%} of the gap" if gap_b > 0 else "no gap (there was none)")
                 if gap_a <= gap_b else "moved away from that level")
        done.append(f"Accuracy on the {audit['forget']['examples']} forgotten images went from {fb:.1%} to {fa:.1%}; "
                    f"the model gets {target:.1%} right on people it never saw, so the erasure {moved}.")
    rb, ra = m["retain_accuracy"]["before"], m["retain_accuracy"]["after"]
    tb, ta = m["test_accuracy"]["before"], m["test_accuracy"]["after"]
    done.append(f"Accuracy on the retained training images went from {rb:.1%} to {ra:.1%}"
                + (f", on the test images from {tb:.1%} to {ta:.1%}." if tb is not None and ta is not None else "."))
    if ra < rb - 0.02:
        not_done.append(f"That the model kept what it should: retain accuracy fell {100 * (rb - ra):.1f} percentage points; a smaller "
                        "learning rate or budget, or another --method, may keep more.")
    mia = m["loss_mia"]
    if mia["after"] is not None:
        done.append(f"A loss-based membership-inference attack tells forgotten images from unseen ones with "
                    f"{mia['after']:.1%} accuracy after ({mia['before']:.1%} before; 50% is chance).")
    else:
        not_done.append(f"The loss-based membership-inference attack: {mia.get('not_computed', 'not computed')}.")
    svc = m["svc_mia_efficacy"]
    if svc["after"] is not None:
        done.append(f"The SVC membership-inference attack calls {svc['after']:.1%} of the forgotten images unseen after "
                    f"({svc['before']:.1%} before); it calls {m['svc_mia_baseline']['after']:.1%} of truly unseen "
                    "images unseen.")
    else:
        not_done.append(f"The SVC membership-inference attack: {svc.get('not_computed', 'not computed')}.")
    if q["verified"]:
        meth, ceil = q["method"], q["ceiling"]
        done.append(f"(ε, δ) forgetting quality against {q['n']} models retrained without these images: "
                    f"F = {meth['forget_quality']:.3f} (bounded {meth['forget_quality_bounded']:.3f}), where a perfect "
                    f"unlearner (another {q['n']} retrains) scores {ceil['forget_quality']:.3f} "
                    f"(bounded {ceil['forget_quality_bounded']:.3f}); the score needs {q['n']} runs of the method, "
                    "and the delivered model is run 0 of them.")
        not_done.append("The (ε, δ) score holds for the method run with these seeds; it is a statistical test over "
                        f"{q['n']} models per side, not a proof about the one delivered model.")
    else:
        not_done.append(f"The (ε, δ) score: not verified, because {q['why_not']}.")
    ratio = cost["time_ratio"] if cost["time_ratio"] is not None else cost["step_ratio"]
    unit = "time" if cost["time_ratio"] is not None else "optimizer steps"
    done.append(f"The erasure took {cost['seconds']:.1f} s and {cost['steps']} optimizer steps: {ratio:.1%} of one "
                f"retrain's {unit}" + (" (over the competition's 20% limit)." if cost["over_time_limit"] else "."))
    if not audit["checkpoint"]["format"].startswith("unlearnkit"):
        not_done.append("How the checkpoint was trained: a state dict records no recipe, so references and costs "
                        "assume the architecture's default recipe and any train.* settings given.")
    not_done.append("Other copies of the original model, and the training data itself, are untouched: delete them "
                    "separately.")
    return done, not_done


__all__ = ["ForgetJob", "default_method", "forget_to_dict", "infer_architecture", "load_any_checkpoint",
           "make_forget_job", "measure_model", "read_examples", "run_forget", "verify_with_references"]
