"""er_fast.vae.train: S stacked seeds train like S separate runs; checkpoints; argument checks."""
import numpy as np
import pytest
import torch

from er_fast.vae import ToyData, TrainedModels, Trainer, evaluate, get_spec, train_seeds
from er_fast.vae.embedding import Embedding
from er_fast.util.threads import intra_op_threads
from er_fast.vae import list_models
from er_fast.vae.seeds import Streams
from er_fast.vae.train import clip_grad_norm_per_seed_

SMALL = dict(steps=12, batch_size=8, width=12, depth=2, log_every=5, lr=3e-3)


@pytest.fixture(scope="module")
def data64():
    return ToyData(test_size=40, dtype=torch.float64)


def _emb(model_id, dtype=torch.float64):
    if get_spec(model_id).embed != "learned":
        return None
    torch.manual_seed(0)
    return Embedding(1, 2, 8, 2).to(dtype).requires_grad_(False)


@pytest.mark.parametrize("model_id", ["vae-gauss-2d", "er-proj-1d", "er-learned-group-1d"])
def test_seed_in_batch_equals_seed_alone(model_id, data64):
    """Seed 5 trained among seeds [3, 5, 7] ends with the parameters, curve and held-out numbers of
    seed 5 trained alone (float64)."""
    emb = _emb(model_id)
    batch = train_seeds(model_id, [3, 5, 7], data64, embedding=emb, dtype=torch.float64, **SMALL)
    alone = train_seeds(model_id, [5], data64, embedding=emb, dtype=torch.float64, **SMALL)
    sb, sa = batch.model.state_dict(), alone.model.state_dict()
    for k in sa:
        if k.startswith("embedding."):
            torch.testing.assert_close(sb[k], sa[k], rtol=0, atol=0)
        else:
            torch.testing.assert_close(sb[k][1:2], sa[k], rtol=1e-9, atol=1e-11, msg=k)
    np.testing.assert_allclose(batch.curves["elbo"][:, 1:2], alone.curves["elbo"], rtol=1e-9)
    eb = evaluate(batch, data64.x_test, iwae_k=20, iwae_points=6, chunk=32)
    ea = evaluate(alone, data64.x_test, iwae_k=20, iwae_points=6, chunk=32)
    for k in ("elbo", "iwae", "active_units", "sigma"):
        np.testing.assert_allclose(eb[k][1:2], ea[k], rtol=1e-9, err_msg=k)


def test_float32_batch_vs_alone_close():
    d = ToyData(test_size=20)
    batch = train_seeds("vae-beta-1d", [0, 1], d, **SMALL)
    alone = train_seeds("vae-beta-1d", [1], d, **SMALL)
    for k, v in alone.model.state_dict().items():
        torch.testing.assert_close(batch.model.state_dict()[k][1:2], v, rtol=1e-4, atol=1e-5)


def test_reproducible_and_seeds_differ(data64):
    a = train_seeds("er-proj-1d", [1, 2], data64, dtype=torch.float64, **SMALL)
    b = train_seeds("er-proj-1d", [1, 2], data64, dtype=torch.float64, **SMALL)
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(v, b.model.state_dict()[k], rtol=0, atol=0)
    w = a.model.encoder.weights[0]
    assert not torch.equal(w[0], w[1])
    assert a.curves["elbo"].shape == (3, 2) and list(a.curves["step"]) == [5, 10, 12]
    assert np.isfinite(a.curves["elbo"]).all()


def test_training_improves_elbo():
    d = ToyData(test_size=200)
    before = torch.get_num_threads()
    tr = train_seeds("er-proj-1d", [0, 1], d, steps=150, batch_size=32, width=32, log_every=50, lr=3e-3, threads=1)
    assert torch.get_num_threads() == before  # restored
    c = tr.curves["elbo"]
    assert (c[-1] > c[0] + 50).all(), c


def test_checkpoint_roundtrip_weights_only(tmp_path, data64):
    emb = _emb("er-learned-1d")
    tr = train_seeds("er-learned-1d", [4, 9], data64, embedding=emb, dtype=torch.float64, **SMALL)
    path = tmp_path / "unit.pt"
    torch.save(tr.state_dict(), path)
    back = TrainedModels.load(torch.load(path, weights_only=True))
    assert back.seeds == [4, 9] and back.model_id == "er-learned-1d" and back.config == tr.config
    np.testing.assert_array_equal(back.curves["elbo"], tr.curves["elbo"])
    e1 = evaluate(tr, data64.x_test, iwae_k=10, iwae_points=4)
    e2 = evaluate(back, data64.x_test, iwae_k=10, iwae_points=4)
    for k in e1:
        np.testing.assert_array_equal(e1[k], e2[k])
    with pytest.raises(ValueError, match="checkpoint"):
        TrainedModels.load({"format": "something else"})


