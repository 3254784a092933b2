"""Fine-tuned Hugging Face classifiers (`*ForSequenceClassification` directories): as checkpoints for
evaluate.py and predict.py (labels from id2label, the family's own head), and as a starting point for
training with model.head=family (the head kept when its labels are the data's).

Everything the directory says that we cannot compute exactly is refused in one line."""
from pathlib import Path

import torch

from common.checks import encoder_positions
from common.errors import UserError
from model.encoders.blocks import read_config_json
from model.classifier import BERTClassifier
from model.encoders.families import Family, encoder_from_config, family_of, hf_head_name
from model.encoders.hf_weights import load_hf_encoder_weights, read_weights


def is_hf_classifier(directory: Path) -> bool:
    """A directory transformers wrote for a *ForSequenceClassification model."""
    path = directory / "config.json"
    if not path.is_file():
        return False
    config = read_config_json(path)
    return any(str(a).endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def hf_labels(config: dict, source) -> list[str]:
    """Label names in id order from id2label (transformers writes LABEL_0, ... when it was never set)."""
    id2label = config.get("id2label") or {}
    try:
        labels = [str(id2label[str(i)]) for i in range(len(id2label))]
    except KeyError as e:
        raise UserError(f"{source}: id2label has no id {e.args[0]} (ids must be 0..{len(id2label) - 1})") from None
    if len(labels) < 2:
        raise UserError(f"{source}: id2label names {len(labels)} label(s); a classifier needs at least 2")
    return labels


def hf_head_state(family: Family, hf_state: dict) -> dict:
    """Our head's weights (pre_head.*, head.*) from a *ForSequenceClassification state dict."""
    ours = {}
    for name in ("pre_head.weight", "pre_head.bias", "pre_norm.weight", "pre_norm.bias", "head.weight", "head.bias"):
        try:
            hf_name = hf_head_name(family, name)
        except KeyError:  # BERT's head has no dense layer
            continue
        if hf_name in hf_state:
            ours[name] = hf_state[hf_name]
    return ours


def classifier_dropout(config: dict) -> float:
    """The head's dropout as transformers would use it (it only matters when training further)."""
    for key in ("classifier_dropout", "seq_classif_dropout", "cls_dropout", "hidden_dropout_prob", "dropout"):
        if config.get(key) is not None:
            return float(config[key])
    return 0.1


def default_max_len(directory: Path, tokenizer_config: dict) -> int:
    """tokenizer_config.json's model_max_length where it is a real limit, else what the position table
    allows (common/checks.py: RoBERTa's first padding_idx + 1 rows are not positions of text)."""
    positions = encoder_positions(directory)
    stated = tokenizer_config.get("model_max_length")
    return min(int(stated), positions) if isinstance(stated, int) and 3 <= stated <= 10**6 else positions


def load_hf_classifier(directory: Path):
    """(model with the family head, label names, multi_label, max_len, family) of a fine-tuned HF classifier."""
    from data.tokenizer import read_tokenizer_config

    path = directory / "config.json"
    config = read_config_json(path)
    family = family_of(config, path)
    labels = hf_labels(config, path)
    problem = config.get("problem_type") or "single_label_classification"
    if problem not in ("single_label_classification", "multi_label_classification"):
        raise UserError(f"{path}: problem_type={problem!r} is not classification (single_label_classification | "
                        "multi_label_classification)")
    encoder = encoder_from_config(path)
    model = BERTClassifier(encoder, len(labels), classifier_dropout(config), head="family")
    hf_state = read_weights(directory)
    load_hf_encoder_weights(encoder, hf_state, directory, pooler_note=model.pooling == "pooler")
    head = hf_head_state(family, hf_state)
    expected = {k for k in model.state_dict() if k.startswith(("pre_head.", "pre_norm.", "head."))}
    if set(head) != expected:
        missing = sorted(hf_head_name(family, k) for k in expected - set(head))
        raise UserError(f"{directory}: a {family.architecture} checkpoint without its classification head "
                        f"(missing {', '.join(missing)})")
    load_head(model, head, directory)
    if encoder.pooler is not None and model.pooling != "pooler":  # unread; not left as undrawn memory either
        with torch.no_grad():  # (not nn.init: loading runs under checkpoint.initial_weights_not_drawn)
            encoder.pooler.weight.zero_(), encoder.pooler.bias.zero_()
    max_len = default_max_len(directory, read_tokenizer_config(directory))
    return model, labels, problem == "multi_label_classification", max_len, family


def load_head(model: BERTClassifier, head: dict, source):
    shapes = {k: (tuple(v.shape), tuple(model.state_dict()[k].shape)) for k, v in head.items()}
    wrong = [f"{k} {a} vs {b}" for k, (a, b) in shapes.items() if a != b]
    if wrong:
        raise UserError(f"{source}: classification head does not fit: {'; '.join(wrong)}")
    with torch.no_grad():
        for name, tensor in head.items():
            model.get_parameter(name).copy_(tensor)


def start_from_hf_head(model: BERTClassifier, directory: Path, label_names: list[str]) -> str | None:
    """train.py with model.head=family from a fine-tuned HF classifier: its head is kept (rows put in the
    data's label order) when it classifies the same labels; otherwise the head starts fresh. Returns the
    line to print, None for a base encoder directory."""
    if not is_hf_classifier(directory):
        return None
    config = read_config_json(directory / "config.json")
    family = family_of(config, directory / "config.json")
    theirs = hf_labels(config, directory / "config.json")
    if sorted(theirs) != sorted(label_names):
        return (f"note: {directory} classifies {len(theirs)} labels ({', '.join(theirs[:6])}"
                f"{', ...' if len(theirs) > 6 else ''}), not this data's: its head starts fresh")
    head = hf_head_state(family, read_weights(directory))
    order = torch.tensor([theirs.index(name) for name in label_names])
    head["head.weight"], head["head.bias"] = head["head.weight"][order], head["head.bias"][order]
    load_head(model, head, directory)
    model.pretrained_head = True  # train.py leaves its biases alone (no start at the label frequencies)
    return f"{family.architecture} head of {directory} kept (its labels are this data's)"
