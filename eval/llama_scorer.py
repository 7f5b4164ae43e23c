"""finsent's label scoring in llama.cpp (llama-cpp-python), from the keys an exported GGUF file carries.

    scorer = LlamaScorer("SmolLM2-135M-Instruct.Q4_1.gguf", lora="adapter.gguf")
    scorer.predict_proba(["Acme Corp's quarterly loss narrowed"])   # (N, 3), as Classifier.predict_proba

It scores as `space/classifier.py` does: each label's summed token log-probability after the
prompt, divided by the temperature, plus the label prior shift, normalised over the labels. The
text is tokenized by llama.cpp's own tokenizer. The instruction's tokens stay in llama.cpp's cache
across headlines, and only the last position's logits are read. The model card's few-line
snippet scores the same way, slower; tests/test_gguf_card.py checks that they agree.
"""

from __future__ import annotations

import numpy as np

from finsent.train.gguf_files import read_scoring


class LlamaScorer:
    def __init__(self, model: str, lora: str | None = None, n_threads: int | None = None, n_ctx: int = 512):
        from llama_cpp import Llama

        self.meta = read_scoring(lora or model)
        if not self.meta:
            raise ValueError(f"{lora or model} has no finsent scoring keys: export it with `finsent export-gguf`")
        self.llm = Llama(model_path=str(model), lora_path=str(lora) if lora else None, n_ctx=n_ctx,
                         n_threads=n_threads, n_threads_batch=n_threads, verbose=False)
        example = self.prompt("Example headline")
        prompt_ids = self.tokenize(example)
        self.label_ids = []
        for label in self.meta["labels"]:
            ids = self.tokenize(example + self.meta["completion_template"].format(label=label))
            if ids[: len(prompt_ids)] != prompt_ids:
                raise ValueError(f"the tokenizer merges the prompt's end with {label!r}; cannot score it")
            self.label_ids.append(ids[len(prompt_ids):])

    def prompt(self, text: str) -> str:
        return self.meta["prompt_template"].format(text=text.strip())

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def _eval_from(self, start: int, ids: list[int]) -> np.ndarray:
        """Run ids[start:] after the cached ids[:start]; the log-probabilities of the token after the last."""
        import llama_cpp

        self.llm.n_tokens = start  # eval() drops the cache past this point first
        self.llm.eval(ids[start:])
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.llm.n_vocab(),))
        logits = logits.astype(np.float64)
        return logits - np.logaddexp.reduce(logits)

    def label_scores(self, text: str) -> np.ndarray:
        """The summed log-probability of each label's tokens after the headline's prompt."""
        ids = self.tokenize(self.prompt(text))
        cached = self.llm.input_ids[: self.llm.n_tokens]
        common = 0
        for a, b in zip(cached, ids[:-1], strict=False):  # keep the shared start; at least one token runs
            if a != b:
                break
            common += 1
        first = self._eval_from(common, ids)
        scores = np.array([first[label[0]] for label in self.label_ids])
        for j, label in enumerate(self.label_ids):  # the rest of a label that is several tokens, token by token
            for k in range(1, len(label)):
                scores[j] += self._eval_from(len(ids) + k - 1, ids + label[:k])[label[k]]
        return scores

    def close(self) -> None:
        """Free llama.cpp's model now (left to the garbage collector, it may outlive the library at exit)."""
        self.llm.close()

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        scores = np.array([self.label_scores(text) for text in texts]).reshape(len(texts), len(self.label_ids))
        scores = scores / self.meta["temperature"] + np.asarray(self.meta["label_log_prior_shift"])
        probs = np.exp(scores - scores.max(axis=1, keepdims=True))
        return probs / probs.sum(axis=1, keepdims=True)
