"""The task's facts: the three labels and the prompt.

This folder deploys alone as the Hugging Face Space, so it imports nothing from
`train/`, `eval/` or `model_card/`; they import these facts from here.
"""

from __future__ import annotations

LABELS = ("negative", "neutral", "positive")

# One prompt for training and inference. The headline goes in square brackets
# and the model completes the line with " <label>"; loss is on that completion only.
PROMPT_TEMPLATE = (
    "Analyze the sentiment of the news headline enclosed in square brackets, "
    "determine if it is positive, neutral, or negative, and return the answer as "
    'the corresponding sentiment label "positive" or "neutral" or "negative".\n\n'
    "[{text}] ="
)


def build_prompt(text: str) -> str:
    """The prompt for one headline, ending where the label's completion starts."""
    return PROMPT_TEMPLATE.format(text=text.strip())


def build_completion(label: str) -> str:
    """What the model is trained to write after the prompt."""
    if label not in LABELS:
        raise ValueError(f"unknown label {label!r}: expected one of {', '.join(LABELS)}")
    return f" {label}"

