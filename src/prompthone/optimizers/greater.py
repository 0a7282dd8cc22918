"""GREATER — Gradients over Reasoning (Das et al., ICLR 2025): a small white-box model optimizes its own prompt.

No meta model writes feedback: the task model's own next-token distribution proposes tokens and its own
gradients choose among them. The prompt p follows the input x (`instruction_position="after"`), the model
reasons before answering, and the answer is read after an extractor. One step optimizes one position, left
to right:

1. Reasoning: greedy reasoning r for each training example under the current prompt (metered, cached).
2. Candidates (`greater_candidates`): top-k allowed tokens of the model's distribution at the position given
   x ⊕ p[:pos]; intersection over random groups of `group_size` examples, union over `topq` groups; k grows
   by `top_k` until there are `min_candidates`; the current token is always kept.
3. Gradient over reasoning (`greater_loss`): loss = CE(gold answer | x ⊕ p ⊕ r ⊕ extractor) + λ · mean NLL
   of the prompt tokens, summed over examples; backpropagated to a one-hot vector over the candidates.
4. Selection: the `shortlist` candidates with the most negative gradient are each tried for real: reasoning
   is regenerated with the candidate in place and the loss recomputed; the lowest loss wins, the current
   token included (its loss is the one measured in 3), so a step keeps the prompt unless a candidate
   measurably lowers the loss. Every step's candidates, gradients, losses, choice and reason go to the
   run's events.jsonl.

The prompt grows at the end: after its last position the step appends a placeholder (the EOS token, as in
the reference implementation) unless the last token ends a sentence or the prompt is `max_prompt_tokens`
long; a sentence end chosen mid-prompt cuts the prompt there. Positions then start over from the left.

Defaults follow the paper (top-k 10, topq 5, groups of 5, ≥ 6 candidates, λ 0.2, shortlist 3, 50 training
examples, ~100 steps; its initial prompt from the reference code's example). The paper names no reasoning cap:
256 tokens here. Cost is dominated by generation: (1 + shortlist) × n_train reasoning generations per step,
plus a dev-sample evaluation of every changed prompt. Budgets count those generation and scoring calls; the
white-box forward/backward passes are timed in events.jsonl, not counted as calls.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from prompthone.errors import ConfigError
from prompthone.models.base import WhiteBox
from prompthone.models.torch_model import next_token_logits
from prompthone.optimizers.base import Candidate, OptimizationContext, OptimizationState, Optimizer, ScoreKey
from prompthone.optimizers.greater_candidates import (
    allowed_token,
    ends_sentence,
    propose,
    sample_groups,
)
from prompthone.optimizers.greater_loss import Losses, LossSequence, build_sequence, losses, onehot_gradient
from prompthone.prompts.prompt import DEFAULT_EXTRACTOR, Prompt
from prompthone.tasks.example import Example

log = logging.getLogger(__name__)

#: The initial prompt of the reference implementation's example; `init=task` starts from the task's instruction.
DEFAULT_INIT = "Use logical reasoning and think step by step."


@dataclass
class _Search:
    """GREATER's own state between steps: the prompt as token ids and the position being optimized."""

    wb: WhiteBox
    ids: list[int]
    pos: int
    placeholder: int
    train: list[Example]
    dev_sample: list[Example]
    current: Candidate
    allowed: list[bool] = field(default_factory=list)
    #: what this step decided and why (written by `propose`, recorded by `select`)
    event: dict[str, Any] = field(default_factory=dict)

    def real_ids(self) -> list[int]:
        """The prompt's tokens without a trailing placeholder."""
        return self.ids[:-1] if self.ids and self.has_placeholder() else list(self.ids)

    def has_placeholder(self) -> bool:
        return bool(self.ids) and self.ids[-1] == self.placeholder and self.pos == len(self.ids) - 1


