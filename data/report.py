"""Know your data before training on it.

    python -m data.report data=emotion
    python -m data.report data=files data.train=my.csv model.path=DIR out=report_dir

Reads and checks the splits exactly as train.py does, then prints per-split counts, the class
distribution, token lengths under the model's tokenizer (and how many texts data.max_len
truncates), duplicates, texts shared between splits, near-duplicates across splits (equal once
case, spacing and punctuation are set aside: data/near_duplicates.py) and conflicting labels. Saves
class_frequency.png and token_length.png under `out`. Multi-label data adds how many labels the
texts carry, the label pairs seen most together and label_co_occurrence.png (training split).
"""
import logging
import sys
import unicodedata
from pathlib import Path

import hydra
import numpy as np
from omegaconf import DictConfig

import common.config  # noqa: F401  (registers config resolvers)
from data.build import describe_across, label_ids, label_names, read_splits, split_stats
from data.near_duplicates import describe_near_duplicates, near_duplicates
from data.tokenizer import Tokenizer, load_tokenizer
from data.transform import BERTSentenceTransform
from common.checks import check_report
from common.cli import check_overrides
from common.errors import exit_on_user_error
from common.output_paths import check_output_dir, save_figure
from common.plot_labels import largest, plottable

log = logging.getLogger(__name__)

PERCENTILES = (50, 90, 95, 99)
TOP_PAIRS = 10


def describe(data_cfg, tokenizer: Tokenizer) -> dict:
    """Everything the report shows, as numbers. Token lengths count [CLS]/[SEP], like data.max_len."""
    splits = read_splits(data_cfg)
    labels = label_names(data_cfg, splits["train"])
    stats, across = split_stats(splits)
    pair = bool(data_cfg.text_b_column)
    # No length limit: the real length of every text, so the report can say what max_len would cut.
    untruncated = BERTSentenceTransform(tokenizer, sys.maxsize, pair=pair, text_prefix=data_cfg.text_prefix)
    report = {"labels": labels, "max_len": data_cfg.max_len, "across": across, "splits": {},
              "near_duplicates": near_duplicates(splits),
              "multi_label": splits["train"].multi_label}
    n_special = 3 if pair else 2  # [CLS] a [SEP] (b [SEP])
    for name, examples in splits.items():
        ids = label_ids(examples, labels)  # refuses labels training would refuse
        encoded = untruncated.encode(examples.texts, examples.texts_b)
        lengths = encoded.valid_length
        unknown = int((np.concatenate(encoded.token_ids) == tokenizer.unk_id).sum())
        report["splits"][name] = {
            "stats": stats[name],
            # multi-label: texts carrying each label (they add up to more than the texts)
            "class_counts": (ids.sum(0).astype(int).tolist() if ids.ndim == 2
                             else np.bincount(ids, minlength=len(labels)).tolist()),
            "lengths": lengths,
            # inverted_cdf: "p95 = n" reads "95% of texts have at most n tokens"
            "length_percentiles": {q: int(np.percentile(lengths, q, method="inverted_cdf")) for q in PERCENTILES},
            "max_length": int(lengths.max()),
            "truncated": int((lengths > data_cfg.max_len).sum()),
            # a tokenizer that does not fit the language shows up here (and as very long sequences)
            "unknown_token_share": unknown / max(1, int(lengths.sum()) - n_special * len(lengths)),
        }
        if ids.ndim == 2:
            report["splits"][name].update(label_set_counts(ids))
    return report


def label_set_counts(multi_hot: np.ndarray) -> dict:
    """`labels_per_text`[k]: texts with k labels; `co_occurrence`[i][j]: texts carrying labels i and j
    (the diagonal: texts carrying label i)."""
    multi_hot = multi_hot.astype(np.int64)  # exact counts, whatever the number of texts
    return {"labels_per_text": np.bincount(multi_hot.sum(1)).tolist(),
            "co_occurrence": (multi_hot.T @ multi_hot).tolist()}


def format_report(report: dict) -> str:
    splits, labels = report["splits"], report["labels"]
    lines = [f"{name:>10}: " + ", ".join(f"{k} {v}" for k, v in s["stats"].items()) for name, s in splits.items()]
    width = max(12, *(terminal_columns(label) + 1 for label in labels))  # GoEmotions has 'disappointment'
    lines += ["", f"{'class':<{width}}{'id':>4}" + "".join(f"{name:>20}" for name in splits)]
    for i, label in enumerate(labels):
        cells = "".join(f"{s['class_counts'][i]:>12,} ({s['class_counts'][i] / s['stats']['examples']:>5.1%})"
                        for s in splits.values())
        lines.append(f"{pad(label, width)}{i:>4}{cells}")
    lines += ["", f"{'tokens':<12}" + "".join(f"{'p' + str(q):>7}" for q in PERCENTILES)
              + f"{'max':>8}{'truncated by max_len=' + str(report['max_len']):>30}{'[UNK] share':>13}"]
    for name, s in splits.items():
        lines.append(f"{name:<12}" + "".join(f"{v:>7}" for v in s["length_percentiles"].values())
                     + f"{s['max_length']:>8}{s['truncated']:>22,} ({s['truncated'] / s['stats']['examples']:>5.1%})"
                     + f"{s['unknown_token_share']:>13.2%}")
    if report["multi_label"]:
        lines += ["", *format_label_sets(report)]
    lines += ["", describe_across(report["across"]), *describe_near_duplicates(report["near_duplicates"])]
    return "\n".join(lines)


