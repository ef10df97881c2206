"""Tests of er_fast.ops.philox_uniform / philox_normal (counter-based random numbers, one launch
for S seeds).

The kernels and the pure-PyTorch reference perform the same exactly rounded float64 operations in
the same order, so every comparison between them (uniforms AND normals, CPU ISA copies, CUDA) is
bitwise. The stream layout itself is checked against an independent pure-Python Philox that
passes Random123's known-answer tests.
"""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.stats as st
import torch

import er_fast
from er_fast.ops import backend, philox_normal, philox_uniform
from er_fast.ops.reference import random as ref
from er_fast.util.threads import intra_op_threads
from conftest import devices, dtypes, requires_cuda

COMPILED = backend.compiled("philox_uniform", torch.empty(0))
OPS = {"uniform": philox_uniform, "normal": philox_normal}
REF = {"uniform": ref.philox_uniform, "normal": ref.philox_normal}
SIZES = [[], [0], [1], [2], [3], [5], [7, 3], [4, 0, 2], [128, 100], [1001]]


def ctr(v, device="cpu"):
    return torch.tensor(v, dtype=torch.int64, device=device)


def seeds_of(*s, device="cpu"):
    return torch.tensor(s, dtype=torch.int64, device=device)


# ---------------------------------------------------------------- an independent Philox
M32 = 0xFFFFFFFF


def philox_int(c, k):
    """Philox4x32-10 on Python ints (Salmon et al. 2011), for the known-answer tests."""
    c, (k0, k1) = list(c), k
    for _ in range(10):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & M32, (p0 >> 32) ^ c[3] ^ k1, p0 & M32]
        k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
    return c


def stream_words(seed, stream, counter, j):
    """The documented layout (docs/random.md), written out independently of the package."""
    key = (seed & M32, (seed >> 32) ^ ref.SEED_SALT)
    return philox_int([j & M32, j >> 32, stream | (counter >> 32) << 16, counter & M32], key)


