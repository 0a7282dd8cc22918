"""GREATER's loss and its gradient over reasoning, on a white-box model (torch).

Das et al. (2025) §3.3: for each training example the sequence is the chat-rendered input with the prompt
after it, the model's own reasoning, the answer extractor and the gold answer. The loss is the cross-entropy
of the gold answer tokens read at `temperature` (the reference, `greater_opt.token_gradients` and
`attack_manager.Prompter.selection_loss`, divides the answer logits by 0.2) plus λ × the mean negative
log-likelihood of the prompt tokens (fluency, at temperature 1), summed over examples. At the position being
optimized the input embedding is relaxed to `w @ E[basis]`, with `w` a one-hot vector over the candidate tokens
(the current token first); d loss / d w ranks the candidates: a more negative coordinate is a token expected to
lower the loss. The reasoning tokens are fixed, but the gradient flows through their positions' attention to
the prompt: that is the "gradient over reasoning".

The prompt NLL at the relaxed position is the w-weighted log-probability of the basis tokens there, so the
gradient is the derivative of the loss a hard swap is measured by (the candidate's own likelihood included); the
reference keeps the current token as that position's target, so its gradient leaves that term out.

Each example also gets an error (1 if any gold answer token is not the argmax at its place, else 0): the mean is
the error rate the reference selects by (`Prompter.selection_loss`'s `focused_mist_rate`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prompthone.models.base import WhiteBox
from prompthone.models.torch_model import padded
from prompthone.prompts.prompt import DEFAULT_EXTRACTOR, INPUT_PREFIX, Prompt, render


def format_extractor(labels: Sequence[str] | None) -> str:
    """The reference's extractor with its format hint (its run scripts' `extractor_text`, "Therefore, the final
    answer (use exact format: '$A' or '$B') is $"), listing `labels` without the "$" marker: the plain extractor
    when there are no labels."""
    if not labels:
        return DEFAULT_EXTRACTOR
    listing = " or ".join(f"'{label}'" for label in labels)
    return f"Therefore, the final answer (use exact format: {listing}) is"


@dataclass(frozen=True)
class LossSequence:
    """One example's token ids and where the prompt and the answer sit in them."""

    ids: tuple[int, ...]
    prompt_start: int
    prompt_len: int
    answer_len: int


@dataclass(frozen=True)
class Losses:
    """Per-example loss terms: answer cross-entropy, prompt NLL and answer error (floats, for records and selection)."""

    ce: tuple[float, ...]
    nll: tuple[float, ...]
    #: 1.0 where a gold answer token is not the model's argmax there (teacher-forced), else 0.0
    errors: tuple[float, ...] = ()

    def total(self, lam: float) -> float:
        """Mean over examples of ce + λ·nll."""
        n = max(1, len(self.ce))
        return sum(c + lam * p for c, p in zip(self.ce, self.nll, strict=True)) / n

    def error_total(self, lam: float) -> float:
        """The reference's selection loss: error rate + λ·mean nll."""
        return self.error_rate + lam * self.mean_nll

    @property
    def mean_ce(self) -> float:
        return sum(self.ce) / max(1, len(self.ce))

    @property
    def mean_nll(self) -> float:
        return sum(self.nll) / max(1, len(self.nll))

    @property
    def error_rate(self) -> float:
        return sum(self.errors) / max(1, len(self.errors))


def build_sequence(wb: WhiteBox, prompt: Prompt, prompt_ids: Sequence[int], example_input: str, prefill: str,
                   answer: str) -> LossSequence:
    """The ids of chat(input ⊕ prompt ⊕ cue) ⊕ prefill (reasoning ⊕ extractor) ⊕ " answer".

    `prompt` (instruction after the input) renders the text; the prompt's tokens are spliced in as
    `prompt_ids` rather than re-tokenized, so the position being optimized is exactly one token. The text
    around them is tokenized apart; the cuts fall on newlines, which the tokenizer never merges across.
    """
    text = wb.render_chat(render(prompt, example_input), prefill)
    marker = f"{INPUT_PREFIX} {example_input}\n"
    where = text.rfind(marker + prompt.instruction.strip()) if prompt.instruction.strip() else text.rfind(marker)
    if where < 0:
        raise ValueError("the prompt is not where an instruction placed after the input should be")
    start = where + len(marker)
    end = start + len(prompt.instruction.strip())
    head = wb.encode(text[:start])
    # What follows the prompt's tokens: "\nAnswer:..." (for an empty instruction the renderer wrote no line
    # of its own, but the spliced tokens take one).
    tail = wb.encode(text[end:] if prompt.instruction.strip() else "\n" + text[start:])
    answer_ids = wb.encode(" " + answer.strip())
    ids = (*head, *prompt_ids, *tail, *answer_ids)
    return LossSequence(tuple(ids), len(head), len(prompt_ids), len(answer_ids))


def _batch(wb: WhiteBox, seqs: Sequence[LossSequence]) -> tuple[Any, Any, Any]:
    import torch

    ids, mask = padded([s.ids for s in seqs])
    device = wb.embedding_matrix.device
    ids, mask = ids.to(device), mask.to(device)
    return ids, mask, torch.nn.functional.embedding(ids, wb.embedding_matrix)


