"""Does prompthone keep a server busy? Evaluation throughput against a plain load generator, and memory at scale.

    python -m benchmarks.throughput                  # full: ~3 min on 2 cores
    python -m benchmarks.throughput --quick          # small sizes (the smoke test runs this)
    python -m benchmarks.throughput --no-real        # skip the real llama_cpp.server section

Sections, every number a ratio against a baseline measured in the same run:
1. `simulated`: a server that serves 64 requests at once, each taking `--latency` s (benchmarks/sim_server.py, its
   own process). The load generator (aiohttp, `--in-flight` workers, nothing else) sends exactly the
   request bodies prompthone sends for one label-scoring evaluation; then prompthone's whole evaluation path does
   the same work (Evaluator → MeteredModel with a cold SQLite call cache and the budget meter →
   OpenAICompatModel). Alternated `--repeats` times; medians. Ratio = prompthone / load generator throughput.
2. `memory`: one evaluation of 1,000 and of 10,000 examples, each in a fresh process; peak RSS (ru_maxrss) and the
   RSS before evaluating. Flat means the peak grows by what the examples and results themselves take.
3. `real`: the same comparison against `python -m llama_cpp.server` serving the embedded model (the server is the
   bottleneck at ~5 requests/s here, so the ratio shows only that prompthone does not lose any of it).

Writes <out>/throughput.json; a full run also writes the raw results committed beside RESULTS.md
(`benchmarks/results/throughput.json`) and its section from them (`--from-raw` rewrites the section from that file
alone). Nothing about time is asserted; the exit status is 1 only on a correctness failure
(prompthone's predictions differ from what the server answers, or a number is not finite).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

from benchmarks.results_md import add_raw_options, publish_raw, save_raw, stamp
from benchmarks.sim_server import MODEL as SIM_MODEL
from prompthone.evaluation.budget import BudgetMeter
from prompthone.evaluation.cache import CallCache
from prompthone.evaluation.evaluator import Evaluator
from prompthone.evaluation.metered import MeteredModel
from prompthone.models.base import ScoringRequest
from prompthone.models.local_server import free_port, serve_gguf, wait_until_ready
from prompthone.models.openai_compat import OpenAICompatModel
from prompthone.models.openai_wire import scoring_body
from prompthone.prompts.prompt import Prompt, render
from prompthone.tasks.example import Example, Task

LABELS = ("positive", "negative")
PROMPT = Prompt(instruction="Classify the sentiment of the review as positive or negative.")
RAW = Path(__file__).with_name("results") / "throughput.json"
ADJECTIVES = ("great", "awful", "fine", "broken", "lovely", "late", "perfect", "cheap", "sturdy", "noisy")


def examples(n: int) -> list[Example]:
    """`n` distinct short reviews (distinct inputs, so no two requests share a cache key)."""
    return [Example(f"Review {i}: the {ADJECTIVES[i % 10]} item arrived and it was {ADJECTIVES[(i * 7) % 10]}.",
                    LABELS[i % 2]) for i in range(n)]


def task_of(items: Sequence[Example]) -> Task:
    return Task(name="throughput", train=(), dev=tuple(items), test=(), metric="label_accuracy", labels=LABELS)


def request_bodies(model_name: str, items: Sequence[Example], top_logprobs: int) -> list[dict[str, Any]]:
    """The exact bodies prompthone's evaluator sends for `PROMPT` on `items` (label scoring)."""
    return [scoring_body(model_name, ScoringRequest(render(PROMPT, e.input), LABELS), top_logprobs) for e in items]


# -- the two clients ------------------------------------------------------------------------------------------

def load_generator(base_url: str, bodies: Sequence[dict[str, Any]], in_flight: int) -> float:
    """Seconds for a bare asyncio + aiohttp client to send every body with `in_flight` workers and parse each reply.

    aiohttp because it is the fastest plain Python client here (httpx's AsyncClient peaked at ~80 requests/s on
    2 cores where aiohttp does ~550 against the same server): the baseline should be the best a client can do.
    """

    async def run() -> float:
        connector = aiohttp.TCPConnector(limit=in_flight)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:

            async def worker() -> None:
                for body in pending:
                    async with session.post(f"{base_url}/chat/completions", json=body) as response:
                        response.raise_for_status()
                        json.loads(await response.read())

            pending = iter(bodies[:8])
            await asyncio.gather(*(worker() for _ in range(min(in_flight, 8))))  # open connections first
            pending = iter(bodies)
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(in_flight)))
            return time.perf_counter() - start

    return asyncio.run(run())


