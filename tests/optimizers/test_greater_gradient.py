"""GREATER's gradient step on a tiny randomly initialised Llama: autograd agrees with finite differences."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from prompthone.models.torch_model import causal_lm_logits  # noqa: E402
from prompthone.optimizers.greater_loss import (  # noqa: E402
    LossSequence,
    losses,
    onehot_gradient,
    relaxed_loss,
)


class TinyWhiteBox:
    """The two white-box members the loss needs, around a 2-layer random Llama in float64."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        config = transformers.LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                          num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
        self.module = transformers.LlamaForCausalLM(config).double().eval()
        self.module.requires_grad_(False)

    @property
    def embedding_matrix(self) -> Any:
        return self.module.get_input_embeddings().weight

    def logits(self, **kwargs: Any) -> Any:
        return causal_lm_logits(self.module, **kwargs)


# Two examples of different lengths (so padding is exercised): prompt tokens at [3, 6) and [2, 5), answers last.
SEQS = [LossSequence((1, 5, 7, 11, 12, 13, 20, 21, 22, 30, 31), prompt_start=3, prompt_len=3, answer_len=2),
        LossSequence((1, 9, 11, 12, 13, 25, 26, 33), prompt_start=2, prompt_len=3, answer_len=1)]
POSITION = 1  # the prompt's middle token: 12 in both
BASIS = [12, 4, 17, 29]


@pytest.mark.parametrize(("lam", "temperature"), [(0.0, 1.0), (0.2, 1.0), (0.2, 0.2)])
def test_onehot_gradient_matches_finite_differences(lam: float, temperature: float) -> None:
    wb = TinyWhiteBox()
    grads, _ = onehot_gradient(wb, SEQS, POSITION, BASIS, lam, batch_size=1,  # two chunks: sums add up
                               temperature=temperature)
    vertex = torch.zeros(len(BASIS), dtype=torch.float64)
    vertex[0] = 1.0
    # Central differences with ε = 1e-3: truncation error O(ε²); smaller steps drown in rounding, because
    # Llama's RMSNorm computes in float32 even in a float64 model.
    eps = 1e-3
    for c in range(len(BASIS)):
        step = torch.zeros_like(vertex)
        step[c] = eps
        numeric = (relaxed_loss(wb, SEQS, POSITION, BASIS, vertex + step, lam, temperature=temperature)
                   - relaxed_loss(wb, SEQS, POSITION, BASIS, vertex - step, lam, temperature=temperature)) / (2 * eps)
        assert grads[c] == pytest.approx(numeric, rel=1e-3, abs=1e-6)
    assert any(abs(g) > 1e-3 for g in grads)  # a non-trivial gradient, not zeros that trivially agree


def test_the_vertex_loss_equals_the_hard_prompt_loss() -> None:
    wb = TinyWhiteBox()
    _, at_vertex = onehot_gradient(wb, SEQS, POSITION, BASIS, 0.2, temperature=0.2)
    hard = losses(wb, SEQS, temperature=0.2)
    assert at_vertex.ce == pytest.approx(hard.ce, rel=1e-9)
    assert at_vertex.nll == pytest.approx(hard.nll, rel=1e-9)
    assert at_vertex.errors == hard.errors
    assert hard.total(0.2) == pytest.approx(sum(c + 0.2 * n for c, n in zip(hard.ce, hard.nll, strict=True)) / 2)


def test_the_loss_moves_the_way_the_gradient_says() -> None:
    """Swapping in the candidate with the most negative gradient lowers the (relaxed) loss for a small step."""
    wb = TinyWhiteBox()
    grads, _ = onehot_gradient(wb, SEQS, POSITION, BASIS, 0.2)
    best = min(range(1, len(BASIS)), key=lambda c: grads[c])
    vertex = torch.zeros(len(BASIS), dtype=torch.float64)
    vertex[0] = 1.0
    toward = vertex.clone()
    toward[0], toward[best] = 0.99, 0.01
    moved = relaxed_loss(wb, SEQS, POSITION, BASIS, toward, 0.2)
    base = relaxed_loss(wb, SEQS, POSITION, BASIS, vertex, 0.2)
    assert (moved - base) == pytest.approx(0.01 * (grads[best] - grads[0]), rel=0.05)


def _by_hand(wb: TinyWhiteBox, seq: LossSequence, temperature: float) -> tuple[float, float, float]:
    """(answer CE at `temperature`, prompt NLL at 1, error) of one sequence from the model's full logits."""
    logits = wb.module(input_ids=torch.tensor([seq.ids])).logits[0]
    targets = torch.tensor(seq.ids[1:])
    answer = range(len(seq.ids) - seq.answer_len - 1, len(seq.ids) - 1)
    prompt = range(seq.prompt_start - 1, seq.prompt_start + seq.prompt_len - 1)
    cold = torch.log_softmax(logits / temperature, dim=-1)
    plain = torch.log_softmax(logits, dim=-1)
    ce = -sum(float(cold[i, targets[i]]) for i in answer) / len(answer)
    nll = -sum(float(plain[i, targets[i]]) for i in prompt) / len(prompt)
    error = float(any(int(logits[i].argmax()) != int(targets[i]) for i in answer))
    return ce, nll, error


def test_the_answer_is_read_at_temperature_and_the_prompt_at_one() -> None:
    """The reference divides the answer logits by 0.2 (`token_gradients`, `selection_loss`); the prompt NLL not."""
    wb = TinyWhiteBox()
    cold = losses(wb, SEQS, temperature=0.2)
    plain = losses(wb, SEQS)
    for i, seq in enumerate(SEQS):
        ce, nll, error = _by_hand(wb, seq, 0.2)
        assert cold.ce[i] == pytest.approx(ce, rel=1e-6)
        assert cold.nll[i] == pytest.approx(nll, rel=1e-6) and plain.nll[i] == pytest.approx(nll, rel=1e-6)
        assert cold.errors[i] == plain.errors[i] == error  # the argmax does not depend on the temperature
        assert plain.ce[i] == pytest.approx(_by_hand(wb, seq, 1.0)[0], rel=1e-6)
    assert cold.ce != pytest.approx(plain.ce)


def test_an_error_is_any_gold_answer_token_off_the_argmax() -> None:
    wb = TinyWhiteBox()
    seq = SEQS[0]
    # make the answer the model's own greedy continuation: no error; then change its last token: an error
    ids = list(seq.ids)
    for i in range(len(ids) - seq.answer_len, len(ids)):
        ids[i] = int(wb.module(input_ids=torch.tensor([ids[:i]])).logits[0, -1].argmax())
    right = LossSequence(tuple(ids), seq.prompt_start, seq.prompt_len, seq.answer_len)
    wrong = LossSequence((*ids[:-1], (ids[-1] + 1) % 40), seq.prompt_start, seq.prompt_len, seq.answer_len)
    measured = losses(wb, [right, wrong])
    assert measured.errors == (0.0, 1.0)
    assert measured.error_rate == 0.5
