"""Where training and evaluation put the model, for every machine: decided by small functions, tested here.

A GPU cannot be simulated, so the decisions that differ on one are kept apart from the code that acts on them.
"""

from __future__ import annotations

import pytest

from finsent.space.classifier import QLORA, choose_quantization, describe_precision, quantization_settings
from finsent.train.data import UsageError
from finsent.train.modeling import PlacementError, base_device, optimizer_for
from finsent.train.train import split_global_batch

# (visible GPUs, use_cpu, quantized, processes on this machine, local rank) -> device_map target; None: the Trainer moves it
PLACEMENTS = [
    # no GPU: a quantized model is built on the CPU; a full-precision one is left to the Trainer (CPU)
    (0, False, False, 1, 0, None), (0, False, True, 1, 0, "cpu"), (0, True, False, 1, 0, None),
    (0, True, True, 1, 0, "cpu"),
    (0, False, True, 2, 1, "cpu"), (0, True, True, 2, 1, "cpu"), (0, True, False, 2, 1, None),  # 2 CPU processes
    # use_cpu on a GPU machine: the CPU, whatever the rank (the Trainer feeds CPU tensors)
    (1, True, False, 1, 0, None), (1, True, True, 1, 0, "cpu"), (2, True, True, 2, 1, "cpu"),
    (2, True, False, 2, 0, None),
    # one GPU, one process
    (1, False, False, 1, 0, None), (1, False, True, 1, 0, 0),
    # two GPUs: each process its own, by local rank (on every machine of several alike)
    (2, False, True, 2, 0, 0), (2, False, True, 2, 1, 1), (2, False, False, 2, 1, None), (2, False, True, 1, 0, 0),
]


@pytest.mark.parametrize("cuda, use_cpu, quantized, world, rank, expected", PLACEMENTS)
def test_base_device(cuda, use_cpu, quantized, world, rank, expected):
    assert base_device(cuda_devices=cuda, use_cpu=use_cpu, quantized=quantized, local_processes=world,
                       local_rank=rank) == expected


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("rank", [0, 1])  # every process stops, so none waits for the others forever
def test_more_processes_than_gpus_is_refused_with_the_fix(quantized, rank):
    with pytest.raises(PlacementError, match=r"2 processes .* 1 GPU\(s\) visible.*--num_processes 1.*--use_cpu true"):
        base_device(cuda_devices=1, use_cpu=False, quantized=quantized, local_processes=2, local_rank=rank)


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("rank", [0, 1])
def test_cpu_processes_beyond_the_visible_gpus_are_refused_with_the_fix(quantized, rank):
    # accelerate's barriers take each rank's GPU even under use_cpu: rank 1 of 2 on one GPU crashed (H200 run)
    with pytest.raises(PlacementError, match=r'2 processes .* 1 GPU\(s\) visible.*CUDA_VISIBLE_DEVICES=""'):
        base_device(cuda_devices=1, use_cpu=True, quantized=quantized, local_processes=2, local_rank=rank)


def test_paged_optimizers_run_unpaged_on_the_cpu_only():
    assert optimizer_for("paged_adamw_32bit", on_cpu=True) == "adamw_torch"
    assert optimizer_for("paged_adamw_8bit", on_cpu=True) == "adamw_8bit"
    assert optimizer_for("paged_adamw_32bit", on_cpu=False) == "paged_adamw_32bit"
    assert optimizer_for("adamw_torch", on_cpu=True) == "adamw_torch"


def test_every_stand_in_is_an_optimizer_transformers_knows():
    from transformers.training_args import OptimizerNames

    from finsent.train.modeling import UNPAGED

    known = {o.value for o in OptimizerNames}
    assert set(UNPAGED) <= known and set(UNPAGED.values()) <= known
    assert {name for name in known if name.startswith("paged_")} == set(UNPAGED)


