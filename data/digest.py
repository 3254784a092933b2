"""Content hashes of a split as read: what proves that two runs saw the same examples.

`texts_digest` covers the texts (and second texts of pairs) in order; research.compare refuses two
prediction files whose digests differ. `split_digest` adds the labels: a resumed run checks that its
training split is the one it was trained on. Each text is length-prefixed, so no choice of separator
can make two different lists hash alike."""
import hashlib

import numpy as np


def _update(h, texts):
    for text in texts:
        data = text.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)


def texts_digest(texts, texts_b=None) -> str:
    h = hashlib.sha256(b"texts-v1")
    h.update(len(texts).to_bytes(8, "little"))
    _update(h, texts)
    if texts_b is not None:
        h.update(b"pairs")
        _update(h, texts_b)
    return h.hexdigest()


def split_digest(texts_sha256: str, label_ids: np.ndarray, label_names: list[str]) -> str:
    """The texts' digest, each example's label (by name: ids alone would not see a renamed class)."""
    h = hashlib.sha256(b"split-v1" + texts_sha256.encode())
    _update(h, label_names)
    labels = np.ascontiguousarray(label_ids)
    h.update(str(labels.dtype).encode() + str(labels.shape).encode())
    h.update(labels.tobytes())
    return h.hexdigest()
