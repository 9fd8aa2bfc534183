"""The ``unlearnkit`` command: a thin shell over the library. Bad input exits with code 2."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

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
  unlearnkit methods""",
    "unlearn": """examples:
  unlearnkit unlearn --method scrub --checkpoint runs/orig/models/seed_0000.safetensors \\
      --dataset synthetic --forget identity_skewed:0.02 --seeds 0:8 --out runs/scrub
  unlearnkit unlearn --method neggrad_plus --checkpoint CKPT --dataset synthetic --forget random:0.1 \\
      --set method.lr=0.005 --set method.epochs=3 --out runs/ngp""",
    "bench": """examples:
  # the main job on the built-in dataset: default methods, 8 seeds each, 16 cached retrains
  unlearnkit bench --out runs/bench
  unlearnkit bench --methods finetune,scrub,fanchuan --seeds 16 --forget identity_skewed:0.05 --out runs/b16
  # method settings: --set method.NAME.FIELD=VALUE
  unlearnkit bench --methods neggrad_plus --set method.neggrad_plus.lr=0.005 --out runs/ngp""",
    "metric": """examples:
  unlearnkit metric --unlearned unlearned.npy --retrained retrained.npy
  unlearnkit metric --unlearned u.npz --retrained retrain_confs.npz --retrained-key retrained_confs --mode bounded --json fq.json""",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="unlearnkit",
        description="Machine unlearning for image classifiers: train, unlearn, and measure forgetting.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_, description=help_, epilog=EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    def data_args(q: argparse.ArgumentParser, forget_help: str) -> None:
        q.add_argument("--dataset", default="synthetic", help="registered dataset name (see `unlearnkit datasets`)")
        q.add_argument("--data-root", help="folder (or CSV for `folder`) holding the dataset")
        q.add_argument("--forget", help=forget_help)
        q.add_argument("--seeds", default="0:1", help="model indices: START:STOP, N, or a list 1,5,9 (default 0:1)")
        q.add_argument("--run-seed", type=int, default=0, help="run seed; model k's seed derives from (run seed, k)")
        q.add_argument("--out", required=True, help="output folder (an interrupted run resumes there)")
        q.add_argument("--config", help="YAML or TOML file of settings (same keys as --set)")
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a setting: dataset.FIELD, forget.FIELD, model.FIELD, train.FIELD, method.FIELD")

    command("datasets", "List the registered datasets, and their size where the data is present.")

    q = command("train", "Train models from scratch: originals, or retrains without a forget set.")
    data_args(q, "train without this forget set (a retrain), e.g. identity_skewed:0.02; see unlearnkit.data.splits")
    q.add_argument("--model", default="small_cnn", help="registered model name")
    q.add_argument("--strategy", default="auto", choices=["auto", "sequential", "vmap", "processes"],
                   help="how several seeds are trained (auto: vmap on CUDA, sequential on CPU)")

    command("methods", "List the unlearning methods, with a line and a reference each.")

    q = command("unlearn", "Run an unlearning method on a trained checkpoint, for several seeds.")
    data_args(q, "the forget set, e.g. identity_skewed:0.02, or a forget.json written by unlearnkit")
    q.add_argument("--method", required=True, help="registered method name (see `unlearnkit methods`)")
    q.add_argument("--checkpoint", required=True, help="the original model's .safetensors checkpoint")
    q.add_argument("--preset", default="auto", help="named preset of method settings; auto = the dataset/model's, none = reference defaults")

    q = command("bench", "Benchmark methods: N seeds each against N cached retrains, scored and ranked.")
    data_args(q, "the forget set (default identity_skewed:0.02: 2%% of the people, mostly the youngest)")
    q.set_defaults(forget="identity_skewed:0.02", seeds="8")
    q.add_argument("--model", default="small_cnn", help="registered model name")
    q.add_argument("--methods", help="comma-separated method names (default: a representative set)")
    q.add_argument("--preset", default="auto", help="method presets: auto (the dataset/model's), or none")
    q.add_argument("--no-ceiling", action="store_true", help="skip the second set of retrains that scores a perfect unlearner")
    q.add_argument("--strategy", default="auto", choices=["auto", "sequential", "vmap", "processes"])
    q.add_argument("--cache-dir", default="", help="where retrained references are cached (default ~/.cache/unlearnkit)")

    q = command("metric", "Score forgetting quality from per-example statistics of unlearned and retrained models.")
    q.add_argument("--unlearned", required=True, help=".npy or .npz array [N models, E forget examples]")
    q.add_argument("--retrained", required=True, help=".npy or .npz array [N models, E forget examples]")
    q.add_argument("--unlearned-key", help="array name inside an .npz with several arrays")
    q.add_argument("--retrained-key", help="array name inside an .npz with several arrays (official: retrained_confs)")
    q.add_argument("--mode", default="compat", choices=["compat", "exact", "bounded"])
    q.add_argument("--delta", type=float, default=1e-5)
    q.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for a 95%% interval (0: none)")
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
        raise InputError(f"unknown setting section {unknown[0]!r}; expected one of {', '.join(sorted(known))}")
    return settings