@pytest.mark.parametrize(
    "per_device, accumulation, ways, expected",
    [
        (8, 1, 1, (8, 1)),  # one process: the recipe as written
        (8, 1, 2, (4, 1)),  # two GPUs share the batch of 8
        (8, 1, 8, (1, 1)),
        (4, 2, 2, (4, 1)),  # fewer accumulation steps first: the per-device batch stays
        (2, 4, 2, (2, 2)),
        (8, 2, 4, (4, 1)),
        (6, 2, 4, (3, 1)),  # 12 over 4
    ],
)
def test_the_recipes_batch_stays_the_global_batch(per_device, accumulation, ways, expected):
    size, steps = split_global_batch(per_device, accumulation, ways)
    assert (size, steps) == expected and size * steps * ways == per_device * accumulation


def test_a_batch_that_does_not_split_is_refused_with_the_fix():
    with pytest.raises(UsageError, match="batch of 8 .* does not split over 3 processes.*--batch_per_process true"):
        split_global_batch(8, 1, 3)


@pytest.mark.parametrize(("per_process", "expected"), [(False, (4, 1)), (True, (8, 1))])
def test_batch_per_process_gives_every_process_the_whole_batch(per_process, expected, monkeypatch):
    """Two processes, a recipe batch of 8: shared as 4 + 4 by default; 8 each with --batch_per_process true."""
    from types import SimpleNamespace

    from transformers.training_args import OptimizerNames

    from finsent.train.train import place

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    script = SimpleNamespace(batch_per_process=per_process)
    model = SimpleNamespace(load_in_4bit=False, load_in_8bit=False)
    training = SimpleNamespace(use_cpu=True, world_size=2, n_gpu=0, local_process_index=0,
                               optim=OptimizerNames("adamw_torch"),
                               per_device_train_batch_size=8, gradient_accumulation_steps=1)
    place(script, model, training)
    assert (training.per_device_train_batch_size, training.gradient_accumulation_steps) == expected


def test_quantization_settings_from_a_bitsandbytes_config():
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_compute_dtype="float16")
    assert quantization_settings(config) == {
        "load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False,
        "bnb_4bit_compute_dtype": "float16", "bnb_4bit_quant_storage": "uint8",
    }
    assert quantization_settings(BitsAndBytesConfig(load_in_8bit=True)) == {"load_in_8bit": True}
    assert quantization_settings(None) is None


RECORDED = {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_use_double_quant": False}


@pytest.mark.parametrize(
    "choice, info, cuda, expected",
    [
        ("auto", {"base_quantization": RECORDED}, False, RECORDED),  # a QLoRA run, evaluated on a CPU: still 4-bit
        ("auto", {"base_quantization": RECORDED}, True, RECORDED),
        ("auto", {"base_quantization": None}, True, None),  # trained in full precision: served so on a GPU too
        ("auto", {}, True, QLORA),  # nothing recorded (the base alone, an old adapter): 4-bit on CUDA only
        ("auto", {}, False, None),
        (None, {}, False, None),
        ("true", {"base_quantization": RECORDED}, False, RECORDED),  # forced 4-bit: the run's own 4-bit settings
        ("TRUE", {"base_quantization": None}, False, QLORA),
        (True, {}, False, QLORA),
        ("1", {}, False, QLORA),
        ("false", {"base_quantization": RECORDED}, True, None),  # the override
        (False, {"base_quantization": RECORDED}, True, None),
        (RECORDED, {}, False, RECORDED),  # explicit settings
    ],
)
def test_choose_quantization(choice, info, cuda, expected):
    assert choose_quantization(choice, info, cuda) == expected


def test_an_unknown_4bit_choice_names_the_choices():
    with pytest.raises(ValueError, match="use auto, true or false"):
        choose_quantization("maybe", {}, cuda=False)


def test_describe_precision():
    assert describe_precision(QLORA, "bfloat16") == "4-bit nf4 + double quant, bfloat16 compute"
    assert describe_precision(RECORDED, "float32") == "4-bit fp4, float32 compute"
    assert describe_precision({"load_in_8bit": True}, "float16") == "8-bit"
    assert describe_precision(None, "bfloat16") == "bfloat16"
