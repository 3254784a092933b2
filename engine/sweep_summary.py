"""`python -m engine.sweep_summary` moved to `python -m research.sweep_summary` (research/sweep_summary.py); this alias is kept for one
release and says so each time it runs."""
import runpy
import sys

print("note: engine.sweep_summary is now research.sweep_summary: run `python -m research.sweep_summary`; the engine.sweep_summary alias will be removed "
      "in the next release", file=sys.stderr)
runpy.run_module("research.sweep_summary", run_name="__main__", alter_sys=True)
