"""The ``unlearnkit`` command: a thin shell over the library. Bad input exits with code 2."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

from unlearnkit.errors import InputError

EXAMPLES = {
    "datasets": """examples:
  unlearnkit datasets
  UNLEARNKIT_DATA_CELEBA=~/data/celeba unlearnkit datasets""",
    "train": """examples:
  # 8 originals on the built-in synthetic dataset
  unlearnkit train --dataset synthetic --model small_cnn --seeds 0:8 --out runs/orig
  # 8 retrains from scratch without 2% of the people, mostly young ones
  unlearnkit train --dataset synthetic --model small_cnn --seeds 0:8 --forget identity_skewed:0.02 --out runs/retrain
  # CelebA, proposal's 8-class label, ResNet-18 with its recipe, 30 epochs
  unlearnkit train --dataset celeba --data-root ~/data/celeba --set dataset.label=male_gray_chubby \\
      --model resnet18 --seeds 0:4 --out runs/celeba""",
    "methods": """examples:
  unlearnkit methods
  # which methods apply to your own architecture, and why the others do not
  unlearnkit methods --model examples/architectures.py:odd_head
  unlearnkit methods --model mypackage.nets:build --set model.width=64 --dataset fashion_mnist""",
    "unlearn": """examples:
  unlearnkit unlearn --method scrub --checkpoint runs/orig/models/seed_0000.safetensors \\
      --dataset synthetic --forget identity_skewed:0.02 --seeds 0:8 --out runs/scrub
  unlearnkit unlearn --method neggrad_plus --checkpoint CKPT --dataset synthetic --forget random:0.1 \\
      --set method.lr=0.005 --set method.epochs=3 --out runs/ngp""",
    "bench": """examples:
  # the main job on the built-in dataset: 7 methods x 16 seeds against 16 retrains (+ 16 for the ceiling),
  # and the prepared shadow_matching once a pool is made (unlearnkit prepare --shadows 16)
  unlearnkit bench
  unlearnkit bench --methods finetune,scrub,fanchuan --seeds 32 --forget identity_skewed:0.05 --out runs/b32
  # method settings: --set method.NAME.FIELD=VALUE; cap every method at 20% of a retrain's steps
  unlearnkit bench --methods neggrad_plus --set method.neggrad_plus.lr=0.005 --budget 0.2 --out runs/ngp
  # on a Ray cluster, 4 small-model units per GPU
  unlearnkit bench --backend ray --address HEAD:6379 --gpus-per-unit 0.25 --seeds 512 --out /shared/b512
  # as a job list for a SLURM array (line I runs unit I), or for `unlearnkit work OUT --next` workers
  unlearnkit bench --seeds 512 --out /shared/b512 --plan /shared/b512.jobs""",
    "work": """examples:
  unlearnkit work runs/b512 --unit 17        # unit 17 of the plan (e.g. SLURM_ARRAY_TASK_ID)
  unlearnkit work runs/b512 --next           # claim and run the first unfinished unit
  unlearnkit work runs/b512 --drain          # claim units until none is left (one per worker)""",
    "report": """examples:
  unlearnkit report runs/bench               # re-render report.html and report.md from the stored results""",
    "compare": """examples:
  unlearnkit compare runs/b16 runs/b16-budget --html compare.html""",
    "forget": """examples:
  unlearnkit forget --checkpoint runs/orig/models/seed_0000.safetensors --identities 12,57 --out runs/erase
  unlearnkit forget --checkpoint resnet18.pth --dataset celeba --data-root ~/data/celeba \\
      --examples erase.txt --references 16 --budget 0.2 --out runs/erase""",
    "prepare": """examples:
  # 32 shadows of the built-in dataset's recipe, each without 12.5 % of the people (each person out of 4)
  unlearnkit prepare --shadows 32 --leave-out 0.125
  # for whole-class forgets: each shadow leaves out one class (digits: 10 classes, 3 shadows each)
  unlearnkit prepare --dataset digits --shadows 30 --leave-out class
  # shadows 0..7 only (one job of a job list; the pool resumes and fills in)
  unlearnkit prepare --shadows 32 --only 0:8""",
    "metric": """examples:
  unlearnkit metric --unlearned unlearned.npy --retrained retrained.npy
  unlearnkit metric --unlearned u.npz --retrained retrain_confs.npz --retrained-key retrained_confs --mode bounded --json fq.json""",
}


