"""Corrections from the app's users: checked, kept on disk before the app says "saved", and pushed to a Hub dataset.

    store = FeedbackStore("feedback/")
    store.save("session-1", "Kessel Bank set aside EUR 300 million for loan losses", "negative",
               {"negative": 0.2, "neutral": 0.1, "positive": 0.7},
               {"adapter_sha256": "…", "prompt_version": 2})             # True: written; False: a repeat, dropped
    HubPush("feedback/", "user/finsent-corrections")                         # a commit of new rows every 5 minutes
    rows, record = read_corrections("feedback/")                             # what `finsent train --corrections` reads

Each correction is one line of FOLDER/corrections.jsonl, flushed and fsync'd before `save` returns:

    {"text": "…", "label": "negative", "model_label": "positive",
     "probabilities": {"negative": 0.2, "neutral": 0.1, "positive": 0.7},
     "adapter_sha256": "…", "prompt_version": 2, "time": "2026-12-04T11:40:00Z"}

No IP address, user name or session id is written: sessions are known only in memory, for the limits (at most
PER_MINUTE corrections a minute from one session; the same headline with the same label from one session is kept
once). A line cut short by a crash was never acknowledged, so the store drops it when it opens.

The Hub dataset only ever gains files: each push uploads the rows appended since the last one as a new file,
data/<store id>-<byte offset>.jsonl, and records the offset in FOLDER/pushed.json afterwards. A push cut short is
redone under the same name with the same bytes, so nothing is lost or uploaded twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import unicodedata
import uuid
from collections import OrderedDict, deque
from datetime import datetime, timezone
from pathlib import Path

from huggingface_hub import CommitScheduler

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .classifier import LABELS
    from .errors import first_line
except ImportError:
    from classifier import LABELS
    from errors import first_line

logger = logging.getLogger(__name__)

FILE = "corrections.jsonl"
STATE = "pushed.json"  # {"id": this store's id, "pushed": {repo id: bytes of FILE already pushed}}
MAX_CHARS = 2000
PER_MINUTE = 30
MAX_SESSIONS = 10_000  # sessions whose limits are remembered; the oldest are forgotten first
NOTICE = ("**Corrections are on.** When you press *Save*, this app stores the headline, the model's label and "
          "probabilities, the label you chose, the adapter's sha256 and prompt version, and the time (UTC), "
          "{where}. No IP address or user id is kept.")


class FeedbackError(ValueError):
    """A correction refused: the message says why and what to send instead."""


def text_key(text: str) -> str:
    """A text as compared for repeats: Unicode NFKC, whitespace collapsed, casefolded (the split and corrections)."""
    return " ".join(unicodedata.normalize("NFKC", text).split()).casefold()


def check(text, label) -> tuple[str, str]:
    """(the text stripped, the label lower-cased), or FeedbackError naming the problem."""
    if not isinstance(text, str) or not text.strip():
        raise FeedbackError("The headline is empty; send the headline the label is for.")
    if len(text.strip()) > MAX_CHARS:
        raise FeedbackError(f"The headline has {len(text.strip())} characters; corrections take at most {MAX_CHARS}.")
    choice = str(label or "").strip().lower()
    if choice not in LABELS:
        raise FeedbackError(f"label {label!r}: use one of {', '.join(LABELS)}.")
    return text.strip(), choice


class FeedbackStore:
    """Appends checked corrections to FOLDER/corrections.jsonl, one process or several (each line one write)."""

    def __init__(self, folder: str | os.PathLike, clock=time.time):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / FILE
        self.clock = clock
        self._lock = threading.Lock()
        self._sessions: OrderedDict[str, tuple[deque, set]] = OrderedDict()  # session -> (save times, keys saved)
        drop_torn_line(self.path)

    def save(self, session: str, text: str, label: str, probabilities: dict[str, float], model: dict) -> bool:
        """Write one correction to disk (fsync'd) and return True; False for a repeat from this session. `model`:
        {"adapter_sha256", "prompt_version"} of the model that gave `probabilities`. FeedbackError for bad input or
        a session over the rate limit, and then nothing is written."""
        text, label = check(text, label)
        now = self.clock()
        with self._lock:
            times, saved = self._session(session)
            key = (text_key(text), label)
            if key in saved:
                return False
            while times and now - times[0] >= 60:
                times.popleft()
            if len(times) >= PER_MINUTE:
                raise FeedbackError(f"At most {PER_MINUTE} corrections a minute from one session; wait a minute "
                                    "and send the rest.")
            record = {"text": text, "label": label, "model_label": max(probabilities, key=probabilities.get),
                      "probabilities": {name: round(float(p), 6) for name, p in probabilities.items()},
                      "adapter_sha256": model.get("adapter_sha256"), "prompt_version": model.get("prompt_version"),
                      "time": datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
            line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:  # one write of the whole line: appends from several processes do not interleave
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            times.append(now)
            saved.add(key)
            return True

    def _session(self, session: str) -> tuple[deque, set]:
        if session not in self._sessions:
            self._sessions[session] = (deque(), set())
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(session)
        return self._sessions[session]


def drop_torn_line(path: Path) -> None:
    """Cut a last line left without its newline by a crash mid-write (it was never acknowledged as saved)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)
            logger.warning("%s: dropped an incomplete last line (written when the app was stopped mid-save)", path)


