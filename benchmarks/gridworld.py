r"""Grid-world long-sequence prediction (paper Sec. 3.2.3, Table 2, App. A.6) for the four sequence backbones.

Task: a next-token model, Embedding(9, d_model) -> backbone -> Linear(d_model, 9), is trained with cross-entropy
on token sequences of uniformly random-policy grid-world rollouts (``drama_wm.envs.gridworld``: a frame is 25
cell tokens then 1 action token; l = 8 x 26 = 208 or 64 x 26 = 1664 tokens). Every step draws new sequences
(the training set holds steps x batch sequences, each seen once), so the held-out error measures generalisation.

Choices the paper leaves open (stated here because they shape the numbers):

* Loss on cell tokens only. The action tokens come from a uniformly random policy: their best cross-entropy is
  log 5 whatever the model has understood, so as targets they add noise and nothing else. They remain inputs.
* Equal tokens per step at both lengths: the default batch is 8 sequences at l = 208 and 1 at l = 1664 (1664
  tokens per step either way), so step times compare the cost of a longer context, not of more data.
* Evaluation by teacher forcing with argmax: on held-out sequences the model reads the true prefix and predicts
  each of the 25 cell tokens of every frame from the true tokens before it (so the earlier cells of the same
  frame are known). The paper does not say whether its predictions are autoregressive; ours are not.
  Predictions are reshaped to 5x5 frames and scored with ``grid_error`` (App. A.6: error = (E_g + E_l) / 2,
  per-frame rates) on every frame after the first, which has no history to predict from.
* Memory is the bytes of the tensors autograd saves for backward during one training forward, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` (parameters excluded, shared storage counted once). It works on
  any device and is the part of memory that grows with l; the paper reports GPU memory in % of 8 GB instead.
* Optimiser: AdamW (peak lr 1e-2, weight decay 1e-4 as in paper Table 6), gradient clip 1, linear warm-up over
  the first 10% of the steps then cosine decay to 0; 500 steps at both lengths. Mamba-2 uses head dim 16, so
  d_inner = 2 d_model has 8 heads as in the paper's XS model (1024 / 128); the Transformer attends causally
  over the whole sequence (max_len = l), 8 heads, ALiBi positions.

Full runs, 3 seeds (wall-clock on 2 CPU cores estimated from step times measured on this machine):

    python benchmarks/gridworld.py --length 208     # all four backbones: about 9 minutes
    python benchmarks/gridworld.py --length 1664    # all four: about 45 minutes, of which the Transformer 26

At l = 1664 two backbones dominate: the GRU (about 0.5 s per step: 1664 sequential recurrence steps per layer)
and the Transformer (about 1 s per step: attention over 1664 x 1664 positions). Split the long run if needed:

    python benchmarks/gridworld.py --length 1664 --backbone mamba2 mamba gru   # about 17 minutes
    python benchmarks/gridworld.py --length 1664 --backbone transformer \
        --out benchmarks/results/gridworld_1664_transformer.md                 # about 26 minutes

Smoke test (seconds):

    python benchmarks/gridworld.py --seeds 0 --steps 20 --out /tmp/gridworld.md
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine, sync

from drama_wm.envs.gridworld import FRAME_TOKENS, VOCAB_SIZE, grid_error, make_sequence_dataset, untokenize_trajectory
from drama_wm.sequence import KINDS, Mamba2Config, ResidualStack, TransformerConfig, make

LENGTHS = (208, 1664)
#: Paper Table 2 (laptop GPU): training time per step (ms), memory (% of an 8 GB GPU), error (%).
PAPER_TABLE2: dict[tuple[str, int], tuple[str, str, str]] = {
    ("mamba2", 208): ("25", "13", "15.6 ± 2.6"),
    ("mamba2", 1664): ("214", "55", "14.2 ± 0.3"),
    ("mamba", 208): ("34", "14", "13.9 ± 0.4"),
    ("mamba", 1664): ("299", "52", "14.0 ± 0.4"),
    ("gru", 208): ("75", "66", "21.3 ± 0.3"),
    ("gru", 1664): ("628", "68", "34.7 ± 25.4"),
    ("transformer", 208): ("45", "17", "75.0 ± 1.1"),
    ("transformer", 1664): ("-", "OOM (8 GB)", "-"),
}
#: Defaults per length: equal tokens per step (batch x l = 1664) and about 1000 held-out frames.
DEFAULTS = {208: {"batch": 8, "eval_sequences": 144}, 1664: {"batch": 1, "eval_sequences": 16}}
EVAL_SEED = 1_000_003  # held-out sequences: the same for every backbone and seed, disjoint from training seeds
TIMING_WARMUP = 3  # first steps excluded from the median step time (allocator and cache warm-up)


class NextTokenModel(nn.Module):
    """Embedding -> sequence backbone -> linear read-out. tokens LongTensor [B, L] -> logits [B, L, VOCAB_SIZE]."""

    def __init__(self, backbone: ResidualStack) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB_SIZE, backbone.d_model)
        self.backbone = backbone
        self.head = nn.Linear(backbone.d_model, VOCAB_SIZE)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.backbone(self.embed(tokens))
        return self.head(hidden)


def build_model(kind: str, length: int, args: argparse.Namespace) -> NextTokenModel:
    """The next-token model around backbone ``kind`` with the sizes of ``args`` (no dropout)."""
    sizes = Mamba2Config(
        d_model=args.d_model, n_layers=args.n_layers, dropout=0.0, d_state=args.d_state, head_dim=args.head_dim
    )
    config = sizes.as_kind(kind)  # head_dim is Mamba-2's; the other kinds share the rest
    if isinstance(config, TransformerConfig):
        config = replace(config, max_len=length)  # full causal attention over the sequence, as in the paper's baseline
    return NextTokenModel(make(config))


def next_token_loss(model: NextTokenModel, tokens: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the next cell token. tokens [B, L] -> scalar (action targets excluded, see above)."""
    logits = model(tokens[:, :-1])  # position p predicts token p + 1
    targets = tokens[:, 1:]
    is_cell = (torch.arange(1, tokens.shape[1], device=tokens.device) % FRAME_TOKENS) != FRAME_TOKENS - 1
    return F.cross_entropy(logits[:, is_cell].flatten(0, 1), targets[:, is_cell].flatten())