def prompthone_eval(base_url: str, model_name: str, items: Sequence[Example], in_flight: int,
                    cache_path: Path) -> tuple[float, list[str | None]]:
    """Seconds for prompthone's evaluation path (cold SQLite cache, budget meter) on `items`, and its predictions."""
    with OpenAICompatModel(base_url, model_name, max_concurrency=in_flight, timeout=120.0) as model:
        warm = Evaluator(task_of(items), MeteredModel(model, meter=BudgetMeter()), mode="labels")
        warm.evaluate(Prompt(instruction="warm-up"), items[:min(len(items), 8)])  # open the connections
        evaluator = Evaluator(task_of(items), MeteredModel(model, meter=BudgetMeter(), cache=CallCache(cache_path)),
                              mode="labels")
        start = time.perf_counter()
        result = evaluator.evaluate(PROMPT, items)
        return time.perf_counter() - start, [r.prediction for r in result.examples]


def compare(base_url: str, model_name: str, n: int, in_flight: int, repeats: int, work: Path,
            top_logprobs: int = 20) -> dict[str, Any]:
    """Alternate the load generator and prompthone `repeats` times over the same `n` requests; medians."""
    items = examples(n)
    bodies = request_bodies(model_name, items, top_logprobs)
    generator_s: list[float] = []
    prompthone_s: list[float] = []
    predictions: list[str | None] = []
    for r in range(repeats):
        generator_s.append(load_generator(base_url, bodies, in_flight))
        seconds, predictions = prompthone_eval(base_url, model_name, items, in_flight, work / f"cache-{n}-{r}.sqlite")
        prompthone_s.append(seconds)
    generator_rate = n / statistics.median(generator_s)
    prompthone_rate = n / statistics.median(prompthone_s)
    return {"requests": n, "in_flight": in_flight, "repeats": repeats,
            "load_generator_per_s": generator_rate, "prompthone_per_s": prompthone_rate,
            "ratio": prompthone_rate / generator_rate,
            "load_generator_s": generator_s, "prompthone_s": prompthone_s,
            "predictions": predictions}


# -- servers --------------------------------------------------------------------------------------------------

