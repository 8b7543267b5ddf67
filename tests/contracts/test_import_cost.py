"""`import dlm` stays light: it does not import transformers (~1 s) or datasets; building a tokenizer does."""

import json
import subprocess
import sys

SCRIPT = """
import json, sys
import dlm
heavy = ("transformers", "datasets")
before = {name: name in sys.modules for name in heavy}
from dlm.data import build_tokenizer
tok = build_tokenizer("byte")
after = "transformers" in sys.modules
from transformers import PreTrainedTokenizerFast
print(json.dumps({"before": before, "after": after, "fast": isinstance(tok, PreTrainedTokenizerFast)}))
"""


def test_import_dlm_does_not_import_transformers():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    seen = json.loads(out.splitlines()[-1])
    assert seen["before"] == {"transformers": False, "datasets": False}
    # the lazy import still happens where it is needed: the same process sees transformers once it builds one
    assert seen["after"] and seen["fast"]
