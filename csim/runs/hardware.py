"""Facts about the machine a run is on that change what it should do: here, whether bf16 pays on this CPU.

CPUs differ by an order of magnitude in both directions: an Intel Xeon with AMX (lscpu flags amx_tile, amx_bf16) ran a
bf16 GEMM ~12x faster than fp32 with 2 threads, while an AMD EPYC without bf16 units ran it ~20x slower. So the cpu
scale's precision is measured, not assumed: `${cpu_precision:auto}` times one fp32 and one bf16 GEMM of a training
step's shape and picks Lightning's "bf16-mixed" only where bf16 is clearly faster. The chosen value (not "auto") is
what enters the run identity and the table headers, so runs on different CPUs never share a record by mistake.
"""

from __future__ import annotations

import functools
import os
import platform
import time

PRECISIONS = ("auto", "32-true", "bf16-mixed")
BF16_MIN_SPEEDUP = 2.0  # well clear of timing noise: the measured ratios are ~12 (AMX) or ~0.05 (no bf16 units)


def _gemm_seconds(dtype, n: int = 512, repeats: int = 5) -> float:
    import torch

    a = torch.randn(n * 4, n, dtype=torch.float32).to(dtype)
    b = torch.randn(n, n * 2, dtype=torch.float32).to(dtype)
    torch.mm(a, b)  # warm-up (kernel selection, packing)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return best


@functools.lru_cache(maxsize=1)
def bf16_gemm_speedup() -> float:
    """fp32 GEMM time / bf16 GEMM time on this CPU with the current torch threads (best of 5, a 2048x512x1024 GEMM:
    the FFN shape of the mini encoder's training step); > 1 means bf16 is faster."""
    import torch

    return _gemm_seconds(torch.float32) / _gemm_seconds(torch.bfloat16)


def cpu_precision(choice: str = "auto") -> str:
    """${cpu_precision:CHOICE}: Lightning's trainer.precision for a CPU run. "auto": "bf16-mixed" where this CPU's bf16
    GEMM is at least BF16_MIN_SPEEDUP times faster than fp32, else "32-true"; the other choices are returned as they
    are."""
    from csim.errors import CsimError

    choice = str(choice)
    if choice not in PRECISIONS:
        raise CsimError(f"cpu precision {choice!r}: choose one of {', '.join(PRECISIONS)} (trainer.precision at the "
                        f"cpu scale; 'auto' measures whether bf16 is faster than fp32 on this CPU).")
    if choice != "auto":
        return choice
    return "bf16-mixed" if bf16_gemm_speedup() >= BF16_MIN_SPEEDUP else "32-true"


def cpu_description() -> dict:
    """This CPU's model name, logical CPUs and the flags that decide its speed figures (AMX, AVX-512 bf16, ...); every
    speed figure in results/ is recorded with it."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", "", platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")
    return {"model": model, "logical_cpus": os.cpu_count(), "flags": [f for f in wanted if f in flags]}


def cpu_text() -> str:
    """cpu_description() in one line, e.g. "Intel(R) Xeon(R) ... (2 logical CPUs; amx_bf16, avx512_bf16, ...)"."""
    d = cpu_description()
    return f"{d['model']} ({d['logical_cpus']} logical CPUs; {', '.join(d['flags']) or 'no AVX2'})"
