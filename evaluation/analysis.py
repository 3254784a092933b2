"""Error analysis of a classifier on a labelled split, from its logits (evaluation.scoring.Evaluation):
confusion matrix image (multi-label: per label, predicted without gold and gold missed), per-class PR
curves, the highest-loss examples (CSV and a Markdown table), the pooled sentence vectors for
TensorBoard's embedding projector (the tutorials' UMAP plot), and reliability diagrams (single-label).

train.py logs the cheap part (`log_analysis`) after every validation; `write_analysis` adds the files
and the projector, for the best checkpoint at the end of training and for evaluate.py.
"""
import csv
import logging
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure  # not pyplot: no global figure state, no display backend needed

from common.output_paths import atomic_output, save_figure
from common.plot_labels import MAX_DRAWN_CLASSES, plottable
from evaluation.calibration import reliability_figure

CONFUSION_PNG, LABEL_ERRORS_PNG, HIGHEST_LOSS_CSV = "confusion_matrix.png", "label_errors.png", "highest_loss.csv"
TABLE_TEXT_CHARS = 300  # longer texts are cut in the TensorBoard table (the CSV keeps them whole)
log = logging.getLogger(__name__)


def most_errors(errors, limit: int | None = None) -> np.ndarray:
    """Ids of the (at most `limit`, default MAX_DRAWN_CLASSES) classes with the most errors, in id order;
    every class when there are no more than `limit`."""
    limit = MAX_DRAWN_CLASSES if limit is None else limit
    errors = np.asarray(errors)
    if len(errors) <= limit:
        return np.arange(len(errors))
    log.warning("%d classes: the error images and PR curves show the %d with the most errors; the metrics "
                "and metrics.json keep every class", len(errors), limit)
    return np.sort(np.argsort(-errors, kind="stable")[:limit])


def drawn_classes(evaluation) -> np.ndarray:
    """What the error image and the PR curves show (`most_errors` of this evaluation)."""
    if evaluation.multi_label:
        per_class = evaluation.metrics["per_class"]
        return most_errors([c["false_positives"] + c["false_negatives"] for c in per_class.values()])
    counts = np.asarray(evaluation.metrics["confusion_matrix"])
    return most_errors(counts.sum(0) + counts.sum(1) - 2 * np.diag(counts))


def display_texts(examples) -> list[str]:
    """One string per example (data.readers.Examples); pairs as `a [SEP] b`, as the model reads them."""
    if examples.texts_b is None:
        return list(examples.texts)
    return [f"{a} [SEP] {b}" for a, b in zip(examples.texts, examples.texts_b)]