@contextmanager
def simulated_server(latency: float, slots: int, log: Path) -> Iterator[str]:
    """benchmarks/sim_server.py in its own process; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.sim_server", "--port", str(port), "--latency", str(latency),
               "--slots", str(slots)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                   cwd=Path(__file__).resolve().parents[1])
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            wait_until_ready(process, base_url, log, deadline_s=60.0)
            yield base_url
        finally:
            process.terminate()
            process.wait(timeout=15)


def expected_labels(items: Sequence[Example]) -> list[str]:
    """What the simulated server answers for each example (its reply depends only on the user message)."""
    from benchmarks.sim_server import reply

    labels = []
    for e in items:
        body = request_bodies(SIM_MODEL, [e], 20)[0]
        labels.append(reply(body)["choices"][0]["message"]["content"])
    return labels


# -- memory ---------------------------------------------------------------------------------------------------

def rss_child(base_url: str, n: int, in_flight: int, cache_path: Path) -> dict[str, float]:
    """Run in a fresh process: RSS before and peak RSS after one evaluation of `n` examples (MiB)."""
    items = examples(n)
    before = _rss_now_mb()
    seconds, predictions = prompthone_eval(base_url, SIM_MODEL, items, in_flight, cache_path)
    assert len(predictions) == n
    return {"examples": n, "rss_before_mb": before, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 1024.0, "seconds": seconds}


def _rss_now_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


def memory(base_url: str, sizes: Sequence[int], in_flight: int, work: Path) -> list[dict[str, float]]:
    rows = []
    for n in sizes:
        command = [sys.executable, "-m", "benchmarks.throughput", "_rss", "--url", base_url, "--n", str(n),
                   "--in-flight", str(in_flight), "--out", str(work / f"rss-{n}.sqlite")]
        proc = subprocess.run(command, capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parents[1])
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return rows


# -- main -----------------------------------------------------------------------------------------------------

def finite(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int | float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(finite(v) for v in value.values())
    if isinstance(value, list):
        return all(finite(v) for v in value)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="bench", choices=["bench", "_rss"], help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes, for the smoke test")
    parser.add_argument("--no-real", action="store_true", help="skip the llama_cpp.server section")
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1, help="the simulated server's seconds per request")
    parser.add_argument("--out", default="benchmarks/out")
    add_raw_options(parser, RAW)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode == "_rss":
        print(json.dumps(rss_child(args.url, args.n, args.in_flight, Path(args.out))))
        return 0
    if args.from_raw:
        publish(json.loads(args.raw.read_text(encoding="utf-8")), args.results_md)
        print(f"updated {args.results_md} from {args.raw}")
        return 0

    console = Console()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n, repeats, sizes, real_n = (256, 1, (200, 2000), 16) if args.quick else (3000, 3, (1000, 10000), 48)
    results: dict[str, Any] = {"in_flight": args.in_flight, "latency_s": args.latency, "quick": args.quick}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="prompthone-throughput-") as tmp:
        work = Path(tmp)
        with simulated_server(args.latency, args.in_flight, work / "sim.log") as url:
            console.print(f"[bold]simulated server[/] ({args.in_flight} slots × {args.latency:g} s, at most "
                          f"{args.in_flight / args.latency:.0f} requests/s): {n} requests, {repeats} repeats")
            sim = compare(url, SIM_MODEL, n, args.in_flight, repeats, work)
            if sim.pop("predictions") != expected_labels(examples(n)):
                failures.append("prompthone's predictions differ from the simulated server's answers")
            sim["server_capacity_per_s"] = args.in_flight / args.latency
            results["simulated"] = sim
            console.print(f"[bold]memory[/]: evaluations of {' and '.join(f'{s:,}' for s in sizes)} examples")
            results["memory"] = memory(url, sizes, args.in_flight, work)
        if not args.no_real:
            console.print(f"[bold]llama_cpp.server[/] (embedded model): {real_n} requests, 8 in flight")
            with serve_gguf(work / "llama.log") as url:
                probe = OpenAICompatModel(url)
                name = probe.model
                probe.close()
                real = compare(url, name, real_n, 8, 1, work)
                real.pop("predictions")
                results["real"] = real
    if not finite(results):
        failures.append("a measurement is not finite")
    results["failures"] = failures
    stamp(results, "benchmarks.throughput", list(argv) if argv is not None else None)
    (out / "throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    show(console, results)
    if not args.quick and not args.no_real and not failures:
        save_raw(results, args.raw, indent=1)
        publish(results, args.results_md)
        console.print(f"updated {args.raw} and {args.results_md}")
    for failure in failures:
        console.print(f"[red]FAILED[/]: {failure}")
    return 1 if failures else 0


SETUP = ("`make bench-throughput` runs the same. 2 CPU cores shared by client and server. Throughput = "
         "label-scoring requests per second, medians over the repeats; the load generator is a bare aiohttp client "
         "sending exactly the request bodies prompthone sends; prompthone runs its whole evaluation path (Evaluator, "
         "budget meter, a cold SQLite call cache, OpenAICompatModel). Peak RSS: one evaluation per fresh process. "
         "Raw results: `benchmarks/results/throughput.json`.")


def publish(results: dict[str, Any], results_md: Path) -> None:
    """Write this benchmark's RESULTS.md section from its raw results (a full run's, or the committed file)."""
    publish_raw(results_md, "throughput", "Server throughput and memory at scale", results, SETUP, markdown(results))


def markdown(results: dict[str, Any]) -> str:
    """The tables of the RESULTS.md section: both throughput rows and the memory rows."""
    lines = ["| server | requests | in flight | load generator /s | prompthone /s | ratio |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, label in (("simulated", f"simulated batched server ({results['in_flight']} slots × "
                                     f"{results['latency_s']:g} s)"), ("real", "llama_cpp.server, embedded model")):
        row = results.get(key)
        if row:
            lines.append(f"| {label} | {row['requests']:,} | {row['in_flight']} | {row['load_generator_per_s']:.1f} | "
                         f"{row['prompthone_per_s']:.1f} | {row['ratio']:.2f}× |")
    lines += ["", "| examples in one evaluation | RSS before (MiB) | peak RSS (MiB) |", "|---:|---:|---:|"]
    for row in results.get("memory") or []:
        lines.append(f"| {row['examples']:,} | {row['rss_before_mb']:.0f} | {row['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n\n"


def show(console: Console, results: dict[str, Any]) -> None:
    table = Table(title="throughput: prompthone's evaluation path vs a plain load generator, same requests")
    for column in ("server", "requests", "in flight", "load generator /s", "prompthone /s", "ratio"):
        table.add_column(column, justify="right" if column != "server" else "left")
    for key, label in (("simulated", "simulated (batched GPU-like)"), ("real", "llama_cpp.server")):
        row = results.get(key)
        if row:
            table.add_row(label, f"{row['requests']:,}", str(row["in_flight"]), f"{row['load_generator_per_s']:.1f}",
                          f"{row['prompthone_per_s']:.1f}", f"{row['ratio']:.2f}×")
    console.print(table)
    memory_rows = results.get("memory") or []
    if memory_rows:
        mem = Table(title="peak RSS of one evaluation (fresh process)")
        for column in ("examples", "RSS before (MiB)", "peak RSS (MiB)", "peak − before (MiB)"):
            mem.add_column(column, justify="right")
        for row in memory_rows:
            mem.add_row(f"{row['examples']:,}", f"{row['rss_before_mb']:.0f}", f"{row['peak_rss_mb']:.0f}",
                        f"{row['peak_rss_mb'] - row['rss_before_mb']:.0f}")
        console.print(mem)
        first, last = memory_rows[0], memory_rows[-1]
        console.print(f"peak RSS at {last['examples']:,} / at {first['examples']:,} examples: "
                      f"{last['peak_rss_mb'] / first['peak_rss_mb']:.2f}×")


if __name__ == "__main__":
    sys.exit(main())