MODEL_HELP = ("a registered model name (small_cnn, mlp, resnet18), or your own: a factory package.module:function "
              "or path/to/file.py:function returning an nn.Module (its other parameters are --set model.NAME=VALUE)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unlearnkit",
        description="Machine unlearning for image classifiers: train, unlearn, and measure forgetting.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog=EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def dataset_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("--dataset", default="synthetic", help="registered dataset name (see `unlearnkit datasets`)")
        q.add_argument("--data-root", help="folder (or CSV for `folder`) holding the dataset")

    def settings_args(q: argparse.ArgumentParser, model_help: str = "model.FIELD") -> None:
        q.add_argument("--config", help="YAML or TOML file of settings (same keys as --set)")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help=f"override a setting: dataset.FIELD, forget.FIELD, {model_help}, train.FIELD, method.FIELD")

    def data_args(q: argparse.ArgumentParser, forget_help: str, *, out_required: bool = True) -> None:
        dataset_args(q)
        q.add_argument("--forget", help=forget_help)
        q.add_argument("--seeds", default="0:1", help="model indices: START:STOP, N, or a list 1,5,9 (default 0:1)")
        q.add_argument("--run-seed", type=int, default=0, help="run seed; model k's seed derives from (run seed, role, k)")
        q.add_argument("--out", required=out_required, help="output folder (an interrupted run resumes there)")
        settings_args(q)

    command("datasets", "List the registered datasets, and their size where the data is present.")

    q = command("train", "Train models from scratch: originals, or retrains without a forget set.")
    data_args(q, "train without this forget set (a retrain), e.g. identity_skewed:0.02; see unlearnkit.data.splits")
    q.add_argument("--model", default="small_cnn", help=MODEL_HELP)
    q.add_argument("--strategy", default="auto", choices=["auto", "sequential", "vmap", "processes"],
                   help="how several seeds are trained (auto: vmap on CUDA, sequential on CPU)")

    q = command("methods", "List the unlearning methods, with a line and a reference each; with --model, which apply to it.")
    q.add_argument("--model", help=MODEL_HELP + "; lists whether each method applies to it and why not")
    dataset_args(q)
    settings_args(q)

    q = command("unlearn", "Run an unlearning method on a trained checkpoint, for several seeds.")
    data_args(q, "the forget set, e.g. identity_skewed:0.02, or a forget.json written by unlearnkit")
    q.add_argument("--method", required=True, help="registered method name (see `unlearnkit methods`)")
    q.add_argument("--checkpoint", required=True, help="the original model's .safetensors checkpoint")
    q.add_argument("--preset", default="auto", help="auto: the swept defaults for the model (methods/defaults.py); none: the reference defaults")
    q.add_argument("--budget", type=float, help="cap the run at this fraction of one retrain's compute (examples passed forward and backward; e.g. 0.2)")

    q = command("bench", "Benchmark methods: N seeds each against N cached retrains, scored and ranked.")
    data_args(q, "the forget set (default identity_skewed:0.02: 2%% of the people, mostly the youngest)", out_required=False)
    q.set_defaults(forget="identity_skewed:0.02", seeds="16", out="runs/bench")
    q.add_argument("--model", default="small_cnn", help=MODEL_HELP)
    q.add_argument("--methods", help="comma-separated method names (default: scramble_relearn, the competition's top 3, salun, orthogonal_surgery, "
                   "finetune, and shadow_matching where `unlearnkit prepare` has made a pool for the setting)")
    q.add_argument("--preset", default="auto", help="auto: the swept defaults for the model (methods/defaults.py); none: the reference defaults")
    q.add_argument("--no-ceiling", action="store_true", help="skip the second set of retrains that scores a perfect unlearner")
    q.add_argument("--budget", type=float, help="cap each method run at this fraction of one retrain's compute (examples passed forward and backward; e.g. 0.2)")
    q.add_argument("--guard", nargs="?", type=float, const=0.02, metavar="TOLERANCE",
                   help="also run every method under the utility guard (rows NAME+guard beside the unguarded ones): "
                   "at most TOLERANCE below the original's retain and validation accuracy (default 0.02 = 2 points; docs/guard.md)")
    q.add_argument("--strategy", default="auto", choices=["auto", "sequential", "vmap", "processes"],
                   help="how a reference unit trains its models (auto: vmap on CUDA, sequential on CPU)")
    q.add_argument("--cache-dir", default="", help="where originals and references are cached (default ~/.cache/unlearnkit)")
    q.add_argument("--backend", default="local", choices=["local", "ray"], help="where units run (default local)")
    q.add_argument("--workers", type=int, help="local worker processes (default: what the cores and memory allow)")
    q.add_argument("--threads", type=int, help="torch threads per unit (default 1; results are identical for equal counts)")
    q.add_argument("--block", type=int, help="models per unit (default 4 on a CPU, 16 on a GPU)")
    q.add_argument("--address", help="Ray cluster address HOST:PORT (default: start a local Ray)")
    q.add_argument("--cpus-per-unit", type=float, help="CPUs a Ray unit asks for (default: --threads)")
    q.add_argument("--gpus-per-unit", type=float, help="GPUs a Ray unit asks for; 0.25 packs 4 units per GPU")
    q.add_argument("--plan", metavar="FILE", help="write the units as a job list to FILE instead of running them")

    q = command("work", "Run units of a planned bench (bench --plan): one by index, or the next unclaimed one.")
    q.add_argument("dir", help="the bench folder (its --out)")
    q.add_argument("--unit", type=int, help="the unit's index in the plan (line I of the job list)")
    q.add_argument("--next", action="store_true", help="claim the first unfinished unit (atomic lock file) and run it")
    q.add_argument("--drain", action="store_true", help="claim and run units until every unit is finished")

    q = command("report", "Re-render a bench's report.html and report.md from its stored results.")
    q.add_argument("dir", help="the bench folder (its --out)")

    q = command("compare", "Put several benches over the same setting side by side.")
    q.add_argument("dirs", nargs="+", help="bench folders")
    q.add_argument("--html", metavar="FILE", help="also write the comparison as a self-contained HTML page")

    q = command("forget", "Erase people or images from a trained model, with an audit of the erasure.")
    q.add_argument("--checkpoint", required=True,
                   help="the trained model: an unlearnkit .safetensors, or a PyTorch state dict (.pt/.pth) of a registered architecture")
    dataset_args(q)
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--identities", metavar="ID,ID", help="forget every training image of these people (dataset ids), e.g. 12,57")
    what.add_argument("--examples", metavar="FILE", help="forget the images FILE lists: one image name (celeba, folder) or dataset index per line")
    what.add_argument("--forget", metavar="SPEC", help="forget a forget spec's examples (e.g. identity:0.02) or a forget.json")
    q.add_argument("--model", help="a state dict's architecture: a registered name, or your factory package.module:function "
                   "or path/to/file.py:function (default: inferred among the registered ones from its tensors)")
    q.add_argument("--method", help="unlearning method (default: the best on the recorded leaderboards of this dataset "
                   "and kind of forget set within --budget, or within 20%% of a retrain's compute without one)")
    q.add_argument("--preset", default="auto", help="auto: the swept defaults for the model (methods/defaults.py); none: the reference defaults")
    q.add_argument("--budget", type=float, help="cap the method at this fraction of one retrain's compute (e.g. 0.2)")
    q.add_argument("--guard-tolerance", type=float, default=0.02, metavar="T",
                   help="the utility guard keeps the model within T of the original's retain and validation accuracy "
                   "(default 0.02 = 2 points; docs/guard.md)")
    q.add_argument("--no-guard", action="store_true", help="run the method without the utility guard")
    q.add_argument("--references", type=int, default=0, metavar="N",
                   help="score (ε, δ) against N retrains, +N for the ceiling, trained into the cache where missing (N >= 8); "
                   "without it, references already cached for this setting are used")
    q.add_argument("--cache-dir", default="", help="where references are cached (default ~/.cache/unlearnkit)")
    q.add_argument("--run-seed", type=int, default=0, help="run seed (a bench's, to share its cached references)")
    q.add_argument("--out", required=True, help="output folder: model.safetensors, audit.html, audit.json")
    settings_args(q, "model.FIELD (state dicts)")

    q = command("prepare", "Prepare a model for erasure once: a pool of shadows, each trained without a known share of people.")
    dataset_args(q)
    q.add_argument("--model", default="small_cnn", help=MODEL_HELP)
    q.add_argument("--shadows", type=int, default=32, help="K, shadow models in the pool (default 32)")
    q.add_argument("--leave-out", default="0.125", help="share of the people (else examples) each shadow leaves out (default 0.125), "
                   "or `class`: each shadow leaves out one whole class (the pool a class forget needs; --shadows a multiple of the classes)")
    q.add_argument("--pool-seed", type=int, default=0, help="draws which people each shadow leaves out")
    q.add_argument("--only", metavar="A:B", help="train only shadows A..B-1 (several jobs can share one pool)")
    q.add_argument("--run-seed", type=int, default=0, help="run seed (a bench's, to match its original)")
    q.add_argument("--cache-dir", default="", help="where the pool is kept (default ~/.cache/unlearnkit)")
    settings_args(q)

    q = command("metric", "Score forgetting quality from per-example statistics of unlearned and retrained models.")
    q.add_argument("--unlearned", required=True, help=".npy or .npz array [N models, E forget examples]")
    q.add_argument("--retrained", required=True, help=".npy or .npz array [N models, E forget examples]")
    q.add_argument("--unlearned-key", help="array name inside an .npz with several arrays")
    q.add_argument("--retrained-key", help="array name inside an .npz with several arrays (official: retrained_confs)")
    q.add_argument("--mode", default="compat", choices=["compat", "exact", "bounded"])
    q.add_argument("--delta", type=float, default=1e-5)
    q.add_argument("--intervals", type=int, default=0,
                   help="model subsamples for a 95%% confidence interval for E[F] (0: none; needs N >= 16; 200 is a good number)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--json", help="write the result as JSON here")
    return p


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from unlearnkit.config import load_file, merge, parse_overrides

    settings = load_file(args.config) if args.config else {}
    settings = merge(settings, parse_overrides(args.set))
    known = {"dataset", "forget", "model", "train", "method"}
    unknown = sorted(set(settings) - known)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(f"unknown setting section {unknown[0]!r}.{hint} Expected one of {', '.join(sorted(known))}")
    for section in ("dataset", "forget", "model", "train"):
        if not isinstance(settings.get(section, {}), dict):
            raise InputError(f"setting {section!r} is a table of fields: --set {section}.FIELD=VALUE")
    return settings


