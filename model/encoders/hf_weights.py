"""Reading Hugging Face weight files, and loading them into an encoder under its family's key names:
every mismatch (missing, unexpected, wrong shape) is reported at once, in one line, and nothing loads
"almost"."""
import re
from pathlib import Path

import torch

from common.errors import UserError

# Keys a base encoder legitimately leaves unread: pretraining heads (cls., lm_head., ELECTRA's generator and
# discriminator heads, DistilBERT's vocab_*), task heads (read by the classifier, model/classifier_heads.py,
# or not at all: qa_outputs.; ModernBERT's head. and decoder.) and position-id buffers.
IGNORED_KEYS = re.compile(r"^(classifier\.|pre_classifier\.|cls\.|lm_head\.|qa_outputs\.|generator|"
                          r"discriminator_predictions\.|vocab_(transform|layer_norm|projector)\.|"
                          r"head\.(dense|norm)\.|decoder\.)|position_ids$")


def read_weights(directory: Path) -> dict:
    """Reads model.safetensors, else pytorch_model.bin without unpickling arbitrary objects."""
    safetensors_file, bin_file = directory / "model.safetensors", directory / "pytorch_model.bin"
    if safetensors_file.exists():
        from safetensors.torch import load_file
        try:
            return load_file(str(safetensors_file))
        except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
            raise UserError(f"{safetensors_file}: unreadable safetensors file ({e})") from None
    if bin_file.exists():
        try:
            return torch.load(bin_file, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError for anything but plain tensors, or a corrupt file
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise UserError(f"{bin_file}: refused to load (only plain tensors are allowed): {first_line}") from None
    raise UserError(f"{directory}: no model.safetensors or pytorch_model.bin found")


def without_prefix(encoder_class, hf_key: str) -> str:
    """A key without the family's task-checkpoint prefix, TF-era LayerNorm gamma/beta renamed."""
    key = hf_key.removeprefix(encoder_class.hf_prefix)
    return key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")


def load_hf_encoder_weights(encoder, hf_state: dict, source, pooler_note: bool = True):
    """Loads a family's base-model or task-checkpoint state dict into `encoder`. `pooler_note`: say so when
    the pooler is not in the file (off where the head does not read it)."""
    family = type(encoder)
    ours = encoder.state_dict()
    hf_name_to_ours = {family.hf_name(k, with_prefix=False): k for k in ours}
    renamed, unexpected = {}, []
    for hf_key, tensor in hf_state.items():
        key = hf_name_to_ours.get(without_prefix(family, hf_key))
        if key is not None:
            renamed[key] = tensor
        elif not (IGNORED_KEYS.search(without_prefix(family, hf_key))
                  or family.hf_unread_keys and family.hf_unread_keys.search(without_prefix(family, hf_key))):
            unexpected.append(hf_key)
    missing = sorted(set(ours) - set(renamed))
    if missing == ["pooler.bias", "pooler.weight"]:
        # Encoders saved without a pooler (E5, sentence-transformers exports, RobertaFor* task
        # checkpoints): it keeps its fresh initialisation, which only pooling=pooler uses.
        if pooler_note:
            print(f"note: {source} has no pretrained pooler; pooling=pooler would start it fresh")
        renamed |= {k: ours[k] for k in missing}
        missing = []
    shapes = [f"{k} {tuple(t.shape)} vs {tuple(ours[k].shape)}"
              for k, t in renamed.items() if t.shape != ours[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (e.g. {'; '.join(shapes[:3])})")
    if problems:
        raise UserError(f"{source}: weights do not fit the {family.display_name} config: {'; '.join(problems)}")
    encoder.load_state_dict(renamed)
