"""The encoder families we load, chosen in one place by config.json's `model_type`:

    bert                              model/encoders/bert.py        BertModel, BertFor*
    roberta, xlm-roberta, camembert   model/encoders/roberta.py     RobertaModel, XLMRoberta*, Camembert*
    electra                           model/encoders/electra.py     ElectraModel (discriminator), ElectraFor*
    distilbert                        model/encoders/distilbert.py  DistilBertModel, DistilBertFor*
    modernbert                        model/encoders/modernbert.py  ModernBertModel, ModernBertFor*
    deberta-v2                        model/encoders/deberta_v2.py  DebertaV2Model, DebertaV2For* (DeBERTa-v2, v3, mDeBERTa-v3)

and, per family, what its own classification head is (model.head=family). How a family frames its texts
with special tokens is the data side's (data/transform.py framing_of).
Any other model_type, and any weight that does not map exactly, is refused in one line naming the file.
"""
import re
from dataclasses import dataclass, replace
from pathlib import Path

from common.errors import UserError
from model.encoders import bert, deberta_v2, distilbert, electra, modernbert, roberta
from model.encoders.blocks import Encoder, EncoderConfig, read_config_json
from model.encoders.hf_weights import load_hf_encoder_weights, read_weights


@dataclass(frozen=True)
class Family:
    encoder: type  # Encoder subclass: config class, pooler or not, Hugging Face key names
    architecture: str  # the *ForSequenceClassification class transformers builds for it
    head_rules: list  # its classification head: our names (pre_head., head.) -> Hugging Face names
    head_pooling: str | None  # what that head reads: "pooler" (BERT), "cls" (the first token's hidden state),
    # or None: config.json's classifier_pooling (cls | mean, ModernBERT)
    head_activation: str | None  # after the head's dense layer (None: no dense layer): tanh | gelu | relu
    head_dropout_first: bool  # a dropout before the dense layer too (RoBERTa, ELECTRA; not DistilBERT)
    # a LayerNorm after the activation, and the dense layer's bias as config.json's classifier_bias says
    # (ModernBERT; its norm_eps and norm_bias)
    head_norm: bool = False

    @property
    def name(self) -> str:
        return self.encoder.display_name


BERT = Family(bert.BertEncoder, "BertForSequenceClassification", bert.HF_HEAD_RULES, "pooler", None, False)
ROBERTA = Family(roberta.RobertaEncoder, "RobertaForSequenceClassification", roberta.HF_HEAD_RULES, "cls", "tanh",
                 True)
FAMILIES = {
    "bert": BERT,
    "roberta": ROBERTA,
    "xlm-roberta": replace(ROBERTA, architecture="XLMRobertaForSequenceClassification"),
    "camembert": replace(ROBERTA, architecture="CamembertForSequenceClassification"),
    "electra": Family(electra.ElectraEncoder, "ElectraForSequenceClassification", electra.HF_HEAD_RULES, "cls",
                      "gelu", True),
    "distilbert": Family(distilbert.DistilBertEncoder, "DistilBertForSequenceClassification",
                         distilbert.HF_HEAD_RULES, "cls", "relu", False),
    "modernbert": Family(modernbert.ModernBertEncoder, "ModernBertForSequenceClassification",
                         modernbert.HF_HEAD_RULES, None, "gelu", False, head_norm=True),
    # ContextPooler with pooler_dropout 0 (other values are refused: model/encoders/deberta_v2.py)
    "deberta-v2": Family(deberta_v2.DebertaV2Encoder, "DebertaV2ForSequenceClassification",
                         deberta_v2.HF_HEAD_RULES, "cls", "gelu", False),
}


def family_of(config: dict, source) -> Family:
    """The family config.json names. Our own checkpoints from before families had no model_type: BERT."""
    model_type = config.get("model_type", "bert")
    if model_type not in FAMILIES:
        raise UserError(f"{source}: model_type={model_type!r} is not supported (supported: {', '.join(FAMILIES)})")
    return FAMILIES[model_type]


def family_of_directory(directory: Path) -> Family:
    return family_of(read_config_json(Path(directory) / "config.json"), Path(directory) / "config.json")


def model_type_of_directory(directory: Path) -> str:
    """config.json's model_type, once it is one we load."""
    config = read_config_json(Path(directory) / "config.json")
    family_of(config, Path(directory) / "config.json")
    return config.get("model_type", "bert")


def family_of_encoder(encoder: Encoder) -> Family:
    return FAMILIES[encoder.config.model_type]


def encoder_config(path: Path) -> EncoderConfig:
    """The family's config object read from a config.json (shapes, for FLOP counts and checks)."""
    config = read_config_json(path)
    return family_of(config, path).encoder.config_class.from_dict(config, source=path)


def encoder_from_config(path: Path) -> Encoder:
    """A family's encoder with fresh (or, under initial_weights_not_drawn, undrawn) weights, from config.json."""
    config = read_config_json(path)
    family = family_of(config, path)
    return family.encoder(family.encoder.config_class.from_dict(config, source=path))


def load_encoder(directory) -> Encoder:
    """The pretrained encoder of a Hugging Face directory (base model or *For* task checkpoint)."""
    directory = Path(directory)
    encoder = encoder_from_config(directory / "config.json")
    load_hf_encoder_weights(encoder, read_weights(directory), directory)
    return encoder


def hf_head_name(family: Family, key: str) -> str:
    """Our head key (pre_head.*, head.*) -> the family's Hugging Face head key."""
    for ours, theirs in family.head_rules:
        if re.match(ours, key):
            return re.sub(ours, theirs, key, count=1)
    raise KeyError(key)


def hf_encoder_state(encoder: Encoder) -> dict:
    """Our encoder's weights under its family's task-checkpoint key names (exports, MLM output)."""
    return {encoder.hf_name(k): v for k, v in encoder.state_dict().items()}


def describe_model(model) -> str:
    """The run log's line naming the encoder family and the head (model/classifier.py BERTClassifier)."""
    family = family_of_encoder(model.encoder)
    head = (f"{family.name}'s own head ({family.architecture})" if model.head_kind == "family"
            else "linear head")
    return f"encoder: {family.name} (model_type {model.encoder.config.model_type}); {head} on {model.pooling} pooling"
