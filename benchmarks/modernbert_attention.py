"""ModernBERT's attention through torch's scaled_dot_product_attention (model/encoders/modernbert.py) against the
straightforward form (scores, masked_fill, softmax, times values), on a randomly initialised base-size
encoder (ModernBERT-base's shape: 22 layers, 768 wide, 12 heads, GeGLU 1152, a local window of 128 on two
layers in three); throughput does not depend on the weights. Forward passes under no_grad, fp32, then
forward + backward, median of --repeats.

    python benchmarks/modernbert_attention.py                                # CPU, batch 4 x 512 tokens
    python benchmarks/modernbert_attention.py --batch 2 --length 1024 --forward-only
    python benchmarks/modernbert_attention.py --device cuda --batch 32 --length 1024

Figures (2 threads of a shared AMD EPYC, load average ~6 from other jobs, torch 2.13, fp32, one run each):

    --batch 2 --length 1024 --forward-only   forward  straightforward 35.6 s   sdpa 16.7 s   (2.13x)
    --batch 2 --length 512 --forward-only    forward  straightforward 13.0 s   sdpa  7.2 s   (1.79x)
    --batch 1 --length 512                   forward  straightforward  5.2 s   sdpa  4.5 s   (1.16x)
                                             forward+backward   27.9 s   sdpa 22.5 s   (1.24x)

SDPA is ahead everywhere, more so the longer the sequences (the straightforward form materialises the
(B, heads, T, T) scores and probabilities; SDPA's CPU kernel works in blocks). The local layers still
compute every score and mask those outside the window: a banded kernel would skip them.
"""
import argparse
import contextlib
import sys
from unittest import mock
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.timing import median_seconds  # noqa: E402

from model.encoders.modernbert import ModernBertConfig, ModernBertEncoder  # noqa: E402


def straightforward_attention(q, k, v, attn_mask, dropout_p=0.0):
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    probs = scores.masked_fill(~attn_mask, float("-inf")).softmax(-1)
    return F.dropout(probs, dropout_p) @ v


def attention(straightforward: bool):
    """model/encoders/modernbert.py calls torch.nn.functional.scaled_dot_product_attention: replaced here, or not."""
    return mock.patch.object(F, "scaled_dot_product_attention", straightforward_attention) if straightforward \
        else contextlib.nullcontext()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--forward-only", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = ModernBertConfig.from_dict({"num_hidden_layers": 22, "hidden_size": 768, "num_attention_heads": 12,
                                      "intermediate_size": 1152, "local_attention": 128})
    encoder = ModernBertEncoder(cfg).to(device)
    ids = torch.randint(0, 50000, (args.batch, args.length), device=device)
    lengths = torch.linspace(args.length // 2, args.length, args.batch, device=device).long()
    mask = torch.arange(args.length, device=device)[None] < lengths[:, None]  # padded, as batches are

    def forward():
        with torch.no_grad():
            encoder(ids, mask)

    def forward_backward():
        encoder(ids, mask)[0].float().pow(2).mean().backward()

    print(f"ModernBERT-base shape, {device}, {torch.get_num_threads()} threads, batch {args.batch} x "
          f"{args.length} tokens, median of {args.repeats}")
    steps = [("forward", forward)] + ([] if args.forward_only else [("forward+backward", forward_backward)])
    for name, step in steps:
        figures = {}
        for straightforward in (True, False):
            with attention(straightforward):
                figures[straightforward] = median_seconds(step, device, args.repeats)
        print(f"{name:17s} straightforward {figures[True] * 1000:8.1f} ms   sdpa {figures[False] * 1000:8.1f} ms   "
              f"({figures[True] / figures[False]:.2f}x)")


if __name__ == "__main__":
    main()
