"""What a run directory is: the label names in order, the content of the splits training reads, and every
config value that changes the maths. Recorded in checkpoints/last (`run_identity.json`) and compared
before a resume trains anything, so that a resume on other data or with other settings is never taken
silently.

A difference is refused in one line naming the key with its old and new value, unless the user lists the
key in trainer.resume_changes: the new value then holds from the resumed step on (optimizer settings
included: training/resume.py adopts them), and the record keeps the change (`changes`, also in
metrics.json). The labels, the seed (the random generators are restored from the checkpoint) and the
encoder (its weights are replaced by the checkpoint's) cannot change at all: no resume could honour it.
"""
import json
from pathlib import Path

from omegaconf import OmegaConf

from common.errors import UserError

IDENTITY = "run_identity.json"
# Where and how fast it runs, what it logs and keeps, how it resumes: the same weights either way.
# data.train/validation/test are paths; the splits' content is compared by hash instead (the test split
# is read only after training, so another test file is simply what the final scores are of). So is
# data.exclude: the training split's hash is taken after its rows are dropped, so an edited file that
# drops other rows is refused, and a moved one that drops the same rows is not.
NOT_MATHS = {"trainer.threads", "trainer.device", "trainer.num_workers", "trainer.log_every",
             "trainer.save_every_steps", "trainer.resume", "trainer.resume_changes", "trainer.analysis",
             "trainer.top_losses", "trainer.projector_max_examples", "trainer.eval_batch_size", "trainer.compile",
             "data.name", "data.train", "data.validation", "data.test", "data.exclude", "model.name",
             "shared_datasets"}
UNCHANGEABLE = {"seed": "the random generators continue from the checkpoint's state",
                "model.path": "the encoder's weights come from the checkpoint",
                "model.trim_vocab": "the vocabulary is the checkpoint's"}
TRAINED_SPLITS = ("train", "validation")  # what the weights and the choice of the best checkpoint depend on


def maths_config(cfg) -> dict:
    """Every leaf of the resolved config that changes the maths, by dotted key."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and value:
                walk(value, f"{name}.")
            elif name not in NOT_MATHS:
                flat[name] = value

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def run_identity(cfg, label_names: list[str], split_digests: dict[str, str], changes: list | None = None) -> dict:
    return {"labels": list(label_names), "data": {s: split_digests[s] for s in TRAINED_SPLITS},
            "config": maths_config(cfg), "changes": changes or []}


def write_identity(directory: Path, identity: dict):
    (Path(directory) / IDENTITY).write_text(json.dumps(identity, indent=1, ensure_ascii=False))


def read_identity(directory: Path) -> dict | None:
    """None for a checkpoint written before identities were recorded."""
    path = Path(directory) / IDENTITY
    if not path.is_file():
        return None
    try:
        identity = json.loads(path.read_text(encoding="utf-8"))
        if not all(key in identity for key in ("labels", "data", "config")):
            raise ValueError("missing labels, data or config")
        return identity
    except (ValueError, OSError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None


def shown(value) -> str:
    return "(absent)" if value is _ABSENT else json.dumps(value, ensure_ascii=False)


_ABSENT = object()


def compare_identity(recorded: dict, current: dict, allowed, resume_dir: Path, step: int) -> list[dict]:
    """The differences the user allowed (trainer.resume_changes), with the step they take effect at;
    any other difference is a UserError naming the key, old and new value."""
    allowed = set(allowed or [])
    where = f"cannot resume from {resume_dir}"
    if recorded["labels"] != current["labels"]:
        raise UserError(f"{where}: the label names differ: the run has [{', '.join(recorded['labels'])}], this data "
                        f"gives [{', '.join(current['labels'])}] (resume with the run's data, or start a fresh run)")
    changes = []
    for split in TRAINED_SPLITS:
        old, new = recorded["data"].get(split), current["data"][split]
        if old != new:
            key = f"data.{split}"
            if key not in allowed:
                raise UserError(f"{where}: the {split} split differs from the one the run trained on (content "
                                f"sha256 {old[:12]} -> {new[:12]}); pass trainer.resume_changes=[{key}] if "
                                "that is intended")
            changes.append({"key": key, "old": f"sha256:{old}", "new": f"sha256:{new}", "step": step})
    old_config, new_config = recorded["config"], current["config"]
    for key in sorted(set(old_config) | set(new_config)):
        old, new = old_config.get(key, _ABSENT), new_config.get(key, _ABSENT)
        if old == new:
            continue
        if key in UNCHANGEABLE:
            raise UserError(f"{where}: {key} was {shown(old)}, now {shown(new)}; it cannot change on resume "
                            f"({UNCHANGEABLE[key]})")
        if key not in allowed:
            raise UserError(f"{where}: {key} was {shown(old)}, now {shown(new)}; pass "
                            f"trainer.resume_changes=[{key}] if the new value is intended from step {step} on")
        changes.append({"key": key, "old": None if old is _ABSENT else old, "new": None if new is _ABSENT else new,
                        "step": step})
    # A key listed but unchanged is no error: a later resume repeats the command that made the change.
    return recorded.get("changes", []) + changes


def restore_hydra_record(run_dir: Path, resume_dir: Path):
    """Hydra wrote the refused command's config into `.hydra/config.yaml` before any check could run; a
    refused resume of this very directory puts back the config the run is in fact trained with."""
    record, trained_with = Path(run_dir) / ".hydra" / "config.yaml", Path(resume_dir) / "train_config.yaml"
    if record.is_file() and trained_with.is_file() and Path(resume_dir).parent.parent == Path(run_dir):
        record.write_text(trained_with.read_text(encoding="utf-8"), encoding="utf-8")
