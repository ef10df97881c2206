"""Bytes-per-element floor of the circle_embed / so2_rotate kernels vs the measured copy_ bandwidth.

Run: PYTHONPATH=. python benchmarks/floor_manifold.py <threads>
Times each compiled op (forward and backward op directly, 10^6 elements, min over 30 interleaved
rounds) and a 16 MiB / 64 MiB torch copy_; prints GB/s and the floor time at the copy bandwidth.
"""
import torch, er_fast, time, sys
torch.set_num_threads(int(sys.argv[1]))
N=1_000_000
def best(fns, rounds=30):
    b={k:1e9 for k in fns}
    for _ in range(rounds):
        for k,f in fns.items():
            t=time.perf_counter(); f(); b[k]=min(b[k],time.perf_counter()-t)
    return b
for dt, es in ((torch.float32,4),(torch.float64,8)):
    z=torch.rand(N,1,dtype=dt); th=torch.randn(N,1,dtype=dt); g=torch.randn(N,1,2,dtype=dt)
    o=er_fast.circle_embed(z,th); p=torch.randn(N,2,dtype=dt); t1=torch.randn(N,dtype=dt); g2=torch.randn(N,2,dtype=dt); o2=er_fast.so2_rotate(p,t1)
    s16=torch.randn((16<<20)//es,dtype=dt); d16=torch.empty_like(s16); s64=torch.randn((64<<20)//es,dtype=dt); d64=torch.empty_like(s64)
    fns=dict(circ_fwd=lambda: er_fast.circle_embed(z,th), circ_bwd=lambda: torch.ops.er_fast.circle_embed_backward(g,o,True,True),
             so2_fwd=lambda: er_fast.so2_rotate(p,t1), so2_bwd=lambda: torch.ops.er_fast.so2_rotate_backward(g2,o2,t1,True,True),
             copy16=lambda: d16.copy_(s16), copy64=lambda: d64.copy_(s64))
    b=best(fns)
    byt=dict(circ_fwd=4*es, circ_bwd=6*es, so2_fwd=5*es, so2_bwd=8*es)
    bw16=2*16*2**20/b['copy16']/1e9; bw64=2*64*2**20/b['copy64']/1e9
    print(dt, 'copy bandwidth GB/s: 16MiB %.1f, 64MiB %.1f'%(bw16,bw64))
    for k in byt:
        print('  %s %.3f ms, %d B/elem -> %.1f GB/s = %.0f%% of 16MiB-copy bw, floor %.3f ms'%(k,b[k]*1e3,byt[k],byt[k]*N/b[k]/1e9, 100*byt[k]*N/b[k]/1e9/bw16, byt[k]*N/bw16/1e9*1e3))
