"""Guess a task's category from its text, cheaply enough to run on every routed call.

Keyword and pattern cues, counted per category; the category with the most cues wins, ties going to
the more specific one (coding, math, research, language, in that order). Someone frustrated or upset
is routed to EMPATHY whatever their question is about: how the answer lands matters more then than
its topic. Text with no cue is GENERAL. This is a heuristic on purpose: it costs microseconds, is
predictable, and a caller who knows better sets `Task.category` itself.
"""

from __future__ import annotations

import re

from routing.models import Category


def _words(*alternatives: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


_EMPATHY = _words(
    r"frustrat\w*",
    r"upset",
    r"angry",
    r"furious",
    r"annoy(?:ed|ing)",
    r"fed up",
    r"sick (?:and tired )?of",
    r"tired of",
    r"had enough",
    r"(?:i|i'm|i am) (?:so |really )?(?:stressed|overwhelmed|anxious|depressed|miserable|lonely|heartbroken)",
    r"(?:feel|feeling) (?:so |really )?(?:sad|hopeless|awful|terrible|lost|alone)",
    r"give up",
    r"giving up",
    r"can'?t take (?:it|this)",
    r"nothing (?:ever )?works",
    r"waste of (?:my )?time",
    r"i hate (?:this|it|you)",
    r"this is (?:ridiculous|useless|hopeless)",
    r"ugh+",
    r"argh+",
    r"wtf",
)

_CODE_LINE = re.compile(r"^\s*(?:def|class|import|from \S+ import|function|const|let|var|#include)\b", re.MULTILINE)

# (category, weighted patterns); a code fence or an arithmetic expression is strong evidence alone.
_CUES: tuple[tuple[Category, tuple[tuple[re.Pattern[str], int], ...]], ...] = (
    (
        Category.CODING,
        (
            (re.compile(r"```"), 3),
            (_CODE_LINE, 2),
            (re.compile(r"\b\w+(?:Error|Exception)\b|Traceback|stack trace|segfault", re.IGNORECASE), 2),
            (re.compile(r"\b[a-z_][a-z0-9_]*\.[a-z_]+\(|\b[a-z_]+\(\)", re.IGNORECASE), 1),
            (re.compile(r"\b[cf](?:\+\+|#)(?!\w)", re.IGNORECASE), 1),
            (
                _words(
                    r"python", r"javascript", r"typescript", r"java", r"rust", r"golang",
                    r"sql", r"bash", r"html", r"css", r"regex", r"json", r"yaml", r"api", r"sdk",
                    r"function", r"method", r"class", r"variable", r"compile[rd]?", r"debug\w*", r"bug",
                    r"refactor\w*", r"unit tests?", r"pytest", r"git", r"docker", r"kubernetes", r"script",
                    r"code", r"coding", r"implement\w*", r"algorithm", r"endpoint", r"repo(?:sitory)?",
                    r"syntax", r"null pointer", r"async", r"database", r"query",
                ),
                1,
            ),
        ),
    ),
    (
        Category.MATH,
        (
            (re.compile(r"\d+(?:\.\d+)?\s*(?:[-+*/^×÷%]|\*\*)\s*\(?\s*\d"), 2),
            (re.compile(r"\b(?:sqrt|log|sin|cos|tan)\s*\(|[=<>]\s*\d|\b[xyn]\s*[\^²³]|\d\s*[xyn]\b"), 1),
            (
                _words(
                    r"solve", r"equation", r"integral", r"integrate", r"derivative", r"differentiate",
                    r"calculate", r"calculus", r"algebra", r"geometry", r"trigonometry", r"probability",
                    r"statistics", r"prime", r"factorial", r"matrix", r"matrices", r"vector", r"theorem",
                    r"prove", r"proof", r"percent(?:age)?", r"average", r"median", r"fraction", r"sum of",
                    r"product of", r"square root", r"logarithm", r"polynomial", r"divisible", r"remainder",
                    r"how many", r"multipl(?:y|ied)", r"divided by", r"plus", r"minus", r"times",
                ),
                1,
            ),
        ),
    ),
    (
        Category.RESEARCH,
        (
            (
                _words(
                    r"research", r"stud(?:y|ies)", r"papers?", r"literature", r"sources?", r"cite",
                    r"citations?", r"references?", r"evidence", r"peer[- ]reviewed", r"survey of",
                    r"history of", r"according to", r"latest",
                    r"recent (?:work|advances|developments|findings)",
                    r"state of the art", r"investigate", r"findings", r"meta-analysis", r"compare",
                    r"comparison", r"pros and cons", r"what is known",
                    r"summari[sz]e (?:the )?(?:paper|article|report)",
                ),
                1,
            ),
        ),
    ),
    (
        Category.LANGUAGE,
        (
            (re.compile(r"\b(?:in|into|to) (?:english|french|spanish|german|italian|portuguese|chinese|"
                        r"japanese|korean|russian|arabic|hindi|dutch)\b", re.IGNORECASE), 2),
            (
                _words(
                    r"translat\w*", r"grammar", r"grammatical", r"spelling", r"spell", r"proofread\w*",
                    r"rephrase", r"paraphrase", r"reword", r"rewrite", r"synonyms?", r"antonyms?",
                    r"definition", r"define", r"meaning of", r"what does \S+ mean", r"pronounc\w*",
                    r"punctuation", r"sentence", r"wording", r"tone", r"essay", r"poem", r"haiku",
                    r"idiom", r"verb", r"noun", r"adjective", r"tense",
                ),
                1,
            ),
        ),
    ),
)


def is_upset(text: str) -> bool:
    """Whether the text reads as frustrated or upset."""
    return _EMPATHY.search(text) is not None


def category_scores(text: str) -> dict[Category, int]:
    """Weighted count of cues per topical category (EMPATHY and GENERAL are not scored)."""
    return {
        category: sum(weight * len(pattern.findall(text)) for pattern, weight in cues)
        for category, cues in _CUES
    }


def detect_category(text: str) -> Category:
    """EMPATHY if the text is upset, else the topical category with most cues, else GENERAL."""
    if is_upset(text):
        return Category.EMPATHY
    scores = category_scores(text)
    best = max(scores.values())
    if best == 0:
        return Category.GENERAL
    return next(category for category, score in scores.items() if score == best)
