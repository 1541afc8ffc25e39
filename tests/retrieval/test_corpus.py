"""Corpus parsing on the real shared files: counts, titles, Moses clean-up, wrappers gone, stable ids."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from refinelab.errors import DataError
from refinelab.tools.corpus import (
    SOURCES,
    Corpus,
    Passage,
    build_wikipedia_corpus,
    default_data_root,
    detokenize,
    load_corpus,
    load_mmlu_redux_paragraphs,
    load_natural_questions,
    load_user_corpus,
    load_wikitext,
    split_enwiki_context,
)

ID = re.compile(r"^(wikitext|nq|boolq|mmlu_redux):[^:\s]+:[0-9]+(\.[0-9]+)?$")


def test_every_source_contributes(wiki_corpus: Corpus) -> None:
    counts = wiki_corpus.by_source()
    assert set(counts) == set(SOURCES)
    assert counts["wikitext"] > 1000 and counts["nq"] >= 824 and counts["boolq"] > 2500
    assert counts["mmlu_redux"] > 3000
    assert len(wiki_corpus) == sum(counts.values())


def test_ids_unique_well_formed_and_stable(wiki_corpus: Corpus, data_root: Path) -> None:
    ids = [p.id for p in wiki_corpus]
    assert len(ids) == len(set(ids))
    assert all(ID.match(i) for i in ids), [i for i in ids if not ID.match(i)][:5]
    again = build_wikipedia_corpus(data_root)
    assert [p.id for p in again] == ids
    assert again.fingerprint() == wiki_corpus.fingerprint()


def test_no_duplicate_texts(wiki_corpus: Corpus) -> None:
    texts = [" ".join(p.text.lower().split()) for p in wiki_corpus]
    assert len(texts) == len(set(texts))
    assert all(p.text.strip() for p in wiki_corpus)


def test_wikitext_articles_titles_and_no_moses_artefacts(data_root: Path) -> None:
    ps = load_wikitext(data_root / "wikipedia" / "wikitext-2-raw" / "wiki.test.raw")
    articles = {p.title.split(" § ")[0] for p in ps}
    # 62 "= X =" lines, of which two are formula fragments in "Constant k filter".
    assert len(articles) == 60
    assert {"Robert Boulter", "Du Fu", "Ise-class battleship", "The Hustler (film)"} <= articles
    assert not any(t.startswith("1 ") for t in articles)
    assert all(p.title and p.source == "wikitext" for p in ps)
    for p in ps:
        assert not re.search(r"@[-,.]@|<formula>|(^| )= = |\r", p.text), (p.id, p.text[:200])
        assert " , " not in p.text and " 's " not in p.text and "( " not in p.text, (p.id, p.text[:200])
    first = ps[0]
    assert first.id == "wikitext:Robert_Boulter:0"
    assert first.text.startswith("Robert Boulter is an English film, television and theatre actor.")
    assert "guest-starring" in first.text
    sections = [p for p in ps if p.title == "Robert Boulter § Career § 2000 – 2005"]
    assert sections and '"Scott Parry"' in sections[0].text
    words = sorted(len(p.text.split()) for p in ps)
    assert 100 <= words[len(words) // 2] <= 200 and words[-1] <= 250


def test_detokenize() -> None:
    assert detokenize("a two @-@ part episode") == "a two-part episode"
    assert detokenize("$ 3 @,@ 000 and 52 @.@ 9 million") == "$3,000 and 52.9 million"
    assert detokenize('as " Craig " in " Teddy \'s Story " , then') == 'as "Craig" in "Teddy\'s Story", then'
    assert detokenize("Li Bai ( Li Po ) , he don 't") == "Li Bai (Li Po), he don't"


def test_nq_paragraphs_unwrapped(data_root: Path) -> None:
    path = data_root / "wikipedia" / "natural_questions" / "natural_questions_openbook_short.jsonl"
    ps = load_natural_questions(path)
    assert all("Context:" not in p.text[:9] and "Question:" not in p.text and not p.text.endswith("Answer:")
               for p in ps)
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert ps[0].id == "nq:1:0"
    assert ps[0].text.startswith("In logical argument and mathematical proof, the therefore sign")
    assert ps[0].text in " ".join(first["context"].split())
    assert max(len(p.text.split()) for p in ps) <= 200  # flattened tables are split


def test_boolq_passages_unwrapped(wiki_corpus: Corpus) -> None:
    bq = [p for p in wiki_corpus if p.source == "boolq"]
    assert bq[0].id == "boolq:1:0" and bq[0].text.startswith("All biomass goes through")
    assert not any(p.text.startswith("Passage:") or re.search(r"Question: .*\?$", p.text) for p in bq)


def test_mmlu_redux_contexts_split_into_titled_paragraphs(data_root: Path) -> None:
    ps = load_mmlu_redux_paragraphs(data_root / "mmlu_redux" / "retriever_evaluation")
    assert all(p.title for p in ps)
    chem0 = [p for p in ps if p.id.startswith("mmlu_redux:college_chemistry-0:")]
    assert [p.title for p in chem0[:3]] == ["Stable nuclide", "Nuclear binding energy", "Valley of stability"]
    assert chem0[0].text.startswith("Just as in the case of electrons")
    assert chem0[0].text.endswith("atomic (proton) numbers.")
    # The same paragraph retrieved for several questions is kept once.
    titles = [p.title for p in ps]
    assert titles.count("Water fluoridation controversy") < 10
    # Titles are short: the separator heuristic rarely swallows a sentence.
    assert sum(len(t.split()) > 8 for t in titles) / len(titles) < 0.02


def test_split_enwiki_context_heuristics() -> None:
    ctx = ("Gas laws . In 1662 Robert Boyle studied the relationship between pressure and volume of gases. "
           "Isochoric process . An isochoric process is one in which the volume stays constant, as in a "
           "sealed rigid container that is heated. This implies that . Adiabatic process . No heat is "
           "transferred to or from the gas in an adiabatic process.")
    parts = split_enwiki_context(ctx)
    assert [t for t, _ in parts] == ["Gas laws", "Isochoric process", "Adiabatic process"]
    assert parts[1][1].endswith("This implies that .")
    # A known title is found even after a paragraph cut mid-sentence.
    cut = "Stable nuclide . Nuclei with even numbers of protons are more stable than the rest of them Valley of stability . Text."
    assert [t for t, _ in split_enwiki_context(cut, {"Valley of stability"})] == ["Stable nuclide",
                                                                                  "Valley of stability"]


def test_fingerprint_tracks_content() -> None:
    a = Corpus([Passage("u:a:0", "A", "alpha text", "user"), Passage("u:b:0", "B", "beta text", "user")])
    b = Corpus([Passage("u:a:0", "A", "alpha text", "user"), Passage("u:b:0", "B", "beta text!", "user")])
    c = Corpus([Passage("u:a:0", "A", "alpha text", "user"), Passage("u:b:0", "B", "beta text", "user")])
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == c.fingerprint()
    with pytest.raises(ValueError, match="duplicate passage id"):
        Corpus([Passage("x", "", "t", "user"), Passage("x", "", "u", "user")])


def test_user_corpus_jsonl_and_folder(tmp_path: Path) -> None:
    jl = tmp_path / "mine.jsonl"
    long_text = " ".join(f"Sentence number {i} is here." for i in range(120))
    jl.write_text(json.dumps({"id": "doc1", "title": "One", "text": "Short text."}) + "\n"
                  + json.dumps({"id": "doc2", "title": "Two", "text": long_text}) + "\n")
    c = load_user_corpus(jl)
    assert c[0] == Passage("doc1", "One", "Short text.", "user")
    assert [p.id for p in c][1:] == [f"doc2#{k}" for k in range(len(c) - 1)] and len(c) > 2
    folder = tmp_path / "txt"
    (folder / "sub").mkdir(parents=True)
    (folder / "Alan_Turing.txt").write_text("Alan Turing was a mathematician.\n\nHe worked at Bletchley Park.\n")
    (folder / "sub" / "notes.txt").write_text("Some notes.")
    f = load_corpus(folder)
    assert [(p.id, p.title) for p in f] == [("user:Alan_Turing:0", "Alan Turing"), ("user:sub/notes:0", "notes")]
    assert f[0].text == "Alan Turing was a mathematician. He worked at Bletchley Park."
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    with pytest.raises(DataError, match="bad.jsonl, row 1, field 'text': missing"):
        load_user_corpus(bad)
    with pytest.raises(FileNotFoundError):
        load_user_corpus(tmp_path / "nope")


def test_a_user_corpus_is_read_once_while_it_is_unchanged(tmp_path: Path) -> None:
    """A run reads its corpora at its start (a bad one is refused before anything is paid) and again at its
    first retrieval; the second read was a second parse (2–3 s for 50,000 passages). It is now the same
    Corpus while the files are unchanged, and read anew once one is edited."""
    import os

    jl = tmp_path / "mine.jsonl"
    jl.write_text(json.dumps({"id": "d1", "text": "First text."}) + "\n")
    first = load_user_corpus(jl)
    assert load_corpus(jl) is first and load_user_corpus(str(jl)) is first
    assert load_user_corpus(jl, split=False) is not first  # another reading of the same file
    jl.write_text(json.dumps({"id": "d1", "text": "Other text."}) + "\n")  # same size, new content
    os.utime(jl, ns=(jl.stat().st_atime_ns, jl.stat().st_mtime_ns + 1_000_000))
    assert load_user_corpus(jl)[0].text == "Other text."
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "a.txt").write_text("Alpha.")
    assert [p.text for p in load_user_corpus(folder)] == ["Alpha."]
    (folder / "b.txt").write_text("Beta.")
    assert [p.text for p in load_user_corpus(folder)] == ["Alpha.", "Beta."]  # a file added to the folder


@pytest.mark.parametrize(("content", "expected"), [
    (b'{"text": "fine"}\n{oops\n', "row 2: not valid JSON"),
    (b'{"text": "fine"}\n[1, 2]\n', "row 2: expected a JSON object"),
    (b'{"text": NaN}\n', "row 1: not valid JSON: NaN"),
    (b'{"text": "caf\xe9"}\n', "row 1: not valid utf-8 text at byte 13"),
    (b'{"text": ["a", "list"]}\n', "row 1, field 'text': expected text"),
    (b'{"id": "p", "text": "a"}\n{"id": "p", "text": "b"}\n', "row 2, field 'id': passage id 'p' is already used on row 1"),
])
def test_a_damaged_user_corpus_names_file_row_and_field(tmp_path: Path, content: bytes, expected: str) -> None:
    """A user's corpus is input like a dataset: each defect is a one-line DataError (exit 2 from the CLI); a
    line that is not an object was a TypeError, bad UTF-8 a UnicodeDecodeError, NaN read as a number."""
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=expected) as info:
        load_user_corpus(path)
    assert str(path) in str(info.value)


def test_a_run_with_a_damaged_corpus_fails_before_its_folder_exists(tmp_path: Path) -> None:
    """The corpus is read when the run starts, not at the first retrieval: a bad one stopped the run in its
    validate node, after the profile and the writer's calls were paid."""
    from refinelab.agents.options import RunHooks
    from refinelab.api import refine
    from refinelab.config import load_settings
    from tests.support.rl_helpers import mmlu
    from tests.support.scripted_model import ScriptedChatModel

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "fine"}\n{"title": "no text"}\n')

    def never(messages: list[dict[str, str]]) -> str:
        raise AssertionError("the model was asked before the corpus was checked")

    model = ScriptedChatModel(respond=never)
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    with pytest.raises(DataError, match=r"corpus.jsonl, row 2, field 'text': missing"):
        refine(mmlu(4), budget=10_000, settings=settings, options={"rag_corpus": str(corpus)},
               hooks=RunHooks(chat_models={"judge": model, "writer": model, "validator": model}))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_data_root_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REFINELAB_DATA", str(tmp_path))
    assert default_data_root() == tmp_path
    with pytest.raises(DataError, match="natural_questions.*: file not found"):
        build_wikipedia_corpus(sources=["nq"])  # no wikipedia/ under tmp_path
    monkeypatch.delenv("REFINELAB_DATA")
    assert (default_data_root() / "wikipedia").is_dir()
    with pytest.raises(ValueError, match="unknown corpus sources"):
        build_wikipedia_corpus(sources=["squad"])


