"""The runner: turns a setting into stored results (train, unlearn and bench jobs) on one of its backends.

Nothing below this package (data, engine, methods, metrics) imports it.
"""

from unlearnkit.runner.bench import Backend, finish_bench, run_bench, run_work
from unlearnkit.runner.jobs import (
    DEFAULT_METHODS,
    BenchJob,
    TrainJob,
    UnlearnJob,
    make_bench_job,
    plan_units,
    resolve_method_config,
    run_train,
    run_unlearn,
)
from unlearnkit.runner.setting import Setting, SettingConfig, make_setting_config, resolve_setting
from unlearnkit.results.store import BenchStore
from unlearnkit.runner.units import Unit, model_seed
