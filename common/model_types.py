"""config.json model_type values of the RoBERTa family, named once for the floors that must know them
without importing torch: common/checks.py (their position tables start after the padding row),
data/transform.py (their pair framing) and model/encoders/roberta.py (the network that reads them)."""

ROBERTA_FAMILY = ("roberta", "xlm-roberta", "camembert")
