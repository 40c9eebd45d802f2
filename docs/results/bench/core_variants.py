"""Variants of syre's coupled decay on the CPU, each timed alone (CPU time, 1 thread, best of N rounds of 5) next
to the foreach Adam step of the 10M-weight MLP of scripts/bench/bench_core.py. The exploration behind core.py's
BLOCK_ELEMENTS; run: PYTHONPATH=. python docs/results/bench/core_variants.py 10 > docs/results/bench/core-variants.txt
"""
import ctypes, time, torch, sys
libc = ctypes.CDLL("libc.so.6"); libc.mallopt(-3, 32 << 20); libc.mallopt(-1, 1 << 30)
torch.set_num_threads(1); torch.set_grad_enabled(False); torch.manual_seed(0)
from torch import nn
def mlp(sizes):
    layers=[]
    for a,b in zip(sizes[:-1], sizes[1:]): layers += [nn.Linear(a,b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])
m = mlp([1024,2048,2048,2048,1024]); params=list(m.parameters())
for p in params: p.grad = torch.randn_like(p)*1e-3
anchors=[torch.randn_like(p)*0.01 for p in params]; grads=[p.grad for p in params]
gamma=1e-3
opt = torch.optim.Adam(params, lr=1e-4, foreach=True)
def chunks(ts, n):
    out=[]
    for t in ts:
        f=t.view(-1); out += [f[i:i+n] for i in range(0, f.numel(), n)]
    return out
def unblocked():
    torch._foreach_add_(grads, params, alpha=gamma); torch._foreach_add_(grads, anchors, alpha=-gamma)
def blocked(n):
    gc, wc, ac = chunks(grads,n), chunks(params,n), chunks(anchors,n)
    def f():
        for g,w,a in zip(gc,wc,ac):
            torch._foreach_add_([g], [w], alpha=gamma); torch._foreach_add_([g], [a], alpha=-gamma)
    return f
def inter(n):
    gc, wc, ac = chunks(grads,n), chunks(params,n), chunks(anchors,n)
    one = torch.ones(())
    selfs = [x for g in gc for x in (g, g)]
    t2 = [x for w,a in zip(wc,ac) for x in (w, a)]
    t1 = [one]*len(selfs)
    sc = [gamma, -gamma]*len(gc)
    def f(): torch._foreach_addcmul_(selfs, t1, t2, sc)
    return f
def inter_add(n):
    # per-chunk add_ pairs in a python loop, no foreach
    gc, wc, ac = chunks(grads,n), chunks(params,n), chunks(anchors,n)
    trip = list(zip(gc,wc,ac))
    def f():
        for g,w,a in trip:
            g.add_(w, alpha=gamma).add_(a, alpha=-gamma)
    return f
cases={"adam": opt.step, "unblocked": unblocked, "lerp(ref 3 streams)": lambda: torch._foreach_lerp_(params, anchors, 1e-7)}
for n in [1<<20, 1<<17]: cases[f"blocked{n}"]=blocked(n)
for n in [1<<15, 1<<16, 1<<17]: cases[f"inter{n}"]=inter(n)
for n in [1<<16, 1<<17]: cases[f"loop{n}"]=inter_add(n)
@torch.compile(dynamic=False)
def fused(gs, ws, as_):
    for g, w, a in zip(gs, ws, as_):
        g.add_(w - a, alpha=gamma)
t = time.perf_counter(); fused(grads, params, anchors); print(f"torch.compile of the fused pass: {time.perf_counter() - t:.1f} s")
cases["compiled one pass"] = lambda: fused(grads, params, anchors)
for f in cases.values(): f(); f()
best={k:1e9 for k in cases}
for r in range(int(sys.argv[1])):
    for k,f in cases.items():
        t=time.process_time()
        for _ in range(5): f()
        best[k]=min(best[k], (time.process_time()-t)/5)
print(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, load {open('/proc/loadavg').read().split()[:3]}, torch {torch.__version__}")
for k,v in best.items(): print(f"{k:22s} {v*1e3:8.3f} ms {v/best['adam']:+.1%}")
