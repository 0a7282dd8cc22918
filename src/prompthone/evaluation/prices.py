"""Prices of models, per million input and output tokens, for spend in money and money budgets.

No price ships with prompthone: prices change and differ between providers, so a number here would be a guess.
The user names them per model spec, in a small file (`--prices prices.yaml`) or on the command line (`--price
SPEC=IN,OUT`); a model without a price is counted in calls and tokens only, and a run without any price shows no
money at all. The same call counts at its price whether the model or the call cache answers it (as the call budget
counts it), so a money budget stops a seeded run at the same call with a warm or a cold cache; `new_usd` is what
the calls actually sent cost.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prompthone.errors import ConfigError, InputError


@dataclass(frozen=True)
class Price:
    """US dollars per million prompt (input) and completion (output) tokens."""

    input_per_m: float
    output_per_m: float

    def __post_init__(self) -> None:
        for name in ("input_per_m", "output_per_m"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_m + completion_tokens * self.output_per_m) / 1e6

    def to_dict(self) -> dict[str, float]:
        return {"input": self.input_per_m, "output": self.output_per_m}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Price:
        return cls(float(data["input"]), float(data["output"]))


def parse_price(text: str, *, field: str = "--price") -> tuple[str, Price]:
    """`SPEC=IN,OUT` (dollars per million input and output tokens) as (spec, price); an InputError naming `field`."""
    spec, sep, amounts = text.rpartition("=")
    parts = amounts.split(",")
    try:
        if not sep or not spec.strip() or len(parts) != 2:
            raise ValueError
        return spec.strip(), Price(float(parts[0]), float(parts[1]))
    except ValueError:
        raise InputError(f"expected MODEL=INPUT,OUTPUT in dollars per million tokens (e.g. "
                         f"openai:http://host/v1/gpt-x=0.15,0.60), got {text!r}", field=field) from None


def load_prices(path: str | Path) -> dict[str, Price]:
    """A prices file: YAML or JSON mapping each model spec to `{input: ..., output: ...}` (dollars per million
    tokens). Every problem is one InputError naming the file and the spec's field."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("prices file not found", path=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the prices file: {exc}", path=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"not valid YAML or JSON: {getattr(exc, 'problem', None) or exc}", path=str(path),
                         line=mark.line + 1 if mark is not None else None) from None
    if not isinstance(data, dict) or not data:
        raise InputError("expected a mapping of model specs to {input: ..., output: ...} (dollars per million "
                         "tokens)", path=str(path))
    prices: dict[str, Price] = {}
    for spec, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != {"input", "output"}:
            raise InputError("expected {input: ..., output: ...} (dollars per million tokens)", path=str(path),
                             field=str(spec))
        try:
            prices[str(spec)] = Price(*(_number(entry[k]) for k in ("input", "output")))
        except ValueError as exc:
            raise InputError(str(exc), path=str(path), field=str(spec)) from None
    return prices


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number of dollars, got {json.dumps(value)}")
    return float(value)


def role_prices(prices: Mapping[str, Price] | None, *, money_budget: bool,
                meta_is_task_model: bool) -> dict[str, Price]:
    """Prices by role ('task', 'meta'): the meta role pays the task model's price when the task model proposes
    itself. A money budget needs the task model's price (a budget over unpriced calls would never stop)."""
    found = dict(prices or {})
    if meta_is_task_model and "task" in found:
        found["meta"] = found["task"]
    if money_budget and "task" not in found:
        raise ConfigError("a money budget needs a price for the task model: give one with --price "
                          "MODEL=INPUT,OUTPUT or --prices FILE (dollars per million input and output tokens)")
    return found


def prices_by_role(prices: Mapping[str, Price] | None, task_keys: Sequence[str | None],
                   meta_keys: Sequence[str | None]) -> dict[str, Price]:
    """The task and meta models' prices out of a map from model specs (what the user typed) or model ids to prices:
    each role takes the first of its keys (its spec, then its id) that has one."""
    found: dict[str, Price] = {}
    for role, keys in (("task", task_keys), ("meta", meta_keys)):
        price = next((prices[k] for k in keys if prices and k is not None and k in prices), None)
        if price is not None:
            found[role] = price
    return found


def money_text(spend: Mapping[str, Any]) -> str:
    """", $1.2345 ($0.4000 new)" for a spend record with a cost, "" for one without (no price, no money shown)."""
    usd = spend.get("usd")
    if usd is None:
        return ""
    new = spend.get("new_usd")
    return f", ${usd:.4f}" + (f" (${new:.4f} new)" if new is not None and new != usd else "")
