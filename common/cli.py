"""Command-line edge: config mistakes (unknown key, missing group option, bad syntax) in one line."""
import sys

from common.config import PROJECT_ROOT
from common.errors import EXIT_USER_ERROR


def check_overrides(config_name: str, argv=None):
    """Composes the config once before Hydra runs, because Hydra reports these mistakes over
    several lines with exit code 1. Multirun sweeps (`-m a=1,2`) are left to Hydra itself."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-m", "--multirun") for a in argv) or any(a.startswith("-") for a in argv):
        return
    from hydra import compose, initialize_config_dir

    from omegaconf import OmegaConf
    from omegaconf.errors import InterpolationToMissingValueError

    try:
        with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name, overrides=argv)
    except Exception as e:  # Hydra raises several exception types; all mean "this config is wrong"
        message = str(e).split("Config search path")[0]  # the search path dump is noise to a user
        lines = [line.strip() for line in message.splitlines() if line.strip() and not line.startswith(" ")]
        fail("; ".join(lines) or type(e).__name__)
    try:
        missing = sorted(OmegaConf.missing_keys(cfg))
    except InterpolationToMissingValueError as e:  # e.g. model.name: ${model.path} with no path given
        missing = [str(e).split("Missing mandatory value: ")[-1].splitlines()[0]]
    if missing:
        fail(f"{missing[0]} has no value: pass {missing[0]}=...")


def fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)
