"""Any value on the command line reaches the program as the shell passed it (common/overrides.py):
Korean text, paths, column and label names, quotes of both kinds, commas, '=', brackets, emoji, and
texts Hydra would retype (1e3, true, ${x}); sweeps, lists, null and interpolations keep Hydra's meaning.

In process through the same rewriting and composition the entry scripts run; two subprocess runs of
predict.py and data.report prove the rewritten sys.argv is what Hydra's main reads."""
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from common.cli import check_overrides, composed, sweep_samples
from common.errors import UserError
from common.overrides import literal_overrides, parsed
from model.encoders.bert import BertEncoder
from model.checkpoint import ClassifierInfo, save_checkpoint
from model.classifier import BERTClassifier
from data.tokenizer import load_tokenizer
from tests.conftest import run_script

TEXTS = ["정말 행복한 하루였어요", "I can't, really", 'she said "hi", then left', "a=b, c=d", "1e3", "true",
         "cost is ${x}", "[1, 2] and {a: 1}", "기쁨 😀 (joy)", r"C:\data\x\\", r"\${x}", "  spaced  ", "null!", "~x"]


def composed_value(config_name: str, override: str, key: str, multirun=False):
    from omegaconf import OmegaConf

    cfg = composed(config_name, literal_overrides(config_name, [override], multirun))
    return OmegaConf.select(cfg, key)


@pytest.mark.parametrize("text", TEXTS)
def test_predict_text_is_the_text_the_shell_passed(text):
    assert composed_value("predict", f"text={text}", "text") == text


@given(st.text(min_size=1).filter(lambda t: t != "null"))
@settings(max_examples=300, deadline=None)
def test_any_text_survives_hydra_and_omegaconf(text):
    """What Hydra's parser and OmegaConf make of the rewritten override, without composing (fast)."""
    from omegaconf import OmegaConf

    override = literal_overrides("predict", [f"text={text}"], multirun=False)[0]
    value = parsed(override.partition("=")[2])
    if isinstance(value, (list, dict)):  # a whole value in brackets: Hydra's list (refused for a text, below)
        assert override == f"text={text}"
    else:
        assert OmegaConf.create({"text": value}).text == text


def test_a_text_in_brackets_is_refused_in_one_line_that_says_how_to_quote_it(capsys):
    with pytest.raises(SystemExit) as refused:
        check_overrides("predict", ["checkpoint=x", "text=[1, 2]"])
    assert refused.value.code == 2
    assert capsys.readouterr().err == ("error: text=[1, 2]: expected a string (for brackets or braces as text, "
                                       "quote them: text=\"'...'\")\n")
    assert composed_value("predict", "text='[1, 2]'", "text") == "[1, 2]"


@pytest.mark.parametrize("config_name, override, key, expected", [
    ("config", "data.train=../shared/datasets/korean_emotion/한국어_단발성_대화_데이터셋.xlsx", "data.train",
     "../shared/datasets/korean_emotion/한국어_단발성_대화_데이터셋.xlsx"),
    ("config", "data.text_column=문장", "data.text_column", "문장"),
    ("config", "data.label_column=감정", "data.label_column", "감정"),
    ("config", "data.labels=[공포,놀람, 분노]", "data.labels", ["공포", "놀람", "분노"]),
    ("config", "data.delimiter=;", "data.delimiter", ";"),
    ("config", "data.label_delimiter=,", "data.label_delimiter", ","),
    ("evaluate", "checkpoint=outputs/감정/best", "checkpoint", "outputs/감정/best"),
    ("evaluate", "out=결과/report.json", "out", "결과/report.json"),
    ("report", "out=보고서", "out", "보고서"),
    ("export", "out=내보내기", "out", "내보내기"),
    ("mlm", "out=인코더", "out", "인코더"),
    ("scratch", "out=인코더", "out", "인코더"),
])
def test_korean_paths_columns_and_labels_reach_every_entry(config_name, override, key, expected):
    from omegaconf import OmegaConf

    value = composed_value(config_name, override, key)
    assert (OmegaConf.to_object(value) if OmegaConf.is_config(value) else value) == expected


@pytest.mark.parametrize("override, key, expected", [
    ("optim.lr=5e-5", "optim.lr", 5e-5),
    ("data.validation=null", "data.validation", None),
    ("text=null", "text", None),  # Hydra's null stays null: the prompt instead of one text
    ("data.train=${shared_datasets}/한국어.xlsx", "data.train", "/한국어.xlsx"),  # a path's interpolation stays one
    ("data.labels=[b,a]", "data.labels", ["b", "a"]),
    ("optim.betas=[0.9,0.98]", "optim.betas", [0.9, 0.98]),
])
def test_hydra_syntax_keeps_its_meaning_where_it_is_meant(override, key, expected):
    from omegaconf import OmegaConf

    config_name = "predict" if key == "text" else "config"
    value = composed_value(config_name, override, key)
    if key == "data.train":
        assert value.endswith(expected) and "${" not in value
        return
    assert (OmegaConf.to_object(value) if OmegaConf.is_config(value) else value) == expected


def test_hydra_keys_take_korean_paths():
    """The composed config has no hydra node outside a run: what Hydra's parser reads is what it would set."""
    override = literal_overrides("config", ["hydra.run.dir=outputs/한국어 실험"], multirun=False)[0]
    assert parsed(override.partition("=")[2]) == "outputs/한국어 실험"


