"""Know your data before training on it.

    python -m data.report data=emotion
    python -m data.report data=files data.train=my.csv model.path=DIR out=report_dir

Reads and checks the splits exactly as train.py does, then prints per-split counts, the class
distribution, token lengths under the model's tokenizer (and how many texts data.max_len
truncates), duplicates, texts shared between splits and conflicting labels. Saves
class_frequency.png and token_length.png under `out`.
"""
import sys
import unicodedata
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

import common.config  # noqa: F401  (registers config resolvers)
from data.build import describe_across, label_ids, label_names, read_splits, split_stats
from data.tokenizer import Tokenizer, load_tokenizer
from data.transform import BERTSentenceTransform
from common.checks import check_report
from common.cli import check_overrides
from common.errors import exit_on_user_error
from common.plot_labels import plottable

PERCENTILES = (50, 90, 95, 99)


def describe(data_cfg, tokenizer: Tokenizer) -> dict:
    """Everything the report shows, as numbers. Token lengths count [CLS]/[SEP], like data.max_len."""
    splits = read_splits(data_cfg)
    labels = label_names(data_cfg, splits["train"])
    stats, across = split_stats(splits)
    pair = bool(data_cfg.text_b_column)
    # No length limit: the real length of every text, so the report can say what max_len would cut.
    untruncated = BERTSentenceTransform(tokenizer, sys.maxsize, pair=pair, text_prefix=data_cfg.text_prefix)
    report = {"labels": labels, "max_len": data_cfg.max_len, "across": across, "splits": {}}
    n_special = 3 if pair else 2  # [CLS] a [SEP] (b [SEP])
    for name, examples in splits.items():
        ids = label_ids(examples, labels)  # refuses labels training would refuse
        encoded = untruncated.encode(examples.texts, examples.texts_b)
        lengths = encoded.valid_length
        unknown = int((np.concatenate(encoded.token_ids) == tokenizer.unk_id).sum())
        report["splits"][name] = {
            "stats": stats[name],
            "class_counts": np.bincount(ids, minlength=len(labels)).tolist(),
            "lengths": lengths,
            # inverted_cdf: "p95 = n" reads "95% of texts have at most n tokens"
            "length_percentiles": {q: int(np.percentile(lengths, q, method="inverted_cdf")) for q in PERCENTILES},
            "max_length": int(lengths.max()),
            "truncated": int((lengths > data_cfg.max_len).sum()),
            # a tokenizer that does not fit the language shows up here (and as very long sequences)
            "unknown_token_share": unknown / max(1, int(lengths.sum()) - n_special * len(lengths)),
        }
    return report


def format_report(report: dict) -> str:
    splits, labels = report["splits"], report["labels"]
    lines = [f"{name:>10}: " + ", ".join(f"{k} {v}" for k, v in s["stats"].items()) for name, s in splits.items()]
    lines += ["", f"{'class':<12}{'id':>4}" + "".join(f"{name:>20}" for name in splits)]
    for i, label in enumerate(labels):
        cells = "".join(f"{s['class_counts'][i]:>12,} ({s['class_counts'][i] / s['stats']['examples']:>5.1%})"
                        for s in splits.values())
        lines.append(f"{pad(label, 12)}{i:>4}{cells}")
    lines += ["", f"{'tokens':<12}" + "".join(f"{'p' + str(q):>7}" for q in PERCENTILES)
              + f"{'max':>8}{'truncated by max_len=' + str(report['max_len']):>30}{'[UNK] share':>13}"]
    for name, s in splits.items():
        lines.append(f"{name:<12}" + "".join(f"{v:>7}" for v in s["length_percentiles"].values())
                     + f"{s['max_length']:>8}{s['truncated']:>22,} ({s['truncated'] / s['stats']['examples']:>5.1%})"
                     + f"{s['unknown_token_share']:>13.2%}")
    lines += ["", describe_across(report["across"])]
    return "\n".join(lines)


def pad(text: str, width: int) -> str:
    """Left-aligns in a terminal, where CJK characters take two columns."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * (width - columns)


def save_plots(report: dict, out: Path, title: str) -> list[Path]:
    """Class frequencies and token lengths per split. Figure() without pyplot: no GUI backend, no global state."""
    from matplotlib.figure import Figure

    splits, labels = report["splits"], report["labels"]
    out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(max(6, 1.2 * len(labels)), 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(splits)
    for k, (name, s) in enumerate(splits.items()):
        ax.bar(np.arange(len(labels)) + k * width, s["class_counts"], width, label=name)
    ticks = plottable(labels)
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, ticks)
    ax.set(ylabel="texts", title=f"{title}: class frequency",
           xlabel="" if ticks == labels else "class id (names in the printed table)")
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    fig.savefig(out / "class_frequency.png", dpi=100)

    fig = Figure(figsize=(8, 4), layout="constrained")
    ax = fig.subplots()
    # Cut the tail so one huge text does not squeeze the histogram; the last bin holds longer texts.
    top = int(max(report["max_len"], max(s["length_percentiles"][99] for s in splits.values())) * 1.25) + 1
    for name, s in splits.items():
        ax.hist(np.minimum(s["lengths"], top), bins=np.arange(0, top + 2), density=True, histtype="step", label=name)
    ax.axvline(report["max_len"], color="black", linestyle="--", label=f"data.max_len = {report['max_len']}")
    ax.set(xlabel=f"tokens per text, [CLS]/[SEP] included (≥ {top} in the last bin)", ylabel="share of texts",
           title=f"{title}: token length")
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    fig.savefig(out / "token_length.png", dpi=100)
    return [out / "class_frequency.png", out / "token_length.png"]


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    check_report(cfg)
    tokenizer = load_tokenizer(cfg.model.path)
    report = describe(cfg.data, tokenizer)
    print(f"{cfg.data.name}: {cfg.data.train}; tokenizer of {cfg.model.path} ({tokenizer.vocab_size:,} ids)\n")
    print(format_report(report))
    written = save_plots(report, Path(cfg.out), f"{cfg.data.name} ({Path(cfg.data.train).name})")
    print(f"\nwrote {', '.join(map(str, written))}")


if __name__ == "__main__":
    check_overrides("report", checks=check_report)
    main()
