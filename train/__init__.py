import finsent.space  # noqa: F401 - its __init__ quiets two dependency messages before peft loads
