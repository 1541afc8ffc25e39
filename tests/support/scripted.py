"""A scripted 'model' good enough to drive the whole graph: labels, answers, writes items.

Also runnable as a script (`python -m tests.support.scripted refine|resume RUNS_DIR RUN_ID [delay]`) so crash tests can
SIGKILL a real process.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from pathlib import Path

from tests.support.scripted_model import ScriptedChatModel, logprobs_block

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def respond(messages: list[dict[str, str]], fail_first_validation: bool = False) -> str:
    text = messages[-1]["content"]
    if "Classify the question" in text:
        # an item this writer made for a cell carries its skill ("[skill X]"): labelled into that cell, as
        # a measured expand requires; any other item gets a skill by hash
        marked = re.search(r"\[skill ([a-z ]+)\]", text)
        skill = marked.group(1) if marked else ["recall", "reasoning", "application"][_h(text) % 3]
        return json.dumps({"skill": skill, "difficulty": 1 + _h(text) % 5})
    if "give the letter" in text:
        # the scripted solver answers with the option marked in the stem as "(key X)", else A
        match = re.search(r"\(key ([A-J])\)", text)
        return json.dumps({"reasoning": "scripted", "answer": match.group(1) if match else "A"})
    if text.rstrip().endswith("Answer:"):  # a logprobs probe: most mass on the marked key (else A)
        match = re.search(r"\(key ([A-J])\)", text)
        letter = match.group(1) if match else "A"
        # an item this writer made for a bucket carries it ("[bucket X]"): the judge is as sure of its key as
        # items of that bucket make it on the embedded model's reference scale, as a measured generate requires
        bucket = re.search(r"\[bucket ([a-z]+)\]", text)
        if bucket:  # its key is its one single-word option, in whatever order the probe shows the options
            letter = next((m.group(1) for m in re.finditer(r"^([A-J])\. (\S+)$", text, re.MULTILINE)), letter)
        p_key = _BUCKET_P_KEY.get(bucket.group(1), 0.7) if bucket else 0.7
        return logprobs_block({letter: p_key, **{x: (1 - p_key) / 3 for x in "ABCD" if x != letter}})
    if "Reply with the letter" in text:  # a panel member: the marked key, else A
        match = re.search(r"\(key ([A-J])\)", text)
        return json.dumps({"answer": match.group(1) if match else "A"})
    if "wrong options" in text:  # the distractor writer: wrong options only, a fresh vocabulary per prompt
        return json.dumps({"distractors": [" ".join(_words(_h(text) + k, 2)) for k in range(9)]})
    if batch := re.search(r"Write (\d+) new multiple-choice questions", text):  # expands drafted several at once
        return json.dumps({"items": [json.loads(_draft(f"{text}#{k}", text, fail_first_validation))
                                     for k in range(int(batch.group(1)))]})
    return _draft(text, text, fail_first_validation)


def _draft(seed_text: str, text: str, fail_first_validation: bool) -> str:
    """One item draft for the writer prompt `text`, its vocabulary drawn from `seed_text`."""
    seed = _h(seed_text)
    wrong = fail_first_validation and "rejected" not in text
    words = _words(seed, 15)  # distinct vocabulary per prompt, so near-duplicate checks stay quiet
    asked = re.search(r"Skill tested: ([a-z ]+?)[ .(]", text)  # an expand names the cell's skill
    marker = f" [skill {asked.group(1)}]" if asked and asked.group(1) != "any" else ""
    choices = [words[8], f"{words[9]} {words[10]}", words[11], f"{words[12]} {words[13]}"]
    if bucket := re.search(r"Write one new ([a-z]+) multiple-choice", text):  # a generate names its bucket
        marker += f" [bucket {bucket.group(1)}]"
        choices[2] = f"{words[11]} {words[14]}"  # the key is the only one-word option: the probe finds it
    # a fix rewords the stem it was given (an edit that asks another question is refused: stem_replaced)
    fixed = re.search(r"This question was flagged: .*?\n<<<\n(.+?)\n", text)
    stem = f"{fixed.group(1).rstrip('?. ')} — {' '.join(words[:3])}" if fixed else " ".join(words[:8])
    return json.dumps({
        "question": f"{stem}{marker} (key {'B' if wrong else 'A'})?",
        "choices": choices,
        "answer_index": 0, "rationale": "scripted",
    })


# p(key) of the judge's probe on a new item written for a bucket. On the scripted judge's one-member Rasch
# fit (anchored on its own ability; no embedded-model reference) 0.5 reads medium and 0.03 hard; no single
# item reaches easy there (the fit's prior holds one response near the middle: 0.97 reads 0.38), so a
# generate for "easy" is sent back by its measurement, as it would be with such a judge
_BUCKET_P_KEY = {"easy": 0.97, "medium": 0.5, "hard": 0.03}

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "do", "fa", "gu", "hi", "jo", "wu"]


def _words(seed: int, count: int) -> list[str]:
    out = []
    for index in range(count):
        value = _h(f"{seed}-{index}")
        out.append("".join(_SYLLABLES[(value >> (4 * k)) & 15] for k in range(3)))
    return out


def model(delay: float = 0.0, fail_first_validation: bool = False) -> ScriptedChatModel:
    def answer(messages: list[dict[str, str]]) -> str:
        if delay:
            time.sleep(delay)
        return respond(messages, fail_first_validation)

    return ScriptedChatModel(respond=answer)


def models(delay: float = 0.0, fail_first_validation: bool = False) -> dict[str, ScriptedChatModel]:
    m = model(delay, fail_first_validation)
    return {"judge": m, "writer": m, "validator": m}


# Graph-logic tests: answer-check validation only and lexical dedup (no sandbox, index or torch).
EXTRAS: dict[str, object] = {"validators": [], "dedup": "lexical"}


def main() -> None:
    from refinelab.agents.options import RunHooks
    from refinelab.api import refine, resume
    from refinelab.config import load_settings
    from refinelab.io import load_dataset

    command, runs_dir, run_id = sys.argv[1], sys.argv[2], sys.argv[3]
    delay = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    if command == "refine":
        dataset = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=int(sys.argv[5]))
        settings = load_settings(overrides={"runs_dir": runs_dir, "cache_path": f"{runs_dir}/cache.sqlite",
                                            # one worker: two runs of the same input then spend the same, so the
                                            # crash test can compare a resumed run with an uninterrupted one
                                            "roles": {role: {"concurrency": 1} for role in ("judge", "writer", "validator")}})
        refine(dataset, budget=int(sys.argv[6]), settings=settings, run_id=run_id, hooks=RunHooks(chat_models=models(delay)),
               options={**EXTRAS, "rounds": 2, "max_attempts": 2})
    else:
        resume(run_id, runs_dir=runs_dir, hooks=RunHooks(chat_models=models(delay)))
    print("finished", flush=True)


if __name__ == "__main__":
    main()
