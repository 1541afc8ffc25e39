"""Folders of files: which split each file belongs to (its shard's or its name's split word, as Hugging
Face reads them), a split's sub-folder, and the refusals that keep train and test from being joined.
"""

from __future__ import annotations

import re
from pathlib import Path

from refinelab.errors import DataError, SplitNeeded
from refinelab.io.reading import SplitIds, file_stem, format_suffix

_SHARD = re.compile(r"^(?P<split>.+)-\d{5}-of-(?P<total>\d{5})$")  # "train-00000-of-00003" (Hugging Face's)


#: What a folder's table files may be: Hugging Face's hub snapshots shard JSONL or Parquet; `save_to_disk`, Arrow.
_TABLE_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow")


#: `Dataset.save_to_disk`'s own files beside its Arrow shards (and `DatasetDict`'s index of its split folders).
_HF_FOLDER_FILES = frozenset({"dataset_info.json", "state.json", "dataset_dict.json"})


_SPLIT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def table_files(path: Path, with_csv: bool = False) -> list[Path]:
    """A folder's data files other than MMLU's headerless CSV (JSONL, JSON, Parquet, Arrow, gzipped or not;
    CSV files with a header when `with_csv`), sorted, leaving out `save_to_disk`'s own JSON files."""
    suffixes = _TABLE_SUFFIXES + ((".csv",) if with_csv else ())
    return sorted(f for f in path.iterdir()
                  if f.is_file() and format_suffix(f) in suffixes and f.name not in _HF_FOLDER_FILES)


#: The words that name a split in a file's name, as Hugging Face reads them, each with the split it means.
SPLIT_WORDS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation", "test": "test", "testing": "test", "eval": "test",
               "evaluation": "test"}


_SPLIT_WORD = re.compile(r"(?<![a-z0-9])(" + "|".join(sorted(SPLIT_WORDS, key=len, reverse=True)) + r")(?![a-z0-9])")


_TRAILING_SPLIT_WORD = re.compile(r"_(" + "|".join(sorted(SPLIT_WORDS, key=len, reverse=True)) + r")$")


def without_split_word(file: Path) -> str:
    """The file's name less a trailing split word ("astronomy_test.csv" → "astronomy"): MMLU names its files
    SUBJECT_SPLIT, and the subject is what is left."""
    return _TRAILING_SPLIT_WORD.sub("", file_stem(file))


def _split_word(file: Path) -> str:
    """The split a file's name says it holds, as written ("dev" in "ARC-Challenge-Dev.csv", "train" in
    "train-00000-of-00002.parquet"), or "" for a name that says none ("mmlu_astronomy.csv", save_to_disk's
    "data-00000-of-00001.arrow"): the parts of one set, read together."""
    shard = _SHARD.match(file_stem(file))
    found = _SPLIT_WORD.findall((shard["split"] if shard else file_stem(file)).lower())
    return found[-1] if found else ""