def test_opening_a_finished_run_does_not_read_its_corpus(tmp_path: Path) -> None:
    """Only a new run reads its corpora up front: listing a run's reviews (here, a finished run from a
    machine where its corpus is gone) opens the folder without them."""
    from refinelab.agents.options import RunHooks
    from refinelab.api import refine
    from refinelab.api.review import pending_reviews
    from refinelab.config import load_settings
    from tests.support.rl_helpers import mmlu
    from tests.support.scripted import EXTRAS, models

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "A passage."}\n')
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    result = refine(mmlu(4), budget=20_000, settings=settings, hooks=RunHooks(chat_models=models()),
                    options={**EXTRAS, "rag_corpus": str(corpus), "operations": ["expand"], "pilot_per_op": 0,
                             "rounds": 1})
    corpus.unlink()
    assert pending_reviews(result.run_id, runs_dir=tmp_path / "runs") == []


def test_an_unknown_built_in_source_is_refused_when_named_not_at_the_first_retrieval(tmp_path: Path) -> None:
    """`wikipedia:NAME` sources are checked where they are given: run options (a flag, an options file) and a
    pack's `corpus:` (when a run starts); a typo used to surface mid-run as a failed retrieval."""
    from types import SimpleNamespace

    from pydantic import ValidationError
    from typer.testing import CliRunner

    from refinelab.agents.options import RunOptions
    from refinelab.api.runs import check_run_corpora
    from refinelab.cli.app import app
    from refinelab.errors import ConfigError
    from refinelab.tools.corpus import corpus_sources

    assert corpus_sources("wikipedia:nq, mmlu_redux") == ("nq", "mmlu_redux")
    with pytest.raises(ValidationError, match="unknown sources wikipeda"):
        RunOptions(rag_corpus="wikipedia:nq,wikipeda")
    pack = SimpleNamespace(corpus="wikipedia:")
    library = SimpleNamespace(user_dir=tmp_path, pack_names=lambda: ["quiz"], pack=lambda name: pack)
    with pytest.raises(ConfigError, match="names no source"):
        check_run_corpora(library, None, RunOptions())  # type: ignore[arg-type]
    data = Path(__file__).resolve().parents[3] / "shared" / "data" / "mmlu" / "dev"
    result = CliRunner().invoke(app, ["refine", str(data), "--limit", "2", "--budget", "100", "--quiet",
                                      "--runs-dir", str(tmp_path / "runs"), "--rag-corpus", "wikipedia:bogus"],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "unknown sources bogus" in result.output, result.output
    assert not (tmp_path / "runs").exists()
