"""Sweeps: grids of training runs (``grids/*.yaml``) run here or on a Ray cluster, and their learning curves.

- :mod:`~syre_rl.sweep.scripts`: what the sweep knows of the training scripts (flags, completion markers)
- :mod:`~syre_rl.sweep.grid`: grid presets, their expansion into runs, and the sweep's ``sweep.json``
- :mod:`~syre_rl.sweep.launch`, :mod:`~syre_rl.sweep.local`, :mod:`~syre_rl.sweep.ray_cluster`: running them
- :mod:`~syre_rl.sweep.run`: a sweep from start to end (argument checks, lock, manifest, executor, outcomes)
- :mod:`~syre_rl.sweep.curves`: TensorBoard scalars binned by steps, mean and bootstrap band over seeds
- :mod:`~syre_rl.sweep.figures`: a sweep's figures and CSV

``scripts/sweep.py`` and ``scripts/plot.py`` are the command lines. Nothing here imports torch, Ray or
TensorBoard at import time beyond what ``syre_rl`` itself imports.
"""