def files_of_split(path: Path, split: str | None = None, with_csv: bool = False) -> list[Path]:
    """The files of a folder's one split, in order; [] when the folder has no such files. A name that says no
    split ("mmlu_astronomy.csv") is a part of the one set the folder holds; a name that does ("test.jsonl",
    "ARC-Challenge-Dev.csv", "train-00000-of-00002.parquet") belongs to that split, and `split` names it by
    the word or the split it means ("dev" or "validation"). A folder of several splits needs `split`:
    joining train and test would be silently wrong."""
    files = table_files(path, with_csv)
    by_split: dict[str, list[Path]] = {}
    for file in files:
        by_split.setdefault(_split_word(file), []).append(file)
    if not by_split:
        return []
    named = sorted(word for word in by_split if word)
    if split is None:
        if len(by_split) > 1:
            parts = ", ".join(named[:8]) + (f" and files that name none ({by_split[''][0].name}, …)"
                                             if "" in by_split else "")
            raise SplitNeeded(str(path), f"holds {len(by_split)} splits ({parts})")
        name = next(iter(by_split))
    else:
        wanted = SPLIT_WORDS.get(split.lower(), split.lower())
        alike = [word for word in named if SPLIT_WORDS[word] == wanted]
        name = split.lower() if split.lower() in named else alike[0] if len(alike) == 1 else ""
        if len(alike) > 1 and not name:
            raise DataError(str(path), None, None, f"holds {' and '.join(alike)}, both {wanted}; choose one by name")
        if not name:
            raise DataError(str(path), None, None, f"has no split {split!r}; "
                            + (f"it holds {', '.join(named[:8])}" if named else "its file names name no split"))
    chosen = by_split[name]
    label = name or "its files"
    if len(formats := sorted({format_suffix(f) for f in chosen})) > 1:
        raise DataError(str(path), None, None, f"holds {label} as {' and '.join(formats)}; pass one file")
    shards = [_SHARD.match(file_stem(f)) for f in chosen]
    if not any(shards):
        return chosen
    if not all(shards):
        raise DataError(str(path), None, None, f"holds {label} both as shards and as whole files; pass one file")
    totals = {int(match["total"]) for match in shards if match}
    if totals != {len(chosen)}:
        raise DataError(str(path), None, None, f"holds {len(chosen)} shard(s) of {label}, but their names count "
                        f"{'/'.join(str(t) for t in sorted(totals))}: a shard is missing or left over")
    return chosen


#: The prefix of `Dataset.save_to_disk`'s shards ("data-00000-of-00001.arrow"): it says nothing of the set.
_GENERIC_SHARD_PREFIX = "data"


def split_ids(path: Path, files: list[Path]) -> SplitIds | None:
    """The numbering of the default ids of `files`, one split of the folder `path` (`files_of_split`), when they are
    its shards ("test-00000-of-00002.parquet", ".jsonl", ".csv", gzipped or not): across the split, prefixed by
    its word ("test-1", …), else by the shards' own prefix ("mmlu-1" for "mmlu-00000-of-00001.jsonl"), in any
    format alike. Only `save_to_disk`'s generic "data-00000-of-00001.arrow" takes the folder's name: the ids of
    any other set must not change when its folder is renamed or copied. None for whole files: each numbers its
    own rows."""
    shards = [match for file in files if (match := _SHARD.match(file_stem(file)))]
    if not files or len(shards) < len(files):
        return None
    prefix = shards[0]["split"]
    return SplitIds(_split_word(files[0]) or (path.name if prefix == _GENERIC_SHARD_PREFIX else prefix))


def folder_of_split(path: Path, split: str) -> Path | None:
    """`path/split` when it is a folder (a `DatasetDict.save_to_disk` split, MMLU's dev/val/test), else None.
    The name is one plain path part: a split cannot lead out of the folder."""
    if not _SPLIT_NAME.fullmatch(split) or split in {".", ".."}:
        raise DataError(str(path), None, None, f"split {split!r} is not a plain name (letters, digits, _ . -)")
    folder = path / split
    return folder if folder.is_dir() and not folder.is_symlink() else None


def sub_folder_names(path: Path) -> list[str]:
    """The names of a folder's visible sub-folders, sorted: the splits an error offers to choose from."""
    return sorted(f.name for f in path.iterdir() if f.is_dir() and not f.name.startswith("."))


def other_data_files_note(path: Path) -> str:
    """What else a folder read as MMLU holds, for the error that says it has no CSV files (a folder of splits
    is `SplitNeeded`, asked by the caller)."""
    counts: dict[str, int] = {}
    for file in path.iterdir():
        if file.is_file() and file.suffix in _TABLE_SUFFIXES and file.name not in _HF_FOLDER_FILES:
            counts[file.suffix] = counts.get(file.suffix, 0) + 1
    held = ", ".join(f"{n} {suffix} file{'s' if n > 1 else ''}" for suffix, n in sorted(counts.items()))
    if held:
        return f" (a folder is read as MMLU's CSV layout, but it holds {held}; pass one file)"
    return ""
