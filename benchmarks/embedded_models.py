"""The embedded models side by side: load time, label-scoring throughput, seed accuracy, meta-call latency.

    python -m benchmarks.embedded_models                    # every embedded model installed (~3 min on 2 cores)
    python -m benchmarks.embedded_models --from-raw         # rewrite the RESULTS.md section from the raw file

Per model, on this machine's cores, one process, nothing else running (run it under the heavy-run lock):
- load: building the spec (for a chunked model: the assembled file already in the cache; its first assembly is
  a one-time copy of the chunks, not measured here);
- label scoring: the seed prompt of `gen:sentiment_templates` on its 40 test examples (limit 100, seed 0),
  uncached, examples per second; its accuracy uncalibrated and with contextual calibration (40 examples: a coarse
  view, `benchmarks.calibration` is the measurement);
- meta calls: the same three requests to improve an instruction, greedy, at most 64 new tokens: seconds per call,
  and the replies themselves, because whether a model writes an instruction at all is what matters for a meta model.

Raw numbers and replies go to `benchmarks/results/embedded_models.json`; the RESULTS.md section is written from it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import prompthone as ph
from benchmarks.results_md import add_raw_options, publish_raw, save_raw, stamp
from prompthone.models.base import GenerationRequest, Message
from prompthone.models.embedded import EMBEDDED_MODELS, is_installed

RAW = Path(__file__).with_name("results") / "embedded_models.json"
TASK, LIMIT = "gen:sentiment_templates", 100
META_REQUESTS = (
    "Improve this instruction for classifying the sentiment of product reviews: \"Classify the sentiment of the "
    "review.\" Reply with the improved instruction only.",
    "Here are inputs and outputs: \"Great value, works well\" -> positive; \"Broke after a day\" -> negative. "
    "Write the instruction that was given to produce these outputs.",
    "An instruction got these reviews wrong: \"Not bad at all\" (expected positive). Say in one sentence what the "
    "instruction should add.",
)


def measure_one(spec: str) -> dict[str, Any]:
    """One model's row (see the module docstring)."""
    started = time.monotonic()
    model = ph.make_model(spec)
    load_s = time.monotonic() - started
    try:
        task = ph.load_task(TASK, seed=0, limit=LIMIT)
        started = time.monotonic()
        raw = ph.evaluate(task, None, model, split="test", cache=False, progress=False)
        scoring_s = time.monotonic() - started
        contextual = ph.evaluate(task, None, model, split="test", cache=False, progress=False,
                                 calibration="contextual")
        replies = []
        for text in META_REQUESTS:
            started = time.monotonic()
            ((_, reply),) = list(model.generate([GenerationRequest((Message("user", text),), max_tokens=64)]))
            replies.append({"request": text, "reply": reply.text, "tokens": reply.completion_tokens,
                            "seconds": round(time.monotonic() - started, 3)})
    finally:
        model.close()
    return {"model": spec, "model_id": model.id, "load_s": round(load_s, 3), "n_test": raw.n,
            "scoring_s": round(scoring_s, 3), "examples_per_s": round(raw.n / scoring_s, 2),
            "accuracy_none": raw.score, "accuracy_contextual": contextual.score, "meta": replies}


def table(raw: dict[str, Any]) -> str:
    lines = ["| model | load s | label scoring, examples/s | seed accuracy (none → contextual, n) | meta call s "
             "(mean of 3, ≤ 64 tokens) | meta tokens/s |", "|---|---|---|---|---|---|"]
    for r in raw["rows"]:
        seconds = sum(m["seconds"] for m in r["meta"]) / len(r["meta"])
        tokens = sum(m["tokens"] for m in r["meta"]) / sum(m["seconds"] for m in r["meta"])
        lines.append(f"| {r['model']} | {r['load_s']:.1f} | {r['examples_per_s']:.1f} | {r['accuracy_none']:.3f} → "
                     f"{r['accuracy_contextual']:.3f} ({r['n_test']}) | {seconds:.1f} | {tokens:.1f} |")
    lines += ["", "Each model's reply to the first meta request (improve \"Classify the sentiment of the review.\"):",
              ""]
    for r in raw["rows"]:
        reply = " ".join(r["meta"][0]["reply"].split()).replace("|", "\\|")
        lines.append(f"- `{r['model']}`: {reply}")
    return "\n".join(lines) + "\n"


def publish(raw: dict[str, Any], results_md: Path) -> str:
    text = table(raw)
    setup = (f"Label scoring: the seed prompt of `{TASK}` (limit {LIMIT}, seed 0) on its test split, uncached; "
             "accuracy on 40 examples is coarse (see the calibration section for the measurement). Meta calls: "
             "three fixed requests, greedy. Raw numbers and every reply: `benchmarks/results/embedded_models.json`.")
    publish_raw(results_md, "embedded-models", "Embedded models: speed and meta replies", raw, setup, text,
                command_note=f" ({raw['cpus']} CPU cores, llama.cpp threads = cores, one process).")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[m.spec for m in EMBEDDED_MODELS if is_installed(m)])
    add_raw_options(parser, RAW)
    args = parser.parse_args(argv)
    if args.from_raw:
        print(publish(json.loads(args.raw.read_text()), args.results_md))
        return 0
    raw: dict[str, Any] = {"rows": [measure_one(spec) for spec in args.models]}
    stamp(raw, "benchmarks.embedded_models", argv)
    raw["cpus"] = os.cpu_count()
    save_raw(raw, args.raw, indent=1)
    print(publish(raw, args.results_md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