def _data_choice(args: argparse.Namespace, settings: dict[str, Any]):
    from unlearnkit.data import DATASETS
    from unlearnkit.runs import DataChoice

    entry = DATASETS.entry(args.dataset)
    options = dict(settings.get("dataset", {}))
    if args.data_root:
        fields = entry.config.__dataclass_fields__
        key = "root" if "root" in fields else "csv" if "csv" in fields else None
        if key is None:
            raise InputError(f"dataset {args.dataset} reads no files; drop --data-root")
        options[key] = args.data_root
    return DataChoice(args.dataset, options, args.forget, dict(settings.get("forget", {})))


def cmd_datasets(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.data import DATASETS

    table = Table(title="datasets")
    for col in ("name", "what", "present"):
        table.add_column(col)
    for entry in DATASETS:
        probe = entry.meta.get("probe")
        found = probe(entry.config()) if probe else None
        status = ", ".join(f"{k}={v}" for k, v in found.items()) if found else "not found (set --data-root)"
        table.add_row(entry.name, entry.summary, status)
    console.print(table)


def _train_config(model: str, settings: dict[str, Any]):
    """The model's recipe with the ``train.*`` settings applied."""
    import dataclasses

    from unlearnkit.config import from_dict
    from unlearnkit.engine.train import TrainConfig, default_recipe

    base = dataclasses.asdict(default_recipe(model))
    return from_dict(TrainConfig, {**base, **settings.get("train", {})}, where="train")


def cmd_train(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.engine.seeding import parse_seeds
    from unlearnkit.runs import TrainJob, run_train

    settings = _settings(args)
    if "method" in settings:
        raise InputError("method.* settings apply to `unlearnkit unlearn`, not to train")
    train_cfg = _train_config(args.model, settings)
    job = TrainJob(_data_choice(args, settings), args.model, dict(settings.get("model", {})), train_cfg,
                   tuple(parse_seeds(args.seeds)), args.run_seed, args.strategy, args.out)
    paths = run_train(job, log=console.print)
    console.print(f"[green]{len(paths)} models in {args.out}/models[/green]")


def cmd_methods(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.methods import METHODS

    table = Table(title=f"{len(METHODS)} unlearning methods")
    for col in ("name", "what", "reference"):
        table.add_column(col)
    for entry in METHODS:
        table.add_row(entry.name, entry.summary, entry.meta.get("reference", ""))
    console.print(table)


def cmd_unlearn(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.engine.seeding import parse_seeds
    from unlearnkit.runs import UnlearnJob, run_unlearn

    settings = _settings(args)
    for section in ("train", "model"):
        if section in settings:
            raise InputError(f"{section}.* settings come from the checkpoint in `unlearn`; drop them")
    preset = None if args.preset == "none" else args.preset
    job = UnlearnJob(_data_choice(args, settings), args.method, args.checkpoint, dict(settings.get("method", {})),
                     preset, tuple(parse_seeds(args.seeds)), args.run_seed, args.out)
    paths = run_unlearn(job, log=console.print)
    console.print(f"[green]{len(paths)} unlearned models in {args.out}/models[/green]")


def cmd_bench(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.bench import DEFAULT_METHODS, BenchJob, run_bench
    from unlearnkit.report.leaderboard import leaderboard_markdown, leaderboard_table
    from unlearnkit.store import write_bytes

    settings = _settings(args)
    train_cfg = _train_config(args.model, settings)
    try:
        n = int(args.seeds)
    except ValueError:
        raise InputError(f"--seeds {args.seeds!r}: bench takes a number of seeds per side, e.g. 8") from None
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip()) if args.methods else DEFAULT_METHODS
    options = settings.get("method", {})
    if any(not isinstance(v, dict) for v in options.values()):
        raise InputError("bench method settings are per method: --set method.NAME.FIELD=VALUE")
    job = BenchJob(
        data=_data_choice(args, settings), model=args.model, model_options=dict(settings.get("model", {})),
        methods=methods, seeds=n, run_seed=args.run_seed, train=train_cfg,
        preset=None if args.preset == "none" else args.preset, method_options=options,
        ceiling=not args.no_ceiling, strategy=args.strategy, cache_dir=args.cache_dir, out=args.out,
    )
    board = run_bench(job, log=console.print)
    console.print(leaderboard_table(board))
    write_bytes(f"{args.out}/report.md", leaderboard_markdown(board).encode())
    console.print(f"[green]leaderboard: {args.out}/leaderboard.json, report: {args.out}/report.md[/green]")


def cmd_metric(args: argparse.Namespace, console: Console) -> None:
    from unlearnkit.metrics.files import run_metric_command

    run_metric_command(
        args.unlearned, args.retrained, mode=args.mode, delta=args.delta, json_out=args.json,
        unlearned_key=args.unlearned_key, retrained_key=args.retrained_key, bootstrap=args.bootstrap,
        seed=args.seed, console=console,
    )


COMMANDS: dict[str, Callable[[argparse.Namespace, Console], None]] = {
    "datasets": cmd_datasets,
    "train": cmd_train,
    "methods": cmd_methods,
    "unlearn": cmd_unlearn,
    "bench": cmd_bench,
    "metric": cmd_metric,
}


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 success, 2 bad input)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    console = Console()
    try:
        COMMANDS[args.command](args, console)
    except (InputError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    return 0


def entry_point() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
