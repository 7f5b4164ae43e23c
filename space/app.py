"""A Gradio app that labels financial news headlines: in the browser and through its API.

    python space/app.py                      # http://127.0.0.1:7860: the embedded SmolLM2 + the shipped adapter
    python space/app.py --adapter none       # the base model alone, not fine-tuned
    python space/app.py --base_model microsoft/phi-2 --adapter USER/finsent-phi2

Settings come from flags or environment variables (a Hugging Face Space sets them as
variables): FINSENT_BASE_MODEL, FINSENT_ADAPTER (default: default-adapter/ beside this
file, trained by finsent on the embedded SmolLM2; `none`: no adapter), FINSENT_4BIT (auto: as the adapter trained; true/false),
FINSENT_MAX_BATCH (rows per batch request), FINSENT_CONCURRENCY (requests the model
serves at once; the others wait in the queue), FINSENT_MCP (serve the API as MCP tools at
/gradio_api/mcp/; on by default in a Space), FINSENT_FEEDBACK_DIR (--feedback: users can correct
labels, kept in that folder; off unless set) and FINSENT_FEEDBACK_REPO (USER/NAME: a Hub dataset fed from
that folder, with the Space's HF_TOKEN secret; space/feedback.py). A bad value stops the app at start with one line.

Why a label: the Headline tab's "Explain" checkbox and the MCP tool explain_headline show each word's push
toward the label (space/explain.py: every variant without one word scored in one call with the headline).

Loading: locally and on a dedicated GPU Space, the first request (or page view) loads the
model, once; importing this module loads none. On ZeroGPU (as the `spaces` package's own
config reports it) the model is loaded at import onto `cuda`, as ZeroGPU requires, and each
request borrows a GPU through the module-level `predict_probabilities`, whose arguments
(a service number and the texts) are what ZeroGPU pickles to its GPU worker.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from functools import cached_property
from itertools import count
from pathlib import Path

try:  # first, before any library it quiets is imported: a Space runs this file as a script, with no __init__
    from . import quiet  # noqa: F401
except ImportError:
    import quiet  # noqa: F401

import gradio as gr

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from . import figures
    from .adapter_info import local_weights, weights_sha256
    from .article_tab import build_article_tab
    from .classifier import DEFAULT_ADAPTER, LABELS, PROMPT_VERSION, TEXT_COLUMNS, load_classifier
    from .embedded import EMBEDDED_MODEL_ID
    from .errors import first_line, refusal
    from .explain import Explanation, explain_many
    from .feedback import NOTICE, FeedbackError, FeedbackStore, HubPush, check
    from .signal_tab import SignalTool, build_signal_tab
except ImportError:
    import figures
    from adapter_info import local_weights, weights_sha256
    from article_tab import build_article_tab
    from classifier import DEFAULT_ADAPTER, LABELS, PROMPT_VERSION, TEXT_COLUMNS, load_classifier
    from embedded import EMBEDDED_MODEL_ID
    from errors import first_line, refusal
    from explain import Explanation, explain_many
    from feedback import NOTICE, FeedbackError, FeedbackStore, HubPush, check
    from signal_tab import SignalTool, build_signal_tab

logger = logging.getLogger(__name__)

try:  # ZeroGPU Spaces lend a GPU per call to functions marked with @spaces.GPU; elsewhere it passes calls through
    import spaces

    ON_ZERO_GPU = spaces.config.Config.zero_gpu
except ImportError:
    spaces, ON_ZERO_GPU = None, False

MAX_QUEUED_BATCH = 16  # single-headline requests waiting in the queue, scored together
# The Headline tab explains unasked (its checkbox starts ticked): one call scores the headline and its variants,
# packed, at 1.43x and 1.62x a plain call's p50 on the default model in two runs on a 2-core AMD EPYC
# (eval/bench_app.py (d), 100 calls each; BENCHMARKS.md "Explanations"), within the 2x that makes it cheap enough.
EXPLAIN_BY_DEFAULT = True
TOO_LONG = "The headline was too long; only its beginning was read."
EMPTY = "Type a headline first."
EXAMPLES = [  # written for this app; fictional companies
    "Kestrel Oyj raises its full-year operating profit forecast",
    "Norvale Group to cut 450 jobs as orders slump",
    "Ferrow Bank will publish its interim report on 28 April",
    "Ilvento Paper's quarterly sales fall short of analysts' estimates",
    "Tundra Robotics wins a EUR 40 million order from a Nordic utility",
]


class SettingsError(ValueError):
    """A bad flag or FINSENT_* value: the message names it and the values it takes."""


def _choice(name: str, value, choices: dict[str, str]) -> str:
    key = str(value).strip().lower()
    if key not in choices:
        raise SettingsError(f"{name}={value!r}: use one of {', '.join(sorted(set(choices)))} (any case)")
    return choices[key]


def _count(name: str, value) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise SettingsError(f"{name}={value!r}: give a whole number of 1 or more")
    return number


BOOLEAN = {"true": "true", "1": "true", "yes": "true", "false": "false", "0": "false", "no": "false"}


@dataclass(frozen=True)
class Settings:
    base_model: str | None = None  # None: the adapter's own base, else the embedded SmolLM2
    adapter: str = "default"  # default (the shipped one) | none | a folder or Hub id
    load_in_4bit: str = "auto"  # auto (as the adapter trained; without a record, on CUDA) | true | false
    max_batch: int = 200
    concurrency: int = 1  # one batch at a time: queued /classify calls are batched anyway (BENCHMARKS.md)
    mcp: bool = False  # the API as MCP tools too (on by default in a Space: from_env)
    feedback_dir: str | None = None  # corrections are on, kept in this folder (space/feedback.py); None: off
    feedback_repo: str | None = None  # and pushed to this Hub dataset

    @classmethod
    def from_env(cls, **overrides) -> Settings:
        """Flags (overrides) win over FINSENT_* variables; every value is checked here, at start."""
        env = os.environ
        raw = {  # setting -> (name to report, value)
            "load_in_4bit": ("FINSENT_4BIT", env.get("FINSENT_4BIT", cls.load_in_4bit)),
            "max_batch": ("FINSENT_MAX_BATCH", env.get("FINSENT_MAX_BATCH", cls.max_batch)),
            "concurrency": ("FINSENT_CONCURRENCY", env.get("FINSENT_CONCURRENCY", cls.concurrency)),
            "mcp": ("FINSENT_MCP", env.get("FINSENT_MCP", "true" if env.get("SPACE_ID") else "false")),
        }
        for key, value in overrides.items():
            if value is not None and key in raw:
                raw[key] = (f"--{key}", value)
        repo = overrides.get("feedback_repo") or env.get("FINSENT_FEEDBACK_REPO") or None
        folder = overrides.get("feedback") or env.get("FINSENT_FEEDBACK_DIR") or ("feedback" if repo else None)
        return cls(
            base_model=overrides.get("base_model") or env.get("FINSENT_BASE_MODEL") or None,
            adapter=overrides.get("adapter") or env.get("FINSENT_ADAPTER") or cls.adapter,
            load_in_4bit=_choice(*raw["load_in_4bit"], {**BOOLEAN, "auto": "auto"}),
            max_batch=_count(*raw["max_batch"]),
            concurrency=_count(*raw["concurrency"]),
            mcp=_choice(*raw["mcp"], BOOLEAN) == "true",
            feedback_dir=_folder("FINSENT_FEEDBACK_DIR (--feedback)", folder) if folder else None,
            feedback_repo=_repo_id("FINSENT_FEEDBACK_REPO", repo) if repo else None,
        )


def _folder(name: str, value: str) -> str:
    """A folder the app can write to, made if missing."""
    try:
        Path(value).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SettingsError(f"{name}={value!r}: cannot make this folder ({err.strerror}); give a writable folder") from None
    if not os.access(value, os.W_OK):
        raise SettingsError(f"{name}={value!r}: this folder is not writable; give a writable folder")
    return value


def _repo_id(name: str, value: str) -> str:
    parts = value.strip().split("/")
    if len(parts) != 2 or not all(parts):
        raise SettingsError(f"{name}={value!r}: give a Hub dataset id, USER/NAME")
    return value.strip()


# by number: what the GPU function receives instead of the service (its lock and model do not pickle)
_services: weakref.WeakValueDictionary[int, Service] = weakref.WeakValueDictionary()


def gpu_seconds(service_id: int, texts: list[str], batch_size: int = 32, packed: bool = False) -> int:
    """ZeroGPU's time allowance for one call, sized to the batch: 39 headlines/s for 4-bit Phi-2 on an H200
    (BENCHMARKS.md), so a few seconds for a full batch; the rest is start-up margin."""
    return min(120, 20 + len(texts) // 10)


def predict_probabilities(service_id: int, texts: list[str], batch_size: int = 32, packed: bool = False):
    """P(label) for each text, as an (N, 3) array: the GPU work, module-level so ZeroGPU can run it. `packed`: the
    texts share beginnings (an explanation's variants), see Classifier.predict_proba."""
    return _services[service_id].classifier.predict_proba(texts, batch_size=batch_size, packed=packed)


if spaces is not None:
    predict_probabilities = spaces.GPU(duration=gpu_seconds)(predict_probabilities)
_service_ids = count()


class Service:
    """The model behind the app: loaded once, on first use, by whichever request comes first."""

    def __init__(self, settings: Settings, device: str | None = None):
        self.settings = settings
        self.device = device  # None: CUDA if there is one, else the CPU
        self._classifier = None
        self._lock = threading.Lock()
        self.id = next(_service_ids)
        _services[self.id] = self
        self._csv_dir = tempfile.TemporaryDirectory(prefix="finsent-")  # removed with the service or at exit
        self.hub_push = None  # the Hub dataset's CommitScheduler, once corrections start (feedback)

    @cached_property
    def adapter(self) -> str | None:
        """The adapter folder or Hub id to load, or None for the base alone."""
        choice = self.settings.adapter
        if choice.lower() == "none":
            return None
        if choice == "default":
            return str(DEFAULT_ADAPTER) if (DEFAULT_ADAPTER / "adapter_config.json").is_file() else None
        return choice

    @cached_property  # an adapter's config may be on the Hub: read it once
    def base_model(self) -> str:
        if self.settings.base_model:
            return self.settings.base_model
        if self.adapter:  # the base the adapter was trained on
            from peft import PeftConfig

            return PeftConfig.from_pretrained(self.adapter).base_model_name_or_path
        return EMBEDDED_MODEL_ID

    @property
    def classifier(self):
        with self._lock:
            if self._classifier is None:
                from transformers.utils import logging as transformers_logging

                transformers_logging.disable_progress_bar()  # a server's log: no "Loading weights" bar
                self._classifier = load_classifier(self.base_model, self.adapter, device=self.device,
                                                   load_in_4bit=self.settings.load_in_4bit)
            return self._classifier

    def load(self) -> Service:
        """Load the model now, not on the first request."""
        self.classifier  # noqa: B018 - the property loads it
        return self

    def status(self) -> str:
        self.classifier  # noqa: B018 - loads the model if no request has yet
        return f"Ready: {self.describe()}."

    def describe(self) -> str:
        model = f"`{self.base_model}`"
        if self.adapter and self.settings.adapter == "default":
            return f"{model} + finsent's default adapter (`{DEFAULT_ADAPTER.name}/`, fine-tuned on the Financial PhraseBank)"
        if self.adapter:
            return f"{model} + adapter `{self.adapter}`"
        if self.settings.adapter == "default":  # the shipped adapter was removed from this copy
            return f"{model} alone: **not fine-tuned** ({DEFAULT_ADAPTER.name}/ is missing), so expect weak answers"
        return f"{model} alone: **not fine-tuned** (--adapter none), so expect weak answers"

    def fit(self, text: str) -> tuple[str, bool]:
        """The headline cut to what the model can take after the prompt; whether it was cut."""
        return self.classifier.fit(text)

    def predict(self, texts: list[str], batch_size: int = 32, packed: bool = False):
        return predict_probabilities(self.id, texts, batch_size, packed)

    def classify(self, text: str):
        """One headline -> ({label: probability}, notice)."""
        labels, notices = self.classify_many([text])
        return labels[0], notices[0]

    def classify_many(self, texts: list[str]):
        """Headlines -> ([{label: probability} or None], [notice]): what /classify runs, batched.

        Gradio gathers the single-headline requests waiting in the queue into one call (up to
        MAX_QUEUED_BATCH), so 20 clients at once cost one forward pass, not 20 one after another.
        """
        fitted = {i: self.fit(t.strip()) for i, t in enumerate(texts) if t and t.strip()}
        probs = dict(zip(fitted, self.predict([t for t, _ in fitted.values()]), strict=True)) if fitted else {}
        labels, notices = [], []
        for i in range(len(texts)):
            if i not in fitted:
                labels.append(None)
                notices.append(EMPTY)
                continue
            labels.append({label: float(p) for label, p in zip(LABELS, probs[i], strict=True)})
            notices.append(TOO_LONG if fitted[i][1] else "")
        return labels, notices

    def explain(self, text: str) -> tuple[Explanation | None, str]:
        """One headline -> (why its label: space/explain.py, or None; notice)."""
        explained, notices = self.explain_many([text])
        return explained[0], notices[0]

    def explain_many(self, texts: list[str]) -> tuple[list[Explanation | None], list[str]]:
        """Headlines -> ([why each label, or None], [notice]). Every headline and each of its variants without one
        word go to the model in one call, packed (Classifier.predict_proba); character offsets are into the text
        as given."""
        fitted = {i: self.fit(t) for i, t in enumerate(texts) if t and t.strip()}
        explained = dict(zip(fitted, explain_many([t for t, _ in fitted.values()],
                                                  lambda rows: self.predict(rows, packed=True),
                                                  [cut for _, cut in fitted.values()]), strict=True)) if fitted else {}
        return ([explained.get(i) for i in range(len(texts))],
                [(TOO_LONG if fitted[i][1] else "") if i in fitted else EMPTY for i in range(len(texts))])

    @cached_property
    def feedback(self) -> FeedbackStore | None:
        """Where corrections go (space/feedback.py), or None when the owner has not turned them on. With a Hub
        dataset, its first push runs now (rows left from before a restart go out at once)."""
        if not self.settings.feedback_dir:
            return None
        store = FeedbackStore(self.settings.feedback_dir)
        if self.settings.feedback_repo:
            self.hub_push = HubPush(self.settings.feedback_dir, self.settings.feedback_repo)
        return store

    def feedback_notice(self) -> str:
        where = f"in `{self.settings.feedback_dir}/` on this app's server"
        if self.settings.feedback_repo:
            where += f" and in the Hub dataset `{self.settings.feedback_repo}`"
        return NOTICE.format(where=where)

    def correct(self, session: str, text: str, label: str) -> tuple[bool, str, dict[str, float]]:
        """Keep `label` as the right one for `text`, beside the model's own answer, scored here, not taken from the
        caller -> (saved; False for a repeat from this session, the label, the model's probabilities).
        FeedbackError for bad input, a session over the limit, or corrections turned off."""
        if self.feedback is None:
            raise FeedbackError("Corrections are off in this app; its owner turns them on with --feedback DIR.")
        text, label = check(text, label)  # refused before the model runs
        probabilities, _ = self.classify(text)
        return self.feedback.save(session, text, label, probabilities, self.model_record), label, probabilities

    @cached_property  # after the model loaded: a Hub adapter is then in the local cache
    def model_record(self) -> dict:
        """What a correction records of the model that answered: its adapter's weights sha256 (null: the base alone)
        and prompt version."""
        folder = local_weights(self.adapter) if self.adapter else None
        return {"adapter_sha256": weights_sha256(folder) if folder else None, "prompt_version": PROMPT_VERSION}

    def classify_batch(self, lines: str, upload: str | None):
        """Many headlines (one per line, or a CSV) -> (table rows, label chart, CSV file, notice)."""
        try:
            texts = read_upload(upload) if upload else [line.strip() for line in (lines or "").splitlines()]
        except ValueError as err:
            return [], None, None, str(err)
        texts = [t for t in texts if t.strip()]
        if not texts:
            return [], None, None, "Paste headlines, one per line, or upload a CSV with a `text` column."
        notices = []
        if len(texts) > self.settings.max_batch:
            notices.append(f"Only the first {self.settings.max_batch} of {len(texts)} headlines were classified "
                           "(the batch limit).")
            texts = texts[: self.settings.max_batch]
        fitted = [self.fit(t) for t in texts]
        if any(cut for _, cut in fitted):
            notices.append(f"{sum(cut for _, cut in fitted)} headline(s) were too long; only their beginning was read.")
        probs = self.predict([t for t, _ in fitted])
        rows = [[text, LABELS[int(p.argmax())], *(round(float(x), 4) for x in p)]
                for text, p in zip(texts, probs, strict=True)]
        return rows, label_chart(rows), write_csv(rows, self._csv_dir.name), " ".join(notices)

    def about(self):
        """Markdown about the model, and the confusion matrix when the adapter carries eval_results.json."""
        lines = [f"**Model:** {self.describe()}.", "",
                 "**Labels:** " + ", ".join(LABELS) + ". Each label's probability is that of its whole token "
                 "sequence after the prompt, normalised over the three labels."]
        results = self.results
        if not results:
            return "\n".join(lines + ["", "No evaluation results travel with this model."]), None
        run = results["runs"].get("fine_tuned") or results["runs"]["base"]
        metrics = run["metrics"]
        interval = (run.get("intervals") or {}).get("accuracy")
        spread = f" (95 % interval {interval[0]:.1%}–{interval[1]:.1%})" if interval else ""
        lines += ["", f"**Test accuracy:** {metrics['accuracy']:.1%}{spread} on {results['rows']} headlines "
                      f"(macro F1 {metrics['macro']['f1']:.3f})" + _before(results) + "."]
        table = figures.behaviour_table(results, {"base": "Base model alone", "fine_tuned": "This model"})
        if table:
            lines += ["", "**Behavioural tests:** how often it fails cases a finance reader would not forgive "
                      "(a narrowed loss read as bad news, say), or changes its answer when only the company, the "
                      "currency, a number or the word order changes.", "", table]
        wrong = figures.wrong_answers(run)
        if wrong:
            lines += ["", "**Where it goes wrong, and why:** wrong answers of those tests (fictional headlines) and "
                      "the words that pushed it most toward them (tick \"Explain\" in the Headline tab for yours):", ""]
            lines += [f"- \"{w['text']}\": **{w['predicted']}** ({w['probability']:.2f}), expected {w['expected']}; "
                      f"driven by {w['words']}" for w in wrong]
        return "\n".join(lines), figures.confusion_heatmap(metrics, "Confusion matrix on the test split")

    @cached_property  # read once per service (one adapter), not once per page view
    def results(self) -> dict | None:
        return self.eval_results()

    def eval_results(self) -> dict | None:
        adapter = self.adapter
        if not adapter:
            return None
        path = Path(adapter) / "eval_results.json"
        if not path.is_file():
            try:
                from huggingface_hub import hf_hub_download

                path = Path(hf_hub_download(adapter, "eval_results.json"))
            except Exception as err:  # offline, no such file: the About tab says so, and the log says why
                reason = first_line(err)
                logger.warning("About tab: no eval_results.json for %s (%s)", adapter, reason)
                return None
        return json.loads(path.read_text())


class Tools:
    """What the app answers, all of it through the one Service.

    The browser's events, /classify and /classify_batch, answer with what their components show (gradio_client
    calls them too). The MCP tools, classify_headline, classify_headlines and explain_headline, answer with data:
    JSON, and bad input is a tool error. An MCP client sees each tool's name and docstring, so those speak to the caller.
    """

    def __init__(self, service: Service):
        self.service = service

    def classify(self, headline: list[str]):  # no return annotation: Gradio 6.31 then costs ~40 ms a call
        """One headline -> each label's probability, and a notice (empty, or why it was cut or refused).

        A batched event: the queue hands it several callers' headlines at once, as lists.
        """
        return self.service.classify_many(headline)

    def classify_batch(self, lines: str, upload: str | None = None):
        """Headlines, one per line or a CSV's `text` column -> table, chart of the labels, CSV file, notice."""
        return self.service.classify_batch(lines, upload)

    def headline(self, headlines: list[str], explains: list[bool]):
        """The Headline tab: label and notice, and with its checkbox ticked the explanation, whose scoring (the
        headline and each variant) also gives the label shown. Batched like /classify: the plain requests waiting
        in the queue are scored together, and so are the explained ones, packed in one call."""
        labels, notices = [None] * len(headlines), [""] * len(headlines)
        whys = [hidden_explanation() for _ in headlines]
        plain = [i for i, explained in enumerate(explains) if not explained]
        if plain:
            for i, probabilities, notice in zip(plain, *self.service.classify_many([headlines[i] for i in plain]),
                                                strict=True):
                labels[i], notices[i] = probabilities, notice
        asked = [i for i, explained in enumerate(explains) if explained]
        if asked:
            for i, explained, notice in zip(asked, *self.service.explain_many([headlines[i] for i in asked]),
                                            strict=True):
                notices[i] = notice
                if explained is not None:
                    labels[i] = explained.probabilities
                    whys[i] = (gr.HighlightedText(value=highlighted(explained), visible=True),
                               gr.Markdown(value=legend(explained), visible=True))
        return labels, notices, [why for why, _ in whys], [line for _, line in whys]

    # The MCP tools. Gradio makes the docstring the tool's description, joining the Returns lines with ", ":
    # one clause a line. The return annotation is what gr.api sends back: without it, nothing.
    def classify_headline(self, headline: str) -> str:
        """Label the sentiment of one financial news headline: negative, neutral or positive.

        Args:
            headline: one financial news headline in English, e.g. "Kestrel Oyj raises its full-year profit forecast".

        Returns:
            JSON: {"label": "positive", "probabilities": {"negative": 0.05, "neutral": 0.15, "positive": 0.8}}
            the probabilities sum to 1
            "notice" is added only when the headline was too long and only its beginning was read
            a tool error with a one-line message for an empty headline
        """
        probabilities, notice = self.service.classify(headline)
        if probabilities is None:
            raise refusal(notice)
        return json.dumps(answer(probabilities, notice))

    def classify_headlines(self, headlines: list[str]) -> str:
        """Label the sentiment of many financial news headlines at once: negative, neutral or positive.

        Args:
            headlines: financial news headlines in English, one per item.

        Returns:
            a JSON list in the order given, one object per headline
            each {"text": the headline as sent, "label": "negative", "probabilities": {"negative": 0.7, ...}}
            plus "notice" only when that headline was too long and only its beginning was read
            a tool error with a one-line message for no headlines, an empty one, or more than the app's batch limit
        """
        limit = self.service.settings.max_batch
        if not headlines:
            raise refusal("Give at least one headline.")
        if len(headlines) > limit:  # refused, not cut: an agent would not notice rows missing from a list
            raise refusal(f"At most {limit} headlines a call; got {len(headlines)}. Send them in smaller batches.")
        empty = next((i for i, text in enumerate(headlines) if not (text and text.strip())), None)
        if empty is not None:
            raise refusal(f"Headline {empty + 1} of {len(headlines)} is empty; send only headlines with text.")
        labels, notices = self.service.classify_many(headlines)
        return json.dumps([{"text": text, **answer(probabilities, notice)}
                           for text, probabilities, notice in zip(headlines, labels, notices, strict=True)])


    def explain_headline(self, headline: str) -> str:
        """Say which words of a financial news headline drove its sentiment label, and how much.

        Args:
            headline: one financial news headline in English, e.g. "Kestrel Oyj raises its full-year profit forecast".

        Returns:
            JSON: {"label": "positive", "probabilities": {"negative": 0.05, "neutral": 0.15, "positive": 0.8}, "words": [{"word": "raises", "start": 12, "end": 18, "weight": 0.41}]}
            a word's weight is how much the label's probability falls when that word is left out: above 0 it pushed toward the label, below 0 away from it
            start and end are character offsets into the headline as sent; a number keeps its currency and units as one word
            "notice" is added only when the headline was too long and only its beginning was read
            a tool error with a one-line message for an empty headline
        """
        explained, notice = self.service.explain(headline)
        if explained is None:
            raise refusal(notice)
        data = explained.as_dict()
        return json.dumps({**data, "notice": notice} if notice else data)

    def save_correction(self, headline: str, label: str | None, request: gr.Request) -> str:
        """The Save button under an answer (Headline tab, or the row picked in the Batch tab) -> what happened."""
        if not label:
            return "Pick the right label first (or keep the model's, to confirm it)."
        try:
            saved, label, _ = self.service.correct(session_of(request), headline, label)
        except FeedbackError as err:
            return str(err)
        return f"Saved: **{label}**. Thank you." if saved else "Already saved."

    def correct_headline(self, headline: str, label: str, request: gr.Request) -> str:
        """Record the right sentiment label for a financial news headline, so the model can be retrained on it.

        Args:
            headline: the headline, e.g. "Kessel Bank set aside another EUR 300 million for loan losses".
            label: the right label: negative, neutral or positive (the model's own label confirms it).

        Returns:
            JSON: {"saved": true, "label": "negative", "model_label": "positive", "probabilities": {"negative": 0.2, "neutral": 0.1, "positive": 0.7}}
            the model's label and probabilities are its answer now, stored with the correction
            "saved" is false when this session already sent this headline with this label: a repeat is kept once
            a tool error with a one-line message for an empty or over-long headline, an unknown label, or over 30 corrections a minute
        """
        try:
            saved, label, probabilities = self.service.correct(session_of(request), headline, label)
        except FeedbackError as err:
            raise refusal(str(err)) from None
        return json.dumps({"saved": saved, "label": label, "model_label": max(probabilities, key=probabilities.get),
                           "probabilities": probabilities})


def session_of(request: gr.Request | None) -> str:
    """Whom the correction limits count against: the MCP client's session, else Gradio's session (a browser tab, a
    gradio_client Client). Kept in memory only, never written."""
    if request is None:
        return "anonymous"
    headers = getattr(request, "headers", None) or {}
    return headers.get("mcp-session-id") or getattr(request, "session_hash", None) or "anonymous"


def pick_row(event: gr.SelectData):
    """A click on a Batch result row -> that row's headline, and its label to confirm or change."""
    row = event.row_value or []
    return (row[0], row[1]) if len(row) > 1 else ("", None)


def top_label(probabilities: dict | None):
    """The Headline tab's answer -> its label, preset as the one to save (confirm it, or pick another)."""
    return max(probabilities, key=probabilities.get) if isinstance(probabilities, dict) and probabilities else None


def hidden_explanation():
    return gr.HighlightedText(value=None, visible=False), gr.Markdown(value="", visible=False)


def highlighted(explained: Explanation) -> list[tuple[str, float | None]]:
    """The headline for gr.HighlightedText: each word's weight scaled so the strongest push is full colour."""
    pieces = explained.highlighted()
    strongest = max((abs(w) for _, w in pieces if w is not None), default=0.0) or 1.0
    return [(piece, None if w is None else round(w / strongest, 3)) for piece, w in pieces]


def legend(explained: Explanation) -> str:
    """One line that says how to read the colours, and the strongest word."""
    top = explained.top(1)
    strongest = f" Strongest: **{top[0].text}** ({explained.weight(top[0]):+.2f})." if top else ""
    return (f"Red words pushed toward **{explained.label}**, purple ones away from it; the deeper the colour, the "
            f"bigger the push (how much P({explained.label}) falls when the word is left out).{strongest}")


def answer(probabilities: dict[str, float], notice: str) -> dict:
    """One headline as data: its label, each label's probability, and a notice only where there is one."""
    data = {"label": max(probabilities, key=probabilities.get), "probabilities": probabilities}
    return {**data, "notice": notice} if notice else data


def _about(service: Service):
    text, figure = service.about()
    return text, gr.Plot(value=figure, visible=figure is not None)  # no empty box without results


def _before(results: dict) -> str:
    base = results["runs"].get("base")
    if base and "fine_tuned" in results["runs"]:
        return f"; {base['metrics']['accuracy']:.1%} before fine-tuning"
    return ""


def read_upload(path: str) -> list[str]:
    """Headlines from an uploaded CSV: its `text` (or headline/sentence) column, or its only column."""
    raw = Path(path).read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text; save it as a UTF-8 CSV and upload it again.") from None
    if "\x00" in content:
        raise ValueError("The file is not text (it holds NUL bytes); upload a CSV.")
    rows = [row for row in csv.reader(io.StringIO(content)) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip().lower() for cell in rows[0]]
    column = next((header.index(name) for name in TEXT_COLUMNS if name in header), None)
    if column is not None:
        return [row[column] for row in rows[1:] if len(row) > column]
    if max(len(row) for row in rows) == 1:
        return [row[0] for row in rows]
    raise ValueError(f"The CSV has columns {rows[0][:5]}; name the headline column `text` (or upload one column).")


def label_chart(rows):
    import plotly.graph_objects as go

    counts = [sum(row[1] == label for row in rows) for label in LABELS]
    fig = go.Figure(go.Bar(x=list(LABELS), y=counts, text=counts, textposition="outside"))
    fig.update_layout(title="Labels in this batch", yaxis_title="Headlines")
    return fig


CSV_MAX_AGE_S = 600  # a results CSV is kept this long for its download (Gradio serves its own copy)


def write_csv(rows, folder: str) -> str:
    """The results as a CSV in `folder`; files older than CSV_MAX_AGE_S there are removed first."""
    for old in Path(folder).glob("*.csv"):
        if time.time() - old.stat().st_mtime > CSV_MAX_AGE_S:
            old.unlink(missing_ok=True)
    handle = tempfile.NamedTemporaryFile("w", suffix=".csv", prefix="results-", dir=folder, delete=False,
                                         newline="", encoding="utf-8")
    with handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", *LABELS])
        writer.writerows(rows)
    return handle.name


def build_app(settings: Settings, service: Service | None = None) -> gr.Blocks:
    service = service or Service(settings)
    tools = Tools(service)
    feedback = bool(settings.feedback_dir)
    with gr.Blocks(title="finsent: financial headline sentiment") as app:
        gr.Markdown("# Financial headline sentiment\nNegative, neutral or positive, with probabilities.")
        status = gr.Markdown("Loading the model… (the first answer waits for it)")
        with gr.Tab("Headline"):
            text = gr.Textbox(label="Headline", placeholder=EXAMPLES[0], lines=2)
            button = gr.Button("Classify", variant="primary")
            show_why = gr.Checkbox(label="Explain: which words drove the label", value=EXPLAIN_BY_DEFAULT)
            label = gr.Label(label="Sentiment", num_top_classes=len(LABELS))
            notice = gr.Markdown()
            why = gr.HighlightedText(label="Why this label", visible=False, show_legend=False,
                                     show_inline_category=False, elem_id="why")
            why_legend = gr.Markdown(visible=False, elem_id="why-legend")
            if feedback:
                right, save, saved = correction_controls(service, "headline")
                label.change(top_label, inputs=label, outputs=right, api_visibility="private")
                save.click(tools.save_correction, inputs=[text, right], outputs=saved, api_visibility="private")
            gr.Examples(EXAMPLES, inputs=text)
            batched = {"batch": True, "max_batch_size": MAX_QUEUED_BATCH}
            shown = {"fn": tools.headline, "inputs": [text, show_why], "outputs": [label, notice, why, why_legend],
                     "api_visibility": "private", **batched}
            button.click(**shown)
            text.submit(**shown)
            # /classify for gradio_client and plain HTTP ("undocumented": neither on the API page nor an MCP tool),
            # as before the explanation: the headline in, label and notice out; its button is never shown
            api_only = gr.Button(visible=False)
            api_only.click(tools.classify, inputs=text, outputs=[label, notice], api_name="classify",
                           api_visibility="undocumented", **batched)
        with gr.Tab("Batch"):
            lines = gr.Textbox(label="Headlines, one per line", lines=8)
            upload = gr.File(label="…or a CSV with a `text` column", file_types=[".csv", ".txt"], type="filepath")
            run = gr.Button("Classify all", variant="primary")
            batch_notice = gr.Markdown()
            table = gr.Dataframe(headers=["text", "label", *LABELS], label="Results", wrap=True)
            chart = gr.Plot(label="Label distribution")
            download = gr.File(label="Download the results (CSV)")
            run.click(tools.classify_batch, inputs=[lines, upload], outputs=[table, chart, download, batch_notice],
                      api_name="classify_batch", api_visibility="undocumented")
            if feedback:
                picked = gr.Textbox(label="Click a row of the results to correct or confirm its label",
                                    interactive=False, elem_id="batch-picked")
                batch_right, batch_save, batch_saved = correction_controls(service, "batch")
                table.select(pick_row, outputs=[picked, batch_right], api_visibility="private")
                batch_save.click(tools.save_correction, inputs=[picked, batch_right], outputs=batch_saved,
                                 api_visibility="private")
        build_article_tab(service)  # space/article_tab.py: a text scored by sentence
        build_signal_tab(service, service._csv_dir.name)  # space/signal_tab.py: a feed -> sentiment per ticker and period
        with gr.Tab("About the model"):
            about_text = gr.Markdown()
            about_plot = gr.Plot(label="Confusion matrix")
        # The MCP tools: Gradio's MCP server lists the documented endpoints, named after their functions
        # (gradio/mcp.py get_tool_to_endpoint), so these four are the whole list; the events above are undocumented.
        gr.api(tools.classify_headline, api_name="classify_headline")
        gr.api(tools.classify_headlines, api_name="classify_headlines")
        gr.api(tools.explain_headline, api_name="explain_headline")
        gr.api(SignalTool(service).sentiment_signal, api_name="sentiment_signal")
        if feedback:  # one more tool only where the owner turned corrections on
            gr.api(tools.correct_headline, api_name="correct_headline")
        app.load(service.status, outputs=status, api_visibility="private")
        app.load(lambda: _about(service), outputs=[about_text, about_plot], api_visibility="private")
    app.queue(default_concurrency_limit=settings.concurrency, max_size=64)
    return app


def correction_controls(service: Service, where: str):
    """What the Headline tab and the Batch tab show under an answer when corrections are on: the notice of what is
    stored, the right label (preset to the model's), Save, and what happened."""
    with gr.Group():
        gr.Markdown(service.feedback_notice(), elem_id=f"{where}-feedback-notice")
        right = gr.Radio(list(LABELS), label="The right label (keep the model's to confirm it)",
                         elem_id=f"{where}-right")
        save = gr.Button("Save", elem_id=f"{where}-save")
        saved = gr.Markdown(elem_id=f"{where}-saved")
    return right, save, saved


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base_model", help=f"base model id or folder (default: {EMBEDDED_MODEL_ID})")
    parser.add_argument("--adapter", help=f"LoRA adapter folder or Hub id; `none` for the base alone (default: "
                        f"the shipped {DEFAULT_ADAPTER.name}/)")
    parser.add_argument("--load_in_4bit", help="auto (default: as the adapter's run trained it; without that "
                        "record, on CUDA only), true or false")
    parser.add_argument("--max_batch", help="rows per batch request (default 200)")
    parser.add_argument("--concurrency", help="requests served at once (default 1; /classify batches the queue)")
    parser.add_argument("--mcp", help="true: serve the API as MCP tools at /gradio_api/mcp/ too "
                        "(default: true in a Space, else false)")
    parser.add_argument("--feedback", metavar="DIR", help="let users correct labels: keep them in DIR "
                        "(default: off; FINSENT_FEEDBACK_DIR)")
    parser.add_argument("--feedback_repo", metavar="USER/NAME", help="also push the corrections to this Hub dataset, "
                        "made private if missing (FINSENT_FEEDBACK_REPO; token: HF_TOKEN)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))  # a Space sets 0.0.0.0
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)))
    return parser


