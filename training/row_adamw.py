"""AdamW that updates only the embedding rows a batch used (optim.sparse_embedding).

The word-embedding table is half of MiniLM's 22.7M parameters (30,522 rows), while a batch of 32 short
texts uses a few hundred of its rows. With a dense gradient, every step zero-fills a gradient the size
of the table, takes its norm, and AdamW reads and writes the table and its two moments in full. With
nn.Embedding(sparse=True) the gradient holds the batch's rows only, and this optimizer gives those rows
AdamW's update: the same moments, bias correction, decoupled weight decay and clipping scale, at the
step's learning rate. The other rows stay as they are that step.

That is the rule of torch.optim.SparseAdam and TensorFlow Addons' LazyAdam (plus weight decay), not dense
AdamW's: there, a row absent from the batch still decays its moments and moves on them (a row used once
keeps moving for some 10 steps, by beta1^k of its first move at step k) and is weight-decayed. Rows used
in every batch are updated exactly as by AdamW (tests/test_step_speedups.py). A version that kept
updating rows for as long as their moments lived (beta1^k > 1e-3, 66 steps) matched dense AdamW more
closely but updated so many rows that it measured no faster than dense AdamW (BENCHMARKS.md).
Every other parameter takes torch's fused AdamW step, untouched.
"""
import math

import torch


class RowSparseAdamW(torch.optim.AdamW):
    """torch.optim.AdamW, plus the row update above for parameters whose gradient is sparse."""

    def step(self, closure=None):
        sparse = [(p, p.grad, group) for group in self.param_groups for p in group["params"]
                  if p.grad is not None and p.grad.is_sparse]
        for p, _, _ in sparse:
            p.grad = None  # AdamW's own step skips a parameter without a gradient
        loss = super().step(closure)
        for p, grad, group in sparse:
            self.update_rows(p, grad, group)
            p.grad = grad
        return loss

    @torch.no_grad()
    def update_rows(self, p: torch.Tensor, grad: torch.Tensor, group: dict):
        grad = grad.coalesce()  # a row used twice in the batch: its two gradients summed
        rows, g = grad.indices()[0], grad.values()
        scale = getattr(self, "grad_scale", None)  # clipping's divisor (training/optim.py clip_gradients)
        if scale is not None:
            g = g / scale
        state = self.state[p]
        if not state:  # AdamW's own state keys and types: a checkpoint resumes with the switch on or off
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        state["step"] += 1
        step = float(state["step"])
        beta1, beta2 = group["betas"]
        lr = float(group["lr"])
        exp_avg = state["exp_avg"].index_select(0, rows).lerp_(g, 1 - beta1)
        exp_avg_sq = state["exp_avg_sq"].index_select(0, rows).mul_(beta2).addcmul_(g, g, value=1 - beta2)
        state["exp_avg"].index_copy_(0, rows, exp_avg)
        state["exp_avg_sq"].index_copy_(0, rows, exp_avg_sq)
        weights = p.index_select(0, rows).mul_(1 - lr * group["weight_decay"])
        denominator = (exp_avg_sq.sqrt() / math.sqrt(1 - beta2 ** step)).add_(group["eps"])
        weights.addcdiv_(exp_avg, denominator, value=-lr / (1 - beta1 ** step))
        p.index_copy_(0, rows, weights)