def _terms(wb: WhiteBox, seqs: Sequence[LossSequence], *, position: int | None = None,
           basis: Sequence[int] | None = None, weights: Any = None,
           temperature: float = 1.0) -> tuple[Any, Any, Any]:
    """(ce, nll, errors) tensors per example; with `weights`, the prompt token at `position` is relaxed over
    `basis`. The answer tokens are read at `temperature` (logits divided by it), the prompt tokens at 1."""
    import torch

    ids, mask, embeds = _batch(wb, seqs)
    rows_all = torch.arange(len(seqs), device=ids.device)
    if weights is not None:
        assert position is not None and basis is not None
        basis_t = torch.tensor(list(basis), device=ids.device)
        soft = weights.to(wb.embedding_matrix.dtype) @ wb.embedding_matrix[basis_t]
        embeds = embeds.clone()
        embeds[rows_all, torch.tensor([s.prompt_start + position for s in seqs], device=ids.device)] = soft
    # Each token t is predicted at t - 1: collect the answer and prompt positions of every example.
    rows: list[int] = []
    cols: list[int] = []
    spans: list[tuple[int, int, int]] = []  # (first index into rows/cols, n answer, n prompt) per example
    for row, s in enumerate(seqs):
        first = len(rows)
        answer_at = range(len(s.ids) - s.answer_len, len(s.ids))
        prompt_at = range(s.prompt_start, s.prompt_start + s.prompt_len)
        for t in (*answer_at, *prompt_at):
            rows.append(row)
            cols.append(t - 1)
        spans.append((first, s.answer_len, s.prompt_len))
    positions = (torch.tensor(rows, device=ids.device), torch.tensor(cols, device=ids.device))
    logits = wb.logits(inputs_embeds=embeds, attention_mask=mask, positions=positions)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    targets = ids[positions[0], positions[1] + 1]
    answer_rows = torch.tensor([i for f, na, np_ in spans for i in range(f, f + na)], device=ids.device)
    wrong = logits[answer_rows].argmax(dim=-1) != targets[answer_rows]
    if temperature != 1.0:
        scale = torch.ones(len(rows), 1, dtype=logits.dtype, device=ids.device)
        scale[answer_rows] = 1.0 / temperature
        logits = logits * scale
    logp = torch.log_softmax(logits, dim=-1)
    token_logp = logp.gather(1, targets[:, None])[:, 0]
    if weights is not None and position is not None:
        relaxed_at = [first + n_answer + position for first, n_answer, _ in spans]
        relaxed = logp[relaxed_at][:, basis_t] @ weights.to(logp.dtype)
        token_logp = token_logp.index_put((torch.tensor(relaxed_at, device=ids.device),), relaxed)
    ce = torch.stack([-token_logp[f:f + na].mean() for f, na, _ in spans])
    nll = torch.stack([-token_logp[f + na:f + na + np_].mean() if np_ else token_logp.new_zeros(())
                       for f, na, np_ in spans])
    errors, done = [], 0
    for _, na, _ in spans:
        errors.append(float(bool(wrong[done:done + na].any())))
        done += na
    return ce, nll, errors


def losses(wb: WhiteBox, seqs: Sequence[LossSequence], *, batch_size: int = 8, temperature: float = 1.0) -> Losses:
    """The loss terms of hard (ordinary) prompts, without gradients."""
    import torch

    ce: list[float] = []
    nll: list[float] = []
    errors: list[float] = []
    with torch.no_grad():
        for start in range(0, len(seqs), batch_size):
            c, p, e = _terms(wb, seqs[start:start + batch_size], temperature=temperature)
            ce += c.tolist()
            nll += p.tolist()
            errors += e
    return Losses(tuple(ce), tuple(nll), tuple(errors))


def onehot_gradient(wb: WhiteBox, seqs: Sequence[LossSequence], position: int, basis: Sequence[int], lam: float,
                    *, batch_size: int = 8, temperature: float = 1.0) -> tuple[list[float], Losses]:
    """d(Σ_examples ce + λ·nll)/d w at w = one-hot(basis[0]), and the loss terms at that point.

    `basis[0]` must be the token the sequences hold at `position` (the current token or a placeholder): the
    gradient is taken at the vertex of the simplex the prompt is actually at.
    """
    import torch

    matrix = wb.embedding_matrix
    weights = torch.zeros(len(basis), dtype=torch.promote_types(matrix.dtype, torch.float32), device=matrix.device)
    weights[0] = 1.0
    weights.requires_grad_(True)
    ce: list[float] = []
    nll: list[float] = []
    errors: list[float] = []
    for start in range(0, len(seqs), batch_size):
        c, p, e = _terms(wb, seqs[start:start + batch_size], position=position, basis=basis, weights=weights,
                         temperature=temperature)
        (c + lam * p).sum().backward()
        ce += c.detach().tolist()
        nll += p.detach().tolist()
        errors += e
    assert weights.grad is not None
    return weights.grad.tolist(), Losses(tuple(ce), tuple(nll), tuple(errors))


def relaxed_loss(wb: WhiteBox, seqs: Sequence[LossSequence], position: int, basis: Sequence[int], weights: Any,
                 lam: float, *, temperature: float = 1.0) -> float:
    """Σ_examples ce + λ·nll at any point `weights` of the relaxation (for finite-difference checks)."""
    import torch

    with torch.no_grad():
        c, p, _ = _terms(wb, seqs, position=position, basis=basis, weights=weights, temperature=temperature)
        return float((c + lam * p).sum())
