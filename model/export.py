"""Export a fine-tuned checkpoint for other runtimes, with the same logits.

    python -m model.export checkpoint=DIR format=hf out=DIR2     # transformers, pipeline("text-classification")
    python -m model.export checkpoint=DIR format=onnx out=DIR2   # ONNX Runtime

format=hf writes the encoder family's own `*ForSequenceClassification` directory (BertFor..., RobertaFor...,
XLMRobertaFor..., CamembertFor..., ElectraFor..., DistilBertFor..., DebertaV2For..., ModernBertFor...;
model/encoders/families.py): config.json (encoder config, id2label/label2id with our label names), model.safetensors
(the family's key names) and the checkpoint's tokenizer files. Those classes compute the family's own head
(model.head=family); a BERT
checkpoint's linear head with pooling=pooler is the same computation. Anything else (cls or mean pooling,
a linear head on another family) is refused rather than exported as a different model. The directory is
also a valid `model.path` for train.py and a `checkpoint=` for evaluate.py and predict.py.

format=onnx writes model.onnx, labels.json (label names in logit order) and the same tokenizer files
(DeBERTa-v2 and ModernBERT are refused in one line: see their encoders' onnx_exportable).
The graph takes Hugging Face's input names, so an HF tokenizer's output (or `tokenizers` reading the
tokenizer.json written here) feeds it as is, every pooling included:
    input_ids       int64 (batch, sequence)  [CLS] text [SEP] (text_b [SEP]), right-padded (RoBERTa: <s> ... </s>)
    attention_mask  int64 (batch, sequence)  1 for real tokens, then 0s (right padding only)
    token_type_ids  int64 (batch, sequence)  0 for the first text, 1 for the second of a pair (only families
                                             with token types: BERT, ELECTRA; as their tokenizers return it)
    -> logits       float32 (batch, classes); softmax gives the probabilities predict.py prints
                    (multi-label: a sigmoid per logit; thresholds.json holds each label's threshold)
A calibrated checkpoint's temperature (trainer.calibrate) is folded into the exported head (weight and
bias / T) in both formats, so the exported logits are predict.py's logits / T.

Tokenizer files: tokenizer_config.json gets `model_max_length` = the checkpoint's max_len (so
`truncation=True` cuts where training did) and a tokenizer class; a tokenizer.json is re-saved with
that truncation, padding to the longest text of a batch, and [CLS]/[SEP] added, so `tokenizers` alone
reproduces our inputs. SentencePiece (KoBERT-style) spiece.model / vocab.txt are copied unchanged, but
no stock transformers tokenizer class gives our ids for them, so tokenizer_config.json names one that
transformers lacks: AutoTokenizer and pipeline fail rather than tokenize wrongly (see SENTENCEPIECE_NOTE).
A checkpoint trained with data.text_prefix (E5's "query: ") needs it in front of every text: no
tokenizer file can carry it to transformers (its tokenizer classes rebuild the normalizer that would
prepend it), so the export says so instead (PREFIX_NOTE).
"""
import importlib.util
import json
import logging
import warnings
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from safetensors.torch import save_file
from torch import nn

from data.tokenizer import SentencePieceTokenizer, Tokenizer, read_tokenizer_config
from common.checks import check_export
from common.cli import check_overrides
from common.errors import UserError, exit_on_user_error
from common.output_paths import check_output_dir
from model.checkpoint import ClassifierInfo, LoadedClassifier, existing_checkpoint_dir, load_checkpoint
from model.classifier import BERTClassifier
from model.encoders.families import family_of_encoder, hf_encoder_state, hf_head_name

LABELS_FILE, ONNX_FILE, THRESHOLDS_FILE = "labels.json", "model.onnx", "thresholds.json"
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def onnx_inputs(model: BERTClassifier) -> tuple[str, ...]:
    """The graph's inputs: token_type_ids only where the family has token types its tokenizers return."""
    has_segments = model.encoder.embeddings.token_type is not None and model.encoder.config.type_vocab_size > 1
    return ONNX_INPUTS if has_segments else ONNX_INPUTS[:2]
