"""RL plumbing for the scripts: agent presets, plasticity methods, model building, run directories, callbacks.

``syre_rl.rl.model.build_model`` is the one place a run's model is built; methods plug in through
``syre_rl.rl.methods.POLICY_CHOICES`` (the registry's names).
"""