def test_hydra_quoted_values_are_left_as_the_user_quoted_them():
    assert literal_overrides("predict", ["text='안녕, 세상'", 'text="hi"'], False) == ["text='안녕, 세상'", 'text="hi"']
    assert literal_overrides("config", ["~data.labels", "+trainer.extra=1", "data=files", "--cfg"], False) == [
        "~data.labels", "+trainer.extra=1", "data=files", "--cfg"]


def test_sweeps_still_sweep_and_a_korean_sweep_is_written_as_the_error_says():
    argv = literal_overrides("config", ["optim.lr=1e-4,5e-5", "data.train=a.csv,b.csv"], multirun=True)
    assert argv == ["optim.lr=1e-4,5e-5", "data.train=a.csv,b.csv"]
    assert sweep_samples(argv) == [["optim.lr=0.0001"], ["optim.lr=5e-05"], ["data.train=a.csv"], ["data.train=b.csv"]]
    with pytest.raises(UserError) as refused:
        literal_overrides("config", ["data.text_column=문장,sentence"], multirun=True)
    message = str(refused.value)
    assert "\n" not in message and "under -m a comma separates the values of a sweep" in message
    as_told = message.split("or data.text_column=")[1].split(" to sweep")[0].strip('"')
    samples = sweep_samples(literal_overrides("config", [f"data.text_column={as_told}"], multirun=True))
    assert [composed("config", s).data.text_column for s in samples] == ["문장", "sentence"]
    one = message.split("write data.text_column=")[1].split(" for one value")[0].strip('"')
    assert composed("config", literal_overrides("config", [f"data.text_column={one}"], True)).data.text_column \
        == "문장,sentence"


def test_korean_dictionary_keys_are_refused_in_one_line_saying_where_they_can_go():
    with pytest.raises(UserError, match=r"^loss.class_weights=\{기쁨:2\}: Hydra's override syntax takes only ASCII "
                                        r"names as dictionary keys; write it in a config file, e.g. conf/experiment/"):
        literal_overrides("config", ["loss.class_weights={기쁨:2}"], multirun=False)
    assert literal_overrides("config", ["loss.class_weights={joy:2}"], False) == ["loss.class_weights={joy:2}"]


def test_the_shell_argv_is_rewritten_for_hydra(monkeypatch, tiny_model_dir):
    monkeypatch.setattr("sys.argv", ["predict.py", f"checkpoint={tiny_model_dir}", "text=정말, 'really'"])
    check_overrides("predict")
    import sys
    assert sys.argv[2] == "text='정말, \\'really\\''"


@pytest.fixture(scope="module")
def korean_checkpoint(tiny_model_dir, tmp_path_factory):
    directory = tmp_path_factory.mktemp("한국어 모델") / "최고"
    torch.manual_seed(0)
    save_checkpoint(directory, BERTClassifier(BertEncoder.from_pretrained(tiny_model_dir), 3),
                    ClassifierInfo(["기쁨", "불평/불만", "joy"], "pooler", 32), load_tokenizer(tiny_model_dir))
    return directory


def test_predict_from_the_shell_with_korean_path_and_text(korean_checkpoint):
    text = "I can't, really: 정말 행복한 하루였어요 = ${x} [1e3]"
    result = run_script("predict.py", f"checkpoint={korean_checkpoint}", f"text={text}", timeout=120)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["text"] == text and set(record["probs"]) == {"기쁨", "불평/불만", "joy"}


def test_research_compare_takes_korean_paths_and_picks_sweep_groups_by_korean_overrides(tmp_path, capsys):
    """argparse hands research.compare its arguments untouched; a sweep group is found whether its
    override is typed as the shell passes it or as Hydra recorded it (quoted, 5e-05)."""
    from research.compare import main
    from tests.test_compare import write_run, wrong_on

    sweep = tmp_path / "한국어 스윕"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("trainer:\n  monitor: accuracy\n")
    for job, (column, seed, wrong) in enumerate([("문장", 1, 8), ("문장", 2, 6), ("sentence", 1, 2), ("sentence", 2, 3)]):
        job_dir = write_run(sweep / str(job), wrong_on(range(wrong)), seed=seed)
        recorded = literal_overrides("config", [f"data.text_column={column}"], False)[0]
        (job_dir / ".hydra" / "overrides.yaml").write_text(f"- {json.dumps(recorded, ensure_ascii=False)}\n"
                                                           f"- optim.lr=5e-05\n- seed={seed}\n")
        accuracy = 1 - wrong / 20
        (job_dir / "metrics.json").write_text(json.dumps({"best_validation": {"accuracy": accuracy, "macro_f1": 0},
                                                          "test": {"accuracy": accuracy, "macro_f1": 0}}))
    main(["--sweep", str(sweep), "data.text_column=문장 optim.lr=5e-5", "data.text_column=sentence",
          "--resamples", "200"])
    assert "accuracy  0.6500 ± 0.0707  0.8750 ± 0.0354  +22.50" in capsys.readouterr().out
    main([str(sweep / "0"), str(sweep / "2"), "--resamples", "200"])
    assert f"A  {sweep / '0' / 'predictions_test.npz'}" in capsys.readouterr().out