SENTENCEPIECE_NOTE = (
    "the SentencePiece tokenizer files are copied, but no stock transformers tokenizer class "
    "reproduces their ids exactly (AlbertTokenizer reads spiece.model with the same ids except that it "
    "maps unknown characters to id 1, and it ignores vocab.txt), so AutoTokenizer and pipeline refuse this "
    "directory: tokenize with this project's data.tokenizer.load_tokenizer(DIR) or KoBERT's own tokenizer "
    "code, then feed the ids to BertForSequenceClassification / model.onnx")
PREFIX_NOTE = ("the checkpoint was trained with data.text_prefix={prefix!r}: put it in front of every text "
               "(the first of a pair) before tokenizing; the exported tokenizer files do not add it")


# ---- Hugging Face directory

def hf_config(model: BERTClassifier, info: ClassifierInfo) -> dict:
    """Our encoder config plus what transformers needs to build BertForSequenceClassification."""
    return {
        "architectures": [family_of_encoder(model.encoder).architecture],
        **model.encoder.config.to_dict(),  # model_type included
        # the head's dropout under each family's name for it (only training reads it)
        "classifier_dropout": info.dropout,
        **({"seq_classif_dropout": info.dropout} if model.encoder.config.model_type == "distilbert" else {}),
        **({"cls_dropout": info.dropout} if model.encoder.config.model_type == "deberta-v2" else {}),
        # pipeline("text-classification") applies a sigmoid per label for multi_label_classification
        "problem_type": "multi_label_classification" if info.multi_label else "single_label_classification",
        "id2label": {str(i): name for i, name in enumerate(info.labels)},
        "label2id": {name: i for i, name in enumerate(info.labels)},
        **({"label_thresholds": dict(zip(info.labels, info.thresholds))} if info.thresholds else {}),
    }


def head_with_temperature(model: BERTClassifier, info: ClassifierInfo) -> dict:
    """The head's weight and bias divided by the checkpoint's temperature (trainer.calibrate): logits / T
    come out of the exported model itself, so any runtime's softmax gives predict.py's probabilities."""
    return {name: value.detach() / info.temperature for name, value in model.head.state_dict().items()}


def hf_state_dict(model: BERTClassifier, info: ClassifierInfo) -> dict:
    """Our weights under the family's *ForSequenceClassification key names; the pooler only where the
    family's head reads it (BERT: RobertaFor... and the others have none)."""
    family = family_of_encoder(model.encoder)
    state = {k: v for k, v in hf_encoder_state(model.encoder).items()
             if family.head_pooling == "pooler" or ".pooler." not in f".{k}"}
    for name in ("pre_head", "pre_norm"):
        if getattr(model, name) is not None:
            state |= {hf_head_name(family, f"{name}.{k}"): v for k, v in getattr(model, name).state_dict().items()}
    state |= {hf_head_name(family, f"head.{k}"): v for k, v in head_with_temperature(model, info).items()}
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}


def check_hf_exportable(model: BERTClassifier, info: ClassifierInfo, source: Path):
    """Only a head the family's *ForSequenceClassification computes: its own, or (BERT) pooler + Linear."""
    family = family_of_encoder(model.encoder)
    if info.head == "family" or (family.head_activation is None and info.pooling == family.head_pooling):
        return
    if family.head_activation is None:
        raise UserError(
            f"{source}: pooling={info.pooling!r} cannot be exported as format=hf: {family.architecture} "
            "classifies tanh(dense([CLS])), which is pooling=pooler only; use format=onnx, or train with "
            "model.pooling=pooler")
    raise UserError(
        f"{source}: a linear head cannot be exported as format=hf: {family.architecture} computes the "
        f"{family.name} head (model.head=family); use format=onnx, or train with model.head=family")


