"""Every output path is checked before the slow work (one line, exit 2: a directory where a file goes, a file
where a directory goes, a missing parent), and result files are written whole or not at all: a write that
fails midway (disk full, as safetensors and numpy raise it) is one line, leaves no temporary file and
keeps the previous file or checkpoint intact."""
import json

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from safetensors import SafetensorError
from safetensors.torch import load_file

import data.report
import evaluate
import model.checkpoint
import research.compare
import training.mlm
from common.config import PROJECT_ROOT
from common.errors import UserError
from common.output_paths import write_text_atomic
from evaluation.predictions import Predictions, read_predictions, write_predictions
from tests.test_loop import composed
from train import train

ABSENT = "/nonexistent/checkpoint-or-data"  # never reached: the output check comes first


def entry_config(name, *overrides):
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose(name, overrides=list(overrides))


def one_line_exit(main, argument, capsys) -> str:
    with pytest.raises(SystemExit) as exited:
        main(argument)
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize("key, target, expected", [
    ("out", "directory", "out={}: is a directory; give a file name"),
    ("predictions", "missing/p.npz", "predictions={}: the parent directory {} does not exist"),
    ("analysis", "file.txt", "analysis={}: is a file; give a directory"),
])
def test_evaluate_refuses_an_unwritable_output_before_loading_anything(key, target, expected, tmp_path, capsys):
    (tmp_path / "directory").mkdir()
    (tmp_path / "file.txt").write_text("keep me")
    path = tmp_path / target
    cfg = entry_config("evaluate", f"checkpoint={ABSENT}", f"{key}={path}")
    assert one_line_exit(evaluate.main, cfg, capsys) == "error: " + expected.format(path, path.parent)
    assert (tmp_path / "file.txt").read_text() == "keep me"


def test_compare_refuses_an_out_directory_before_reading_the_runs(tmp_path, capsys):
    err = one_line_exit(research.compare.main, [ABSENT, ABSENT, "--out", str(tmp_path)], capsys)
    assert err == f"error: --out={tmp_path}: is a directory; give a file name"


def test_report_and_mlm_refuse_an_out_that_is_a_file(tmp_path, tiny_model_dir, capsys):
    existing = tmp_path / "plots"
    existing.write_text("keep me")
    data_args = (f"model.path={tiny_model_dir}", "data=files", f"data.train={ABSENT}", f"out={existing}")
    for main, name in ((data.report.main, "report"), (training.mlm.main, "mlm")):
        assert one_line_exit(main, entry_config(name, *data_args), capsys) == \
            f"error: out={existing}: is a file; give a directory"
    assert existing.read_text() == "keep me"


def test_train_refuses_a_run_directory_that_is_a_file(tiny_model_dir, tiny_data, tmp_path):
    (tmp_path / "run").write_text("")
    with pytest.raises(UserError, match="hydra.run.dir=.*/run: is a file; give a directory"):
        train(composed(tiny_model_dir, tiny_data), tmp_path / "run")


def predictions(n: int) -> Predictions:
    gold = np.arange(n) % 2
    return Predictions(np.arange(n), gold, gold, np.eye(2, dtype=np.float32)[gold], np.eye(2)[gold], ["a", "b"],
                       texts_sha256="0" * 64)


def test_failed_predictions_write_keeps_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "predictions_test.npz"
    write_predictions(path, predictions(4))

    def disk_full_midway(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", disk_full_midway)
    with pytest.raises(UserError, match=r"cannot write .*predictions_test.npz \(No space left on device\)"):
        write_predictions(path, predictions(6))
    assert len(read_predictions(path)) == 4
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_failed_text_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    write_text_atomic(path, json.dumps({"old": 1}))
    monkeypatch.setattr("pathlib.Path.write_text", lambda self, *a, **k: (_ for _ in ()).throw(
        OSError(122, "Disk quota exceeded")))
    with pytest.raises(UserError, match="Disk quota exceeded"):
        write_text_atomic(path, json.dumps({"new": 2}))
    assert path.read_bytes() == b'{"old": 1}' and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_checkpoint_write_failing_midway_is_one_line_and_keeps_the_previous_checkpoint(
        tiny_model_dir, tiny_data, tmp_path, monkeypatch):
    """Fault injection: the second save of checkpoints/last writes half its weights file, then the writer
    raises what safetensors raises on a full disk."""
    real_save_file = model.checkpoint.save_file
    saves = []

    def failing_on_the_second_last_save(tensors, filename, *args, **kwargs):
        if ".last.tmp-" in filename:
            saves.append(filename)
            if len(saves) == 2:
                with open(filename, "wb") as f:
                    f.write(b"\x00" * 4096)
                raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                      'message: "No space left on device" })')
        return real_save_file(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(model.checkpoint, "save_file", failing_on_the_second_last_save)
    with pytest.raises(UserError) as failed:
        train(composed(tiny_model_dir, tiny_data, "trainer.save_every_steps=2"), tmp_path)
    message = str(failed.value)
    assert "\n" not in message and message.startswith(f"cannot write checkpoint {tmp_path / 'checkpoints' / 'last'}")
    assert "No space left on device" in message and "still holds the previous one" in message
    checkpoints = tmp_path / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last"]  # no .last.tmp-PID left behind
    state = json.loads((checkpoints / "last" / "training_state.json").read_text())
    assert state["progress"]["step"] == 2  # the save before the failed one, whole and loadable
    assert load_file(str(checkpoints / "last" / "model.safetensors"))
    assert not (tmp_path / ".run.lock").exists()


def test_export_out_under_a_file_is_one_line_before_anything_is_loaded(tmp_path):
    from model.export import check_out_dir

    (tmp_path / "a_file").write_text("x")
    with pytest.raises(UserError, match=r"out=.*a_file/sub: .*a_file is a file, not a directory"):
        check_out_dir(tmp_path / "a_file" / "sub", tmp_path / "checkpoint", overwrite=False)
