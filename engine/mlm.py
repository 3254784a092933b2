"""`python -m engine.mlm` moved to `python -m training.mlm` (training/mlm.py); this alias is kept for one
release and says so each time it runs."""
import runpy
import sys

print("note: engine.mlm is now training.mlm: run `python -m training.mlm`; the engine.mlm alias will be removed "
      "in the next release", file=sys.stderr)
runpy.run_module("training.mlm", run_name="__main__", alter_sys=True)