def export_hf(loaded: LoadedClassifier, source: Path, out: Path) -> list[str]:
    check_hf_exportable(loaded.model, loaded.info, source)
    out.mkdir(parents=True, exist_ok=True)
    # transformers refuses safetensors files whose metadata does not say which framework wrote them.
    save_file(hf_state_dict(loaded.model, loaded.info), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(hf_config(loaded.model, loaded.info), indent=2, ensure_ascii=False))
    return ["config.json", "model.safetensors", *write_tokenizer_files(loaded, source, out)]


# ---- ONNX graph

class WithHFInputs(nn.Module):
    """Our classifier behind Hugging Face's input names: what an HF tokenizer returns feeds it directly."""

    def __init__(self, model: BERTClassifier):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        # Right-padded masks (BERT tokenizers' default, and our collate): the count of ones is the length.
        return self.model(input_ids, attention_mask.sum(-1), token_type_ids)


def check_onnx_exportable(model: BERTClassifier, source: Path):
    encoder = type(model.encoder)
    if not encoder.onnx_exportable:
        raise UserError(f"{source}: format=onnx (and runtime=onnx) is not supported for {encoder.display_name} "
                        f"({encoder.onnx_refusal}): use format=hf, or predict.py with runtime=torch")


def export_onnx(loaded: LoadedClassifier, source: Path, out: Path, opset: int) -> list[str]:
    # Exporter: torch 2.13's default, the torch.export-based one (dynamo=True), which needs onnxscript.
    # The TorchScript exporter (dynamo=False) also exports this model with the same outputs today and
    # without onnxscript, but it is deprecated since torch 2.9 (a DeprecationWarning on every call) and
    # due for removal; the dynamo one is slower (seconds for MiniLM) and is where fixes land.
    check_onnx_exportable(loaded.model, source)
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:  # torch.onnx imports them lazily, deep in the export: say it here, in one line
        raise UserError(f"format=onnx needs {' and '.join(missing)}: pip install -r requirements-dev.txt")
    out.mkdir(parents=True, exist_ok=True)
    model = loaded.model.float().cpu()
    with torch.no_grad():  # the temperature into the head, as for format=hf
        for name, value in head_with_temperature(model, loaded.info).items():
            getattr(model.head, name).copy_(value)
    inputs = onnx_inputs(model)
    wrapper = WithHFInputs(model).eval()
    # Example inputs of batch 2 and length 8, with padding: a size of 1 would be specialised into the graph.
    example = (torch.full((2, 8), loaded.transform.tokenizer.unk_id, dtype=torch.long),
               torch.tensor([[1] * 8, [1] * 5 + [0] * 3]), torch.zeros(2, 8, dtype=torch.long))[:len(inputs)]
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    exporter_log, level = logging.getLogger("torch.onnx"), logging.getLogger("torch.onnx").level
    # The exporter warns that axes sharing one Dim keep the first name, and logs that torchvision
    # (whose detection ops it would register) is absent: noise for a BERT.
    exporter_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, example, str(out / ONNX_FILE), input_names=list(inputs), output_names=["logits"],
                dynamic_shapes={name: {0: batch, 1: sequence} for name in inputs},
                opset_version=opset, dynamo=True, verbose=False,
                external_data=False)  # one self-contained file (fine below ONNX's 2 GB limit: BERT-large is 1.3 GB)
    finally:
        exporter_log.setLevel(level)
    (out / LABELS_FILE).write_text(json.dumps(loaded.info.labels, indent=2, ensure_ascii=False))
    written = [ONNX_FILE, LABELS_FILE]
    if loaded.info.multi_label:  # sigmoid per logit, then these thresholds, as predict.py decides
        thresholds = loaded.info.thresholds or [0.5] * len(loaded.info.labels)
        (out / THRESHOLDS_FILE).write_text(json.dumps(dict(zip(loaded.info.labels, thresholds)),
                                                      indent=2, ensure_ascii=False))
        written.append(THRESHOLDS_FILE)
    return [*written, *write_tokenizer_files(loaded, source, out)]


# ---- tokenizer files (both formats)