def complete_lines(path: Path, start: int) -> bytes:
    """The bytes of FILE from `start` up to its last newline: whole corrections only."""
    if not path.is_file():
        return b""
    with open(path, "rb") as handle:
        handle.seek(start)
        data = handle.read()
    return data[: data.rfind(b"\n") + 1]


class HubPush(CommitScheduler):
    """huggingface_hub's CommitScheduler over a feedback folder: each push uploads only the rows not yet pushed, as a
    new file (module docstring). The first push runs at start, so rows saved before a crash go out then. The
    dataset is created private if missing (its owner can open it on the Hub); the token is huggingface_hub's
    (HF_TOKEN, a Space's secret)."""

    def __init__(self, folder: str | os.PathLike, repo_id: str, every: float = 5, **kwargs):
        kwargs.setdefault("private", True)
        super().__init__(repo_id=repo_id, folder_path=folder, every=every, repo_type="dataset", **kwargs)

    def push_to_hub(self):
        with self.lock:
            state = read_state(self.folder_path)
            start = state["pushed"].get(self.repo_id, 0)
            data = complete_lines(self.folder_path / FILE, start)
            if not data:
                return None
            rows = data.count(b"\n")
            info = self.api.upload_file(
                path_or_fileobj=data, path_in_repo=f"data/{state['id']}-{start:012d}.jsonl",
                repo_id=self.repo_id, repo_type="dataset", revision=self.revision,
                commit_message=f"{rows} correction{'s' * (rows != 1)} from the finsent app")
            state["pushed"][self.repo_id] = start + len(data)
            write_state(self.folder_path, state)
            logger.info("pushed %d correction(s) to the Hub dataset %s", rows, self.repo_id)
            return info


def read_state(folder: Path) -> dict:
    path = Path(folder) / STATE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    state = {"id": uuid.uuid4().hex[:12], "pushed": {}}
    write_state(folder, state)
    return state


def write_state(folder: Path, state: dict) -> None:
    path = Path(folder) / STATE
    tmp = path.with_name(f".{STATE}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)


def read_corrections(source: str) -> tuple[list[tuple[str, str]], dict]:
    """([(label, text)], record) from a corrections file, a folder of them (a Hub dataset's download too), or a Hub
    dataset id. A headline corrected more than once counts once, with its latest label. ValueError names a bad line.

    record: {"source", "rows", "counts": {label: n}, "superseded": n, "sha256"} for the adapter's finsent.json.
    """
    files = _correction_files(source)
    latest: dict[str, tuple[str, str, str]] = {}  # text key -> (time, label, text)
    read = 0
    for file in files:
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, label = check(row["text"], row["label"])
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{file}:{number}: not a correction ({err}); each line must be a JSON object "
                                 f"with a `text` and a `label` ({', '.join(LABELS)})") from None
            read += 1
            key = text_key(text)
            if key not in latest or str(row.get("time", "")) >= latest[key][0]:
                latest[key] = (str(row.get("time", "")), label, text)
    rows = [(label, text) for _, label, text in sorted(latest.values())]
    digest = hashlib.sha256("".join(f"{label}\t{text}\n" for label, text in rows).encode("utf-8")).hexdigest()
    return rows, {"source": source, "rows": len(rows), "counts": {n: sum(lb == n for lb, _ in rows) for n in LABELS},
                  "superseded": read - len(rows), "sha256": digest}


def _correction_files(source: str) -> list[Path]:
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.jsonl") if p.is_file())
        if not files:
            raise ValueError(f"{source}: no *.jsonl corrections in this folder")
        return files
    if source.count("/") == 1 and not source.startswith((".", "/")):
        from huggingface_hub import snapshot_download

        try:
            folder = snapshot_download(source, repo_type="dataset", allow_patterns=["*.jsonl", "**/*.jsonl"])
        except Exception as err:  # not found, no access, no network
            reason = first_line(err)
            raise ValueError(f"{source}: cannot download this Hub dataset ({reason})") from None
        return _correction_files(folder)
    raise ValueError(f"{source}: no such corrections file or folder (nor a Hub dataset id USER/NAME)")
