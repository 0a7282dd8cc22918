"""Fine-tune the augmenting model on curated pairs (PAS, Zheng et al. 2024, §3.2: SFT of a small model).

Each pair becomes one supervised example: the chat the augmenter sees at inference (`Design.messages`, rendered
by the base model's own chat template, generation prompt included) followed by the pair's output and the
end-of-turn token. The loss counts the output tokens only, so the model learns to write complements, not to
predict user prompts, and learns to stop. LoRA (the default) trains low-rank updates of the attention and MLP
projections; `full` trains every weight.

The run writes into a staging directory beside `out_dir`: `losses.jsonl` is appended step by step (a crash
keeps the curve), then the weights are saved, `prompthone_adapter.json` is written last and the directory is
renamed into place, so an unfinished run never looks like an adapter. `TorchModel(gguf, adapter=out_dir)` or
`make_model("adapter:<out_dir>")` loads the result.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from prompthone._version import __version__
from prompthone.augment.designs import PAS, Design, get_design
from prompthone.augment.pairs import Pair
from prompthone.errors import ConfigError, InputError
from prompthone.models.adapters import PAS_EXTRA, check_out_dir, publish_adapter, staging_dir, write_adapter_metadata
from prompthone.models.base import file_fingerprint
from prompthone.models.torch_model import TorchModel, causal_lm_logits, padded

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_LEARNING_RATE = {"lora": 2e-4, "full": 2e-5}
IGNORE_INDEX = -100  # label of a token the loss skips (prompt and padding)
LOSSES_FILE = "losses.jsonl"

StepCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune: method, schedule and LoRA shape. `max_steps`, when set, overrides `epochs`.

    `learning_rate` None means the method's usual rate (2e-4 for LoRA, 2e-5 for full fine-tuning): read
    `lr` for the rate a run uses. `device` None means CUDA when available, else CPU.
    """

    method: str = "lora"
    epochs: int = 3
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int = 8
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = LORA_TARGETS
    max_length: int = 384
    eval_fraction: float = 0.1
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 0
    device: str | None = None
    log_every: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        checks = [
            (self.method in DEFAULT_LEARNING_RATE, f"method must be 'lora' or 'full', got {self.method!r}"),
            (self.epochs >= 1, f"epochs must be ≥ 1, got {self.epochs}"),
            (self.max_steps is None or self.max_steps >= 1, f"max_steps must be ≥ 1 or None, got {self.max_steps}"),
            (self.learning_rate is None or 0 < self.learning_rate < 1,
             f"learning_rate must be in (0, 1) (e.g. 2e-4 for LoRA), got {self.learning_rate}"),
            (self.batch_size >= 1, f"batch_size must be ≥ 1, got {self.batch_size}"),
            (self.lora_r >= 1, f"lora_r must be ≥ 1, got {self.lora_r}"),
            (self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}"),
            (0 <= self.lora_dropout < 1, f"lora_dropout must be in [0, 1), got {self.lora_dropout}"),
            (bool(self.target_modules) and all(isinstance(m, str) and m for m in self.target_modules),
             f"target_modules must name at least one module (e.g. {LORA_TARGETS[:2]}), got {self.target_modules}"),
            (self.max_length >= 8, f"max_length must be ≥ 8 tokens, got {self.max_length}"),
            (0 <= self.eval_fraction <= 0.5, f"eval_fraction must be in [0, 0.5], got {self.eval_fraction}"),
            (0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}"),
            (self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}"),
            (self.log_every >= 1, f"log_every must be ≥ 1, got {self.log_every}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def lr(self) -> float:
        """The learning rate a run uses: the one given, else the method's default."""
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATE[self.method]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "target_modules": list(self.target_modules), "lr": self.lr}


@dataclass(frozen=True)
class TrainResult:
    """What a run did: where the adapter is, the loss per step, held-out losses as (step, loss), step 0 first."""

    out_dir: Path
    losses: list[float]
    eval_losses: list[tuple[int, float]]
    train_pairs: int
    eval_pairs: int
    wall_time_s: float
    dropped_pairs: int = 0
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"out_dir": str(self.out_dir), "losses": self.losses, "eval_losses": [list(e) for e in self.eval_losses],
                "train_pairs": self.train_pairs, "eval_pairs": self.eval_pairs, "dropped_pairs": self.dropped_pairs,
                "wall_time_s": self.wall_time_s}


