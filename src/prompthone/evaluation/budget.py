"""Budget accounting: model calls and tokens, split by role, that stops a run cleanly when spent.

The budget counts the calls the search *makes*, whether the model or the call cache answers them, so a
seeded run follows the same path and stops at the same place with a cold or a warm cache. What is paid
(new calls, new tokens) excludes cache hits: an identical re-run costs nothing. Calls are reserved before
they are sent, so a budget of N calls never makes call N+1, even with many requests in flight.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field

from prompthone.errors import BudgetExhausted


@dataclass(frozen=True)
class Budget:
    """Limits for one run; `None` means unlimited. `calls` counts requests to any model (task and meta),
    `task_calls` only those to the task model (what `compare` equalizes across methods), `usd` the money the calls
    cost at the prices given for their models (`evaluation.prices`; a model without a price costs nothing here)."""

    calls: int | None = None
    tokens: int | None = None
    task_calls: int | None = None
    usd: float | None = None

    def __post_init__(self) -> None:
        for name in ("calls", "tokens", "task_calls", "usd"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"budget {name} must be ≥ 0, got {value}")


@dataclass
class Spend:
    """Calls and tokens the search made (budget-counted), how many the cache answered, and what was new; with prices
    (`evaluation.prices`), their cost in US dollars (`usd`, budget-counted) and what the calls sent cost
    (`new_usd`). Without any price the money fields stay None and are left out of `to_dict`: no money is shown."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    new_tokens: int = 0
    by_role: dict[str, int] = field(default_factory=dict)
    usd: float | None = None
    new_usd: float | None = None

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def new_calls(self) -> int:
        """Calls actually sent to a model (paid for)."""
        return self.calls - self.cache_hits

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["tokens"] = self.tokens
        data["new_calls"] = self.new_calls
        for key in ("usd", "new_usd"):
            if data[key] is None:
                del data[key]
        return data


class BudgetMeter:
    """Thread-safe meter: `reserve` before a call, `record` its tokens after; raises BudgetExhausted."""

    def __init__(self, budget: Budget | None = None) -> None:
        self.budget = budget or Budget()
        self.spend = Spend()
        self._lock = threading.Lock()

    def exhausted(self) -> bool:
        with self._lock:
            return self._exhausted()

    def _exhausted(self, role: str | None = None) -> bool:
        b, s = self.budget, self.spend
        return ((b.tokens is not None and s.tokens >= b.tokens) or (b.usd is not None and (s.usd or 0.0) >= b.usd)
                or self._remaining(role, 1) <= 0)

    @property
    def post_paid(self) -> bool:
        """A limit known to be spent only after the replies (tokens, money): calls are then sent in small chunks."""
        return self.budget.tokens is not None or self.budget.usd is not None

    def _remaining(self, role: str | None, n: int) -> int:
        """How many of `n` calls for `role` the call limits allow (task_calls applies to role 'task' only)."""
        left = self._left(role)
        return n if left is None else min(n, left)

    def _left(self, role: str | None) -> int | None:
        """The calls the call limits leave `role` (None: no call limit applies to it)."""
        b, s = self.budget, self.spend
        left = []
        if b.calls is not None:
            left.append(b.calls - s.calls)
        if b.task_calls is not None and role == "task":
            left.append(b.task_calls - s.by_role.get("task", 0))
        return min(left) if left else None

    def remaining(self, role: str) -> int | None:
        """Calls `role` may still make under the call limits (None: no call limit applies to it). A method that
        sizes its search to the budget reads this; the token limit is not converted into calls."""
        with self._lock:
            left = self._left(role)
        return None if left is None else max(0, left)

    def reserve(self, role: str, n: int = 1) -> int:
        """Take up to `n` calls for `role` ('task', 'meta', ...); returns how many were granted (≥ 1).

        Raises BudgetExhausted when not even one call is left, so callers send exactly what was granted
        and the budget is spent to the last call, never beyond it.
        """
        with self._lock:
            if self._exhausted(role):
                raise BudgetExhausted(self._describe())
            granted = self._remaining(role, n)
            self.spend.calls += granted
            self.spend.by_role[role] = self.spend.by_role.get(role, 0) + granted
            return granted

    def record(self, prompt_tokens: int, completion_tokens: int, *, cached: bool, usd: float | None = None) -> None:
        """Account the tokens of one reserved call (and its cost `usd`, when its model has a price); `cached` when
        the call cache answered it."""
        with self._lock:
            self.spend.prompt_tokens += prompt_tokens
            self.spend.completion_tokens += completion_tokens
            if usd is not None:
                self.spend.usd = (self.spend.usd or 0.0) + usd
                self.spend.new_usd = (self.spend.new_usd or 0.0) + (0.0 if cached else usd)
            if cached:
                self.spend.cache_hits += 1
            else:
                self.spend.new_tokens += prompt_tokens + completion_tokens

    def describe(self) -> str:
        """What is spent against each limit (the message of a stop)."""
        with self._lock:
            return self._describe()

    def _describe(self) -> str:
        b, s = self.budget, self.spend
        money = f", ${s.usd or 0.0:.4f} (limit ${b.usd})" if b.usd is not None else ""
        return (f"budget spent: {s.calls} calls (limit {b.calls}), {s.by_role.get('task', 0)} task-model calls "
                f"(limit {b.task_calls}), {s.tokens} tokens (limit {b.tokens}){money}")
