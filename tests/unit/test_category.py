"""Category detection on realistic prompts."""

import pytest

from routing.context.category import category_scores, detect_category, is_upset
from routing.models import Category

CODING = [
    "Write a Python function that removes duplicates from a list while keeping the order.",
    "```python\nfor i in range(10)\n    print(i)\n```\nWhy does this fail?",
    "I get TypeError: 'NoneType' object is not subscriptable when I call parse_config()",
    "How do I write a SQL query that joins orders and customers and groups by month?",
    "Refactor this class so the database connection is injected instead of created in __init__.",
    "const total = items.reduce((a, b) => a + b.price, 0);\nreturns NaN, what's wrong?",
    "Set up a Docker container for a Flask API with gunicorn.",
    "How do I overload operators in C++?",
]
MATH = [
    "What is 17 * 23 + 4?",
    "(3.5 + 2) / 0.25 = ?",
    "Solve the equation 2x + 3 = 11 for x.",
    "What is the derivative of x^3 * sin(x)?",
    "If I roll two dice, what is the probability that the sum is 7?",
    "Prove that the square root of 2 is irrational.",
    "Calculate 15 percent of 240.",
]
RESEARCH = [
    "Summarize the latest research on intermittent fasting and cite peer-reviewed studies.",
    "What does the evidence say about remote work and productivity? Please include sources.",
    "Give me an overview of the history of the printing press according to recent findings.",
    "Compare the main approaches to carbon capture, with their pros and cons.",
]
LANGUAGE = [
    "Translate 'where is the train station' into French.",
    "Can you proofread this paragraph and fix the grammar?",
    "What's a synonym for 'happy' that sounds more formal?",
    "Rephrase this sentence so the tone is more polite: send me the report now.",
    "Write a haiku about autumn rain.",
]
EMPATHY = [
    "I'm so frustrated, my Python code keeps crashing and I've been at it all day.",
    "I feel so alone since my dog died.",
    "Ugh, nothing works. I'm about to give up on this project.",
    "I'm really stressed about my exams next week.",
    "This is ridiculous, I've asked three times and the answer is still wrong!",
]
GENERAL = [
    "Hello! How are you today?",
    "Tell me a fun fact about octopuses.",
    "What should I cook for dinner tonight?",
    "Recommend a good movie for the weekend.",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(t, Category.CODING) for t in CODING]
    + [(t, Category.MATH) for t in MATH]
    + [(t, Category.RESEARCH) for t in RESEARCH]
    + [(t, Category.LANGUAGE) for t in LANGUAGE]
    + [(t, Category.EMPATHY) for t in EMPATHY]
    + [(t, Category.GENERAL) for t in GENERAL],
)
def test_detects_category(text, expected):
    assert detect_category(text) == expected


def test_frustration_takes_precedence_over_topic():
    text = "I'm so frustrated: solve 2x + 3 = 11 in Python, the function keeps raising ValueError"
    assert max(category_scores(text).values()) > 0
    assert is_upset(text)
    assert detect_category(text) == Category.EMPATHY


def test_the_same_question_calmly_is_not_empathy():
    assert detect_category("Solve 2x + 3 = 11 with a Python function") in {Category.MATH, Category.CODING}
    assert not is_upset("Explain the worst-case complexity of quicksort in code")


def test_code_fence_alone_is_coding():
    assert detect_category("```\nx = [1, 2, 3]\n```") == Category.CODING


def test_ties_go_to_the_more_specific_category():
    scores = category_scores("python proof")
    assert scores[Category.CODING] == scores[Category.MATH] == 1
    assert detect_category("python proof") == Category.CODING


def test_blank_text_is_general():
    assert detect_category("") == Category.GENERAL
