"""An erasure request for ``unlearnkit forget``, checked and resolved before any work (see :func:`make_forget_job`).

Every bad input is refused here, naming the file or flag, before a dataset tensor is built or a
model trained: a checkpoint that is not ours or not a state dict (text, random bytes, a pickled
whole model), one that does not fit the data, people or images the model never trained on, an
empty forget set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.config import to_dict
from unlearnkit.data.base import DATASETS, SPLIT_NAMES, ImageDataset
from unlearnkit.data.cache import resolve_cache_dir
from unlearnkit.data.splits import ForgetSet, parse_forget_spec
from unlearnkit.engine.checkpoint import read_sidecar
from unlearnkit.engine.model_import import STATE_DICT_SUFFIXES, first_items, infer_architecture, read_state_dict
from unlearnkit.errors import InputError
from unlearnkit.methods import METHODS
from unlearnkit.methods.guard import GuardConfig
from unlearnkit.metrics.forgetting import MIN_MODELS
from unlearnkit.results.pool import read_design
from unlearnkit.runner.default_method import default_method
from unlearnkit.runner.jobs import regime_fields, resolve_method_config
from unlearnkit.runner.prepare import find_pool, with_pools
from unlearnkit.runner.setting import SettingConfig, applicable, make_setting_config, method_verdict, setting_to_dict
from unlearnkit.runner.shadow_audit import half_size

# Train-recipe fields that only say where and how fast a model runs; the rest come from the checkpoint.
RUNTIME_FIELDS = ("precision", "device", "channels_last")
# How many bad identities or examples an error message lists.
LISTED = 5
# Torch threads of a bench's units (BenchJob.threads' default): references are trained and timed
# under it, so the method is run and timed under it too.
REFERENCE_THREADS = 1


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
        method_leaderboard: The recorded leaderboard the default came from (None: given with --method).
        request: What the user asked to forget, as given (for the audit).
        budget: Cap the method at this fraction of one retrain's optimizer steps (None: no cap).
        references: N: train missing retrained references (2N, the second N the ceiling) and run the
            method N times to score (ε, δ); 0 uses references already cached, if there are 2 x 8.
        cache_dir: The bench cache the references are read from and trained into ("" = default).
        out: The output folder.
        threads: Torch threads the method runs with (the references' count, for comparable times).
        guard: The utility guard the method runs under (methods.guard; on by default: a production
            model must keep its accuracy); None runs it unguarded.
        regime: The method's fields the regime rule may scale (runner.jobs.regime_fields; None: no rule).
        pool: The prepared pool of this dataset, model and recipe ("" = none): the shadow-based audit's
            approximate references come from its second half, and a prepared method given all of it
            takes its targets from the first half (runner.forget.verify_with_shadows).
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
    method_leaderboard: str | None = None
    threads: int = REFERENCE_THREADS
    guard: GuardConfig | None = field(default_factory=GuardConfig)
    regime: tuple[str, ...] | None = None
    pool: str = ""


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
    guard: GuardConfig | None = GuardConfig(),
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
        method, method_options, preset: The method (default: the best recorded one for this dataset
            and kind of forget set, see :mod:`unlearnkit.runner.default_method`) and its settings.
        budget: A fraction of one retrain's compute, in (0, 10].
        references: N >= 8 models per side for the (ε, δ) score, or 0.
        cache_dir: The bench cache.
        run_seed: The run seed (a bench's, for its cached references to apply).

    Raises:
        InputError: anything that does not fit; nothing has been written to ``out``.
    """
    if budget is not None and not 0 < budget <= 10:
        raise InputError(f"--budget {budget}: expected a fraction of one retrain's compute in (0, 10], e.g. 0.2")
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
    # The file is read before the data: a bad checkpoint costs nothing to refuse.
    state = None if ours else read_state_dict(path, where=f"--checkpoint {checkpoint}")
    if ours:
        if model or model_options:
            raise InputError(f"--checkpoint {checkpoint} carries its architecture; drop --model and model.* settings")
        name, model_config, recipe, trained_on = _our_architecture(path)

    # The data first, unconditioned on any model: identities, examples and a state dict's shape are checked against it.
    base = make_setting_config(dataset=dataset, dataset_options=dataset_options, data_root=data_root, forget=None,
                               train_options=_runtime_only(train_options) if ours else train_options, run_seed=run_seed)
    ds = DATASETS.get(base.dataset)(base.dataset_config)
    if ours and trained_on not in (None, ds.fingerprint):
        raise InputError(f"checkpoint {checkpoint} was trained on dataset {trained_on}, not on this {ds.name} "
                         f"({ds.fingerprint}); pass the same dataset settings")
    if identities:
        request = {"identities": _parse_ids(identities)}
        spec, kind = _identities_spec(request["identities"], ds), "identities"
    elif examples:
        indices = read_examples(examples, ds)
        request = {"examples": str(Path(examples).expanduser().resolve()), "count": len(indices)}
        spec, kind = str(_save_examples_forget_set(indices, ds, cache_dir)), "examples"
    else:
        request, spec, kind = {"forget": forget}, forget, _spec_kind(forget)

    if ours:
        train = {**recipe, **_runtime_only(train_options)}
    else:
        name, model_config = infer_architecture(state, ds, model=model, model_options=model_options,
                                                where=f"--checkpoint {checkpoint}")
        train = dict(train_options or {})
    setting = make_setting_config(dataset=dataset, dataset_options=dataset_options, data_root=data_root, forget=spec,
                                  forget_options=forget_options, model=name, model_options=to_dict(model_config),
                                  train_options=train, run_seed=run_seed)
    board = None
    if method is None:
        refused = frozenset(name for name, why in method_verdict(setting).items() if why)
        choice = default_method(budget, dataset=setting.dataset, forget_kind=kind, refused=refused)
        method, reason, board = choice.method, choice.reason, choice.leaderboard
    else:
        METHODS.entry(method)
        applicable(setting, (method,), given=True)
        reason = "given with --method"
    cfg, used = resolve_method_config(method, preset, setting, method_options)
    cfg, pool = _with_pool(method, cfg, setting, cache_dir)
    return ForgetJob(setting, str(path), method, cfg, used, reason, request, budget, references, cache_dir, str(out),
                     board, REFERENCE_THREADS, guard, regime_fields(method, preset, method_options), pool)


