"""Benchmark the four sequence backbones at the paper's size (d_model 512, 2 layers, d_state 16, batch 16).

Measures, per backbone and sequence length L (powers of two, 64..2048 by default):

* training step time: forward + backward of a scalar loss over [16, L, 512] inputs (median of the repeats);
* activation memory: bytes of the tensors autograd saves for backward, counted with
  ``torch.autograd.graph.saved_tensors_hooks`` (parameters excluded, shared storage counted once). It works on
  any device and is the part of memory that grows with L; on CUDA the allocator's peak is reported as well;
* imagination cost: time of one ``step`` (batch 16, no grad) after 1 and after 1000 consumed tokens.

The Transformer attends over the whole training sequence (max_len = the longest L measured), so its step
cost is that of a full window whatever the number of consumed tokens. A (backbone, L) whose predicted time
exceeds ``--budget`` seconds is skipped and marked so in the table.

Usage: python benchmarks/sequence_models.py [--quick] [--device cuda] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))
from _common import machine

from drama_wm.sequence import KINDS, Mamba2Config, ResidualStack, TransformerConfig, make
from drama_wm.sequence.mamba2 import kernels_available


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_activation_bytes(model: ResidualStack, x: torch.Tensor) -> int:
    """Bytes autograd keeps for backward during one forward (parameters excluded, storages counted once)."""
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_ptrs:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y, _ = model(x)
    del y
    return sum(seen.values())


def time_train_step(model: ResidualStack, x: torch.Tensor, repeats: int, warmup: bool) -> float:
    """Median seconds of forward + backward."""
    device = x.device
    times = []
    for i in range(repeats + int(warmup)):
        model.zero_grad(set_to_none=True)
        _sync(device)
        start = time.perf_counter()
        y, _ = model(x)
        y.square().mean().backward()
        _sync(device)
        if i >= int(warmup):
            times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def time_step(model: ResidualStack, batch: int, consumed: int, device: torch.device, n: int) -> float:
    """Median seconds of one step() after ``consumed`` tokens (state built with the parallel forward)."""
    gen = torch.Generator(device="cpu").manual_seed(1)
    x = torch.randn(batch, consumed, model.d_model, generator=gen).to(device)
    _, state = model(x)
    token = torch.randn(batch, model.d_model, generator=gen).to(device)
    times = []
    for _ in range(n + 2):
        _sync(device)
        start = time.perf_counter()
        _, state = model.step(token, state)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="smoke run: L in 64..256, one repeat, 100 tokens")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated backbones")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-len", type=int, default=2048, help="longest sequence (powers of two from 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed training steps per (backbone, L)")
    parser.add_argument("--budget", type=float, default=20.0, help="skip a (backbone, L) predicted slower (s)")
    parser.add_argument("--no-kernels", action="store_true", help="Mamba-2 without the mamba_ssm kernel")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "sequence_models.md"))
    args = parser.parse_args()

    device = torch.device(args.device)
    kinds = args.kinds.split(",")
    for kind in kinds:
        if kind not in KINDS:
            parser.error(f"unknown backbone {kind!r}; choose from {sorted(KINDS)}")
    max_len = 256 if args.quick else args.max_len
    lengths = [2**i for i in range(6, 12) if 2**i <= max_len]
    repeats = 1 if args.quick else args.repeats
    consumed_long = 100 if args.quick else 1000
    torch.manual_seed(0)

    train_rows: dict[str, dict[int, tuple[float, int, int] | None]] = {}
    step_rows: dict[str, tuple[float, float]] = {}
    for kind in kinds:
        config = Mamba2Config(dropout=0.0, use_kernels=not args.no_kernels).as_kind(kind)  # Table 6 sizes
        if isinstance(config, TransformerConfig):
            config = replace(config, max_len=max(lengths))
        model = make(config).to(device)
        model.train()
        train_rows[kind] = {}
        history: list[tuple[int, float]] = []
        for length in lengths:
            predicted = 0.0  # seconds of one training step, extrapolated from the last doubling of L
            if len(history) >= 2:
                (_, t0), (l1, t1) = history[-2], history[-1]
                predicted = t1 * max(length / l1, t1 / t0)
            elif history:
                predicted = history[-1][1] * length / history[-1][0]
            if predicted > args.budget:
                train_rows[kind][length] = None
                print(f"{kind:12s} L={length:5d} skipped (predicted {predicted:.1f} s > budget)", flush=True)
                continue
            x = torch.randn(args.batch, length, 512, device=device)
            baseline = 0
            if device.type == "cuda":
                gc.collect()
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
                baseline = torch.cuda.memory_allocated(device)
            # Long runs: one timed step and no warm-up (the code paths are warm from the shorter lengths).
            seconds = time_train_step(model, x, repeats if predicted < 2.0 else 1, warmup=predicted < 2.0)
            peak = torch.cuda.max_memory_allocated(device) - baseline if device.type == "cuda" else 0
            saved = saved_activation_bytes(model, x)
            train_rows[kind][length] = (seconds, saved, peak)
            history.append((length, seconds))
            print(f"{kind:12s} L={length:5d} {seconds * 1000:9.1f} ms  saved {saved / 2**20:8.1f} MiB", flush=True)
        model.eval()
        step_rows[kind] = (
            time_step(model, args.batch, 1, device, 20),
            time_step(model, args.batch, consumed_long, device, 20),
        )
        print(f"{kind:12s} step {step_rows[kind][0] * 1e3:.2f} ms / {step_rows[kind][1] * 1e3:.2f} ms", flush=True)

    use_kernel = device.type == "cuda" and kernels_available() and not args.no_kernels
    ssd = "mamba_ssm Triton kernel" if use_kernel else "pure PyTorch chunked scan"
    lines = [
        "# Sequence backbones: training and imagination cost",
        "",
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {machine(device)}",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- setting: d_model 512, 2 layers, d_state 16, batch {args.batch}, fp32, device {device.type}; "
        "defaults of each backbone otherwise (Mamba-2: head_dim 128, chunk 64; Transformer: 8 heads, "
        f"max_len {max(lengths)}); Mamba-2 SSD: {ssd}",
        "- train = forward + backward, median of "
        f"{repeats}; act MiB = bytes saved for backward (saved_tensors_hooks, parameters excluded)"
        + ("; peak = CUDA allocator peak above what was allocated before the step" if device.type == "cuda" else ""),
        "",
        "## Training step",
        "",
    ]
    header = "| L | " + " | ".join(f"{k} train ms | {k} act MiB" for k in kinds) + " |"
    lines += [header, "|" + "---|" * (1 + 2 * len(kinds))]
    for length in lengths:
        cells = []
        for kind in kinds:
            row = train_rows[kind].get(length)
            if row is None:
                cells += ["skipped (budget)", "-"]
            else:
                mem = f"{row[1] / 2**20:.0f}" + (f" (peak {row[2] / 2**20:.0f})" if row[2] else "")
                cells += [f"{row[0] * 1000:.0f}", mem]
        lines.append(f"| {length} | " + " | ".join(cells) + " |")
    lines += ["", "Growth of training time over the measured lengths (linear scaling: time ratio = L ratio):", ""]
    for kind in kinds:
        measured = [(length, r[0]) for length, r in train_rows[kind].items() if r is not None]
        from_256 = [m for m in measured if m[0] >= 256]
        measured = from_256 if len(from_256) >= 2 else measured
        if len(measured) >= 2:
            (la, ta), (lb, tb) = measured[0], measured[-1]
            lines.append(f"- {kind}: time({lb}) / time({la}) = {tb / ta:.1f} (L ratio {lb // la})")
    lines += [
        "",
        f"## Imagination step (batch {args.batch}, no grad)",
        "",
        f"| backbone | step ms after 1 token | step ms after {consumed_long} tokens |",
        "|---|---|---|",
    ]
    for kind in kinds:
        a, b = step_rows[kind]
        lines.append(f"| {kind} | {a * 1e3:.2f} | {b * 1e3:.2f} |")
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