def saved_activation_bytes(model: NextTokenModel, tokens: torch.Tensor) -> int:
    """Bytes autograd saves for backward in one training forward + loss (parameters excluded, storages once)."""
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = next_token_loss(model, tokens)
    del loss
    return sum(saved.values())


@torch.no_grad()
def evaluate(model: NextTokenModel, tokens: torch.Tensor, batch: int) -> dict[str, float]:
    """Teacher-forced argmax prediction of every cell of held-out sequences tokens [N, L], scored with
    ``grid_error`` on all frames but the first. Returns grid_error's dict (fractions of frames)."""
    model.eval()
    predicted = []
    for i in range(0, len(tokens), batch):
        chunk = tokens[i : i + batch]
        predicted.append(torch.cat([chunk[:, :1], model(chunk[:, :-1]).argmax(-1)], dim=1).cpu())
    model.train()
    predicted_frames, _ = untokenize_trajectory(torch.cat(predicted))  # [N, T, 5, 5]; token 0 is never scored
    true_frames, _ = untokenize_trajectory(tokens.cpu())
    return grid_error(predicted_frames[:, 1:], true_frames[:, 1:])


def lr_factor(step: int, total: int) -> float:
    """Linear warm-up over the first 10% of the steps, then cosine decay to 0."""
    warmup = max(1, total // 10)
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def run(kind: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """Train one model and evaluate it. Returns the per-run row of the JSON output."""
    device = torch.device(args.device)
    n_frames = args.length // FRAME_TOKENS
    torch.manual_seed(seed)
    model = build_model(kind, args.length, args).to(device)
    train = make_sequence_dataset(args.steps * args.batch, n_frames, seed=seed).view(args.steps, args.batch, -1)
    held_out = make_sequence_dataset(args.eval_sequences, n_frames, seed=EVAL_SEED).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, args.steps))
    # A copy: train[0] is a view whose storage is the whole training set, which would be counted as saved.
    activation_bytes = saved_activation_bytes(model, train[0].clone().to(device))

    tag = f"[{kind} l={args.length} seed {seed}]"
    step_seconds, recent_losses = [], []
    start = time.perf_counter()
    for step in range(args.steps):
        tokens = train[step].to(device)
        sync(device)
        tick = time.perf_counter()
        loss = next_token_loss(model, tokens)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        sync(device)
        step_seconds.append(time.perf_counter() - tick)
        recent_losses.append(loss.item())
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            print(
                f"{tag} step {step + 1}/{args.steps} loss {np.mean(recent_losses):.4f} "
                f"({1000 * statistics.median(step_seconds[-args.log_every :]):.0f} ms/step)",
                flush=True,
            )
            recent_losses = []
    errors = evaluate(model, held_out, args.batch)
    timed = step_seconds[TIMING_WARMUP:] or step_seconds
    result = {
        "backbone": kind,
        "length": args.length,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "step_ms": 1000 * statistics.median(timed),
        "activation_mib": activation_bytes / 2**20,
        "seconds": time.perf_counter() - start,
        **errors,
    }
    print(
        f"{tag} error {100 * errors['error']:.1f}% (E_g {100 * errors['geometric_error']:.1f}%, "
        f"E_l {100 * errors['logic_error']:.1f}%) in {result['seconds']:.0f} s",
        flush=True,
    )
    return result