def _with_pool(method: str, cfg: Any, setting: SettingConfig, cache_dir: str) -> tuple[Any, str]:
    """The method's config and the prepared pool the audit reads ("" = none). A prepared method gets
    its pool from the cache (or keeps the one given); given all of a pool that splits in two, it takes
    its targets from the first half, so that the second half is independent approximate references."""
    if not METHODS.entry(method).meta.get("prepared"):
        found = find_pool(setting, cache_dir)
        return cfg, str(found) if found is not None else ""
    cfg = with_pools({method: cfg}, setting, cache_dir)[method]
    if getattr(cfg, "without_pool", False) or not cfg.pool:
        return cfg, ""
    if cfg.shadows == 0:
        try:
            half = half_size(read_design(cfg.pool), cfg.pool)
        except InputError:
            return cfg, cfg.pool
        cfg = replace(cfg, shadows=half)
    return cfg, cfg.pool


def _spec_kind(forget: str) -> str:
    """The selector a forget spec names, or for a forget.json the kind it records."""
    path = Path(forget).expanduser()
    if forget.endswith(".json") or path.is_file():
        try:
            raw = json.loads(path.read_text())
            return str(raw["kind"])
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"--forget {forget}: cannot read the forget set ({exc})") from None
    return parse_forget_spec(forget)[0]


def _runtime_only(train_options: dict | None) -> dict:
    extra = sorted(set(train_options or {}) - set(RUNTIME_FIELDS))
    if extra:
        raise InputError(f"train.{extra[0]} comes from the checkpoint's sidecar (how the model was trained); "
                         f"only train.{', train.'.join(RUNTIME_FIELDS)} may be set")
    return dict(train_options or {})


def _our_architecture(path: Path) -> tuple[str, Any, dict, str | None]:
    """Our checkpoint's architecture, config, training recipe and the fingerprint of the data it saw."""
    spec, info = read_sidecar(path)
    return spec.name, spec.config, dict(info.get("train") or {}), info.get("dataset_fingerprint")


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
                         f"{first_items(unknown)}")
    idx = np.unique(np.asarray(indices, dtype=np.int64))
    outside = idx[ds.split[idx] != 0]
    if len(outside):
        listed = [f"{tokens[indices.index(int(i))]} ({SPLIT_NAMES[ds.split[i]]} split)" for i in outside]
        raise InputError(f"--examples {path}: {len(outside)} examples are not in {ds.name}'s training split, so the "
                         f"model never learnt them: {first_items(listed)}")
    return idx


def _save_examples_forget_set(indices: np.ndarray, ds: ImageDataset, cache_dir: str) -> Path:
    """Store the forget set in the cache, named by its fingerprint, so equal requests share references."""
    if len(indices) >= len(ds.indices("train")):
        raise InputError("--examples names every training example; nothing would be retained")
    fs = ForgetSet(indices=indices, kind="examples", config={}, dataset_fingerprint=ds.fingerprint)
    path = resolve_cache_dir(cache_dir) / "forget_sets" / f"{fs.fingerprint}.json"
    if not path.is_file():
        fs.save(path)
    return path


def forget_to_dict(job: ForgetJob) -> dict[str, Any]:
    """The job as JSON (the audit's ``job``)."""
    return {"setting": setting_to_dict(job.setting), "checkpoint": job.checkpoint, "method": job.method,
            "method_config": to_dict(job.method_config), "method_preset": job.method_preset,
            "method_reason": job.method_reason, "method_leaderboard": job.method_leaderboard, "request": job.request,
            "budget": job.budget, "references": job.references, "cache_dir": job.cache_dir, "out": job.out,
            "threads": job.threads, "guard": job.guard.to_dict() if job.guard is not None else None,
            "regime": None if job.regime is None else list(job.regime), "pool": job.pool or None}
