"""How much the stacked MLPs of the training step lose to cold caches: forward + backward of the
encoder (100-64-64-2, no input gradient) and the decoder (2-64-64-100, with it) at S = 50, one
thread, the table1 workers' malloc settings, timed hot and after a 64 MB overwrite
(docs/performance.md, "the MLPs fused per seed").

    GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python benchmarks/mlp_cache.py
"""
import time
from itertools import pairwise

import torch

from er_fast.util.malloc import keep_freed_memory
from er_fast.vae import stacked_mlp as sm


class _Ctx:  # what _mlp_backward reads from an autograd ctx
    def __init__(self, n_inputs: int):
        self.needs_input_grad, self.wb_offset = [True] * n_inputs, 1


def main(S: int = 50, N: int = 128, reps: int = 3, calls: int = 30) -> None:
    torch.set_num_threads(1)
    keep_freed_memory()
    g = torch.Generator().manual_seed(0)
    junk = torch.zeros(16 * 2**20)  # 64 MB, overwritten before each call of the cold arm
    for sizes, need_x in (([100, 64, 64, 2], False), ([2, 64, 64, 100], True)):
        ws = [torch.randn(S, i, o, generator=g) / i**0.5 for i, o in pairwise(sizes)]
        bs = [torch.randn(S, 1, o, generator=g) for o in sizes[1:]]
        wb = [t for pair in zip(ws, bs) for t in pair]
        x, grad = torch.randn(S, N, sizes[0], generator=g), torch.randn(S, N, sizes[-1], generator=g)
        ctx = _Ctx(1 + len(wb))
        flop = 3 * sum(2 * S * N * i * o for i, o in pairwise(sizes))
        flop -= 0 if need_x else 2 * S * N * sizes[0] * sizes[1]
        best = {False: float("inf"), True: float("inf")}
        for _ in range(reps):
            for cold in (False, True):
                for _ in range(calls):
                    if cold:
                        junk.add_(1.0)
                    t0 = time.perf_counter()
                    acts = sm._mlp_forward(x, wb)
                    sm._mlp_backward(ctx, acts[:-1], wb, grad, need_x)
                    best[cold] = min(best[cold], time.perf_counter() - t0)
        h, c = best[False], best[True]
        print(f"{sizes} need_x={need_x}: hot {h * 1e3:.2f} ms ({flop / h / 1e9:.0f} GFLOP/s), "
              f"after a 64 MB overwrite {c * 1e3:.2f} ms ({flop / c / 1e9:.0f} GFLOP/s), cold/hot {c / h:.2f}")


if __name__ == "__main__":
    main()
