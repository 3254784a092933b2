"""Where the project lives on disk; its own module so that the config resolvers and what they call
(common/e5_encoder.py) can both read it without importing each other."""
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
