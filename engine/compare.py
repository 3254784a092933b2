"""`python -m engine.compare` moved to `python -m research.compare` (research/compare.py); this alias is kept for one
release and says so each time it runs."""
import runpy
import sys

print("note: engine.compare is now research.compare: run `python -m research.compare`; the engine.compare alias will be removed "
      "in the next release", file=sys.stderr)
runpy.run_module("research.compare", run_name="__main__", alter_sys=True)
