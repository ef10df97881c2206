"""Prototype measurement: fused circle_embed + first linear layer (torch.ops.er_fast_proto, csrc/cpu/manifold_linear.cpp)
vs er_fast.circle_embed + torch.baddbmm, S=64 seeds, B=128, out=128, k=1,2, fwd+bwd, min over 40 interleaved rounds.
Run: PYTHONPATH=. python benchmarks/proto_circle_embed_linear.py <threads>"""
import torch, er_fast, time, math, sys
torch.manual_seed(0)
torch.set_num_threads(int(sys.argv[1]))
P = torch.ops.er_fast_proto
S,B,out=64,128,128
class Fused(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, W, b, th):
        ctx.save_for_backward(z, W, th)
        ctx.has_b = b is not None
        return P.circle_embed_linear(z, W, None if b is None else b.reshape(W.shape[0], -1), th)
    @staticmethod
    def backward(ctx, g):
        z, W, th = ctx.saved_tensors
        dz, dW, db, dth = P.circle_embed_linear_backward(g, z, W, th, ctx.has_b)
        return dz, dW, db.reshape(W.shape[0], 1, -1), dth.sum_to_size(th.shape)
def best(fns, rounds=40):
    b={k:1e9 for k in fns}
    for _ in range(rounds):
        for k,f in fns.items():
            t=time.perf_counter(); f(); b[k]=min(b[k],time.perf_counter()-t)
    return {k: round(v*1e3,3) for k,v in b.items()}
for k in (1,2):
    z=torch.rand(S,B,k,requires_grad=True); th=torch.randn(S,B,1,requires_grad=True)
    W=torch.randn(S,out,2*k,requires_grad=True); b=torch.randn(S,1,out,requires_grad=True)
    g=torch.randn(S,B,out)
    ins=(z,th,W,b)
    def base_f(): return torch.baddbmm(b, er_fast.circle_embed(z,th).reshape(S,B,2*k), W.transpose(1,2))
    def fused_f(): return Fused.apply(z, W, b, th)
    y1, y2 = base_f(), fused_f()
    g1 = torch.autograd.grad(y1, ins, g); g2 = torch.autograd.grad(y2, ins, g)
    print('check', (y1-y2).abs().max().item(), [ (a-c).abs().max().item() for a,c in zip(g1,g2)])
    def base(): return torch.autograd.grad(base_f(), ins, g)
    def fused(): return torch.autograd.grad(fused_f(), ins, g)
    def base_fwd():
        with torch.no_grad(): base_f()
    def fused_fwd():
        with torch.no_grad(): fused_f()
    r = best(dict(base=base, fused=fused, base_fwd=base_fwd, fused_fwd=fused_fwd))
    print(k, r, 'fwd+bwd ratio %.2f fwd ratio %.2f' % (r['base']/r['fused'], r['base_fwd']/r['fused_fwd']))
