"""Messages of our dependencies that a newcomer reads as errors, and that are not ours to fix, quieted before the
libraries that print them are imported. Two entry points import this first: space/__init__.py (finsent as a
package: train/ and eval/ import it through their own __init__) and app.py, which a Hugging Face Space runs as a
script from its own folder, where no __init__ runs.

- bitsandbytes' CPU backend tries, when imported (peft imports it whenever it is installed), an optional faster
  4-bit kernel from the Hub's `kernels-community`. The `kernels` package logs that it skips or fails the
  publisher's trust check, and bitsandbytes that it could not load the kernel; 4-bit works without it.
- peft's PeftModel reads transformers' deprecated `is_gradient_checkpointing` (peft/peft_model.py, `__init__`),
  which warns a FutureWarning on every adapter load.
"""

import logging
import warnings

logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
logging.getLogger("kernels._internals.hf_hub").setLevel(logging.ERROR)
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
