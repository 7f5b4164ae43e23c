"""finsent's packages import this first (train/ and eval/ through their own __init__), so `quiet` runs before peft
and trl are imported."""

from . import quiet  # noqa: F401 - quiets dependencies' messages on import
