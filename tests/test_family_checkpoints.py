"""A fine-tuned *ForSequenceClassification directory of every family, as transformers saves one (tokenizer
included), is a checkpoint: predict.py's predictor gives the pipeline's probabilities within 1e-5; saved as
ours, it exports back (format=hf) to a directory whose pipeline agrees within 1e-4, and to ONNX likewise.
train.py trains every family, with either head, and keeps a fine-tuned head whose labels are the data's."""
import json

import pytest
import torch

from common.errors import UserError
from inference.predictor import Predictor, load_predictor
from model.checkpoint import load_checkpoint, save_checkpoint
from model.classifier import BERTClassifier
from model.export import export_hf
from model.encoders.families import load_encoder
from model.hf_classifier import start_from_hf_head
from tests.conftest import CLASS_WORDS, FILLER, SPECIAL
from tests.test_loop import composed
from tests.tokenizer_dirs import modernbert_bpe
from train import train

transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency")
tokenizers = pytest.importorskip("tokenizers")

LABELS = ["fear", "joy", "anger"]  # conftest.CLASS_WORDS' labels, in another order than the data's
TEXTS = ["i feel so happy today", "it is really very furious and mad", "the day was",
         "wonderful great happy the day was really very wonderful and it is great"]
SHAPE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def wordpiece_tokenizer(cls):
    words = FILLER + [w for ws in CLASS_WORDS.values() for w in ws]
    vocab = {t: i for i, t in enumerate(SPECIAL + words + list("abcdefghijklmnopqrstuvwxyz"))}
    model = tokenizers.models.WordPiece(vocab, unk_token="[UNK]")
    tok = tokenizers.Tokenizer(model)
    tok.normalizer = tokenizers.normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    tok.post_processor = tokenizers.processors.BertProcessing(("[SEP]", vocab["[SEP]"]), ("[CLS]", vocab["[CLS]"]))
    tok.decoder = tokenizers.decoders.WordPiece()
    return cls(tokenizer_object=tok, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]",
               mask_token="[MASK]")