def write_tokenizer_files(loaded: LoadedClassifier, source: Path, out: Path) -> list[str]:
    """Copies the checkpoint's tokenizer files, then states max_len and the tokenizer class in them."""
    tokenizer, max_len = loaded.transform.tokenizer, loaded.info.max_len
    tokenizer.save(out)
    config = read_tokenizer_config(source)
    config["model_max_length"] = max_len  # `truncation=True` then cuts exactly where training did
    if isinstance(tokenizer, SentencePieceTokenizer):
        # No transformers class gives our ids for these files, and without a class AutoTokenizer (so
        # pipeline) silently builds a BertTokenizer with an empty vocabulary: all [UNK]. A class
        # transformers does not ship makes both fail instead; KoBERT users load theirs explicitly.
        config["tokenizer_class"] = "KoBERTTokenizer"
    else:
        config.setdefault("tokenizer_class", "BertTokenizer")
        if (out / "tokenizer.json").exists():
            config |= resave_tokenizer_json(out / "tokenizer.json", tokenizer, max_len)
        else:
            config.setdefault("do_lower_case", True)  # what data.tokenizer assumes for a bare vocab.txt
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    return [f.name for f in tokenizer.files if f.name != "tokenizer_config.json"] + ["tokenizer_config.json"]


def resave_tokenizer_json(path: Path, tokenizer: Tokenizer, max_len: int) -> dict:
    """Truncation at max_len, batch padding and [CLS]/[SEP] in tokenizer.json; returns the normalizer's
    settings as tokenizer_config keys (transformers' BertTokenizer otherwise applies its own defaults)."""
    from tokenizers import Tokenizer as HFTokenizer, processors

    tok = HFTokenizer.from_file(str(path))
    tok.enable_truncation(max_len)
    tok.enable_padding(pad_id=tokenizer.pad_id, pad_token=tok.id_to_token(tokenizer.pad_id))
    if tok.post_processor is None:
        tok.post_processor = processors.BertProcessing((tok.id_to_token(tokenizer.sep_id), tokenizer.sep_id),
                                                       (tok.id_to_token(tokenizer.cls_id), tokenizer.cls_id))
    tok.save(str(path))
    normalizer = json.loads(path.read_text(encoding="utf-8")).get("normalizer") or {}
    if normalizer.get("type") != "BertNormalizer":
        return {}
    return {"do_lower_case": normalizer["lowercase"], "strip_accents": normalizer["strip_accents"],
            "tokenize_chinese_chars": normalizer["handle_chinese_chars"]}


# ---- command line

def check_out_dir(out: Path, checkpoint: Path, overwrite: bool):
    if out.resolve() == checkpoint.resolve():
        raise UserError(f"out={out} is the checkpoint itself: choose another directory")
    if out.exists() and not out.is_dir():
        raise UserError(f"out={out} is a file, not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"out={out} is not empty: choose another directory or pass overwrite=true")
    check_output_dir(out, "out")  # a parent that is a file, or a directory we may not write into


@hydra.main(config_path="../conf", config_name="export", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    check_export(cfg)
    source, out = existing_checkpoint_dir(cfg.checkpoint), Path(cfg.out)
    check_out_dir(out, source, cfg.overwrite)
    loaded = load_checkpoint(source)
    if cfg.format == "hf":
        written = export_hf(loaded, source, out)
    else:
        written = export_onnx(loaded, source, out, cfg.opset)
    print(f"wrote {out}: {', '.join(written)}")
    if isinstance(loaded.transform.tokenizer, SentencePieceTokenizer):
        print(f"note: {SENTENCEPIECE_NOTE}")
    elif cfg.format == "hf":
        print(f'use: pipeline("text-classification", model="{out}") (transformers), or model.path={out} to fine-tune')
    else:
        inputs = ", ".join(onnx_inputs(loaded.model))
        print(f"use: onnxruntime.InferenceSession(\"{out / ONNX_FILE}\") with inputs {inputs} "
              f"(tokenizer files beside it) -> logits over {out / LABELS_FILE}")
    if loaded.info.text_prefix:
        print(f"note: {PREFIX_NOTE.format(prefix=loaded.info.text_prefix)}")


if __name__ == "__main__":
    check_overrides("export", checks=check_export)
    main()
