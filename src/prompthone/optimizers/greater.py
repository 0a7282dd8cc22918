"""GREATER — Gradients over Reasoning (Das et al., ICLR 2025): a small white-box model optimizes its own prompt.

No meta model writes feedback: the task model's own next-token distribution proposes tokens and its own
gradients choose among them. The prompt p follows the input x (`instruction_position="after"`), the model
reasons before answering, and the answer is read after an extractor. One step optimizes one position, left
to right, as the reference code does (psunlpgroup/GreaTer `llm_opt/gcg/greater_opt.py`: `morph_control`,
`token_gradients`; `llm_opt/base/attack_manager.py`: `selection_loss`, `logits_batched_gen`):

1. Reasoning: greedy reasoning r per training example under the prompt as it stands, up to 1024 new tokens
   (the reference's `max_new_tokens`; metered, cached).
2. Candidates (`greater_candidates`): top-k allowed tokens of the model's distribution at the position given
   x ⊕ p[:pos], the previous position's token excluded; intersection over random groups of `group_size`
   examples, union over `topq` groups; below `min_candidates`, k grows by `k_step` (2) and the groups are drawn
   again. The current token is added (the gradient is taken at it).
3. Gradient over reasoning (`greater_loss`): CE(gold answer | x ⊕ p ⊕ r ⊕ extractor) with the answer logits
   divided by `answer_temperature` (0.2) + λ · mean NLL of the prompt tokens, summed over examples, with
   respect to a one-hot vector over the candidates.
4. Selection: the `shortlist` (3) candidates with the most negative gradient, the current token among them only
   if its gradient puts it there, are tried with reasoning regenerated; the lowest error rate (a gold answer
   token off the argmax) + `selection_lam` (0.02, the reference's λ/10) · prompt NLL wins, the later one in
   gradient order on a tie; past half the initial prompt, a shortlisted sentence end is taken at once. So a
   step may put a worse token in place, as in the reference; the position moves on either way. Candidates,
   gradients, losses, choice and reason go to events.jsonl.

After its last position the prompt grows by the reference's placeholder (the "_" token, seen by the next step's
reasoning and gradient and replaced there) unless the last token is a "." or the prompt is `max_prompt_tokens`
long; positions then start over from the left. The extractor (`extractor="auto"`) is the reference's with its
format hint, "Therefore, the final answer (use exact format: 'A' or 'B') is", listing the task's labels (the
plain `DEFAULT_EXTRACTOR` without labels). The initial prompt is the reference's (README, run scripts). Other
defaults are the paper's and the reference's: top-k 10, topq 5, groups of 5, ≥ 6 candidates, λ 0.2, shortlist 3,
50 training examples, 100 steps. Our former rules stay as options: `selection="loss"` (CE + λ·NLL),
`keep_current=True`, `k_step=10`, `exclude_previous=False`, `take_sentence_end=False`, `answer_temperature=1`,
`cut_at_sentence_end=True`, `reasoning_tokens=256`.

Why it differs on purpose (`GREATER.departures`): the answer is scored after the extractor and a space, with
no "$" marker, because our evaluator reads labels or a parsed answer there on every backend (and open-answer
tasks get no hand-written hint); a prompt is one instruction after the input, so the "Use" the reference appends
to every input is the prompt's first, optimized token; the NLL target at the relaxed position is the candidates'
weighted likelihood, so the gradient is that of the loss a hard swap is measured by; at position 0 nothing is
excluded (the reference's `control_toks[pos-1]` there reads the prompt's last token, an indexing artifact); the
placeholder is never chosen (it is not an allowed token); growth stops at `max_prompt_tokens` and k at
`rank_depth` (the reference's k loop never ends when no group agrees); a candidate must re-tokenize to the same
ids, so every backend reads the prompt the optimizer saw; the result is chosen on a dev sample, like every
method's; prompts and reasoning use prompthone's rendering, the same for every method and backend.

Cost is dominated by generation: (1 + shortlist) × n_train reasoning generations per step plus a dev-sample
evaluation of every changed prompt (budgets count those calls; forward/backward passes are timed in events.jsonl).
A batch of reasoning waits for its longest member, and a reasoning that never concludes runs to the cap, so on
CPU the cap decides a step's time. The default stays 1024, as in the reference; CPU runs should set a smaller
`reasoning_tokens` (and `n_train`).
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
from prompthone.optimizers.cost import StepCost, TaskShape
from prompthone.optimizers.greater_candidates import (
    Choice,
    allowed_token,
    choose,
    ends_sentence,
    placeholder_token,
    propose,
    sample_groups,
    shortlist,
)
from prompthone.optimizers.greater_loss import (
    Losses,
    LossSequence,
    build_sequence,
    format_extractor,
    losses,
    onehot_gradient,
)
from prompthone.prompts.prompt import Prompt
from prompthone.tasks.example import Example

log = logging.getLogger(__name__)

#: The reference's initial prompt (README and run scripts: `control_init` " proper logical reasoning and think step
#: by step. Finally give the actual correct answer." after the ". Use" it appends to every input);
#: `init=task` starts from the task's instruction.
DEFAULT_INIT = "Use proper logical reasoning and think step by step. Finally give the actual correct answer."
SELECTIONS = ("errors", "loss")


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
    #: the initial prompt's length in tokens (a sentence end is taken at once from half of it on)
    initial_len: int = 0

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
    departures: ClassVar[tuple[str, ...]] = (
        "the answer is scored after the extractor and a space, with no '$' marker; the format hint lists the "
        "task's labels, and open-answer tasks get the plain extractor (the reference writes a hint per task)",
        "'Use' of the initial prompt is optimized with the rest (the reference appends '. Use' to every input "
        "and optimizes from 'proper')",
        "the prompt NLL at the optimized position is the candidates' weighted log-probability, so the gradient "
        "includes each candidate's own likelihood (the reference's target there stays the current token)",
        "at position 0 no token is excluded (the reference's index -1 excludes the prompt's last token)",
        "the '_' placeholder is never chosen (the reference can keep it and append another)",
        "the prompt stops growing at max_prompt_tokens (48) and k at rank_depth (200); the reference has no bound",
        "a candidate must leave the prompt re-tokenizing to the same ids, so every backend reads the same prompt",
        "every changed prompt is scored on a dev sample and the result is chosen on dev (the reference evaluates "
        "its logged prompts apart)",
        "prompts and reasoning use prompthone's rendering (input, prompt line, 'Answer:' cue; reasoning stops at "
        "a new 'Input:' line)",
    )

    steps: int = 100
    n_train: int = 50
    top_k: int = 10
    k_step: int = 2
    topq: int = 5
    group_size: int = 5
    min_candidates: int = 6
    exclude_previous: bool = True
    shortlist: int = 3
    lam: float = 0.2
    answer_temperature: float = 0.2
    selection: str = "errors"
    selection_lam: float = 0.02
    keep_current: bool = False
    take_sentence_end: bool = True
    reasoning_tokens: int = 1024
    max_prompt_tokens: int = 48
    cut_at_sentence_end: bool = False
    rank_depth: int = 200
    dev_samples: int = 50
    batch_size: int = 8
    init: str = DEFAULT_INIT
    extractor: str = "auto"

    def __post_init__(self) -> None:
        self.require_positive("steps", "n_train", "top_k", "k_step", "topq", "group_size", "min_candidates",
                              "shortlist", "max_prompt_tokens", "rank_depth", "dev_samples", "batch_size")
        if self.reasoning_tokens < 0:
            raise ConfigError(f"reasoning_tokens must be ≥ 0, got {self.reasoning_tokens}")
        if self.lam < 0 or self.selection_lam < 0:
            raise ConfigError(f"lam and selection_lam must be ≥ 0, got {self.lam} and {self.selection_lam}")
        if not self.answer_temperature > 0:
            raise ConfigError(f"answer_temperature must be > 0, got {self.answer_temperature}")
        if self.selection not in SELECTIONS:
            raise ConfigError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")

    def step_cost(self, shape: TaskShape) -> StepCost:
        """Seed and initial prompt on the dev sample; per step the reasoning of each shortlisted token on the training
        examples and a changed prompt on the dev sample (two calls an example: they reason). Gradients are no calls."""
        n, scored = min(self.n_train, shape.train), 2 * min(self.dev_samples, shape.dev or shape.train)
        first = 2 * scored + (1 + self.shortlist) * n + scored  # step 1 also reasons with the current prompt
        return StepCost("step", first, 0, self.shortlist * n + scored, 0, self.steps, ("n_train", "shortlist",
                                                                                        "dev_samples"))

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
        placeholder = placeholder_token(backend)
        if not ids:
            ids = [placeholder]
        seed = state.pool[0]
        ctx.score(seed, dev_sample, self.rank_key)
        search = _Search(backend, ids, 0, placeholder, train, dev_sample, seed, initial_len=len(ids))
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
        extractor = format_extractor(ctx.task.labels) if self.extractor == "auto" else self.extractor
        return replace(ctx.seed_prompt, instruction=s.wb.decode(ids).strip(), instruction_position="after",
                       reasoning_tokens=self.reasoning_tokens, extractor=extractor)

    def _key(self, values: Losses) -> float:
        """What selection minimizes: the error rate + selection_lam·NLL, or (`selection='loss'`) CE + λ·NLL."""
        return values.error_total(self.selection_lam) if self.selection == "errors" else values.total(self.lam)

    # -- one position ----------------------------------------------------------------------------------------
    def propose(self, ctx: OptimizationContext, state: OptimizationState) -> list[Candidate]:
        s = self._state(state)
        wb, pos = s.wb, s.pos
        timings: dict[str, float] = {}
        clock = time.monotonic()

        # The reasoning sees the prompt as it is, the placeholder included (as the reference's does).
        seqs = self._sequences(ctx, s, self._prompt(ctx, s, s.ids), s.ids)
        timings["reasoning_s"] = time.monotonic() - clock

        clock = time.monotonic()
        holder = s.has_placeholder()
        current = None if holder else s.ids[pos]
        ranked = self._ranked(s, [q.ids[:q.prompt_start + pos] for q in seqs])
        found = propose(ranked, sample_groups(len(s.train), self.group_size, self.topq, ctx.rng),
                        top_k=self.top_k, k_step=self.k_step, min_candidates=self.min_candidates, current=current,
                        valid=lambda t: self._stable(s, pos, t),
                        exclude=s.ids[pos - 1] if self.exclude_previous and pos > 0 else None,
                        regroup=lambda: sample_groups(len(s.train), self.group_size, self.topq, ctx.rng))
        basis = [s.ids[pos], *[t for t in found.tokens if t != s.ids[pos]]]
        timings["candidates_s"] = time.monotonic() - clock

        clock = time.monotonic()
        grads, here = onehot_gradient(wb, seqs, pos, basis, self.lam, batch_size=self.batch_size,
                                      temperature=self.answer_temperature)
        timings["gradient_s"] = time.monotonic() - clock

        clock = time.monotonic()
        protected = self.keep_current and not holder
        order = [basis[i] for i in shortlist(basis, grads, self.shortlist, skip_first=holder or protected)]
        if not order and not protected:
            raise ConfigError("no candidate token survived the filters at this position; raise top_k or rank_depth")
        choice = choose(order, lambda t: self._measure(ctx, s, pos, t, here), self._key,
                        take_at_once=lambda t: self._sentence_end_now(s, pos, t),
                        current=(s.ids[pos], here) if protected else None)
        timings["rescoring_s"] = time.monotonic() - clock

        chosen = choice.token
        changed = chosen != s.ids[pos]
        reason = self._reason(wb, holder, s.ids[pos], here, choice)
        s.ids[pos] = chosen
        s.ids, s.pos, wrapped = self._advance(wb, s.ids, pos, s.placeholder, cut=changed)
        new = self._adopt(ctx, state, s, pos, chosen, choice.losses) if changed else []
        s.event = {
            "step": state.step, "position": pos, "placeholder": holder,
            "current_token": None if holder else wb.decode([basis[0]]),
            "candidates": [{"token": wb.decode([t]), "id": t, "gradient": round(grads[i], 6)}
                           for i, t in enumerate(basis)],
            "k": found.k, "groups": [list(g) for g in found.groups],
            "current_loss": None if holder else self._record(here),
            "shortlist": [{"token": wb.decode([t]), **self._record(L)} for t, L in choice.tried],
            "chosen": wb.decode([chosen]), "changed": changed, "how": choice.how, "reason": reason,
            "wrapped": wrapped, "prompt": wb.decode(s.real_ids()).strip(),
            **{k: round(v, 3) for k, v in timings.items()},
        }
        return new

    def _measure(self, ctx: OptimizationContext, s: _Search, pos: int, token: int, here: Losses) -> Losses:
        """The loss terms with `token` at `pos`, its reasoning regenerated (the current token's are known)."""
        if token == s.ids[pos]:
            return here
        ids = [*s.ids[:pos], token, *s.ids[pos + 1:]]
        seqs = self._sequences(ctx, s, self._prompt(ctx, s, ids), ids)
        return losses(s.wb, seqs, batch_size=self.batch_size, temperature=self.answer_temperature)

    def _sentence_end_now(self, s: _Search, pos: int, token: int) -> bool:
        """The reference's rule: past half the initial prompt, a shortlisted sentence end is taken at once."""
        return self.take_sentence_end and pos >= 0.5 * s.initial_len and ends_sentence(s.wb.decode([token]))

    def _adopt(self, ctx: OptimizationContext, state: OptimizationState, s: _Search, pos: int, chosen: int,
               chosen_losses: Losses) -> list[Candidate]:
        """The prompt with the new token at `pos` as a candidate; a prompt met before becomes current again."""
        prompt = self._prompt(ctx, s, s.real_ids())
        cand = ctx.new_candidate(state, prompt, parent=s.current.id, origin="greater",
                                 data={"position": pos, "token": s.wb.decode([chosen]),
                                       "loss": self._key(chosen_losses), "tokens": s.real_ids()})
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
        """Next position: grow at the end or start over from the left (with `cut_at_sentence_end`, a newly chosen
        sentence end inside the prompt also cuts it there and starts over)."""
        token = wb.decode([ids[pos]])
        if cut and self.cut_at_sentence_end and ends_sentence(token) and pos < len(ids) - 1:
            return ids[:pos + 1], 0, True
        if pos < len(ids) - 1:
            return ids, pos + 1, False
        if ends_sentence(token) or len(ids) >= self.max_prompt_tokens:
            return ids, 0, True
        return [*ids, placeholder], pos + 1, False

    def _record(self, values: Losses) -> dict[str, Any]:
        return {"loss": round(self._key(values), 6), "errors": round(values.error_rate, 6),
                "ce": round(values.mean_ce, 6), "nll": round(values.mean_nll, 6)}

    def _reason(self, wb: WhiteBox, holder: bool, old: int, here: Losses, choice: Choice[Losses]) -> str:
        new = f"{wb.decode([choice.token])!r} (loss {self._key(choice.losses):.4f})"
        measured = f"{len(choice.tried)} shortlisted token{'s' if len(choice.tried) != 1 else ''}"
        if choice.how == "sentence-end":
            how = f"took the sentence end {new} at once (past half the initial prompt)"
        elif choice.how == "kept":
            best = min((self._key(L) for _, L in choice.tried), default=float("nan"))
            return (f"kept {wb.decode([old])!r}: its loss {self._key(here):.4f} ≤ the best shortlisted "
                    f"alternative's {best:.4f}")
        else:
            how = f"{new} was the best of {measured}"
        if holder:
            return f"grew the prompt: {how}"
        if choice.token == old:
            return f"kept {wb.decode([old])!r}: {how}"
        return f"replaced {wb.decode([old])!r} (loss {self._key(here):.4f}): {how}"