def _setting(args: argparse.Namespace, settings: dict[str, Any], *, forget: str | None):
    from unlearnkit.runner.setting import make_setting_config

    return make_setting_config(
        dataset=args.dataset, dataset_options=settings.get("dataset"), data_root=args.data_root, forget=forget,
        forget_options=settings.get("forget"), model=getattr(args, "model", "small_cnn"),
        model_options=settings.get("model"), train_options=settings.get("train"), run_seed=args.run_seed,
    )


def cmd_datasets(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.data import DATASETS

    table = Table(title="datasets")
    for col in ("name", "what", "present"):
        table.add_column(col)
    for entry in DATASETS:
        probe = entry.meta.get("probe")
        found = probe(entry.config()) if probe else None
        if not found:
            status = f"not found (set --data-root or UNLEARNKIT_DATA_{entry.name.upper()})"
        elif "missing" in found:
            status = f"incomplete: lacks {found['missing']}" + (f" (in {found['root']})" if "root" in found else "")
        else:
            status = ", ".join(f"{k}={v}" for k, v in found.items())
        table.add_row(entry.name, entry.summary, status)
    console.print(table)


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.engine.seeding import parse_seeds
    from unlearnkit.runner.jobs import TrainJob, run_train

    settings = _settings(args)
    if "method" in settings:
        raise InputError("method.* settings apply to `unlearnkit unlearn` and `bench`, not to train")
    job = TrainJob(_setting(args, settings, forget=args.forget), tuple(parse_seeds(args.seeds)), args.strategy, args.out)
    paths = run_train(job, log=lambda text: console.print(text, highlight=False))
    console.print(f"[green]{len(paths)} models in {args.out}/models[/green]")


def cmd_methods(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.methods import METHODS
    from unlearnkit.methods.requirements import NEEDS

    if args.model is None:
        if args.set or args.config:
            raise InputError("--set and --config describe a model: pass it with --model")
        table = Table(title=f"{len(METHODS)} unlearning methods")
        for col in ("name", "what", "needs", "reference"):
            table.add_column(col)
        for entry in METHODS:
            table.add_row(entry.name, entry.summary, ", ".join(entry.meta.get("needs", ())) or "any classifier",
                          entry.meta.get("reference", ""))
        console.print(table)
        return
    from unlearnkit.runner.setting import method_verdict

    settings = _settings(args)
    extra = sorted(set(settings) - {"dataset", "model"})
    if extra:
        raise InputError(f"{extra[0]}.* settings do not describe a model; `methods --model` takes dataset.* and model.*")
    args.run_seed = 0
    found = method_verdict(_setting(args, settings, forget=None))
    table = Table(title=f"methods for {args.model} on {args.dataset}: {sum(not r for r in found.values())} of {len(found)} apply")
    for col in ("name", "applies", "why not"):
        table.add_column(col, overflow="fold")
    for name, reasons in found.items():
        table.add_row(name, "no" if reasons else "yes", "; ".join(reasons))
    console.print(table)
    console.print("needs: " + "; ".join(f"{k}: {v.says}" for k, v in NEEDS.items()), highlight=False)


def cmd_unlearn(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.engine.checkpoint import load_checkpoint
    from unlearnkit.engine.seeding import parse_seeds
    from unlearnkit.methods import METHODS
    from unlearnkit.runner.jobs import UnlearnJob, resolve_method_config, run_unlearn

    settings = _settings(args)
    for section in ("train", "model"):
        if section in settings:
            raise InputError(f"{section}.* settings come from the checkpoint in `unlearn`; drop them")
    if args.forget is None:
        raise InputError("unlearning needs a forget set: pass --forget SPEC (e.g. identity_skewed:0.02)")
    METHODS.entry(args.method)
    _, spec, info = load_checkpoint(args.checkpoint)
    args.model = spec.name
    settings = {**settings, "train": info.get("train", {}), "model": (info.get("model") or {}).get("config") or {}}
    setting = _setting(args, settings, forget=args.forget)
    cfg, _ = resolve_method_config(args.method, None if args.preset == "none" else args.preset, setting,
                                   dict(settings.get("method", {})))
    job = UnlearnJob(setting, args.method, args.checkpoint, cfg, tuple(parse_seeds(args.seeds)), args.budget, args.out)
    paths = run_unlearn(job, log=lambda text: console.print(text, highlight=False))
    console.print(f"[green]{len(paths)} unlearned models in {args.out}/models[/green]")


def cmd_bench(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.report import leaderboard_table, write_report
    from unlearnkit.runner.bench import Backend, run_bench
    from unlearnkit.methods.guard import GuardConfig
    from unlearnkit.runner.jobs import DEFAULT_METHODS, default_methods, make_bench_job
    from unlearnkit.runner.setting import applicable

    settings = _settings(args)
    try:
        n = int(args.seeds)
    except ValueError:
        raise InputError(f"--seeds {args.seeds!r}: bench takes a number of seeds per side, e.g. 16") from None
    options = settings.get("method", {})
    if any(not isinstance(v, dict) for v in options.values()):
        raise InputError("bench method settings are per method: --set method.NAME.FIELD=VALUE")
    setting = _setting(args, settings, forget=args.forget)
    if args.methods:
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    else:
        methods = default_methods(setting, args.cache_dir)
        if methods != DEFAULT_METHODS:
            console.print(f"a prepared pool for this setting is in the cache: {', '.join(methods[len(DEFAULT_METHODS):])} "
                          "joins the default methods", highlight=False)
    methods, refused = applicable(setting, methods, given=bool(args.methods))
    for name, reasons in refused.items():
        console.print(f"{name} is left out: it does not apply to {setting.model} ({'; '.join(reasons)})", highlight=False)
    backend = Backend(args.backend, args.workers, args.address, args.cpus_per_unit, args.gpus_per_unit or 0.0)
    job = make_bench_job(
        setting, methods=methods, method_options=options,
        preset=None if args.preset == "none" else args.preset, seeds=n, ceiling=not args.no_ceiling,
        budget=args.budget, threads=args.threads, block=args.block, strategy=args.strategy, out=args.out,
        cache_dir=args.cache_dir, guard=None if args.guard is None else GuardConfig(tolerance=args.guard),
    )
    board = run_bench(job, backend, plan=args.plan, console=console)
    if board is None:
        return
    write_report(args.out, board)
    console.print(leaderboard_table(board, width=min(console.width, 200) if console.is_terminal else 80))
    console.print(f"[green]leaderboard: {args.out}/leaderboard.json, reports: {args.out}/report.html, {args.out}/report.md[/green]")


def cmd_work(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.report import write_report
    from unlearnkit.runner.bench import run_work

    board = run_work(args.dir, unit=args.unit, next_unit=args.next, drain=args.drain, console=console)
    if board is not None:  # this worker ran the score unit: the reports follow it
        paths = write_report(args.dir, board)
        console.print(f"reports: {paths[0]}, {paths[1]}", highlight=False)


def cmd_report(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.report import write_report

    html_path, md_path = write_report(args.dir)
    console.print(f"[green]report: {html_path}, {md_path}[/green]")


def cmd_compare(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.io import write_bytes
    from unlearnkit.report import compare_benches

    result = compare_benches(args.dirs)
    console.print(result.markdown, markup=False, highlight=False, soft_wrap=True)
    if args.html:
        write_bytes(args.html, result.html.encode())


def cmd_forget(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.methods.guard import GuardConfig
    from unlearnkit.report.audit import write_audit
    from unlearnkit.runner.forget import make_forget_job, run_forget

    settings = _settings(args)
    job = make_forget_job(
        args.checkpoint, out=args.out, dataset=args.dataset, dataset_options=settings.get("dataset"),
        data_root=args.data_root, identities=args.identities, examples=args.examples, forget=args.forget,
        forget_options=settings.get("forget"), model=args.model, model_options=settings.get("model"),
        train_options=settings.get("train"), method=args.method, method_options=settings.get("method"),
        preset=None if args.preset == "none" else args.preset, budget=args.budget, references=args.references,
        cache_dir=args.cache_dir, run_seed=args.run_seed,
        guard=None if args.no_guard else GuardConfig(tolerance=args.guard_tolerance))
    outcome = run_forget(job, log=lambda text: console.print(text, highlight=False))
    if not outcome.already_done:
        audit = write_audit(job.out, outcome.audit)
        failed = len(audit["failed"])
        console.print(f"audit: {job.out}/audit.html ({len(audit['verified'])} checks passed"
                      + (f", [red]{failed} failed or not computed[/red])" if failed else ")"), highlight=False)


def cmd_prepare(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.results.pool import load_pool
    from unlearnkit.runner.prepare import PoolConfig, PrepareJob, parse_range, prepare_pool

    settings = _settings(args)
    if "method" in settings or "forget" in settings:
        raise InputError("prepare takes dataset.*, model.* and train.* settings; a pool serves every forget set")
    if args.leave_out == "class":
        pool = PoolConfig(args.shadows, seed=args.pool_seed, by_class=True)
    else:
        try:
            share = float(args.leave_out)
        except ValueError:
            raise InputError(f"prepare: --leave-out {args.leave_out!r}: expected a share such as 0.125, or `class`") from None
        pool = PoolConfig(args.shadows, share, args.pool_seed)
    job = PrepareJob(_setting(args, settings, forget=None), pool, parse_range(args.only, pool.shadows) if args.only else None,
                     args.cache_dir)
    folder = prepare_pool(job, log=lambda text: console.print(text, highlight=False))
    try:
        cost = load_pool(folder).cost()
    except InputError:
        console.print(f"[yellow]pool {folder}: part of it is trained; run the other shadows to finish it[/yellow]")
        return
    console.print(f"[green]pool of {cost['shadows']} shadows in {folder}[/green]: one-time compute "
                  f"{cost['compute_ratio']:.1f} x a retrain on D; use it with --set method.shadow_matching.pool={folder}",
                  highlight=False)


def cmd_metric(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.metrics.files import run_metric_command

    run_metric_command(
        args.unlearned, args.retrained, mode=args.mode, delta=args.delta, json_out=args.json,
        unlearned_key=args.unlearned_key, retrained_key=args.retrained_key, intervals=args.intervals,
        seed=args.seed, console=console,
    )


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], None]] = {
    "datasets": cmd_datasets,
    "train": cmd_train,
    "methods": cmd_methods,
    "unlearn": cmd_unlearn,
    "bench": cmd_bench,
    "prepare": cmd_prepare,
    "work": cmd_work,
    "report": cmd_report,
    "compare": cmd_compare,
    "forget": cmd_forget,
    "metric": cmd_metric,
}


def _print_error(exc: BaseException) -> None:
    """One line on stderr. The message is read as ANSI text, not markup: codes it carries (a Ray
    task's error is coloured) become styles, which rich drops when stderr is not a terminal."""
    Console(stderr=True, soft_wrap=True).print(Text.assemble(("error: ", "red"), Text.from_ansi(str(exc))), highlight=False)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 bad input, 1 a unit that failed for another reason)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from unlearnkit.runner.backends import UnitsFailed

    console = Console()
    try:
        COMMANDS[args.command](args, console)
    except (InputError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        _print_error(exc)
        return 2
    except UnitsFailed as exc:
        _print_error(exc)
        return 2 if exc.bad_input else 1
    except KeyboardInterrupt:
        Console(stderr=True, soft_wrap=True).print(
            "interrupted: every finished result is kept; run the same command again to resume", highlight=False)
        return 130
    return 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
