"""Sweeps: grids of training runs (``grids/*.yaml``) run here or on a Ray cluster, and their learning curves.

- :mod:`~syre_rl.sweep.grid`: grid presets, their expansion into runs, and the sweep's ``sweep.json``
- :mod:`~syre_rl.sweep.launch`, :mod:`~syre_rl.sweep.local`, :mod:`~syre_rl.sweep.ray_cluster`: running them
- :mod:`~syre_rl.sweep.run`: a sweep from start to end (argument checks, lock, manifest, executor, outcomes)
- :mod:`~syre_rl.sweep.curves`: TensorBoard scalars binned by steps (the bands over seeds: :mod:`syre_rl.stats`)
- :mod:`~syre_rl.sweep.figures`, :mod:`~syre_rl.sweep.finals`: a sweep's figures, CSV and final values
- :mod:`~syre_rl.sweep.command`, :mod:`~syre_rl.sweep.plot`: the command lines (``python -m syre_rl sweep|plot``)

What a run is, and which command trains it, is :mod:`syre_rl.lifecycle`'s. Nothing here imports torch, Ray or
TensorBoard at import time beyond what ``syre_rl`` itself imports.
"""
