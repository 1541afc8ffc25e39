"""Subject → domain map (all 57 MMLU subjects) and the skill taxonomy, with user overrides."""

from pathlib import Path

import pytest

from refinelab.domains import load_skills, load_subject_domains, subject_key

MMLU_TEST = Path(__file__).resolve().parents[3] / "shared" / "data" / "mmlu" / "test"


def test_default_map_covers_57_subjects_in_four_domains():
    m = load_subject_domains()
    assert len(m.subjects) == 57
    assert set(m.subjects.values()) == {"STEM", "humanities", "social sciences", "other"}
    assert m.domain_for("High School Physics") == "STEM"
    assert m.domain_for("professional-law") == "humanities"
    assert m.domain_for("econometrics") == "social sciences"
    assert m.domain_for("virology") == "other"
    assert m.domain_for("underwater basket weaving") is None


@pytest.mark.skipif(not MMLU_TEST.is_dir(), reason="shared MMLU data not present")
def test_map_matches_mmlu_file_names():
    subjects = {p.name.removesuffix("_test.csv") for p in MMLU_TEST.glob("*_test.csv")}
    assert subjects == set(load_subject_domains().subjects)


def test_user_override_merges_and_can_add_domains(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("domains: [law]\nsubjects:\n  professional_law: law\n  Tax Law: law\n", encoding="utf-8")
    m = load_subject_domains(path)
    assert m.domain_for("professional_law") == "law"
    assert m.domain_for("tax_law") == "law"
    assert m.domain_for("anatomy") == "other"  # defaults kept
    replaced = load_subject_domains(path, merge=False)
    assert replaced.domain_for("anatomy") is None


def test_override_with_unknown_domain_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("subjects: {anatomy: medicine}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="medicine"):
        load_subject_domains(path)


def test_skills():
    skills = load_skills()
    assert skills.names == ["recall", "comprehension", "application", "reasoning", "calculation"]
    assert all(desc and "\n" not in desc for desc in skills.skills.values())
    assert subject_key(" High-School  Biology ") == "high_school_biology"


def test_a_taxonomy_names_only_its_skills_in_examples_and_writing():
    from refinelab.domains import SkillTaxonomy

    taxonomy = SkillTaxonomy(skills={"recall": "a fact"}, writing={"recall": "Ask for one fact."})
    assert taxonomy.writing == {"recall": "Ask for one fact."}
    for field in ("examples", "writing"):
        value = {"reasoning": ["x"]} if field == "examples" else {"reasoning": "x"}
        with pytest.raises(ValueError, match=f"{field} for skills not in"):
            SkillTaxonomy(skills={"recall": "a fact"}, **{field: value})
    assert set(load_skills().writing) <= set(load_skills().names)


def test_a_subject_map_with_an_alias_bomb_is_refused_in_one_line(tmp_path: Path) -> None:
    """A user's subject map went through yaml.safe_load directly: no alias, depth or size limit."""
    levels = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "map.yaml"
    path.write_text("\n".join([*levels, "subjects: *l8", ""]), encoding="utf-8")
    with pytest.raises(ValueError, match="map.yaml") as caught:
        load_subject_domains(path)
    assert "\n" not in str(caught.value)
