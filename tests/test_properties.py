"""Property tests: whatever the text, the transform's invariants hold and readers round-trip."""
import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data.readers import read_examples
from data.tokenizer import load_tokenizer
from data.transform import BERTSentenceTransform, truncated_pair_lengths
from tests.test_transform import encode_one

texts = st.text(min_size=0, max_size=300)  # arbitrary unicode: emoji, controls, surrogate-free
settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
settings.load_profile("ci")


@given(a=texts, b=texts, max_len=st.integers(4, 80))
def test_transform_invariants_on_any_unicode(tiny_model_dir, a, b, max_len):
    tokenizer = load_tokenizer(tiny_model_dir)
    for pair in (False, True):
        transform = BERTSentenceTransform(tokenizer, max_len, pair=pair)
        token_ids, valid_length, segment_ids = encode_one(transform, *((a, b) if pair else (a,)))
        assert 2 <= valid_length <= max_len
        assert len(token_ids) == len(segment_ids) == valid_length
        assert set(segment_ids.tolist()) <= {0, 1}
        assert all(0 <= i < tokenizer.vocab_size for i in token_ids.tolist())
        assert token_ids[0] == tokenizer.cls_id and token_ids[valid_length - 1] == tokenizer.sep_id
        if not pair:
            assert not segment_ids.any()


@given(len_a=st.integers(0, 500), len_b=st.integers(0, 500), budget=st.integers(1, 510))
def test_pair_truncation_fits_and_keeps_the_shorter_text_when_it_can(len_a, len_b, budget):
    keep_a, keep_b = truncated_pair_lengths(len_a, len_b, budget)
    assert keep_a <= len_a and keep_b <= len_b
    assert keep_a + keep_b == min(len_a + len_b, budget)
    if min(len_a, len_b) <= budget // 2:  # the shorter text fits in its half: it is never cut
        assert (keep_a == len_a) if len_a <= len_b else (keep_b == len_b)


labels = st.sampled_from(["joy", "anger", "0", "1", "슬픔", "a,b", 'say "hi"'])
rows = st.lists(st.tuples(texts.filter(str.strip), labels), min_size=1, max_size=20)


@given(rows=rows)
def test_csv_and_jsonl_round_trip_any_text(tmp_path_factory, rows):
    directory = tmp_path_factory.mktemp("roundtrip")
    buffer = io.StringIO()
    writer = csv.writer(buffer)  # quotes delimiters, quotes and newlines inside fields
    writer.writerow(["text", "label"])
    writer.writerows(rows)
    (directory / "d.csv").write_text(buffer.getvalue(), encoding="utf-8")
    # ensure_ascii=False keeps U+2028, U+0085 ... raw in the file: they must not split lines.
    (directory / "d.jsonl").write_text("".join(json.dumps({"text": t, "label": l}, ensure_ascii=False) + "\n"
                                               for t, l in rows), encoding="utf-8")
    for name in ("d.csv", "d.jsonl"):
        ex = read_examples(directory / name)
        assert ex.texts == [t for t, _ in rows] and ex.labels == [l.strip() for _, l in rows], name
