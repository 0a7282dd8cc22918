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


@pytest.mark.parametrize("lam", [0.0, 0.2])
def test_onehot_gradient_matches_finite_differences(lam: float) -> None:
    wb = TinyWhiteBox()
    grads, _ = onehot_gradient(wb, SEQS, POSITION, BASIS, lam, batch_size=1)  # two chunks: sums add up
    vertex = torch.zeros(len(BASIS), dtype=torch.float64)
    vertex[0] = 1.0
    # Central differences with ε = 1e-3: truncation error O(ε²); smaller steps drown in rounding, because
    # Llama's RMSNorm computes in float32 even in a float64 model.
    eps = 1e-3
    for c in range(len(BASIS)):
        step = torch.zeros_like(vertex)
        step[c] = eps
        numeric = (relaxed_loss(wb, SEQS, POSITION, BASIS, vertex + step, lam)
                   - relaxed_loss(wb, SEQS, POSITION, BASIS, vertex - step, lam)) / (2 * eps)
        assert grads[c] == pytest.approx(numeric, rel=1e-3, abs=1e-6)
    assert any(abs(g) > 1e-3 for g in grads)  # a non-trivial gradient, not zeros that trivially agree


def test_the_vertex_loss_equals_the_hard_prompt_loss() -> None:
    wb = TinyWhiteBox()
    _, at_vertex = onehot_gradient(wb, SEQS, POSITION, BASIS, 0.2)
    hard = losses(wb, SEQS)
    assert at_vertex.ce == pytest.approx(hard.ce, rel=1e-9)
    assert at_vertex.nll == pytest.approx(hard.nll, rel=1e-9)
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