@dataclass
class GREATER(Optimizer):
    """Token-by-token prompt search with the task model's own candidates and gradients over its reasoning."""

    name: ClassVar[str] = "greater"
    rank_key: ClassVar[str] = ScoreKey.DEV_SAMPLE

    steps: int = 100
    n_train: int = 50
    top_k: int = 10
    topq: int = 5
    group_size: int = 5
    min_candidates: int = 6
    shortlist: int = 3
    lam: float = 0.2
    reasoning_tokens: int = 256
    max_prompt_tokens: int = 48
    rank_depth: int = 200
    dev_samples: int = 50
    batch_size: int = 8
    init: str = DEFAULT_INIT
    extractor: str = DEFAULT_EXTRACTOR

    def __post_init__(self) -> None:
        self.require_positive("steps", "n_train", "top_k", "topq", "group_size", "min_candidates", "shortlist",
                              "max_prompt_tokens", "rank_depth", "dev_samples", "batch_size")
        if self.reasoning_tokens < 0:
            raise ConfigError(f"reasoning_tokens must be ≥ 0, got {self.reasoning_tokens}")
        if self.lam < 0:
            raise ConfigError(f"lam must be ≥ 0, got {self.lam}")

    # -- setup ---------------------------------------------------------------------------------------------
    def start(self, ctx: OptimizationContext, state: OptimizationState) -> None:
        backend = ctx.white_box
        if backend is None:
            raise ConfigError(f"greater needs a white-box (torch) task model, got {ctx.evaluator.model.id}: use "
                              "--model local-torch (pip install 'prompthone[torch]')")
        if not ctx.task.train:
            raise ConfigError("greater needs training examples (the task's train split is empty)")
        train = ctx.rng.sample(ctx.task.train, min(self.n_train, len(ctx.task.train)))
        dev_pool = ctx.task.dev or ctx.task.train
        dev_sample = ctx.rng.sample(dev_pool, min(self.dev_samples, len(dev_pool)))
        text = (ctx.task.instruction if self.init == "task" else self.init).strip()
        ids = backend.encode(text) if text else []
        placeholder = backend.tokenizer.eos_token_id
        if placeholder is None:
            raise ConfigError(f"{ctx.evaluator.model.id} has no EOS token to use as GREATER's placeholder")
        if not ids:
            ids = [placeholder]
        seed = state.pool[0]
        ctx.score(seed, dev_sample, self.rank_key)
        search = _Search(backend, ids, 0, placeholder, train, dev_sample, seed)
        init = ctx.new_candidate(state, self._prompt(ctx, search, search.real_ids()), parent=seed.id,
                                 origin="greater-init", data={"tokens": search.real_ids()})
        if init is not None:
            ctx.score(init, dev_sample, self.rank_key)
            search.current = init
        state.frontier = [search.current.id]
        state.extra["greater"] = search

    def pack_extra(self, extra: dict[str, Any]) -> dict[str, Any]:
        """The white box is the task model itself: a checkpoint keeps the search without it."""
        if isinstance(extra.get("greater"), _Search):
            extra["greater"] = replace(extra["greater"], wb=None)
        return extra

    def unpack_extra(self, extra: dict[str, Any], ctx: OptimizationContext) -> dict[str, Any]:
        if isinstance(extra.get("greater"), _Search):
            extra["greater"] = replace(extra["greater"], wb=ctx.white_box)
        return extra

    @staticmethod
    def _state(state: OptimizationState) -> _Search:
        search = state.extra.get("greater")
        assert isinstance(search, _Search), "start() was not called"
        return search

    def _prompt(self, ctx: OptimizationContext, s: _Search, ids: list[int]) -> Prompt:
        """The seed prompt with `ids` as its instruction, placed after the input, reasoning before the answer."""
        return replace(ctx.seed_prompt, instruction=s.wb.decode(ids).strip(), instruction_position="after",
                       reasoning_tokens=self.reasoning_tokens, extractor=self.extractor)

    # -- one position ----------------------------------------------------------------------------------------
    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        s = self._state(state)
        wb, pos = s.wb, s.pos
        timings: dict[str, float] = {}
        clock = time.monotonic()

        prompt = self._prompt(ctx, s, s.real_ids())
        seqs = self._sequences(ctx, s, prompt, s.ids)
        timings["reasoning_s"] = time.monotonic() - clock

        clock = time.monotonic()
        holder = s.has_placeholder()
        current = None if holder else s.ids[pos]
        ranked = self._ranked(s, [q.ids[:q.prompt_start + pos] for q in seqs])
        groups = sample_groups(len(s.train), self.group_size, self.topq, ctx.rng)
        found = propose(ranked, groups, top_k=self.top_k, min_candidates=self.min_candidates, current=current,
                        valid=lambda t: self._stable(s, pos, t))
        basis = [s.ids[pos], *[t for t in found.tokens if t != s.ids[pos]]]
        timings["candidates_s"] = time.monotonic() - clock

        clock = time.monotonic()
        grads, here = onehot_gradient(wb, seqs, pos, basis, self.lam, batch_size=self.batch_size)
        timings["gradient_s"] = time.monotonic() - clock

        clock = time.monotonic()
        order = sorted(range(1, len(basis)), key=lambda i: (grads[i], i))
        tried: list[tuple[int, Losses]] = []
        for i in order[:self.shortlist]:
            ids = [*s.ids[:pos], basis[i], *s.ids[pos + 1:]]
            trial = self._prompt(ctx, s, ids)
            tried.append((basis[i], losses(wb, self._sequences(ctx, s, trial, ids), batch_size=self.batch_size)))
        timings["rescoring_s"] = time.monotonic() - clock

        options = ([] if holder else [(s.ids[pos], here)]) + tried  # the current token first: it wins ties
        if not options:
            raise ConfigError("no candidate token survived the filters at this position; raise top_k or rank_depth")
        chosen, chosen_losses = min(options, key=lambda o: o[1].total(self.lam))
        changed = chosen != s.ids[pos]
        reason = self._reason(wb, holder, s.ids[pos], here, chosen, chosen_losses, tried)
        s.ids[pos] = chosen
        s.ids, s.pos, wrapped = self._advance(wb, s.ids, pos, s.placeholder, cut=changed)
        new = self._adopt(ctx, state, s, pos, chosen, chosen_losses) if changed else []
        s.event = {
            "step": state.step, "position": pos, "placeholder": holder,
            "current_token": None if holder else wb.decode([basis[0]]),
            "candidates": [{"token": wb.decode([t]), "id": t, "gradient": round(grads[i], 6)}
                           for i, t in enumerate(basis)],
            "k": found.k, "groups": [list(g) for g in found.groups],
            "current_loss": None if holder else _loss_record(here, self.lam),
            "shortlist": [{"token": wb.decode([t]), **_loss_record(L, self.lam)} for t, L in tried],
            "chosen": wb.decode([chosen]), "changed": changed, "reason": reason, "wrapped": wrapped,
            "prompt": wb.decode(s.real_ids()).strip(),
            **{k: round(v, 3) for k, v in timings.items()},
        }
        return new

    def _adopt(self, ctx: OptimizationContext, state: OptimizationState, s: _Search, pos: int, chosen: int,
               chosen_losses: Losses) -> list[Candidate]:
        """The prompt with the new token at `pos` as a candidate; a prompt met before becomes current again."""
        prompt = self._prompt(ctx, s, s.real_ids())
        cand = ctx.new_candidate(state, prompt, parent=s.current.id, origin="greater",
                                 data={"position": pos, "token": s.wb.decode([chosen]),
                                       "loss": chosen_losses.total(self.lam), "tokens": s.real_ids()})
        if cand is not None:
            return [cand]
        met = state.find(prompt)  # back to a prompt met before: it is the current one again (already scored)
        assert met is not None
        s.current = met
        return []

    def select(self, ctx: OptimizationContext, state: OptimizationState, proposals: list[Candidate]) -> None:
        s = self._state(state)
        for cand in proposals:
            ctx.score(cand, s.dev_sample, self.rank_key)
            s.current = cand
        state.frontier = [s.current.id]
        dev = s.current.scores.get(self.rank_key)
        ctx.record_event({**s.event, "dev_sample": dev, "candidate": s.current.id})
        log.info("greater step %d, position %d: %s; dev sample %.3f", state.step, s.event["position"],
                 s.event["reason"], dev if dev is not None else float("nan"))
        if state.step + 1 >= self.steps:
            state.done = True

    # -- helpers ---------------------------------------------------------------------------------------------
    @staticmethod
    def _sequences(ctx: OptimizationContext, s: _Search, prompt: Prompt, ids: list[int]) -> list[LossSequence]:
        """Reasoning under `prompt` for the training examples (metered, cached), and their loss sequences."""
        contexts = ctx.evaluator.answer_contexts(prompt, s.train)
        return [build_sequence(s.wb, prompt, ids, e.input, c.prefill, e.target)
                for e, c in zip(s.train, contexts, strict=True)]

    def _ranked(self, s: _Search, prefixes: list[tuple[int, ...]]) -> list[list[int]]:
        """Each example's allowed next tokens after its prefix, most probable first (`rank_depth` of them)."""
        import torch

        if not s.allowed:
            vocab = s.wb.embedding_matrix.shape[0]
            s.allowed = [allowed_token(s.wb.tokenizer.decode([t])) for t in range(vocab)]
        mask = torch.tensor(s.allowed, device=s.wb.embedding_matrix.device)
        ranked: list[list[int]] = []
        for start in range(0, len(prefixes), self.batch_size):
            logits = next_token_logits(s.wb, prefixes[start:start + self.batch_size]).float()
            logits = logits.masked_fill(~mask[: logits.shape[-1]], float("-inf"))
            ranked += torch.topk(logits, min(self.rank_depth, int(mask.sum())), dim=-1).indices.tolist()
        return ranked

    @staticmethod
    def _stable(s: _Search, pos: int, token: int) -> bool:
        """Whether the prompt with `token` at `pos` re-tokenizes to the same ids (so every backend sees them)."""
        ids = [*s.ids[:pos], token, *s.ids[pos + 1:]]
        ids = [t for t in ids if t != s.placeholder]
        return s.wb.encode(s.wb.decode(ids).strip()) == ids

    def _advance(self, wb: WhiteBox, ids: list[int], pos: int, placeholder: int,
                 cut: bool) -> tuple[list[int], int, bool]:
        """Next position: cut at a newly chosen sentence end, grow at the end, or start over from the left."""
        token = wb.decode([ids[pos]])
        if cut and ends_sentence(token) and pos < len(ids) - 1:
            return ids[:pos + 1], 0, True
        if pos < len(ids) - 1:
            return ids, pos + 1, False
        if ends_sentence(token) or len(ids) >= self.max_prompt_tokens:
            return ids, 0, True
        return [*ids, placeholder], pos + 1, False

    def _reason(self, wb: WhiteBox, holder: bool, old: int, here: Losses, chosen: int, chosen_losses: Losses,
                tried: list[tuple[int, Losses]]) -> str:
        new = f"{wb.decode([chosen])!r} (loss {chosen_losses.total(self.lam):.4f})"
        if holder:
            return f"grew the prompt: {new} was the best of {len(tried)} shortlisted tokens"
        if chosen == old:
            alternatives = min((L.total(self.lam) for _, L in tried), default=float("nan"))
            return (f"kept {wb.decode([old])!r}: its loss {here.total(self.lam):.4f} ≤ the best shortlisted "
                    f"alternative's {alternatives:.4f}")
        return f"replaced {wb.decode([old])!r} (loss {here.total(self.lam):.4f}) by {new}"


def _loss_record(values: Losses, lam: float) -> dict[str, Any]:
    return {"loss": round(values.total(lam), 6), "ce": round(values.mean_ce, 6),
            "nll": round(sum(values.nll) / max(1, len(values.nll)), 6)}
