"""Passage corpus for the RAG validator: offline Wikipedia text split into titled, id'd passages.

Sources (all under ``<data root>/``, see ``SOURCES.md`` sections 2 and 10):

- ``wikipedia/wikitext-2-raw/wiki.test.raw``: full articles, split on ``= Title =`` / ``= = Section = =``
  headings into ~100-200 word passages, with the Moses tokenisation (``@-@``, `` , `` …) undone;
- ``wikipedia/natural_questions/*.jsonl``: the gold paragraph of each NQ item (``Context:`` wrapper removed);
- ``wikipedia/boolq/boolq.jsonl``: BoolQ passages (``Passage:`` prefix and question removed);
- ``mmlu_redux/retriever_evaluation/*_enwiki-paragraphs.csv``: BM25 paragraphs retrieved for MMLU-Redux
  questions; each ``context`` concatenates ``Title . paragraph`` chunks, which are split apart again.

Every passage gets a stable id ``source:doc:index`` so a validator verdict can cite its evidence, and
identical texts are kept once (first id wins). Users can bring their own corpus as a JSONL of
``{id, title, text}`` or a folder of ``.txt`` files.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from refinelab.errors import DataError
from refinelab.io import jsonl_objects

SOURCES = ("wikitext", "nq", "boolq", "mmlu_redux")

#: Passage sizes in words: pack paragraphs until MIN, split anything above MAX (MiniLM reads ~256 tokens).
MIN_WORDS = 100
TARGET_WORDS = 160
MAX_WORDS = 200


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable unit; ``score`` is set only on search results (cosine similarity)."""

    id: str
    title: str
    text: str
    source: str
    score: float | None = None

    def with_score(self, score: float) -> Passage:
        return replace(self, score=float(score))

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["score"] is None:
            del d["score"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Passage:
        return cls(id=str(d["id"]), title=str(d.get("title") or ""), text=str(d["text"]),
                   source=str(d.get("source") or "user"), score=d.get("score"))


class Corpus(Sequence[Passage]):
    """An ordered, id-unique list of passages with a content fingerprint (decides index reuse)."""

    def __init__(self, passages: Iterable[Passage], name: str = "corpus") -> None:
        self.passages: list[Passage] = list(passages)
        self.name = name
        seen: set[str] = set()
        for p in self.passages:
            if p.id in seen:
                raise ValueError(f"duplicate passage id {p.id!r} in corpus {name!r}")
            seen.add(p.id)
        self._fingerprint: str | None = None

    def __len__(self) -> int:
        return len(self.passages)

    def __getitem__(self, i):  # type: ignore[override]
        return self.passages[i]

    def __iter__(self) -> Iterator[Passage]:
        return iter(self.passages)

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {len(self)} passages)"

    def fingerprint(self) -> str:
        """sha256 over ids, titles and texts in order: any edit to the corpus changes it."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            for p in self.passages:
                for part in (p.id, p.title, p.text):
                    b = part.encode("utf-8")
                    h.update(len(b).to_bytes(8, "little"))
                    h.update(b)
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def by_source(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for p in self.passages:
            counts[p.source] = counts.get(p.source, 0) + 1
        return counts

    def filter(self, sources: Iterable[str]) -> Corpus:
        keep = set(sources)
        return Corpus((p for p in self.passages if p.source in keep), name=self.name)

    def save_jsonl(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            for p in self.passages:
                f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------------------------- paths


def default_data_root() -> Path:
    """``$REFINELAB_DATA`` if set, else ``../shared/data`` relative to the repository root."""
    env = os.environ.get("REFINELAB_DATA")
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def _root(data_root: str | os.PathLike | None) -> Path:
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    if not root.is_dir():
        raise FileNotFoundError(
            f"data root {root} not found; pass data_root=... or set REFINELAB_DATA to the folder holding "
            "wikipedia/ and mmlu_redux/"
        )
    return root


# ------------------------------------------------------------------------------------------ text utils

_WS = re.compile(r"\s+")


def _norm_ws(s: str) -> str:
    return _WS.sub(" ", s).strip()


_MOSES_JOIN = [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), ("@-@", "-"), ("@,@", ","), ("@.@", ".")]
_SPACE_BEFORE = re.compile(r" ([.,;:!?%)\]}])")
_SPACE_AFTER = re.compile(r"([(\[{$£]) ")
_CLITIC = re.compile(r" ('s|'re|'ve|'m|'ll|'d|'t|n't) ")
_QUOTE = re.compile(r'" ([^"]*?) "')


def detokenize(s: str) -> str:
    """Undo WikiText's Moses tokenisation: ``two @-@ part`` -> ``two-part``, ``3 @,@ 000`` -> ``3,000``,
    ``word , word`` -> ``word, word``, ``" Craig "`` -> ``"Craig"``."""
    s = f" {_norm_ws(s)} "
    for a, b in _MOSES_JOIN:
        s = s.replace(a, b)
    s = _QUOTE.sub(r'"\1"', s)
    s = _CLITIC.sub(r"\1 ", s)
    s = _SPACE_BEFORE.sub(r"\1", s)
    s = _SPACE_AFTER.sub(r"\1", s)
    return _norm_ws(s)


_SENT = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def _split_long(text: str, max_words: int = MAX_WORDS, target: int = TARGET_WORDS) -> list[str]:
    """Split text over ``max_words`` into ~``target``-word chunks on sentence boundaries (hard cut if a
    single sentence is too long, as in NQ's flattened tables)."""
    words = text.split()
    if len(words) <= max_words:
        return [text]
    units: list[list[str]] = []
    for sent in _SENT.split(text):
        w = sent.split()
        while len(w) > max_words:
            units.append(w[:target])
            w = w[target:]
        if w:
            units.append(w)
    chunks: list[list[str]] = []
    cur: list[str] = []
    for u in units:
        if cur and len(cur) + len(u) > target:
            chunks.append(cur)
            cur = []
        cur = cur + u
    if cur:
        if chunks and len(cur) < MIN_WORDS // 2 and len(chunks[-1]) + len(cur) <= max_words:
            chunks[-1] = chunks[-1] + cur
        else:
            chunks.append(cur)
    return [" ".join(c) for c in chunks]


def _pack(paragraphs: list[str]) -> list[str]:
    """Greedily pack short paragraphs into passages of about MIN..MAX words; split long ones."""
    out: list[str] = []
    cur: list[str] = []
    cur_n = 0
    for para in paragraphs:
        for piece in _split_long(para):
            n = len(piece.split())
            if cur and cur_n + n > MAX_WORDS:
                out.append(" ".join(cur))
                cur, cur_n = [], 0
            cur.append(piece)
            cur_n += n
            if cur_n >= MIN_WORDS:
                out.append(" ".join(cur))
                cur, cur_n = [], 0
    if cur:
        tail = " ".join(cur)
        if out and cur_n < MIN_WORDS // 2 and len(out[-1].split()) + cur_n <= MAX_WORDS + MIN_WORDS // 2:
            out[-1] = out[-1] + " " + tail
        else:
            out.append(tail)
    return out


def _slug(s: str, n: int = 60) -> str:
    s = re.sub(r"[^0-9A-Za-z]+", "_", s).strip("_")
    return s[:n] or "untitled"


# ------------------------------------------------------------------------------------------- WikiText

_HEADING = re.compile(r"^ ?((?:= )+)(.+?)((?: =)+) ?$")


def _heading(line: str) -> tuple[int, str] | None:
    m = _HEADING.match(line.rstrip("\r\n"))
    if not m or m.group(1).count("=") != m.group(3).count("="):
        return None
    return m.group(1).count("="), m.group(2).strip()


def load_wikitext(path: str | os.PathLike) -> list[Passage]:
    """WikiText-2 raw -> passages titled ``Article`` or ``Article § Section``, never crossing a section.

    Formula fragments such as `` = 1 henry and capacitance C = `` look like article headings; one is
    treated as a heading only if the next line does not continue the formula (starts with a digit or a
    lower-case letter)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    articles: list[tuple[str, list[tuple[str, list[str]]]]] = []  # (title, [(section, [paragraphs])])
    section_path: list[str] = []
    for i, raw in enumerate(lines):
        h = _heading(raw)
        if h is not None and h[0] == 1:
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            if nxt and (nxt[0].isdigit() or nxt[0].islower()) and articles:
                h = None  # formula continuation, not an article
        if h is not None:
            level, title = h
            title = detokenize(title)
            if level == 1:
                articles.append((title, [("", [])]))
                section_path = []
            elif articles:
                section_path = section_path[: level - 2] + [title]
                articles[-1][1].append((" § ".join(section_path), []))
            continue
        text = raw.strip()
        if not text or not articles or text == "<formula>":
            continue
        articles[-1][1][-1][1].append(detokenize(text.replace("<formula>", "")))

    out: list[Passage] = []
    used_docs: dict[str, int] = {}
    for title, sections in articles:
        doc = _slug(title)
        if doc in used_docs:
            used_docs[doc] += 1
            doc = f"{doc}_{used_docs[doc]}"
        else:
            used_docs[doc] = 0
        idx = 0
        for section, paras in sections:
            full_title = f"{title} § {section}" if section else title
            for text in _pack([p for p in paras if p]):
                out.append(Passage(f"wikitext:{doc}:{idx}", full_title, text, "wikitext"))
                idx += 1
    return out


# ------------------------------------------------------------------------------------- NQ and BoolQ


def _passage_of(prompt: str, label: str, question: str) -> str:
    """The passage of a reading-comprehension prompt: the text after `label`, up to the last `question`."""
    body = prompt.removeprefix(label)
    cut = body.rfind(question)
    return _norm_ws(body[:cut] if cut >= 0 else body)


def nq_paragraph(context: str) -> str:
    """``"Context: <paragraph>\\n\\nQuestion: ...\\nAnswer:"`` -> ``<paragraph>``."""
    return _passage_of(context, "Context:", "\n\nQuestion:")


def _load_passages(path: str | os.PathLike, field: str, unwrap: Callable[[str], str], source: str) -> list[Passage]:
    """One passage per row's `field`, unwrapped from its prompt (no titles in these files); long ones
    (flattened tables) are split."""
    return [Passage(f"{source}:{lineno}:{j}", "", chunk, source)
            for lineno, row in jsonl_objects(Path(path))
            for j, chunk in enumerate(_split_long(unwrap(row[field])))]


def load_natural_questions(path: str | os.PathLike) -> list[Passage]:
    """NQ gold paragraphs."""
    return _load_passages(path, "context", nq_paragraph, "nq")


def boolq_passage(query: str) -> str:
    """``"Passage: <text>\\nQuestion: ...?"`` -> ``<text>``."""
    return _passage_of(query, "Passage:", "\nQuestion:")


def load_boolq(path: str | os.PathLike) -> list[Passage]:
    """BoolQ passages."""
    return _load_passages(path, "query", boolq_passage, "boolq")


# ------------------------------------------------------------------------------- MMLU-Redux contexts

# A title separator is " . " (space before the full stop); a title is a short span that starts a
# "sentence" and does not end in a function word (those come from formulas dropped from the text).
_TITLE_SEP = re.compile(r" \. ")
_SENT_END = re.compile(r"(?:[.!?:;\"')\]]|\. ) ")
_BAD_TITLE_END = {"that", "the", "of", "and", "a", "an", "to", "is", "by", "in", "for", "with", "or", "as",
                  "be", "are", "was", "then", "if", "since", "hence", "therefore", "thus", "where", "so"}
_MAX_TITLE_WORDS = 12


def _title_before(text: str, end: int, known: set[str]) -> int | None:
    """Start offset of the title ending at ``end`` (exclusive), or None if this " . " is not a title."""
    # Prefer the longest known title that the text before the separator ends with.
    before = text[max(0, end - 120):end]
    best = None
    for cut in range(len(before)):
        if (cut == 0 or before[cut - 1] == " ") and before[cut:] in known:
            best = end - (len(before) - cut)
            break
    if best is not None:
        return best
    start = 0
    for m in _SENT_END.finditer(text, 0, end):
        start = m.end()
    cand = text[start:end]
    words = cand.split()
    if not words or len(words) > _MAX_TITLE_WORDS or len(cand) > 90:
        return None
    if not (cand[0].isupper() or cand[0].isdigit()) or words[-1].lower() in _BAD_TITLE_END:
        return None
    if cand[-1] in ".!?:;," or "formula_" in cand or re.search(r", [a-z]", cand):
        return None
    return start


def split_enwiki_context(context: str, known_titles: set[str] | None = None) -> list[tuple[str, str]]:
    """Split a concatenated ``Title . text Title . text …`` context into (title, text) pairs.

    The first title starts at offset 0 (reliable); later ones are found before each `` . `` and accepted if
    they are a known title or look like one. A fragment too short to be a paragraph is glued back."""
    known = known_titles or set()
    context = _norm_ws(context)
    if not context:
        return []
    seps = []  # (title_start, title_end, text_start)
    for m in _TITLE_SEP.finditer(context):
        s = 0 if not seps and m.start() < 120 and _title_before(context, m.start(), known) == 0 else None
        if s is None:
            s = _title_before(context, m.start(), known)
        if s is None:
            continue
        if seps and s < seps[-1][2] + 40:  # would leave a <40-char previous paragraph: not a title
            continue
        seps.append((s, m.start(), m.end()))
    if not seps or seps[0][0] != 0:
        seps.insert(0, (0, 0, 0))
    out = []
    for i, (ts, te, xs) in enumerate(seps):
        xe = seps[i + 1][0] if i + 1 < len(seps) else len(context)
        title, text = context[ts:te].strip(), context[xs:xe].strip()
        if text:
            out.append((title, text))
    return out


def load_mmlu_redux_paragraphs(folder: str | os.PathLike) -> list[Passage]:
    """Paragraphs retrieved by BM25 for MMLU-Redux questions, split and de-duplicated.

    The same article paragraph is often retrieved for several questions, sometimes cut shorter at the
    end of a context; a text that is a prefix of an already kept paragraph with the same title is dropped.
    """
    files = sorted(Path(folder).glob("*_enwiki-paragraphs.csv"))
    rows: list[tuple[str, int, str]] = []
    for f in files:
        subject = f.name.split("_zeroshot_")[-1].split("_enwiki")[0]
        subject = re.sub(r"^gpt-4-turbo_", "", subject)
        with open(f, encoding="utf-8", newline="") as fh:
            for rowno, row in enumerate(csv.DictReader(fh)):
                rows.append((subject, rowno, row.get("context") or ""))
    # Titles at offset 0 are near certain, and so are short titles right after a sentence end; a second
    # pass uses them to find titles glued to a paragraph that was cut mid-sentence.
    known: set[str] = set()
    for _, _, ctx in rows:
        ctx = _norm_ws(ctx)
        m = _TITLE_SEP.search(ctx)
        if m and m.start() < 90:
            known.add(ctx[: m.start()])
    for _, _, ctx in rows:
        for title, _ in split_enwiki_context(ctx, known)[1:]:
            if len(title.split()) <= 6:
                known.add(title)
    pieces: list[tuple[str, str, str]] = []  # (id, title, text)
    for subject, rowno, ctx in rows:
        for j, (title, text) in enumerate(split_enwiki_context(ctx, known)):
            for k, chunk in enumerate(_split_long(text)):
                pid = f"mmlu_redux:{subject}-{rowno}:{j}" + (f".{k}" if k else "")
                pieces.append((pid, title, chunk))
    # Drop exact duplicates and truncated copies (prefix of a longer text with the same title).
    by_title: dict[str, list[str]] = {}
    for _, title, text in pieces:
        by_title.setdefault(title, []).append(text)
    longer = {t: sorted(set(v), key=len, reverse=True) for t, v in by_title.items()}
    out: list[Passage] = []
    seen: set[tuple[str, str]] = set()
    for pid, title, text in pieces:
        if (title, text) in seen:
            continue
        if any(len(o) > len(text) and o.startswith(text) for o in longer[title]):
            continue
        seen.add((title, text))
        out.append(Passage(pid, title, text, "mmlu_redux"))
    return out


# --------------------------------------------------------------------------------------------- builders


def _dedupe(passages: Iterable[Passage]) -> list[Passage]:
    seen: set[str] = set()
    out = []
    for p in passages:
        key = hashlib.sha256(_norm_ws(p.text).lower().encode("utf-8")).hexdigest()
        if key in seen or not p.text.strip():
            continue
        seen.add(key)
        out.append(p)
    return out


def build_wikipedia_corpus(data_root: str | os.PathLike | None = None,
                           sources: Iterable[str] = SOURCES) -> Corpus:
    """The default RAG corpus from the shared data folder (about 10k passages)."""
    root = _root(data_root)
    wanted = list(sources)
    unknown = set(wanted) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown corpus sources {sorted(unknown)}; choose from {SOURCES}")
    parts: list[Passage] = []
    wiki = root / "wikipedia"
    for src in SOURCES:
        if src not in wanted:
            continue
        if src == "wikitext":
            parts += load_wikitext(wiki / "wikitext-2-raw" / "wiki.test.raw")
        elif src == "nq":
            parts += load_natural_questions(wiki / "natural_questions" / "natural_questions_openbook_short.jsonl")
        elif src == "boolq":
            parts += load_boolq(wiki / "boolq" / "boolq.jsonl")
        elif src == "mmlu_redux":
            parts += load_mmlu_redux_paragraphs(root / "mmlu_redux" / "retriever_evaluation")
    return Corpus(_dedupe(parts), name="wikipedia:" + "+".join(s for s in SOURCES if s in wanted))


_PARSED: dict[tuple[str, bool, tuple[tuple[str, int, int], ...]], Corpus] = {}  # the last few user corpora read
_PARSED_KEEP = 2
_PARSED_LOCK = threading.Lock()


def _files_signature(p: Path) -> tuple[tuple[str, int, int], ...]:
    """(name, size, mtime) of the corpus file, or of every .txt file in the corpus folder: any edit changes it."""
    files = sorted(p.rglob("*.txt")) if p.is_dir() else [p] if p.is_file() else []
    return tuple((str(f), (st := f.stat()).st_size, st.st_mtime_ns) for f in files)


def load_user_corpus(path: str | os.PathLike, split: bool = True) -> Corpus:
    """A user corpus: a JSONL file of ``{"id", "title", "text"}`` rows (``source`` optional), or a folder of
    ``.txt`` files (title = file stem, blank-line separated paragraphs packed into passages).

    With ``split`` long JSONL texts are cut into ~160-word passages (ids get a ``#k`` suffix). A run reads its
    corpora when it starts (to refuse a bad one before anything is paid) and again at its first retrieval:
    the last corpora read are kept while their files are unchanged, so the second read costs a `stat`."""
    p = Path(path).expanduser()
    key = (str(p.resolve()), split, _files_signature(p))
    with _PARSED_LOCK:
        if key in _PARSED:
            return _PARSED[key]
    corpus = _read_user_corpus(p, split)
    with _PARSED_LOCK:
        _PARSED[key] = corpus
        while len(_PARSED) > _PARSED_KEEP:
            _PARSED.pop(next(iter(_PARSED)))
    return corpus


def _read_user_corpus(p: Path, split: bool) -> Corpus:
    out: list[Passage] = []
    if p.is_dir():
        for f in sorted(p.rglob("*.txt")):
            rel = f.relative_to(p).with_suffix("").as_posix()
            paras = [_norm_ws(x) for x in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")) if x.strip()]
            for i, text in enumerate(_pack(paras)):
                out.append(Passage(f"user:{rel}:{i}", f.stem.replace("_", " "), text, "user"))
    elif p.is_file():
        first_row: dict[str, int] = {}
        for lineno, row in jsonl_objects(p):
            if "text" not in row:
                raise DataError(str(p), lineno, "text", "missing; every passage needs its text")
            if not isinstance(row["text"], str):
                raise DataError(str(p), lineno, "text", f"expected text, got {type(row['text']).__name__}")
            pid = str(row.get("id") or f"user:{p.stem}:{lineno}")
            if first_row.setdefault(pid, lineno) != lineno:  # Corpus would refuse it without naming the row
                raise DataError(str(p), lineno, "id", f"passage id {pid!r} is already used on row {first_row[pid]}")
            title = str(row.get("title") or "")
            text = _norm_ws(row["text"])
            chunks = _split_long(text) if split else [text]
            for k, chunk in enumerate(chunks):
                out.append(Passage(pid if len(chunks) == 1 else f"{pid}#{k}", title, chunk,
                                   str(row.get("source") or "user")))
    else:
        raise FileNotFoundError(f"corpus path {p} is neither a JSONL file nor a folder of .txt files")
    return Corpus(out, name=f"user:{p.name}")


def is_builtin_corpus(spec: str | os.PathLike | None) -> bool:
    """`None`, "wikipedia" or "wikipedia:NAME": the built-in corpus or a subset, read from the shared data."""
    return spec is None or str(spec) == "wikipedia" or str(spec).startswith("wikipedia:")


def corpus_sources(spec: str) -> tuple[str, ...]:
    """The built-in sources "wikipedia:a,b" names, checked: a run options file, a flag or a pack naming an
    unknown source is refused when read, not at the run's first retrieval."""
    sources = tuple(s.strip() for s in spec.split(":", 1)[1].split(",") if s.strip())
    unknown = sorted(set(sources) - set(SOURCES))
    if not sources or unknown:
        raise ValueError(f"{spec!r}: {'unknown sources ' + ', '.join(unknown) if unknown else 'names no source'}; "
                         f"the built-in corpus has {', '.join(SOURCES)}")
    return sources


def load_corpus(spec: str | os.PathLike | None = None) -> Corpus:
    """``None`` or ``"wikipedia"``: the built-in corpus; ``"wikipedia:mmlu_redux,nq"``: some of its
    sources (a smaller index builds faster); anything else: a user corpus path."""
    if spec is None or str(spec) == "wikipedia":
        return build_wikipedia_corpus()
    if str(spec).startswith("wikipedia:"):
        return build_wikipedia_corpus(sources=corpus_sources(str(spec)))
    return load_user_corpus(spec)
