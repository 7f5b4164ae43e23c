"""The app's Article tab: paste a text, and each sentence is highlighted by its label, with the text's score.

The text is split as `finsent classify --by_sentence` splits it (article.py: pysbd, an over-long sentence cut
into pieces that the model takes whole), its distinct sentences are scored in one call through the app's
Service, and the summary is classify's: the sentences' mean probabilities and label, the mean score
P(positive) - P(negative), the count of each label, the most negative and the most positive sentence.
"""

from __future__ import annotations

import gradio as gr

try:  # inside the project: finsent.space; deployed alone as a Space: top-level modules
    from .article import COUNTS, scores, split, summarize
    from .classifier import LABELS
except ImportError:
    from article import COUNTS, scores, split, summarize
    from classifier import LABELS

# What one request may hold: about 1,500 words, some 60 to 80 sentences, scored in one call. Longer texts and files
# of them: `finsent classify --by_sentence`.
MAX_ARTICLE_CHARS = 10_000
COLORS = {"negative": "#e4572e", "neutral": "#b0b0b0", "positive": "#29a35a"}
HEADERS = ["#", "sentence", "label", *LABELS, "score"]
EXAMPLE_ARTICLE = (  # written for this app; fictional companies
    "Kestrel Oyj reported its third-quarter results on Tuesday. Net sales rose 18 % to EUR 412 million, and the "
    "company raised its full-year operating profit forecast.\n\n"
    "The Paper division, however, swung to an operating loss of EUR 9 million as orders slumped, and Kestrel will "
    "cut 300 jobs at its Tampere mill. The company will publish its interim report for January-September on "
    "28 October."
)


def score_article(service, text: str | None):
    """A text -> (its sentences for gr.HighlightedText, the summary as Markdown, a row a sentence).

    gr.Error for an empty text or one over MAX_ARTICLE_CHARS."""
    text = text or ""
    if not text.strip():
        raise gr.Error("Paste an article first.", print_exception=False)
    if len(text) > MAX_ARTICLE_CHARS:
        raise gr.Error(f"At most {MAX_ARTICLE_CHARS:,} characters an article; this one has {len(text):,}. Paste a "
                       "shorter text, or score long texts with `finsent classify --by_sentence`.",
                       print_exception=False)
    sentences = split(text, lambda piece: not service.fit(piece)[1])
    distinct = list(dict.fromkeys(sentence.text for sentence in sentences))
    at = {sentence: i for i, sentence in enumerate(distinct)}
    probs = service.predict(distinct)[[at[sentence.text] for sentence in sentences]]  # every sentence in one call
    labels = [LABELS[int(p.argmax())] for p in probs]
    pieces, cursor = [], 0
    for sentence, label in zip(sentences, labels, strict=True):
        if sentence.start > cursor:
            pieces.append((text[cursor:sentence.start], None))  # the spaces between sentences, unlabelled
        pieces.append((sentence.text, label))
        cursor = sentence.end
    if cursor < len(text):
        pieces.append((text[cursor:], None))
    rows = [[i + 1, sentence.text, label, *(round(float(p), 4) for p in row), round(float(score), 4)]
            for i, (sentence, label, row, score) in enumerate(zip(sentences, labels, probs, scores(probs),
                                                                   strict=True))]
    return pieces, describe(summarize([sentence.text for sentence in sentences], probs)), rows


def describe(summary: dict) -> str:
    """The text's summary in Markdown."""
    counts = ", ".join(f"{summary[name]} {label}" for name, label in zip(COUNTS, LABELS, strict=True))
    mean = ", ".join(f"{label} {summary[label]:.2f}" for label in LABELS)
    lines = [f"**{summary['label'].capitalize()}**: score **{summary['score']:+.2f}** (the mean of each sentence's "
             f"P(positive) − P(negative), from −1 to +1) over {summary['sentences']} sentences: {counts}.",
             f"Mean probabilities: {mean}."]
    if summary["sentences"] > 1:
        lines += [f"Most negative: “{summary['most_negative']}”", f"Most positive: “{summary['most_positive']}”"]
    return "\n\n".join(lines)


def build_article_tab(service) -> None:
    """The Article tab, inside the app's gr.Blocks; its event is /score_article, undocumented (not an MCP tool)."""

    def article(text: str):
        return score_article(service, text)

    with gr.Tab("Article"):
        text = gr.Textbox(label=f"Article (at most {MAX_ARTICLE_CHARS:,} characters)", lines=10,
                          placeholder="Paste a news article or a press release")
        button = gr.Button("Score by sentence", variant="primary")
        summary = gr.Markdown()
        highlighted = gr.HighlightedText(label="Each sentence by its label", color_map=COLORS, show_legend=True,
                                         combine_adjacent=False, elem_id="article-sentences")
        table = gr.Dataframe(headers=HEADERS, label="Sentences", wrap=True)
        gr.Examples([EXAMPLE_ARTICLE], inputs=text)
        button.click(article, inputs=text, outputs=[highlighted, summary, table], api_name="score_article",
                     api_visibility="undocumented")