def byte_level_bpe_tokenizer(cls):
    tok = tokenizers.ByteLevelBPETokenizer()
    corpus = TEXTS + [" ".join(FILLER), " ".join(w for ws in CLASS_WORDS.values() for w in ws)]
    tok.train_from_iterator(corpus, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok.post_processor = tokenizers.processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return cls(tokenizer_object=tok._tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>",
               cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def modernbert_tokenizer(cls):
    corpus = TEXTS + [" ".join(FILLER), " ".join(w for ws in CLASS_WORDS.values() for w in ws)]
    return cls(tokenizer_object=modernbert_bpe(corpus), cls_token="[CLS]", sep_token="[SEP]", unk_token="[UNK]",
               pad_token="[PAD]", mask_token="[MASK]")


def unigram_tokenizer(cls):
    """DeBERTa-v3's layout: [PAD] [CLS] [SEP] [UNK], SentencePiece pieces ("▁" starts a word), [MASK] last."""
    words = dict.fromkeys(FILLER + [w for ws in CLASS_WORDS.values() for w in ws])
    pieces = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"] + [f"▁{w}" for w in words] + ["▁", *"abcdefghijklmnopqrstuvwxyz"]
    return cls(vocab=[(p, 0.0) for p in pieces[:4]] + [(p, -1.0) for p in pieces[4:]] + [("[MASK]", 0.0)])


FAMILIES = {
    "bert": (transformers.BertConfig, transformers.BertTokenizerFast, wordpiece_tokenizer, {}),
    "electra": (transformers.ElectraConfig, transformers.ElectraTokenizerFast, wordpiece_tokenizer,
                {"embedding_size": 16}),
    "distilbert": (transformers.DistilBertConfig, transformers.DistilBertTokenizerFast, wordpiece_tokenizer,
                   {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64}),
    "roberta": (transformers.RobertaConfig, transformers.RobertaTokenizerFast, byte_level_bpe_tokenizer,
                {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "type_vocab_size": 1}),
    # XLM-R's own tokenizer is a Unigram (its ids: tests/test_tokenizer_families.py); the model is what is tested here
    "xlm-roberta": (transformers.XLMRobertaConfig, transformers.RobertaTokenizerFast, byte_level_bpe_tokenizer,
                    {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "type_vocab_size": 1}),
    # special ids set from the tokenizer (save_classifier); a window of 4 tokens, which TEXTS reach past, on the
    # last layer, the one first_token_only shortens
    "modernbert": (transformers.ModernBertConfig, transformers.PreTrainedTokenizerFast, modernbert_tokenizer,
                   {"local_attention": 4, "global_attn_every_n_layers": 2}),
    "deberta-v2": (transformers.DebertaV2Config, transformers.DebertaV2TokenizerFast, unigram_tokenizer,
                   {"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_buckets": 8,
                    "share_att_key": True, "norm_rel_ebd": "layer_norm", "position_biased_input": False}),
}


@pytest.fixture(scope="module")
def saved_classifiers(tmp_path_factory):
    """family -> a random fine-tuned classifier of it with its tokenizer, saved by transformers (built once)."""
    made = {}

    def classifier(family):
        if family not in made:
            made[family] = save_classifier(family, tmp_path_factory.mktemp(family))
        return made[family]
    return classifier


@pytest.fixture(params=list(FAMILIES))
def hf_classifier(request, saved_classifiers):
    return saved_classifiers(request.param)


def save_classifier(family, directory):
    config_class, tokenizer_class, make_tokenizer, extra = FAMILIES[family]
    tokenizer = make_tokenizer(tokenizer_class)
    shape = {} if family == "distilbert" else SHAPE
    if family == "modernbert":
        extra = {**extra, "pad_token_id": tokenizer.pad_token_id, "cls_token_id": tokenizer.cls_token_id,
                 "bos_token_id": tokenizer.cls_token_id, "sep_token_id": tokenizer.sep_token_id,
                 "eos_token_id": tokenizer.sep_token_id}
    config = config_class(vocab_size=len(tokenizer), max_position_embeddings=66, **shape, **extra,
                          id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)})
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def pipeline_probabilities(directory) -> torch.Tensor:
    classify = transformers.pipeline("text-classification", model=str(directory), top_k=None, device="cpu")
    rows = classify(TEXTS)
    return torch.tensor([[next(r["score"] for r in row if r["label"] == name) for name in LABELS] for row in rows])


def test_predictor_gives_the_pipelines_probabilities(hf_classifier):
    ours = load_predictor(hf_classifier, "cpu", pack_weights=False)
    assert ours.labels == LABELS
    assert (torch.from_numpy(ours.probabilities(TEXTS)) - pipeline_probabilities(hf_classifier)).abs().max() < 1e-5
    packed = load_predictor(hf_classifier, "cpu")  # oneDNN-packed Linear layers: summation order only
    assert (torch.from_numpy(packed.probabilities(TEXTS)) - pipeline_probabilities(hf_classifier)).abs().max() < 1e-4


def test_saved_as_ours_it_exports_back_to_the_family(hf_classifier, tmp_path):
    loaded = load_checkpoint(hf_classifier)
    ours = tmp_path / "ours"
    save_checkpoint(ours, loaded.model, loaded.info, loaded.transform.tokenizer)
    expected = torch.from_numpy(load_predictor(ours, "cpu", pack_weights=False).probabilities(TEXTS))
    assert (expected - pipeline_probabilities(hf_classifier)).abs().max() < 1e-5
    export_hf(load_checkpoint(ours), ours, tmp_path / "hf")
    architecture = transformers.AutoConfig.from_pretrained(tmp_path / "hf").architectures
    assert architecture == transformers.AutoConfig.from_pretrained(hf_classifier).architectures
    assert (pipeline_probabilities(tmp_path / "hf") - expected).abs().max() < 1e-4


