"""Every config under conf/ composes with Hydra's initialize/compose and its values resolve: each entry
config, each option of each group it names, each launcher. Recipes and searches may only set keys
that exist (a misspelt key would otherwise be added silently and ignored)."""
import math

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationToMissingValueError, MissingMandatoryValue

import training.tracking  # noqa: F401  (registers ${monitor_direction:}; common.config the others)
from common.config import PROJECT_ROOT
from training.tracking import monitor_direction, run_hparams

CONF = PROJECT_ROOT / "conf"
ENTRY_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))  # config (train.py), evaluate, predict, export
MISSING = object()


def groups_of(entry: str) -> list[str]:
    """The groups an entry config selects in its defaults list (`- data: tweets`, `- experiment: null`)."""
    defaults = OmegaConf.load(CONF / f"{entry}.yaml").get("defaults", [])
    return [key for item in defaults if isinstance(item, DictConfig) for key in item
            if not key.startswith("override")]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


ENTRY_GROUP_OPTIONS = [(entry, group, option) for entry in ENTRY_CONFIGS for group in groups_of(entry)
                       for option in options(group)]
LAUNCHERS = options("hydra/launcher")


def composed(entry: str, overrides=(), hydra=False) -> DictConfig:
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose(entry, overrides=list(overrides), return_hydra_config=hydra)


def resolved(cfg: DictConfig) -> dict:
    """Resolves every value, so a broken interpolation or resolver fails here. Values still `???`,
    and interpolations of them, are left for the command line to give."""
    values = {}
    for key in leaf_keys(cfg):
        try:
            values[key] = OmegaConf.select(cfg, key, throw_on_missing=True)
        except (MissingMandatoryValue, InterpolationToMissingValueError):
            pass
    return values


def leaf_keys(node, prefix="") -> list[str]:
    if isinstance(node, DictConfig):
        return [k for key, value in node.items_ex(resolve=False)
                for k in leaf_keys(value, f"{prefix}{key}.")]
    return [prefix.rstrip(".")]


def test_the_groups_are_discovered():
    # The walk below must see the groups train.py users pick from, or it would test nothing.
    assert {"model", "data", "optim", "scheduler", "trainer", "experiment", "hparams_search"} <= set(
        groups_of("config"))
    assert {"emotion_distilbert_recipe"} <= set(options("experiment"))
    assert {"parallel", "slurm"} <= set(LAUNCHERS)


@pytest.mark.parametrize("entry", ENTRY_CONFIGS)
def test_entry_config_composes(entry):
    resolved(composed(entry))


@pytest.mark.parametrize("entry, group, option", ENTRY_GROUP_OPTIONS)
def test_group_option_composes(entry, group, option):
    resolved(composed(entry, [f"{group}={option}"]))


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_launcher_composes(launcher):
    cfg = composed("config", [f"hydra/launcher={launcher}"], hydra=True)
    launcher_cfg = resolved(cfg.hydra.launcher)
    assert launcher_cfg["_target_"].startswith("hydra_plugins.")  # the plugin's class, so it is installed


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_sets_only_existing_keys(experiment):
    recipe = OmegaConf.load(CONF / "experiment" / f"{experiment}.yaml")
    choices = {key.removeprefix("override /"): value for item in recipe.pop("defaults", [])
               if isinstance(item, DictConfig) for key, value in item.items()}
    without_values = composed("config", [f"~{g}" if v is None else f"{g}={v}" for g, v in choices.items()])
    written_here = tuple(f"{g}." for g, v in choices.items() if v is None)  # a group it replaces whole
    unknown = [k for k in leaf_keys(recipe) if not k.startswith(written_here)
               and OmegaConf.select(without_values, k, default=MISSING) is MISSING]
    assert not unknown, f"{experiment}.yaml sets keys no config defines: {unknown}"
    cfg = composed("config", [f"experiment={experiment}"])
    for key in leaf_keys(recipe):  # and its values win over the entry config's own
        assert OmegaConf.select(cfg, key) == OmegaConf.select(recipe, key), key


@pytest.mark.parametrize("search", options("hparams_search"))
@pytest.mark.parametrize("monitor", ["accuracy", "loss"])
def test_search_optimizes_the_monitored_metric_over_existing_keys(search, monitor):
    cfg = composed("config", [f"hparams_search={search}", f"trainer.monitor={monitor}"], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper")
    assert sweeper.direction == monitor_direction(monitor) == {"accuracy": "maximize", "loss": "minimize"}[monitor]
    if sweeper.sampler._target_.endswith("GridSampler"):  # repeatable when it runs the whole grid
        assert sweeper.n_trials == math.prod(len(v.split(",")) for v in sweeper.params.values())
    else:
        assert sweeper.sampler.seed is not None  # a search that can be repeated
    missing = [k for k in sweeper.params if OmegaConf.select(cfg, k, default=MISSING) is MISSING]
    assert not missing, f"{search}.yaml searches keys no config defines: {missing}"


@pytest.mark.parametrize("overrides", [[]] + [[f"experiment={e}"] for e in options("experiment")]
                         + [["data=emotion", "trainer.grad_accum_steps=2", "model.pooling=mean"]])
def test_every_run_logs_the_same_hparams_keys(overrides):
    """One set of keys for every job (a key missing from some runs loses its HParams column)."""
    hparams = run_hparams(composed("config", overrides))
    assert list(hparams) == list(run_hparams(composed("config")))
    assert all(isinstance(v, (int, float, str)) and v is not None for v in hparams.values()), hparams
    if "trainer.grad_accum_steps=2" in overrides:
        assert hparams["batch_size"] == 32 and hparams["micro_batch_size"] == 16