def settings_or_exit(**overrides) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as err:  # the deployer's to fix: one line, no traceback
        raise SystemExit(f"error: {err}") from None


def start_feedback(service: Service) -> None:
    """Open the corrections' folder and start the Hub dataset's pushes now: a wrong repo or token stops the app at
    start with one line, not at a user's first correction."""
    try:
        service.feedback  # noqa: B018 - the property opens them
    except Exception as err:  # the Hub said no (token, rights, name), or the folder is not usable
        reason = first_line(err)
        raise SystemExit(f"error: corrections cannot start ({reason}); check FINSENT_FEEDBACK_DIR, "
                         "FINSENT_FEEDBACK_REPO and the HF_TOKEN secret") from None


# ZeroGPU: the model goes to `cuda` at import, as its documentation requires; requests then borrow a GPU.
SPACE_SERVICE = Service(settings_or_exit(), device="cuda").load() if ON_ZERO_GPU else None


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv)
    settings = settings_or_exit(base_model=args.base_model, adapter=args.adapter, load_in_4bit=args.load_in_4bit,
                                max_batch=args.max_batch, concurrency=args.concurrency, mcp=args.mcp,
                                feedback=args.feedback, feedback_repo=args.feedback_repo)
    service = SPACE_SERVICE if SPACE_SERVICE and SPACE_SERVICE.settings == settings else Service(settings)
    start_feedback(service)
    mcp = f", MCP tools at http://{args.host}:{args.port}/gradio_api/mcp/" if settings.mcp else ""
    print(f"finsent: serving {service.describe()} at http://{args.host}:{args.port}{mcp}", flush=True)
    build_app(settings, service).launch(server_name=args.host, server_port=args.port, mcp_server=settings.mcp)


if __name__ == "__main__":
    main()