def log_probabilities(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def highest_loss_examples(evaluation, label_names: list[str], texts: list[str], n: int) -> list[dict]:
    """The n examples the model is most confidently wrong about (or least sure of), worst first."""
    if len(texts) != len(evaluation.labels):
        raise ValueError(f"{len(texts)} texts for {len(evaluation.labels)} evaluated examples")
    if evaluation.multi_label:
        return highest_loss_multilabel(evaluation, label_names, texts, n)
    log_probs = log_probabilities(evaluation.logits / evaluation.decision.temperature)
    losses = -log_probs[np.arange(len(evaluation.labels)), evaluation.labels]  # each example's cross-entropy
    predicted = log_probs.argmax(1)
    return [{"rank": rank, "index": int(i), "gold": label_names[evaluation.labels[i]],
             "predicted": label_names[predicted[i]], "loss": float(losses[i]),
             "predicted_probability": float(np.exp(log_probs[i, predicted[i]])), "text": texts[i]}
            for rank, i in enumerate(np.argsort(-losses, kind="stable")[:n], start=1)]


def highest_loss_multilabel(evaluation, label_names: list[str], texts: list[str], n: int) -> list[dict]:
    """Per example: its binary cross-entropy, mean over labels; `predicted_probability` is the highest
    probability of a label the text does not carry (1 - the lowest of a gold label when it carries them all)."""
    gold, probabilities = evaluation.labels.astype(bool), evaluation.probabilities.astype(np.float64)
    p = np.clip(probabilities, 1e-7, 1 - 1e-7)
    losses = -(np.where(gold, np.log(p), np.log1p(-p))).mean(1)
    names = lambda row: ", ".join(label_names[j] for j in np.flatnonzero(row)) or "(none)"  # noqa: E731
    worst_wrong = np.where(gold, 0.0, probabilities).max(1)
    return [{"rank": rank, "index": int(i), "gold": names(gold[i]), "predicted": names(evaluation.predicted[i]),
             "loss": float(losses[i]), "predicted_probability": float(worst_wrong[i]), "text": texts[i]}
            for rank, i in enumerate(np.argsort(-losses, kind="stable")[:n], start=1)]


def write_csv(rows: list[dict], path: Path):
    columns = ["rank", "index", "gold", "predicted", "loss", "predicted_probability", "text"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def markdown_escape(text: str) -> str:
    text = " ".join(text.split())  # newlines and tabs would end the table row
    if len(text) > TABLE_TEXT_CHARS:
        text = text[:TABLE_TEXT_CHARS] + "…"
    return "".join("\\" + c if c in "\\`*_[]<>|#" else c for c in text)


def markdown_table(rows: list[dict]) -> str:
    lines = ["| # | loss | p(predicted) | gold | predicted | text |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['rank']} | {r['loss']:.3f} | {r['predicted_probability']:.3f} | {markdown_escape(r['gold'])} "
              f"| {markdown_escape(r['predicted'])} | {markdown_escape(r['text'])} |" for r in rows]
    return "\n".join(lines)


def confusion_figure(confusion, label_names: list[str], shown=None) -> Figure:
    """Counts and row-normalised (recall on the diagonal) side by side. Both are coloured by the
    row-normalised value, so the errors of a rare class show as clearly as those of a common one.
    `shown`: the class ids drawn (default: all); rows are still normalised over every class."""
    counts = np.asarray(confusion)
    normalised = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    shown = np.arange(len(label_names)) if shown is None else np.asarray(shown)
    of_all = "" if len(shown) == len(label_names) else f", {len(shown)} of {len(label_names)} classes (most errors)"
    counts, normalised = counts[np.ix_(shown, shown)], normalised[np.ix_(shown, shown)]
    label_names = [label_names[i] for i in shown]
    n = len(label_names)
    side = max(3.5, 0.55 * n + 1.5)
    fig = Figure(figsize=(2 * side + 0.5, side), layout="constrained")
    for ax, values, title, fmt in zip(fig.subplots(1, 2), (counts, normalised),
                                      ("counts", "row-normalised"), ("{:d}", "{:.2f}")):
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        ax.set(title=title + of_all, xlabel="predicted", ylabel="true", xticks=range(n), yticks=range(n))
        ax.set_xticklabels(plottable(label_names), rotation=45, ha="right")
        ax.set_yticklabels(plottable(label_names))
        if n <= 30:  # beyond that the numbers no longer fit in the cells
            for (row, col), value in np.ndenumerate(values):
                ax.text(col, row, fmt.format(value), ha="center", va="center", fontsize=8,
                        color="white" if normalised[row, col] > 0.5 else "black")
    return fig


def label_errors_figure(per_class: dict, limit: int | None = None) -> Figure:
    """Multi-label's confusion view: per label, texts predicted with it but not carrying it (false
    positives) and texts carrying it that it missed (false negatives), labels by errors, most first
    (the `limit` labels with the most)."""
    names = sorted(per_class, key=lambda name: -(per_class[name]["false_positives"]
                                                 + per_class[name]["false_negatives"]))[:limit or MAX_DRAWN_CLASSES]
    fp = [per_class[name]["false_positives"] for name in names]
    fn = [per_class[name]["false_negatives"] for name in names]
    fig = Figure(figsize=(7, max(3.0, 0.28 * len(names) + 1.2)), layout="constrained")
    ax = fig.subplots()
    rows = np.arange(len(names))
    ax.barh(rows - 0.2, fp, height=0.4, label="predicted without gold")
    ax.barh(rows + 0.2, fn, height=0.4, label="gold missed")
    ax.set(yticks=rows, xlabel="texts", title="errors per label")
    ax.set_yticklabels(plottable(names))
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    return fig


def errors_figure(evaluation, label_names: list[str], shown=None) -> Figure:
    """`shown`: drawn_classes(evaluation), when the caller has it already."""
    if evaluation.multi_label:
        return label_errors_figure(evaluation.metrics["per_class"])
    shown = drawn_classes(evaluation) if shown is None else shown
    return confusion_figure(evaluation.metrics["confusion_matrix"], label_names, shown)


def figure_pixels(fig: Figure) -> np.ndarray:
    """(H, W, 3) uint8 rendering, for SummaryWriter.add_image."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def log_analysis(writer, tag: str, evaluation, label_names: list[str], texts: list[str], step: int,
                 top_n: int):
    """TensorBoard: `{tag}/confusion_matrix` image (multi-label: `{tag}/label_errors`), one-vs-rest PR curve
    per class from the probabilities (`{tag}/pr/<class>`; beyond MAX_DRAWN_CLASSES classes, of those with
    the most errors), and the `{tag}/highest_loss` table. Drawing the
    figure is most of its cost (BENCHMARKS.md → Figures the code relies on)."""
    image = "label_errors" if evaluation.multi_label else "confusion_matrix"
    shown = drawn_classes(evaluation)
    writer.add_image(f"{tag}/{image}", figure_pixels(errors_figure(evaluation, label_names, shown)), step,
                     dataformats="HWC")
    probabilities = evaluation.probabilities
    for class_id in shown:
        name = label_names[class_id]
        gold = evaluation.labels[:, class_id] == 1 if evaluation.multi_label else evaluation.labels == class_id
        writer.add_pr_curve(f"{tag}/pr/{name}", gold, probabilities[:, class_id], step)
    writer.add_text(f"{tag}/highest_loss",
                    markdown_table(highest_loss_examples(evaluation, label_names, texts, top_n)), step)


def log_projector(writer, tag: str, evaluation, label_names: list[str], texts: list[str], step: int,
                  max_examples: int, seed: int = 0):
    """Pooled sentence vectors with gold/predicted label and text as projector metadata. At most
    `max_examples` (a seeded sample): the projector reads text files, ~8 bytes per number."""
    if evaluation.vectors is None:
        raise ValueError("the evaluation has no sentence vectors (evaluate_with_outputs(..., with_vectors=True))")
    keep = np.arange(len(evaluation.labels))
    if len(keep) > max_examples:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_examples, replace=False))
    if evaluation.multi_label:
        names = lambda row: ",".join(label_names[j] for j in np.flatnonzero(row)) or "(none)"  # noqa: E731
        gold, predicted = [names(row) for row in evaluation.labels], [names(row) for row in evaluation.predicted]
    else:
        gold = [label_names[i] for i in evaluation.labels]
        predicted = [label_names[i] for i in evaluation.logits.argmax(1)]
    metadata = [[gold[i], predicted[i], " ".join(texts[i].split())[:TABLE_TEXT_CHARS]]
                for i in keep]  # tabs/newlines break its TSV
    # Written as text: float64 rounded to 4 decimals prints as "0.1234", float32 as 17 digits (3x the file).
    vectors = np.round(evaluation.vectors[keep].astype(np.float64), 4)
    writer.add_embedding(vectors, metadata=metadata, metadata_header=["gold", "predicted", "text"], tag=tag,
                         global_step=step)


def write_analysis(out_dir, writer, tag: str, evaluation, label_names: list[str], texts: list[str], step: int,
                   top_n: int, projector_max_examples: int) -> list[Path]:
    """Everything: confusion_matrix.png and highest_loss.csv in out_dir, and in TensorBoard what
    `log_analysis` logs plus the projector. Returns the files written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    image = out_dir / (LABEL_ERRORS_PNG if evaluation.multi_label else CONFUSION_PNG)
    save_figure(errors_figure(evaluation, label_names), image, dpi=120)
    with atomic_output(out_dir / HIGHEST_LOSS_CSV) as tmp:
        write_csv(highest_loss_examples(evaluation, label_names, texts, top_n), tmp)
    log_analysis(writer, tag, evaluation, label_names, texts, step, top_n)
    log_projector(writer, tag, evaluation, label_names, texts, step, projector_max_examples)
    return [image, out_dir / HIGHEST_LOSS_CSV]


def write_calibration_analysis(out_dir, writer, evaluations: dict, step: int) -> list[Path]:
    """Single-label: a reliability diagram per split (`reliability_<split>.png` and TensorBoard
    `calibration/<split>`), of the probabilities the checkpoint gives (after its temperature, if any)."""
    out_dir, written = Path(out_dir), []
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, evaluation in evaluations.items():
        if evaluation.multi_label:
            continue
        title = f"{split}" + (f", temperature {evaluation.decision.temperature:.2f}"
                              if evaluation.decision.temperature != 1.0 else "")
        fig = reliability_figure(evaluation.probabilities, evaluation.labels, title)
        save_figure(fig, out_dir / f"reliability_{split}.png", dpi=120)
        writer.add_image(f"calibration/{split}", figure_pixels(fig), step, dataformats="HWC")
        written.append(out_dir / f"reliability_{split}.png")
    return written