def test_independent_philox_passes_random123_kat():
    assert philox_int([0, 0, 0, 0], (0, 0)) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    assert philox_int([M32] * 4, (M32, M32)) == [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]
    assert philox_int([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], (0xA4093822, 0x299F31D0)) == [
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def words_from_f64_uniform(u: torch.Tensor):
    """(w_hi, top 20 bits of w_lo) of each float64 uniform ((w_hi << 20 | w_lo >> 12) + 1/2) 2^-52."""
    v = (u.double() * 2.0**52 - 0.5).to(torch.int64).reshape(-1).tolist()
    return [(x >> 20, x & (2**20 - 1)) for x in v]


@pytest.mark.parametrize("device", devices)
def test_known_answer_through_the_op(device):
    # seed = salt << 32 gives Philox key (0, 0); stream 0, counter 0, block 0: counter (0, 0, 0, 0).
    s = seeds_of(ref.SEED_SALT << 32, device=device)
    u = philox_uniform(s, ctr(0, device), 0, [2], torch.float64)[0]
    assert words_from_f64_uniform(u) == [(0x6627E8D5, 0xE169C58D >> 12), (0xBC57AC4C, 0x9B00DBD8 >> 12)]
    u32 = philox_uniform(s, ctr(0, device), 0, [4], torch.float32)[0]
    top23 = ((u32.double() * 2.0**23 - 0.5).to(torch.int64)).tolist()
    assert top23 == [w >> 9 for w in (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)]


@pytest.mark.parametrize("seed,stream,counter", [(0, 0, 0), (1, 2, 3), (2**62 + 12345, 65535, 2**32 - 1),
                                                 (987654321, 7, 2**32), (5, 1, 2**48 - 1)])
def test_stream_layout(seed, stream, counter):
    nb = 5
    # the op's float64 uniforms carry w0 (w2) and the top 20 bits of w1 (w3) of each block
    u = philox_uniform(seeds_of(seed), ctr(counter), stream, [2 * nb], torch.float64)[0]
    want = [stream_words(seed, stream, counter, j) for j in range(nb)]
    assert words_from_f64_uniform(u) == [(w[a], w[a + 1] >> 12) for w in want for a in (0, 2)]
    # the reference's full words
    got = ref.philox_words(seeds_of(seed), ctr(counter), stream, nb)
    assert [[int(g[0, j]) for g in got] for j in range(nb)] == want


# ---------------------------------------------------------------- kernel == reference, bitwise
@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("size", SIZES)
def test_kernel_equals_reference_bitwise(kind, dtype, size):
    s = seeds_of(0, 1, 2**40 + 3, 77, 2**63 - 1)
    for c, stream in ((0, 0), (123, 3), (2**32 + 5, 65535)):
        got = OPS[kind](s, ctr(c), stream, size, dtype)
        want = REF[kind](s, ctr(c), stream, size, dtype)
        assert got.shape == (5, *size) and got.dtype == dtype
        assert torch.equal(got, want)


def _isa_script():
    return (
        "import torch, er_fast.ops as o; from er_fast.ops.reference import random as r\n"
        "s = torch.tensor([0, 3, 2**50 + 1], dtype=torch.int64); c = torch.tensor(2**33 + 9)\n"
        "for dt in (torch.float32, torch.float64):\n"
        "    for f, g in ((o.philox_uniform, r.philox_uniform), (o.philox_normal, r.philox_normal)):\n"
        "        assert torch.equal(f(s, c, 4, [37, 41], dt), g(s, c, 4, [37, 41], dt)), (f, dt)\n"
        "print(torch.ops.er_fast.cpu_isa())\n")


@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("isa", ["avx512", "avx2", "baseline"])
def test_every_cpu_isa_copy_equals_reference(isa):
    env = dict(os.environ, ER_FAST_CPU_ISA=isa)
    r = subprocess.run([sys.executable, "-c", _isa_script()], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    if isa != "avx512":  # avx512 is the default only where the CPU has it
        assert r.stdout.strip() == isa


def test_normal_maths_accuracy():
    # log_, sqrt_ and sincos_2pi (the float64 maths the kernels share) against mpmath: < 1 ulp,
    # < 1 ulp, < 2 ulp (of the result; for sin/cos near a zero, of 1).
    mpmath = pytest.importorskip("mpmath")
    g = torch.Generator().manual_seed(1)
    u = torch.cat([torch.rand(3000, dtype=torch.float64, generator=g).clamp_min(2.0**-53),
                   torch.tensor([2.0**-53, 2.0**-33, 0.25, 0.5, 0.75, 1 - 2.0**-53, 0.125, 0.375, 0.5 - 2.0**-53],
                                dtype=torch.float64)])
    eps = 2.0**-52

    def ulps(got, exact, floor=0.0):
        return max(abs(float(a) - float(b)) / (max(abs(float(b)), floor) * eps) for a, b in zip(got.tolist(), exact))

    mpmath.mp.prec = 100
    uu = u.tolist()
    assert ulps(ref.log_(u), [mpmath.log(x) for x in uu]) < 1.0
    y = -2.0 * ref.log_(u)
    assert ulps(ref.sqrt_(y), [mpmath.sqrt(x) for x in y.tolist()]) < 1.0
    s, c = ref.sincos_2pi(u)
    assert ulps(s, [mpmath.sinpi(2 * mpmath.mpf(x)) for x in uu], 1.0) < 2.0
    assert ulps(c, [mpmath.cospi(2 * mpmath.mpf(x)) for x in uu], 1.0) < 2.0
    # exact at the quarter turns
    s, c = ref.sincos_2pi(torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    assert s.tolist() == [1.0, 0.0, -1.0] and c.tolist() == [0.0, -1.0, 0.0]


# ---------------------------------------------------------------- slices, streams, counters
@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("size", [[], [1], [3], [5, 7], [129]])
def test_slice_independent_of_S_and_other_seeds(kind, dtype, size):
    many = torch.arange(64, dtype=torch.int64) * 1000003 + 11
    out = OPS[kind](many, ctr(9), 5, size, dtype)
    for s in (0, 17, 63):
        one = OPS[kind](many[s:s + 1], ctr(9), 5, size, dtype)
        assert torch.equal(out[s], one[0])
    # a permutation of the seeds permutes the slices
    perm = torch.randperm(64)
    assert torch.equal(OPS[kind](many[perm], ctr(9), 5, size, dtype), out[perm])
    # and a longer slice extends a shorter one: element index, not size, picks the numbers
    longer = OPS[kind](many[:2], ctr(9), 5, [1000], dtype).reshape(2, -1)
    assert torch.equal(longer[:, :math.prod(size)], out[:2].reshape(2, -1))


@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("dtype", dtypes)
def test_different_seeds_streams_counters_differ(kind, dtype):
    base = dict(seed=7, stream=2, counter=10)
    variants = [dict(seed=8), dict(stream=3), dict(counter=11), dict(counter=10 + 2**32), dict(seed=7 + 2**32),
                dict(stream=2 + 1, counter=10), dict(stream=0, counter=2**32 * 2 + 10)]

    def draw(seed, stream, counter):
        return OPS[kind](seeds_of(seed), ctr(counter), stream, [64], dtype)[0]

    x = draw(**base)
    assert torch.equal(x, draw(**base))
    for v in variants:
        y = draw(**{**base, **v})
        assert (x != y).float().mean() > 0.95, v
    # the high counter bits fold into word 2 beside the stream without colliding with it
    assert not torch.equal(draw(0, 1, 0), draw(0, 0, 2**32))


@pytest.mark.parametrize("kind", OPS)
def test_counter_read_from_the_tensor(kind):
    s, c = seeds_of(1, 2), ctr(5)
    a = OPS[kind](s, c, 0, [8])
    c.add_(1)  # in place: the next call must see 6
    b = OPS[kind](s, c, 0, [8])
    assert not torch.equal(a, b) and torch.equal(b, OPS[kind](s, ctr(6), 0, [8]))


@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("dtype", dtypes)
def test_thread_count_independent(kind, dtype):
    s = torch.arange(5, dtype=torch.int64)
    outs = []
    for n in (1, 2, 3):
        with intra_op_threads(n):
            outs.append(OPS[kind](s, ctr(3), 1, [300, 101], dtype))
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2])


# ---------------------------------------------------------------- distributions
@pytest.mark.parametrize("dtype", dtypes)
def test_uniform_distribution(dtype):
    u = philox_uniform(torch.arange(4, dtype=torch.int64), ctr(0), 0, [50000], dtype)
    assert bool(((u > 0) & (u < 1)).all())
    # values on the documented grid: odd multiples of 2^-24 (float32) / 2^-53 (float64)
    k = (u.double() * (2.0**24 if dtype == torch.float32 else 2.0**53))
    assert torch.equal(k, k.round()) and bool((k.to(torch.int64) % 2 == 1).all())
    x = u.double().reshape(-1).numpy()
    assert st.kstest(x, "uniform").pvalue > 1e-4
    assert abs(x.mean() - 0.5) < 5 * math.sqrt(1 / 12 / x.size) and abs(x.var() - 1 / 12) < 1e-3
    # neighbouring elements (same block, next block) and slices are uncorrelated
    for a, b in ((u[0, :-1], u[0, 1:]), (u[0], u[1])):
        assert abs(np.corrcoef(a.double().numpy(), b.double().numpy())[0, 1]) < 5 / math.sqrt(a.numel())


@pytest.mark.parametrize("dtype", dtypes)
def test_normal_distribution(dtype):
    z = philox_normal(torch.arange(4, dtype=torch.int64), ctr(1), 2, [50000], dtype)
    x = z.double().reshape(-1).numpy()
    assert np.isfinite(x).all()
    assert st.kstest(x, "norm").pvalue > 1e-4
    n = x.size
    assert abs(x.mean()) < 5 / math.sqrt(n) and abs(x.var() - 1) < 5 * math.sqrt(2 / n)
    assert abs(st.skew(x)) < 5 * math.sqrt(6 / n) and abs(st.kurtosis(x)) < 5 * math.sqrt(24 / n)
    # the two outputs of one Box-Muller pair are uncorrelated, and so are z and z^2 partners
    pairs = z.reshape(-1, 2).double().numpy()
    m = pairs.shape[0]
    assert abs(np.corrcoef(pairs[:, 0], pairs[:, 1])[0, 1]) < 5 / math.sqrt(m)
    assert abs(np.corrcoef(pairs[:, 0] ** 2, pairs[:, 1] ** 2)[0, 1]) < 5 / math.sqrt(m)


def test_normal_tails_reach_past_6_sigma_in_float32():
    # float32 normals come from 32-bit uniforms: the smallest u1 = 2^-33 gives r = 6.76
    u1 = torch.tensor([2.0**-33], dtype=torch.float64)
    assert float(torch.sqrt(-2 * ref.log_(u1))) > 6.7


# ---------------------------------------------------------------- shapes, dtypes, devices
@pytest.mark.parametrize("kind", OPS)
def test_shapes_and_defaults(kind):
    s = seeds_of(1, 2, 3)
    assert OPS[kind](s, ctr(0), 0, []).shape == (3,)
    assert OPS[kind](s, ctr(0), 0, 4).shape == (3, 4)
    assert OPS[kind](s, ctr(0), 0, torch.Size([2, 0])).shape == (3, 2, 0)
    assert OPS[kind](s[:0], ctr(0), 0, [5]).shape == (0, 5)
    x = OPS[kind](s, ctr(0), 0, [2, 3])
    assert x.dtype == torch.float32 and x.device == s.device and x.is_contiguous()
    assert OPS[kind](s, ctr(0), 0, [2], "float64").dtype == torch.float64
    # not differentiable: never tracked by autograd
    with torch.enable_grad():
        assert not x.requires_grad and x.grad_fn is None


@pytest.mark.parametrize("kind", OPS)
def test_bad_inputs(kind):
    f, s, c = OPS[kind], seeds_of(1, 2), ctr(0)
    fn = f"er_fast.philox_{kind}"
    cases = [
        (TypeError, "seeds must be a torch.Tensor", ([1, 2], c, 0, [3])),
        (TypeError, "seeds must be int64", (s.int(), c, 0, [3])),
        (TypeError, "seeds must be int64", (s.double(), c, 0, [3])),
        (ValueError, r"seeds must have shape \(S,\)", (s.reshape(1, 2), c, 0, [3])),
        (ValueError, r"seeds must have shape \(S,\)", (s[0], c, 0, [3])),
        (ValueError, "every seed must be >= 0, got -1", (seeds_of(1, -1), c, 0, [3])),
        (TypeError, "counter must be a torch.Tensor", (s, 0, 0, [3])),
        (TypeError, "counter must be int64", (s, c.int(), 0, [3])),
        (ValueError, "counter must be a 0-dim tensor", (s, c.reshape(1), 0, [3])),
        (ValueError, "counter must be on the device of seeds", (s, c.to("meta"), 0, [3])),
        (ValueError, r"counter must be in \[0, 2\^48\), got -1", (s, ctr(-1), 0, [3])),
        (ValueError, r"counter must be in \[0, 2\^48\), got 281474976710656", (s, ctr(2**48), 0, [3])),
        (ValueError, r"stream must be an integer in \[0, 65536\), got -1", (s, c, -1, [3])),
        (ValueError, r"stream must be an integer in \[0, 65536\), got 65536", (s, c, 65536, [3])),
        (ValueError, "stream must be an integer", (s, c, 1.0, [3])),
        (ValueError, "stream must be an integer", (s, c, True, [3])),
        (ValueError, "size must be non-negative", (s, c, 0, [2, -1])),
        (TypeError, "size must be a sequence of integers", (s, c, 0, "3")),
        (TypeError, "size must be a sequence of integers", (s, c, 0, [2.0])),
    ]
    for exc, msg, args in cases:
        with pytest.raises(exc, match=f"{fn}: {msg}"):
            f(*args)
    for dt in (torch.float16, torch.int64, "float"):
        with pytest.raises(ValueError, match=f"{fn}: dtype must be torch.float32 or torch.float64"):
            f(s, c, 0, [3], dt)


@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("kind", OPS)
def test_kernel_checks(kind):
    op, s, c = getattr(torch.ops.er_fast, f"philox_{kind}"), seeds_of(1, 2), ctr(0)
    f32 = torch.float32
    cases = [
        ("seeds must be int64", (s.int(), c, 0, [3], f32)),
        (r"seeds must have shape \(S,\)", (s.reshape(2, 1), c, 0, [3], f32)),
        ("counter must be int64", (s, c.double(), 0, [3], f32)),
        ("counter must be a 0-dim tensor", (s, c.reshape(1), 0, [3], f32)),
        (r"stream must be in \[0, 65536\), got 70000", (s, c, 70000, [3], f32)),
        ("size must be non-negative", (s, c, 0, [-3], f32)),
        ("dtype must be float32 or float64", (s, c, 0, [3], torch.float16)),
        ("every seed must be >= 0, got -5", (seeds_of(-5), c, 0, [3], f32)),
        (r"counter must be in \[0, 2\^48\)", (s, ctr(-2), 0, [3], f32)),
    ]
    for msg, args in cases:
        with pytest.raises(RuntimeError, match=f"er_fast.philox_{kind}: {msg}"):
            op(*args)


@pytest.mark.parametrize("kind", OPS)
def test_reference_marks_invalid_values_nan(kind):
    # the CUDA kernel's policy (it cannot raise without a sync), mirrored by the reference
    x = REF[kind](seeds_of(3, -1), ctr(0), 0, [5], torch.float64)
    assert bool(x[1].isnan().all()) and not bool(x[0].isnan().any())
    assert bool(REF[kind](seeds_of(3), ctr(2**48), 0, [5], torch.float32).isnan().all())
    assert bool(REF[kind](seeds_of(3), ctr(-1), 0, [5], torch.float32).isnan().all())


# ---------------------------------------------------------------- torch.library / compile / fallback
@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("dtype", dtypes)
def test_opcheck(kind, dtype):
    op = getattr(torch.ops.er_fast, f"philox_{kind}").default
    for s, size in ((seeds_of(1, 2, 3), [4, 5]), (seeds_of(9), []), (seeds_of(9, 8), [3])):
        torch.library.opcheck(op, (s, ctr(7), 2, size, dtype))


@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("kind", OPS)
def test_torch_compile_fullgraph(kind):
    torch._dynamo.reset()
    f = OPS[kind]

    def step(seeds, counter, x):
        noise = f(seeds, counter, 2, [3, 4])
        return x + noise, f(seeds, counter, 3, [5], torch.float64)

    cf = torch.compile(step, fullgraph=True)
    s, c, x = seeds_of(4, 5), ctr(0), torch.zeros(2, 3, 4)
    for _ in range(3):
        got, want = cf(s, c, x), step(s, c, x)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        c.add_(1)  # the counter is an input, not a constant baked into the graph
    assert not torch.equal(cf(s, c, x)[0], cf(s, ctr(0), x)[0])


@pytest.mark.skipif(not COMPILED, reason="extension not built")
@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("dtype", dtypes)
def test_fallback_path(kind, dtype):
    s = seeds_of(3, 1, 4)
    compiled = OPS[kind](s, ctr(1), 9, [7, 5], dtype)
    with er_fast.use_reference():
        assert not backend.compiled(f"philox_{kind}", s)
        fallback = OPS[kind](s, ctr(1), 9, [7, 5], dtype)
        with pytest.raises(ValueError, match="every seed must be >= 0"):
            OPS[kind](seeds_of(-3), ctr(1), 9, [7, 5], dtype)
    assert torch.equal(compiled, fallback)


# ---------------------------------------------------------------- CUDA
@requires_cuda
@pytest.mark.parametrize("kind", OPS)
@pytest.mark.parametrize("dtype", dtypes)
@pytest.mark.parametrize("size", [[], [1], [3], [5, 7], [128, 100], [1001]])
def test_cuda_equals_cpu_bitwise(kind, dtype, size):
    s = seeds_of(0, 1, 2**40 + 3, 77, 2**63 - 1)
    for c, stream in ((0, 0), (2**32 + 5, 65535)):
        got = OPS[kind](s.cuda(), ctr(c, "cuda"), stream, size, dtype)
        assert got.device.type == "cuda" and got.shape == (5, *size)
        assert torch.equal(got.cpu(), OPS[kind](s, ctr(c), stream, size, dtype))


@requires_cuda
@pytest.mark.parametrize("kind", OPS)
def test_cuda_counter_in_graph_and_invalid_values(kind):
    s, c = seeds_of(1, 2, device="cuda"), ctr(0, "cuda")
    f = OPS[kind]
    f(s, c, 0, [64])  # warm-up outside the capture
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = f(s, c, 0, [64])
        c.add_(1)
    want = [f(s.cpu(), ctr(k), 0, [64]) for k in range(3)]
    for k in range(3):
        g.replay()
        assert torch.equal(out.cpu(), want[k])
    assert int(c) == 3
    # no sync for the values on CUDA: invalid ones give NaN (a seed's slice / everything)
    x = f(seeds_of(5, -1, device="cuda"), ctr(0, "cuda"), 0, [9])
    assert bool(x[1].isnan().all()) and not bool(x[0].isnan().any())
    assert bool(f(s, ctr(2**48, "cuda"), 0, [9]).isnan().all())
    assert bool(f(s, ctr(-1, "cuda"), 0, [9]).isnan().all())
    with pytest.raises(ValueError, match="counter must be on the device of seeds"):
        f(s, ctr(0), 0, [9])
