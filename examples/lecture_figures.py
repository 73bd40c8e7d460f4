"""Three lecture figures from the public API: python examples/lecture_figures.py [output folder]."""
import os
import sys
import matplotlib.pyplot as plt
import numpy as np
import ngdformer as nf

out = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out, exist_ok=True)
rng, n, d, eta, T = np.random.default_rng(0), 40, 10, 0.5, 300
X, y, _ = nf.sample_tasks(rng, 64, n, d)
w0, t, gamma_mm = np.zeros((64, d)), np.arange(T + 1), nf.normalized_margin(nf.max_margin(X, y), X, y)
fig, ax = plt.subplots(layout="constrained")  # 1. NGD reaches the max-margin value, GD crawls
nf.depth_curves(ax, t, {"NGD": nf.normalized_margin(nf.ngd(w0, X, y, eta, T), X, y) / gamma_mm,
                        "GD": nf.normalized_margin(nf.gd(w0, X, y, eta, T), X, y) / gamma_mm},
                ylabel="normalized margin / max-margin value", band=(10, 90))
fig.savefig(f"{out}/margins.png")
fig, _ = nf.weight_heatmap(*nf.ngd_weights(4, eta), titles=("W*", "V*"))  # 2. the construction
fig.savefig(f"{out}/construction.png")
W, V, _ = nf.train_one_step_layer(rng, n=n, d=d, eta=eta, quiet=True)  # 3. a trained layer, looped
u = nf.looped_trajectory(nf.embed(X, y, w0), W, V, n, T)
fig, ax = plt.subplots(layout="constrained")
nf.depth_curves(ax, t[1:], {"trained": nf.normalized_difference(u, nf.ngd(w0, X, y, eta, T))[1:]},
                ylabel="||u/|u| - v/|v||| to NGD", logy=True, band=(10, 90))
fig.savefig(f"{out}/trained_vs_ngd.png")