# 10-20 s per export: the families whose graphs differ from BERT's (tests/test_onnx_predictor.py) in their
# inputs (no token types) and positions (RoBERTa's); ELECTRA's graph is BERT's plus one projection.
@pytest.mark.parametrize("family", ["roberta", "distilbert"])
def test_onnx_runtime_agrees(family, saved_classifiers, tmp_path):
    pytest.importorskip("onnxruntime")
    from inference.onnx_predictor import OnnxPredictor

    hf_classifier = saved_classifiers(family)
    loaded = load_checkpoint(hf_classifier)
    onnx = OnnxPredictor.for_checkpoint(loaded, hf_classifier, cache=tmp_path)
    expected = load_predictor(hf_classifier, "cpu", pack_weights=False).probabilities(TEXTS)
    assert abs(onnx.probabilities(TEXTS) - expected).max() < 1e-4


def test_modernbert_refuses_onnx_in_one_line_and_auto_falls_back_to_torch(saved_classifiers):
    directory = saved_classifiers("modernbert")
    with pytest.raises(UserError, match=r"format=onnx \(and runtime=onnx\) is not supported for ModernBERT") as e:
        load_predictor(directory, "cpu", runtime="onnx")
    assert "\n" not in str(e.value)
    assert isinstance(load_predictor(directory, "cpu", runtime="auto", interactive=True), Predictor)


def test_deberta_has_no_onnx_export_and_auto_runs_torch(saved_classifiers, tmp_path):
    from model.export import export_onnx

    directory = saved_classifiers("deberta-v2")
    with pytest.raises(UserError, match=r"format=onnx \(and runtime=onnx\) is not supported for DeBERTa-v2"):
        export_onnx(load_checkpoint(directory), directory, tmp_path / "onnx", 18)
    assert isinstance(load_predictor(directory, "cpu", runtime="auto", interactive=True), Predictor)


def test_a_fine_tuned_head_is_kept_in_the_datas_label_order(saved_classifiers):
    directory = saved_classifiers("distilbert")
    reference = load_checkpoint(directory).model
    data_order = ["anger", "fear", "joy"]
    model = BERTClassifier(load_encoder(directory), 3, head="family")
    assert "head of" in start_from_hf_head(model, directory, data_order)
    for i, name in enumerate(data_order):
        assert torch.equal(model.head.weight[i], reference.head.weight[LABELS.index(name)])
    assert torch.equal(model.pre_head.weight, reference.pre_head.weight)
    other = BERTClassifier(load_encoder(directory), 2, head="family")
    assert "starts fresh" in start_from_hf_head(other, directory, ["negative", "positive"])


@pytest.mark.parametrize("family, head", [("roberta", "model.pooling=cls"), ("distilbert", "model.head=family"),
                                          ("electra", "model.head=family"), ("modernbert", "model.head=family"),
                                          ("deberta-v2", "model.head=family")])
def test_train_py_trains_the_family(family, head, saved_classifiers, tiny_data, tmp_path):
    directory = saved_classifiers(family)
    # DeBERTa also with the vocabulary trimmed (mDeBERTa's 250k) and layer-wise decay over its relative table
    extra = ["model.trim_vocab=true", "optim.layer_decay=0.8"] if family == "deberta-v2" else []
    train(composed(directory, tiny_data, "trainer.max_epochs=1", head, *extra), tmp_path)
    best = tmp_path / "checkpoints" / "best"
    assert json.loads((best / "config.json").read_text())["model_type"] == family
    loaded = load_checkpoint(best)
    assert loaded.info.head == ("family" if head == "model.head=family" else "linear")
    assert loaded.transform.framing == {"roberta": "roberta", "modernbert": "bert_one_segment"}.get(family, "bert")
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    probabilities = load_predictor(best, "cpu", pack_weights=False).probabilities(TEXTS)
    assert metrics["steps"] > 0 and probabilities.shape == (len(TEXTS), 3)
