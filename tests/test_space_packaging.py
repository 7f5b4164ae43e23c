"""space/ as Hugging Face builds it: the front matter and requirements follow the Spaces config reference and
what ZeroGPU accepts (torch 2.8-2.11, Python 3.10 or 3.12, bitsandbytes >= 0.46, the Gradio SDK)."""

from __future__ import annotations

from importlib.metadata import version

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

from conftest import REPO
from finsent.space import embedded

SPACE = REPO / "space"
# the Spaces config reference's hardware flavors (huggingface/hub-docs, docs/hub/spaces-config-reference.md)
HARDWARE = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "l40sx1", "l40sx4", "l40sx8",
            "a10g-small", "a10g-large", "a10g-largex2", "a10g-largex4", "a100-large", "a100x4", "a100x8"}


def front_matter() -> dict:
    return yaml.safe_load((SPACE / "README.md").read_text().split("---\n")[1])


def requirements() -> dict[str, Requirement]:
    lines = [line.split("#")[0].strip() for line in (SPACE / "requirements.txt").read_text().splitlines()]
    return {(req := Requirement(line)).name: req for line in lines if line}


def test_requirements_pin_what_zero_gpu_accepts_and_what_the_tests_ran():
    reqs = requirements()
    [torch_pin] = list(reqs["torch"].specifier)
    assert torch_pin.operator == "==" and Version("2.8") <= Version(torch_pin.version) < Version("2.12")
    bnb = reqs["bitsandbytes"].specifier  # at least 0.46 (and 0.48 for 4-bit on a CPU), the tested one allowed
    assert not bnb.contains("0.45.5") and bnb.contains(version("bitsandbytes"))
    [gradio_pin] = list(reqs["gradio"].specifier)
    assert gradio_pin.operator == "==" and gradio_pin.version == version("gradio")  # the version tested here
    assert "mcp" in reqs["gradio"].extras and not reqs["mcp"].specifier.contains("2.0")


def test_front_matter_follows_the_config_reference():
    front = front_matter()
    assert front["sdk"] == "gradio" and front["app_file"] == "app.py"
    assert str(front["python_version"]) in ("3.10", "3.12")
    [gradio_pin] = list(requirements()["gradio"].specifier)
    assert str(front["sdk_version"]) == gradio_pin.version
    assert front["suggested_hardware"] in HARDWARE
    assert 0 < len(front["short_description"]) <= 60


def test_front_matter_names_what_the_default_space_serves():
    """No variables: the embedded SmolLM2 (its GGUF, at the pinned revision) and the shipped adapter, in space/."""
    front = front_matter()
    assert front["models"] == [embedded.EMBEDDED_MODEL_ID, embedded.GGUF_REPO]
    assert front["preload_from_hub"] == [f"{embedded.GGUF_REPO} {embedded.GGUF_FILE} {embedded.GGUF_REVISION}"]
    assert (SPACE / "default-adapter" / "adapter_config.json").is_file()  # served from the folder, not the Hub
