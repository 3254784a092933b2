"""DeBERTa's disentangled attention through scaled_dot_product_attention (the c2p + p2c terms as its additive
mask) against the straightforward form (scores + bias, masked softmax, @ V), in our encoder, and transformers'
DebertaV2Model beside them. model/encoders/blocks.py's attend() picks the straightforward form for a float bias on
the CPU, where it was the faster one here, and SDPA elsewhere. Random weights of a DeBERTa-v3-base config (12 layers, 768 wide, 256 buckets):
throughput does not depend on the weights.

    python benchmarks/deberta_attention.py                        # CPU, fp32, batch 8 x 128 tokens
    python benchmarks/deberta_attention.py --device cuda --precision bf16 --batch 32

Per variant: median seconds of a forward pass (eval, no grad) and of a training forward + backward
(dropout off, so the variants compute the same function), after one warm-up; all in one invocation.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.timing import median_seconds  # noqa: E402

import model.encoders.deberta_v2 as deberta_v2  # noqa: E402
from model.encoders.deberta_v2 import DebertaV2Config, DebertaV2Encoder  # noqa: E402

V3_BASE = dict(vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               intermediate_size=3072, max_position_embeddings=512, relative_attention=True,
               pos_att_type=["p2c", "c2p"], position_buckets=256, share_att_key=True, norm_rel_ebd="layer_norm",
               position_biased_input=False, type_vocab_size=0, hidden_dropout_prob=0.0,
               attention_probs_dropout_prob=0.0)
CHOSEN_ATTEND = deberta_v2.attend


def sdpa_attend(q, k, v, mask, probs_dropout, scale=None):
    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, scale=scale, dropout_p=probs_dropout.p if probs_dropout.training else 0.0)


def straightforward_attend(q, k, v, mask, probs_dropout, scale=None):
    scores = (q @ k.transpose(-2, -1)) * scale
    scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return probs_dropout(scores.softmax(-1)) @ v


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-transformers", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    ours = DebertaV2Encoder(DebertaV2Config.from_dict(V3_BASE)).to(device)
    ids = torch.randint(5, 128000, (args.batch, args.length), device=device)
    lengths = torch.randint(args.length // 2, args.length + 1, (args.batch,), device=device)
    lengths[0] = args.length
    mask = torch.arange(args.length, device=device)[None] < lengths[:, None]
    autocast = torch.autocast(device.type, torch.bfloat16, enabled=args.precision == "bf16")

    def ours_forward():
        with torch.no_grad(), autocast:
            ours.eval()(ids, mask)

    def ours_train():
        with autocast:
            hidden, _ = ours.train()(ids, mask)
        hidden.float().square().mean().backward()
        ours.zero_grad(set_to_none=True)

    rows = []
    for name, attend in (("ours, straightforward", straightforward_attend), ("ours, SDPA", sdpa_attend)):
        deberta_v2.attend = attend
        rows.append((name, median_seconds(ours_forward, device, args.repeats),
                     median_seconds(ours_train, device, args.repeats)))
    deberta_v2.attend = CHOSEN_ATTEND
    if not args.no_transformers:
        import transformers

        theirs = transformers.DebertaV2Model(transformers.DebertaV2Config(**V3_BASE)).to(device)

        def theirs_forward():
            with torch.no_grad(), autocast:
                theirs.eval()(input_ids=ids, attention_mask=mask.long())

        def theirs_train():
            with autocast:
                hidden = theirs.train()(input_ids=ids, attention_mask=mask.long()).last_hidden_state
            hidden.float().square().mean().backward()
            theirs.zero_grad(set_to_none=True)
        rows.append(("transformers DebertaV2Model", median_seconds(theirs_forward, device, args.repeats),
                     median_seconds(theirs_train, device, args.repeats)))
    print(f"DeBERTa-v3-base config, {device} {args.precision}, batch {args.batch} x {args.length} tokens "
          f"(lengths {args.length // 2}-{args.length}), {torch.get_num_threads()} threads, median of {args.repeats}")
    print(f"{'':30s} {'forward s':>10s} {'fwd+bwd s':>10s}")
    for name, forward, train in rows:
        print(f"{name:30s} {forward:10.3f} {train:10.3f}")


if __name__ == "__main__":
    main()
