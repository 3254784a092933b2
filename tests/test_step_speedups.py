"""The training-step switches of issue 16 do the math they claim: model.first_token_only changes no
output or gradient, trainer.clip_in_optimizer clips as clip_grad_norm_ does, and optim.sparse_embedding
gives the rows a batch uses AdamW's update and leaves the others alone (SparseAdam's rule)."""
import copy

import pytest
import torch

from training.optim import build_optimizer, clip_gradients
from model.encoders.bert import BertConfig, BertEncoder
from model.classifier import BERTClassifier

VOCAB = 50


def tiny_classifier(pooling="pooler", seed=0) -> BERTClassifier:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BERTClassifier(BertEncoder(cfg), 3, dropout=0.0, pooling=pooling)


def batch(seed=1, rows=None):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (4, 9), generator=g) if rows is None else rows
    return ids, torch.tensor([9, 6, 3, 1])


def loss_of(model, ids, lengths):
    return (model(ids, lengths) * torch.arange(1.0, 4.0)).square().sum() * 10


def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.parametrize("pooling", ["pooler", "cls"])
def test_first_token_only_gives_the_same_logits_and_gradients(pooling):
    model = tiny_classifier(pooling)
    ids, lengths = batch()
    results = []
    for first_token_only in (True, False):
        model.zero_grad()
        model.first_token_only = first_token_only
        logits = model(ids, lengths)
        loss_of(model, ids, lengths).backward()
        results.append((logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]))
    (logits_a, grads_a), (logits_b, grads_b) = results
    torch.testing.assert_close(logits_a, logits_b, rtol=0, atol=1e-6)
    assert len(grads_a) == len(grads_b)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_first_token_only_computes_one_position_in_the_last_layer():
    model = tiny_classifier()
    seen = []
    model.encoder.layers[-1].ffn_in.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    model(*batch())
    assert seen == [torch.Size([4, 1, 64])]
    model.pooling = "mean"  # mean pooling reads every position: all of them are computed
    model(*batch())
    assert seen[-1] == torch.Size([4, 9, 64])


def train_steps(model, in_optimizer: bool, steps=3, sparse=False, weight_decay=0.01, rows=None,
                reference_clip=False):
    model.encoder.embeddings.word.sparse = sparse
    optimizer = build_optimizer(model, 1e-2, weight_decay, implementation="fused")
    norms = []
    for step in range(steps):
        ids, lengths = batch(seed=step, rows=rows)
        loss_of(model, ids, lengths).backward()
        if reference_clip:
            norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5))
        else:
            norms.append(clip_gradients(optimizer, list(model.parameters()), 0.5, in_optimizer))
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return flat(model), torch.stack(norms)


@pytest.mark.parametrize("in_optimizer", [True, False])
def test_clipping_matches_clip_grad_norm(in_optimizer):
    reference, reference_norms = train_steps(tiny_classifier(), False, reference_clip=True)
    weights, norms = train_steps(tiny_classifier(), in_optimizer)
    assert (reference_norms > 0.5).all()  # every step was clipped
    torch.testing.assert_close(norms, reference_norms, rtol=1e-6, atol=0)
    torch.testing.assert_close(weights, reference, rtol=0, atol=1e-5)


@pytest.mark.parametrize("in_optimizer", [True, False])
def test_sparse_embedding_is_adamw_on_the_rows_used_and_leaves_the_rest(in_optimizer):
    """With the same rows in every batch, LazyAdam and AdamW agree on those rows and on every other
    parameter; the rows never used keep their initial weights, where dense AdamW decays them."""
    ids = batch()[0]
    used = torch.zeros(VOCAB, dtype=torch.bool)
    used[ids.unique()] = True
    initial = tiny_classifier().encoder.embeddings.word.weight.detach().clone()

    dense_model, sparse_model = tiny_classifier(), tiny_classifier()
    _, dense_norms = train_steps(dense_model, in_optimizer, rows=ids)
    _, sparse_norms = train_steps(sparse_model, in_optimizer, sparse=True, rows=ids)

    torch.testing.assert_close(sparse_norms, dense_norms, rtol=1e-6, atol=0)
    dense_word = dense_model.encoder.embeddings.word.weight.detach()
    sparse_word = sparse_model.encoder.embeddings.word.weight.detach()
    torch.testing.assert_close(sparse_word[used], dense_word[used], rtol=0, atol=1e-6)
    assert torch.equal(sparse_word[~used], initial[~used])
    assert not torch.allclose(dense_word[~used], initial[~used], rtol=0, atol=1e-7)  # dense decayed them
    for (name, a), b in zip(dense_model.named_parameters(), sparse_model.parameters()):
        if name != "encoder.embeddings.word.weight":
            torch.testing.assert_close(b, a, rtol=0, atol=1e-6, msg=name)


def test_sparse_embedding_state_is_adamw_state():
    """The row optimizer keeps AdamW's state keys and types: a resumed run can turn the switch either way."""
    sparse_model = tiny_classifier()
    sparse_model.encoder.embeddings.word.sparse = True
    optimizer = build_optimizer(sparse_model, 1e-2, 0.01, implementation="fused")
    loss_of(sparse_model, *batch()).backward()
    clip_gradients(optimizer, list(sparse_model.parameters()), 0.5, True)
    optimizer.step()
    word = sparse_model.encoder.embeddings.word.weight
    dense_model = copy.deepcopy(sparse_model)
    dense_optimizer = build_optimizer(dense_model, 1e-2, 0.01, implementation="fused")
    loss_of(dense_model, *batch()).backward()
    dense_optimizer.step()
    dense_state = dense_optimizer.state[dense_model.encoder.embeddings.word.weight]
    state = optimizer.state[word]
    assert set(state) == set(dense_state)
    for key in state:
        assert (state[key].dtype, state[key].shape) == (dense_state[key].dtype, dense_state[key].shape)
    dense_optimizer.load_state_dict(optimizer.state_dict())  # and AdamW takes it as its own
    assert float(dense_optimizer.state[dense_model.encoder.embeddings.word.weight]["step"]) == 1.0
