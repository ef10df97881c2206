"""er_fast.vae.data: the toy task (paper section 4) and its torus / sphere variants."""
import math

import pytest
import torch
from scipy import stats

from conftest import requires_cuda
from er_fast.util.threads import intra_op_threads
from er_fast.vae.config import MANIFOLDS
from er_fast.vae.data import ToyData, angles_of, params_to_points, relu_kinks, sample_manifold
from er_fast.vae.seeds import Streams


@pytest.mark.parametrize("manifold", sorted(MANIFOLDS))
def test_shapes_and_points_on_manifold(manifold):
    d = ToyData(manifold=manifold, test_size=50)
    m, n = MANIFOLDS[manifold]
    assert (d.ambient_dim, d.intrinsic_dim) == (m, n)
    assert d.x_test.shape == (50, 100) and d.points_test.shape == (50, m)
    x, p = d.sample_seeds(7, Streams([0, 1, 2]), return_points=True)
    assert x.shape == (3, 7, 100) and p.shape == (3, 7, m)
    if manifold == "sphere":
        norms = p.norm(dim=-1)
    else:
        norms = p.unflatten(-1, (-1, 2)).norm(dim=-1)
    torch.testing.assert_close(norms, torch.ones_like(norms))
    torch.testing.assert_close(x, d.embed(p))  # noise-free by default


def test_circle_angles_uniform():
    p = sample_manifold("circle", 4000, torch.Generator().manual_seed(0), dtype=torch.float64)
    a = angles_of("circle", p)[:, 0] / (2 * math.pi)
    assert stats.kstest(a.numpy(), "uniform").pvalue > 1e-3


def test_sphere_uniform():
    # uniform on S² <=> the z coordinate is uniform on [-1, 1] (Archimedes) and the azimuth uniform
    p = sample_manifold("sphere", 4000, torch.Generator().manual_seed(1), dtype=torch.float64)
    c = angles_of("sphere", p)
    assert stats.kstest(((c[:, 0] + 1) / 2).numpy(), "uniform").pvalue > 1e-3
    assert stats.kstest((c[:, 1] / (2 * math.pi)).numpy(), "uniform").pvalue > 1e-3


def test_map_init_and_seeds():
    a, b, c = ToyData(map_seed=3, test_size=10), ToyData(map_seed=3, test_size=10), ToyData(map_seed=4, test_size=10)
    for k in a.map_params:
        torch.testing.assert_close(a.map_params[k], b.map_params[k], rtol=0, atol=0)
    assert not torch.equal(a.map_params["w1"], c.map_params["w1"])
    bound = math.sqrt(6 / (2 + 100))  # Xavier-uniform hidden layer
    assert a.map_params["w1"].abs().max() <= bound
    assert a.map_params["w1"].abs().max() > 0.9 * bound  # the full range is used
    assert a.map_params["w2"].abs().max() <= 0.1  # nn.Linear default U(±1/sqrt(100))
    torch.testing.assert_close(a.x_test, b.x_test, rtol=0, atol=0)
    # the test set has its own seed: a different test_seed changes it, the map stays
    d = ToyData(map_seed=3, test_size=10, test_seed=5)
    assert not torch.equal(a.x_test, d.x_test)
    torch.testing.assert_close(a.map_params["w1"], d.map_params["w1"], rtol=0, atol=0)
    # float64 and float32 tasks carry the same map (drawn in float64)
    e = ToyData(map_seed=3, test_size=10, dtype=torch.float64)
    torch.testing.assert_close(e.map_params["w2"].float(), a.map_params["w2"], rtol=0, atol=0)


@pytest.mark.parametrize("noise", [0.0, 0.1])
def test_seed_slices_independent(noise):
    """Slice s of sample_seeds equals what seed s alone draws, bitwise with one thread (the setting
    `er-fast table1` runs in; with 2 threads MKL may split a small GEMM differently)."""
    d = ToyData(test_size=5, noise_std=noise)
    with intra_op_threads(1):
        x = d.sample_seeds(9, Streams(range(11, 75)))
        alone = d.sample_seeds(9, Streams([12]))
    torch.testing.assert_close(x[1], alone[0], rtol=0, atol=0)