def mean_std(values: list[float]) -> str:
    """'mean ± sample std' of percentages, or just the value for a single seed."""
    percent = [100 * v for v in values]
    if len(percent) == 1:
        return f"{percent[0]:.1f}"
    return f"{np.mean(percent):.1f} ± {np.std(percent, ddof=1):.1f}"


def report(rows: list[dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    lines = [
        f"# Grid world, l = {args.length} ({args.length // FRAME_TOKENS} frames of {FRAME_TOKENS} tokens)",
        "",
        f"- command: `{command}`",
        f"- machine: {machine(torch.device(args.device))}",
        f"- setting: d_model {args.d_model}, {args.n_layers} layers, d_state {args.d_state}, batch {args.batch}, "
        f"{args.steps} steps, lr {args.lr:g}, seeds {' '.join(map(str, args.seeds))}, "
        f"{args.eval_sequences} held-out sequences ({args.eval_sequences * (args.length // FRAME_TOKENS - 1)} "
        "scored frames)",
        "- error: App. A.6, (E_g + E_l) / 2 per frame, teacher-forced argmax prediction of each cell token from the "
        "true prefix, frames after the first; mean ± sample std over seeds",
        "- step: median wall-clock of forward + backward + optimiser step; activations: bytes saved for backward "
        "in one training forward (saved_tensors_hooks, any device), not the paper's GPU memory",
        "- paper: Table 2, laptop GPU, model size and batch not stated (time per step, memory in % of 8 GB)",
        "",
        "| backbone | params | step ms | activations MiB | error % | E_g % | E_l % "
        "| paper step ms | paper memory | paper error % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in dict.fromkeys(r["backbone"] for r in rows):
        runs = [r for r in rows if r["backbone"] == kind]
        paper_ms, paper_memory, paper_error = PAPER_TABLE2[(kind, args.length)]
        lines.append(
            f"| {kind} | {runs[0]['parameters']:,} | {statistics.median(r['step_ms'] for r in runs):.0f} "
            f"| {runs[0]['activation_mib']:.1f} | {mean_std([r['error'] for r in runs])} "
            f"| {mean_std([r['geometric_error'] for r in runs])} | {mean_std([r['logic_error'] for r in runs])} "
            f"| {paper_ms} | {paper_memory}{'' if 'OOM' in paper_memory else ' %'} | {paper_error} |"
        )
    lines += [
        "",
        "Floor: when the agent reaches the goal both are re-placed at random, which no model can predict; under the "
        "random policy this happens on about 4.6% of steps, so even a perfect predictor has E_l of about 4.6% "
        "(see `grid_error`). The Transformer's parameters include its MLP blocks (4 d_model wide).",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--backbone", nargs="+", choices=[*KINDS, "all"], default=["all"], help="backbones to train (default: all)")
    add("--length", type=int, choices=LENGTHS, default=208, help="tokens per sequence (default: %(default)s)")
    add("--seeds", type=int, nargs="+", default=[0, 1, 2], help="model and training-data seeds (default: 0 1 2)")
    add("--steps", type=int, default=500, help="training steps (default: %(default)s)")
    add("--d-model", type=int, default=64, help="width of the embedding and the backbone (default: %(default)s)")
    add("--n-layers", type=int, default=2, help="backbone layers (default: %(default)s)")
    add("--d-state", type=int, default=16, help="SSM state size of Mamba and Mamba-2 (default: %(default)s)")
    add("--head-dim", type=int, default=16, help="Mamba-2 head dim; d_inner = 2 d_model (default: %(default)s)")
    add("--batch", type=int, default=None, help="sequences per step (default: 8 at l=208, 1 at l=1664)")
    add("--lr", type=float, default=1e-2, help="peak learning rate of AdamW (default: %(default)s)")
    add("--eval-sequences", type=int, default=None, help="held-out sequences (default: 144 at l=208, 16 at l=1664)")
    add("--log-every", type=int, default=50, help="training steps between progress lines (default: %(default)s)")
    add("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: %(default)s)")
    add("--out", type=Path, default=None, help="markdown output (default: benchmarks/results/gridworld_<length>.md)")
    args = parser.parse_args(argv)
    defaults = DEFAULTS[args.length]
    args.batch = defaults["batch"] if args.batch is None else args.batch
    args.eval_sequences = defaults["eval_sequences"] if args.eval_sequences is None else args.eval_sequences
    for name in ("steps", "batch", "eval_sequences", "log_every", "d_model", "n_layers", "d_state", "head_dim"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        parser.error(f"--lr must be positive, got {args.lr}")
    return args


def main() -> None:
    args = parse_args()
    command = shlex.join(["python", "benchmarks/gridworld.py", *sys.argv[1:]])
    kinds = list(KINDS) if "all" in args.backbone else list(dict.fromkeys(args.backbone))
    rows = [run(kind, seed, args) for kind in kinds for seed in args.seeds]
    text = report(rows, args, command)
    print(text)
    out = args.out or RESULTS / f"gridworld_{args.length}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
