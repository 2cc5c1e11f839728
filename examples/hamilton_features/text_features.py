"""A Hamilton DAG of text features: each function is a node, its parameters its dependencies."""

from __future__ import annotations


def tokens(review: str) -> list[str]:
    """Lower-case words without punctuation."""
    cleaned = "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in review)
    return cleaned.split()


def n_words(tokens: list[str]) -> int:
    """How long the review is."""
    return len(tokens)


def sentiment(tokens: list[str], lexicon: dict[str, int]) -> int:
    """Sum of the lexicon's scores of the words."""
    return sum(lexicon.get(token, 0) for token in tokens)


def keywords(tokens: list[str], lexicon: dict[str, int], top_k: int = 3) -> list[str]:
    """The scored words, strongest first."""
    scored = sorted({t for t in tokens if t in lexicon}, key=lambda t: (-abs(lexicon[t]), t))
    return scored[:top_k]


def needs_reply(sentiment: int, n_words: int) -> bool:
    """Negative reviews, and long mixed ones, get a human reply."""
    return sentiment < 0 or (sentiment == 0 and n_words > 12)


def features(
    review: str, n_words: int, sentiment: int, keywords: list[str], needs_reply: bool
) -> dict[str, object]:
    """One row for the report."""
    return {
        "review": review,
        "words": n_words,
        "sentiment": sentiment,
        "keywords": keywords,
        "needs_reply": needs_reply,
    }