def test_noise_level():
    d = ToyData(test_size=5, noise_std=0.2)
    x, p = d.sample(2000, torch.Generator().manual_seed(0), return_points=True)
    r = x - d.embed(p)
    assert abs(float(r.std()) - 0.2) < 0.01


def test_bad_arguments():
    with pytest.raises(ValueError, match="manifold must be one of"):
        ToyData(manifold="klein")
    with pytest.raises(ValueError, match="noise_std"):
        ToyData(noise_std=-1.0)
    with pytest.raises(ValueError, match="test_size"):
        ToyData(test_size=0)
    with pytest.raises(ValueError, match="dtype"):
        ToyData(dtype=torch.float16)
    with pytest.raises(TypeError, match="DataConfig fields must be among"):
        ToyData(noise=0.1)
    d = ToyData(test_size=5)
    with pytest.raises(ValueError, match="positive integer"):
        d.sample(0, torch.Generator())
    with pytest.raises(TypeError, match="streams must be"):
        d.sample_seeds(3, [])
    with pytest.raises(TypeError, match="streams must be"):
        d.sample_seeds(3, torch.Generator())
    with pytest.raises(ValueError, match="points must have last dimension"):
        d.embed(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="manifold must be one of"):
        sample_manifold("plane", 3)


def test_circle_map_closed_form_equals_the_mlp():
    """CircleMap (the training and test draws' path) is the random MLP in closed form: equal to
    embed() to float64 rounding everywhere, kinks and the wrap-around included, and in float32
    closer to the float64 truth than the float32 GEMMs are."""
    d64 = ToyData(test_size=5, dtype=torch.float64)
    kinks = d64._circle_map.kinks
    g = torch.Generator().manual_seed(0)
    r = torch.cat([torch.rand(4000, generator=g, dtype=torch.float64), kinks, kinks + 1e-12, kinks - 1e-12,
                   torch.tensor([0.0, 0.5, 1.0 - 2**-53], dtype=torch.float64)]).clamp(0, 1 - 2**-53)[:, None]
    truth = d64.embed(params_to_points("circle", r))
    torch.testing.assert_close(d64._circle_map(r), truth, rtol=0, atol=1e-13)
    d32 = ToyData(test_size=5)
    r32 = r.float()
    t32 = d64.embed(params_to_points("circle", r32.double()))  # truth at the float32 positions
    closed = (d32._circle_map(r32).double() - t32).abs().max()
    gemm = (d32.embed(params_to_points("circle", r32)).double() - t32).abs().max()
    assert closed <= gemm and closed < 1e-6  # measured: about half the GEMMs' error


def test_circle_kinks_are_where_units_switch():
    d = ToyData(test_size=5, dtype=torch.float64)
    p = d.map_params
    phi = relu_kinks(p["w1"], p["b1"])
    assert len(phi) > 0 and bool((phi[1:] >= phi[:-1]).all()) and 0 <= float(phi.min()) and float(phi.max()) < 2 * math.pi
    pre = torch.stack([torch.cos(phi), torch.sin(phi)], -1) @ p["w1"] + p["b1"]
    assert float(pre.abs().min(1).values.max()) < 1e-12  # some unit is exactly at 0 at every kink


@requires_cuda
def test_circle_data_on_cuda_matches_cpu_without_host_sync():
    """The closed-form circle map on the GPU (searchsorted + embedding_bag): the same batches as on
    the CPU (uniforms bitwise equal, cos/sin to a few ulps) and no host synchronisation."""
    cpu, gpu = ToyData(test_size=5), ToyData(test_size=5, device="cuda")
    st_cpu, st_gpu = Streams(range(8)), Streams(range(8), "cuda")
    gpu.sample_seeds(64, Streams(range(8), "cuda"))  # warm-up outside the checked region
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x_gpu = gpu.sample_seeds(64, st_gpu)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.testing.assert_close(x_gpu.cpu(), cpu.sample_seeds(64, st_cpu), rtol=1e-5, atol=1e-6)