def format_label_sets(report: dict) -> list[str]:
    """Labels per text, per split; the label pairs most often on one text in train."""
    splits, labels = report["splits"], report["labels"]
    most = max(len(s["labels_per_text"]) for s in splits.values())
    lines = [f"{'labels/text':<12}" + "".join(f"{k:>16}" for k in range(most))]
    for name, s in splits.items():
        counts = s["labels_per_text"] + [0] * (most - len(s["labels_per_text"]))
        lines.append(f"{name:<12}" + "".join(f"{n:>8,} ({n / s['stats']['examples']:>5.1%})" for n in counts))
    co_occurrence = np.asarray(splits["train"]["co_occurrence"])
    pairs = sorted(((int(co_occurrence[i, j]), labels[i], labels[j]) for i in range(len(labels))
                    for j in range(i + 1, len(labels)) if co_occurrence[i, j]), key=lambda p: -p[0])
    lines += ["", f"label pairs most often on one text (train, of {len(pairs)} pairs seen):"]
    lines += [f"  {a} + {b}: {n:,}" for n, a, b in pairs[:TOP_PAIRS]] or ["  none (no text has two labels)"]
    return lines


def pad(text: str, width: int) -> str:
    """Left-aligns in a terminal, where CJK characters take two columns."""
    return text + " " * (width - terminal_columns(text))


def terminal_columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def save_plots(report: dict, out: Path, title: str) -> list[Path]:
    """Class frequencies and token lengths per split. Figure() without pyplot: no GUI backend, no global state."""
    from matplotlib.figure import Figure

    splits, all_labels = report["splits"], report["labels"]
    out.mkdir(parents=True, exist_ok=True)
    shown = largest(splits["train"]["class_counts"])  # the most frequent classes, when there are too many
    labels, kind = [all_labels[i] for i in shown], "label" if report["multi_label"] else "class"
    if len(shown) < len(all_labels):
        log.warning("%d classes: the figures show the %d most frequent in training; the printed table keeps "
                    "every class", len(all_labels), len(shown))
        kind = f"{kind} ({len(shown)} most frequent of {len(all_labels)})"
    fig = Figure(figsize=(max(6, 1.2 * len(labels)), 4), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(splits)
    for k, (name, s) in enumerate(splits.items()):
        ax.bar(np.arange(len(labels)) + k * width, np.asarray(s["class_counts"])[shown], width, label=name)
    ticks = [plottable(all_labels)[i] for i in shown]
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, ticks)
    ax.set(ylabel="texts", title=f"{title}: {kind} frequency",
           xlabel="" if ticks == labels else "class id (names in the printed table)")
    ax.legend(loc="upper left", bbox_to_anchor=(1, 1))
    save_figure(fig, out / "class_frequency.png", dpi=100)

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
    save_figure(fig, out / "token_length.png", dpi=100)
    written = [out / "class_frequency.png", out / "token_length.png"]
    if report["multi_label"]:
        co_occurrence = np.asarray(splits["train"]["co_occurrence"])[np.ix_(shown, shown)]
        save_figure(co_occurrence_figure(co_occurrence, labels, f"{title}, train"),
                    out / "label_co_occurrence.png", dpi=100)
        written.append(out / "label_co_occurrence.png")
    return written


def co_occurrence_figure(co_occurrence, labels: list[str], title: str):
    """Counts in the cells, coloured by the share of the row label's texts that also carry the
    column label: a rare label's companions show as clearly as a common one's. The diagonal (each
    label's own count) is left white, or it would be the darkest cell of every row."""
    from matplotlib.figure import Figure

    counts = np.asarray(co_occurrence)
    share = counts / np.maximum(np.diag(counts)[:, None], 1)
    np.fill_diagonal(share, np.nan)
    n = len(labels)
    side = max(4, 0.55 * n + 2)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=max(np.nanmax(share, initial=0), 1e-9))
    fig.colorbar(image, ax=ax, shrink=0.6, label="share of the row label's texts")
    ticks = plottable(labels)
    ax.set(title=f"{title}: texts carrying both labels", xticks=range(n), yticks=range(n))
    ax.set_xticklabels(ticks, rotation=45, ha="right")
    ax.set_yticklabels(ticks)
    if n <= 30:  # beyond that the numbers no longer fit in the cells
        dark = np.nan_to_num(share) > 0.6 * np.nanmax(share, initial=0)
        for (row, col), value in np.ndenumerate(counts):
            ax.text(col, row, f"{value:d}", ha="center", va="center", fontsize=7,
                    color="white" if dark[row, col] else "black")
    return fig


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
@exit_on_user_error
def main(cfg: DictConfig):
    check_report(cfg)
    check_output_dir(cfg.out, "out")  # before the data is read
    tokenizer = load_tokenizer(cfg.model.path)
    report = describe(cfg.data, tokenizer)
    print(f"{cfg.data.name}: {cfg.data.train}; tokenizer of {cfg.model.path} ({tokenizer.vocab_size:,} ids)\n")
    print(format_report(report))
    written = save_plots(report, Path(cfg.out), f"{cfg.data.name} ({Path(cfg.data.train).name})")
    print(f"\nwrote {', '.join(map(str, written))}")


if __name__ == "__main__":
    check_overrides("report", checks=check_report)
    main()
