"""finsent's packages import this first (train/ and eval/ through their own __init__), so the two lines below run
before peft and trl are imported.

Two messages of our dependencies that a newcomer reads as errors, and that are not ours to fix:
- bitsandbytes' CPU backend logs, when imported (peft imports it whenever it is installed), that it could not load an
  optional faster 4-bit kernel from the Hub's `kernels-community`; 4-bit works without it.
- peft's PeftModel reads transformers' deprecated `is_gradient_checkpointing` (peft/peft_model.py, `__init__`), which
  warns a FutureWarning on every adapter load.
"""

import logging
import warnings

logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