def test_trainer_continues():
    """Trainer.run in two pieces equals one run of the same length."""
    d = ToyData(test_size=10, dtype=torch.float64)
    t = Trainer("vae-beta-2d", [0, 1], d, batch_size=8, width=8, log_every=4, dtype=torch.float64)
    t.run(6)
    t.run(4)
    one = train_seeds("vae-beta-2d", [0, 1], d, steps=10, batch_size=8, width=8, log_every=4, dtype=torch.float64)
    for k, v in one.model.state_dict().items():
        torch.testing.assert_close(t.model.state_dict()[k], v, rtol=0, atol=0)
    assert t.result().config.steps == 10


def test_per_seed_clipping():
    p1 = torch.zeros(3, 4, requires_grad=True)
    p2 = torch.zeros(3, 2, 2, requires_grad=True)
    p1.grad = torch.tensor([[3.0, 4, 0, 0], [0.1, 0, 0, 0], [0, 0, 0, 0]])
    p2.grad = torch.zeros(3, 2, 2)
    p2.grad[2, 0, 0] = 10.0
    norms = clip_grad_norm_per_seed_([p1, p2], 1.0)
    torch.testing.assert_close(norms.float(), torch.tensor([5.0, 0.1, 10.0]))
    torch.testing.assert_close(p1.grad[0], torch.tensor([0.6, 0.8, 0, 0]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(p1.grad[1], torch.tensor([0.1, 0, 0, 0]))  # under the bound: untouched
    torch.testing.assert_close(p2.grad[2, 0, 0], torch.tensor(1.0), atol=1e-5, rtol=1e-5)
    # clipping inside training keeps seeds independent too
    d = ToyData(test_size=10, dtype=torch.float64)
    a = train_seeds("er-proj-1d", [0, 1], d, dtype=torch.float64, clip_norm=5.0, **SMALL)
    b = train_seeds("er-proj-1d", [1], d, dtype=torch.float64, clip_norm=5.0, **SMALL)
    torch.testing.assert_close(a.model.log_sigma[1:], b.model.log_sigma, rtol=1e-9, atol=1e-12)


def test_streams_independent_and_seed_local():
    st = Streams([0, 1])
    a, b = st.uniform("data", (4,)), st.uniform("noise", (4,))
    x = [a[0], a[1], b[0], b[1]]
    assert len({tuple(t.tolist()) for t in x}) == 4
    assert torch.equal(Streams([1]).uniform("data", (4,))[0], a[1])  # seed 1 alone draws what it drew among
    second = st.uniform("data", (4,))
    assert not torch.equal(second, a)  # the counter advanced
    assert st.state_dict() == {"init": 0, "data": 2, "noise": 1, "eval": 0}
    # the state is the counters: restored at data = 1, the stream draws its second batch again
    assert torch.equal(Streams([0, 1], counters={"data": 1}).uniform("data", (4,)), second)
    with pytest.raises(ValueError, match="stream must be one of"):
        st.uniform("weights", (2,))


SMALL_ALL = dict(steps=10, width=16, batch_size=32)


def _emb16():
    torch.manual_seed(0)
    return Embedding(1, 2, 16, 2).requires_grad_(False)


@pytest.mark.parametrize("model_id", [m.id for m in list_models()])
def test_seed_alone_equals_seed_among_64_bitwise(model_id):
    """With one thread, seed 5 trained alone and seed 5 trained among seeds 0..63 end with the SAME
    BITS: every parameter, the training curve, and the held-out ELBO and IWAE."""
    d = ToyData(test_size=64)
    emb = _emb16() if get_spec(model_id).embed == "learned" else None
    with intra_op_threads(1):
        many = train_seeds(model_id, list(range(64)), d, embedding=emb, **SMALL_ALL)
        alone = train_seeds(model_id, [5], d, embedding=emb, **SMALL_ALL)
        em = evaluate(many, d.x_test, iwae_k=20, iwae_points=8)
        ea = evaluate(alone, d.x_test, iwae_k=20, iwae_points=8)
    sm, sa = many.model.state_dict(), alone.model.state_dict()
    for k in sa:
        assert torch.equal(sm[k] if k.startswith("embedding.") else sm[k][5:6], sa[k]), k
    np.testing.assert_array_equal(many.curves["elbo"][:, 5:6], alone.curves["elbo"])
    for k in ("elbo", "iwae", "elbo_iwae_points", "active_units", "sigma"):
        np.testing.assert_array_equal(em[k][5:6], ea[k], err_msg=k)


class _CountOps(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("model_id", [m.id for m in list_models()])
def test_a_step_dispatches_the_same_ops_for_2_or_64_seeds(model_id):
    """No Python loop over seeds: one training step, and one evaluation pass, dispatch the same
    ATen ops (same names, same order) for S = 2 and S = 64."""
    d = ToyData(test_size=16)
    emb = _emb16() if get_spec(model_id).embed == "learned" else None
    seen = {}
    for S in (2, 64):
        tr = Trainer(model_id, list(range(S)), d, embedding=emb, width=16, batch_size=32)
        tr.step()
        with _CountOps() as step_ops:
            tr.step()
        with _CountOps() as eval_ops:
            evaluate(tr.result(), d.x_test, iwae_k=16, iwae_points=4, chunk=64)
        seen[S] = (step_ops.ops, eval_ops.ops)
    assert seen[2][0] == seen[64][0] and len(seen[2][0]) > 50
    assert seen[2][1] == seen[64][1]


def test_trainer_checkpoint_continues_with_the_same_numbers(tmp_path):
    """Trainer.state_dict after 4 steps, loaded into a fresh Trainer, continues bitwise like an
    uninterrupted 10-step run: the random streams' counters are part of the state."""
    d = ToyData(test_size=10, dtype=torch.float64)
    kw = dict(batch_size=8, width=8, log_every=4, dtype=torch.float64)
    one = Trainer("er-proj-1d", [0, 1], d, **kw)
    one.run(10)
    a = Trainer("er-proj-1d", [0, 1], d, **kw)
    a.run(4)
    torch.save(a.state_dict(), tmp_path / "t.pt")
    b = Trainer("er-proj-1d", [0, 1], d, **kw)
    b.load_state_dict(torch.load(tmp_path / "t.pt", weights_only=True))
    b.run(6)
    for k, v in one.model.state_dict().items():
        assert torch.equal(b.model.state_dict()[k], v), k
    np.testing.assert_array_equal(one.result().curves["elbo"], b.result().curves["elbo"])
    assert b.result().streams == one.result().streams


def test_bad_arguments(data64):
    ok = dict(steps=2, batch_size=4, width=4)
    with pytest.raises(ValueError, match="model id must be one of"):
        train_seeds("vae-gauss-7d", [0], data64, **ok)
    for bad in (0, -3, 1.5):
        with pytest.raises(ValueError, match="steps"):
            train_seeds("er-proj-1d", [0], data64, **dict(ok, steps=bad))
        with pytest.raises(ValueError, match="batch_size"):
            train_seeds("er-proj-1d", [0], data64, **dict(ok, batch_size=bad))
        with pytest.raises(ValueError, match="width"):
            train_seeds("er-proj-1d", [0], data64, **dict(ok, width=bad))
    with pytest.raises(ValueError, match="seeds must be a non-empty list"):
        train_seeds("er-proj-1d", [], data64, **ok)
    with pytest.raises(ValueError, match="seeds must be a list"):
        train_seeds("er-proj-1d", 3, data64, **ok)
    with pytest.raises(ValueError, match="non-negative integer"):
        train_seeds("er-proj-1d", [-1], data64, **ok)
    with pytest.raises(ValueError, match="distinct"):
        train_seeds("er-proj-1d", [2, 2], data64, **ok)
    with pytest.raises(ValueError, match="lr"):
        train_seeds("er-proj-1d", [0], data64, lr=0.0, **ok)
    with pytest.raises(ValueError, match="ToyData"):
        train_seeds("er-proj-1d", [0], torch.zeros(3, 100), **ok)
    with pytest.raises(ValueError, match="learned embedding"):
        train_seeds("er-learned-1d", [0], data64, **ok)
    with pytest.raises(ValueError, match="dtype"):
        train_seeds("er-proj-1d", [0], data64, dtype=torch.float16, **ok)
    with pytest.raises(ValueError, match="threads"):
        train_seeds("er-proj-1d", [0], data64, threads=0, **ok)
    with pytest.raises(ValueError, match="clip_norm"):
        train_seeds("er-proj-1d", [0], data64, clip_norm=-1.0, **ok)