@dataclass(frozen=True)
class Example:
    """One tokenized pair: prompt + target ids, and labels that are IGNORE_INDEX on the prompt."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def target_tokens(self) -> int:
        return sum(label != IGNORE_INDEX for label in self.labels)


def _import_training() -> tuple[Any, Any]:
    try:
        import peft
        import torch
    except ImportError as exc:
        raise ConfigError(f"training an augmenter needs torch and peft: {PAS_EXTRA}") from exc
    return torch, peft


def encode_pair(model: TorchModel, design: Design, pair: Pair, max_length: int) -> Example | None:
    """The supervised example of a pair, cut to `max_length` tokens; None when the prompt alone fills it.

    Prompt and target are tokenized apart, as at inference (generation starts right after the prompt's ids).
    """
    eos = model.tokenizer.eos_token
    if not eos:
        raise ConfigError(f"{model.path.name} has no end-of-turn token; the augmenter could not learn to stop")
    prompt = model.encode(model.render_chat(design.messages(pair.prompt)))
    if len(prompt) >= max_length:
        return None
    target = model.encode(pair.output.strip() + eos)
    ids = (prompt + target)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt) + target)[:max_length]
    return Example(tuple(ids), tuple(labels))


def split_examples(examples: Sequence[Example], eval_fraction: float,
                   rng: random.Random) -> tuple[list[Example], list[Example]]:
    """(train, held-out): a seeded shuffle, then the first `eval_fraction` held out (≥ 1 pair when > 0)."""
    shuffled = list(examples)
    rng.shuffle(shuffled)
    n_eval = 0 if eval_fraction == 0 or len(shuffled) < 2 else min(len(shuffled) - 1,
                                                                    max(1, round(len(shuffled) * eval_fraction)))
    return shuffled[n_eval:], shuffled[:n_eval]


def token_nll(lm: Any, batch: Sequence[Example], pad_id: int, device: Any) -> tuple[torch.Tensor, int]:
    """Summed negative log-likelihood of the labelled tokens of a batch, and how many there are.

    The vocabulary projection (49k rows for SmolLM2) runs at the labelled positions only: prompts cost no head.
    """
    ids, mask = padded([e.input_ids for e in batch], pad_id)
    labels, _ = padded([e.labels for e in batch], IGNORE_INDEX)
    ids, mask, labels = ids.to(device), mask.to(device), labels.to(device)
    rows, cols = (labels[:, 1:] != IGNORE_INDEX).nonzero(as_tuple=True)  # position t predicts token t + 1
    logits = causal_lm_logits(lm, input_ids=ids, attention_mask=mask, positions=(rows, cols))
    targets = labels[rows, cols + 1]
    import torch.nn.functional as functional

    return functional.cross_entropy(logits.float(), targets, reduction="sum"), int(targets.numel())


def _batches(examples: Sequence[Example], size: int) -> Iterator[list[Example]]:
    for start in range(0, len(examples), size):
        yield list(examples[start:start + size])


def evaluate_loss(lm: Any, examples: Sequence[Example], *, batch_size: int, pad_id: int, device: Any) -> float:
    """Mean NLL per target token over `examples` (no gradients, dropout off)."""
    import torch

    was_training = lm.training
    lm.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in _batches(examples, batch_size):
            nll, n = token_nll(lm, batch, pad_id, device)
            total, count = total + float(nll), count + n
    lm.train(was_training)
    return total / max(count, 1)


@dataclass
class _Run:
    """The state one training run threads through its steps: the model, data, log file and curves."""

    model: TorchModel
    lm: Any  # the causal LM the loss runs through (LoRA layers injected in place for `lora`)
    trainable: Any  # what gets saved: the PeftModel for `lora`, the causal LM for `full`
    train: list[Example]
    held_out: list[Example]
    config: TrainConfig
    log_path: Path
    on_step: StepCallback | None
    started: float = field(default_factory=time.perf_counter)
    losses: list[float] = field(default_factory=list)
    eval_losses: list[tuple[int, float]] = field(default_factory=list)

    @property
    def pad_id(self) -> int:
        tok = self.model.tokenizer
        return int(tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)

    def record(self, entry: dict[str, Any]) -> None:
        """Append one line to losses.jsonl (flushed per line) and tell the caller."""
        entry["elapsed_s"] = round(time.perf_counter() - self.started, 3)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        if self.on_step is not None:
            self.on_step(entry)

    def evaluate(self, step: int, epoch: int) -> None:
        if not self.held_out:
            return
        loss = evaluate_loss(self.lm, self.held_out, batch_size=self.config.batch_size, pad_id=self.pad_id,
                             device=self.model.device)
        self.eval_losses.append((step, loss))
        self.record({"step": step, "epoch": epoch, "eval_loss": loss})
        log.info("step %d: held-out loss %.4f", step, loss)


def _linear_schedule(total: int, warmup: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return factor


def _step(run: _Run, batch: list[Example], optimizer: Any, scheduler: Any, params: list[Any]) -> tuple[float, int]:
    """One optimizer step on a batch: mean NLL per target token, clipped gradients. Returns (loss, tokens)."""
    import torch

    nll, count = token_nll(run.lm, batch, run.pad_id, run.model.device)
    loss = nll / max(count, 1)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, run.config.max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.detach().item(), count


def _fit(run: _Run, progress: bool) -> None:
    """AdamW with linear warmup and decay over the run's steps; held-out loss before training and after each epoch."""
    import torch

    config = run.config
    total = config.max_steps or config.epochs * math.ceil(len(run.train) / config.batch_size)
    params = [p for p in run.trainable.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_schedule(total, int(total * config.warmup_ratio)))
    rng = random.Random(config.seed + 1)
    run.evaluate(0, 0)
    run.lm.train()
    step, epoch = 0, 0
    with Progress(TextColumn("[bold]training"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress) as bar:
        task = bar.add_task("training", total=total, info="")
        while step < total:
            epoch += 1
            order = list(run.train)
            rng.shuffle(order)
            for batch in _batches(order, config.batch_size):
                lr = scheduler.get_last_lr()[0]
                loss, tokens = _step(run, batch, optimizer, scheduler, params)
                step += 1
                run.losses.append(loss)
                run.record({"step": step, "epoch": epoch, "loss": loss, "lr": lr, "tokens": tokens})
                bar.update(task, completed=step, info=f"loss {loss:.3f}")
                if step % config.log_every == 0 or step == total:
                    log.info("step %d/%d (epoch %d): loss %.4f, lr %.2e", step, total, epoch, loss, lr)
                if step >= total:
                    break
            run.evaluate(step, epoch)
    run.lm.eval()


def _make_trainable(model: TorchModel, config: TrainConfig, peft: Any) -> tuple[Any, Any]:
    """(causal LM to run, module to save and optimize): LoRA layers injected, or every weight unfrozen."""
    if config.method == "full":
        model.module.requires_grad_(True)
        return model.module, model.module
    lora = peft.LoraConfig(task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha,
                           lora_dropout=config.lora_dropout, target_modules=list(config.target_modules))
    try:
        wrapped = peft.get_peft_model(model.module, lora)
    except ValueError as exc:  # a target module the architecture does not have
        raise ConfigError(f"cannot apply LoRA to {model.path.name}: {exc}") from None
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    log.info("LoRA r=%d on %s: %d trainable parameters", config.lora_r, ",".join(config.target_modules), trainable)
    return wrapped.get_base_model(), wrapped


def _versions(torch: Any, peft: Any) -> dict[str, str]:
    import transformers

    return {"prompthone": __version__, "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}


def _encode_all(model: TorchModel, design: Design, pairs: Sequence[Pair], config: TrainConfig) -> list[Example]:
    mismatched = sum(p.design != design.name for p in pairs)
    if mismatched:
        log.warning("%d of %d pairs were made for another design than %r; training on them anyway",
                    mismatched, len(pairs), design.name)
    examples = [e for e in (encode_pair(model, design, p, config.max_length) for p in pairs) if e is not None]
    if len(examples) < len(pairs):
        log.warning("dropped %d of %d pairs whose prompt alone fills max_length=%d tokens",
                    len(pairs) - len(examples), len(pairs), config.max_length)
    if not examples:
        raise ConfigError(f"every pair's prompt is longer than max_length={config.max_length} tokens: raise it")
    return examples


def _metadata(run: _Run, design: Design, base_name: str, dropped: int, versions: dict[str, str]) -> dict[str, Any]:
    gguf = run.model.path
    return {
        "design": design.name,
        "method": run.config.method,
        "base": {"name": base_name, "file": gguf.name, "fingerprint": file_fingerprint(gguf),
                 "path": str(gguf.resolve())},
        "config": run.config.to_dict(),
        "data": {"train_pairs": len(run.train), "eval_pairs": len(run.held_out), "dropped_pairs": dropped},
        "steps": len(run.losses),
        "losses": {"first_train": run.losses[0] if run.losses else None,
                   "final_train": run.losses[-1] if run.losses else None,
                   "eval_before": run.eval_losses[0][1] if run.eval_losses else None,
                   "final_eval": run.eval_losses[-1][1] if run.eval_losses else None},
        "wall_time_s": round(time.perf_counter() - run.started, 3),
        "versions": versions,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _save(run: _Run, staging: Path) -> None:
    """The weights: the LoRA adapter alone (a few MB), or the whole checkpoint with its tokenizer."""
    run.trainable.save_pretrained(str(staging))
    if run.config.method == "full":
        run.model.tokenizer.save_pretrained(str(staging))


def _resolve_device(torch: Any, device: str | None) -> str:
    if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU: use device='cpu' or None")
    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def train_augmenter(pairs: Sequence[Pair], out_dir: str | Path, *, design: Design | str = PAS,
                    base_gguf: Path | None = None, config: TrainConfig | None = None, cache_root: Path | None = None,
                    progress: bool = True, on_step: StepCallback | None = None,
                    overwrite: bool = False) -> TrainResult:
    """Fine-tune a fresh copy of the base model (default: the embedded SmolLM2) to write `design`'s outputs.

    `on_step` gets every record written to `losses.jsonl` (training steps and held-out evaluations).
    The base model is loaded anew for the run, so no shared model's weights ever change.

    >>> result = train_augmenter(read_pairs(Path("pairs.jsonl")), "adapters/pas")   # doctest: +SKIP
    >>> make_model(f"adapter:{result.out_dir}")                                      # doctest: +SKIP
    """
    torch, peft = _import_training()
    config = config or TrainConfig()
    design = get_design(design) if isinstance(design, str) else design
    if not pairs:
        raise InputError("no training pairs given")
    out_dir = check_out_dir(out_dir, overwrite)
    device = _resolve_device(torch, config.device)
    if base_gguf is None:
        from prompthone.models.embedded import EMBEDDED_NAME, embedded_gguf_path

        gguf, base_name = embedded_gguf_path(), EMBEDDED_NAME
    else:
        gguf, base_name = Path(base_gguf), Path(base_gguf).stem
    staging = staging_dir(out_dir)
    log.info("training %s (%s) on %d pairs; log in %s", design.name, config.method, len(pairs), staging / LOSSES_FILE)
    forked = [torch.device(device).index or 0] if device.startswith("cuda") else []
    with torch.random.fork_rng(devices=forked):  # seeded LoRA init and dropout, without touching the caller's RNG
        torch.manual_seed(config.seed)
        model = TorchModel(gguf, device=device, cache_root=cache_root, batch_size=config.batch_size)
        examples = _encode_all(model, design, pairs, config)
        train, held_out = split_examples(examples, config.eval_fraction, random.Random(config.seed))
        lm, trainable = _make_trainable(model, config, peft)
        run = _Run(model, lm, trainable, train, held_out, config, staging / LOSSES_FILE, on_step)
        _fit(run, progress)
    _save(run, staging)
    metadata = _metadata(run, design, base_name, len(pairs) - len(examples), _versions(torch, peft))
    write_adapter_metadata(staging, metadata)  # last: its presence marks a finished adapter
    publish_adapter(staging, out_dir)
    log.info("adapter saved to %s (%d steps, %.0f s)", out_dir, len(run.losses), metadata["wall_time_s"])
    return TrainResult(out_dir=out_dir, losses=run.losses, eval_losses=run.eval_losses, train_pairs=len(train),
                       eval_pairs=len(held_out), wall_time_s=metadata["wall_time_s"],
                       dropped_pairs=len(pairs) - len(examples), metadata=metadata)
