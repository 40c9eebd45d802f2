"""RL on Stable-Baselines3: agent presets, plasticity methods, model building, run directories, callbacks, and
the run lifecycle.

``syre_rl.rl.train.train`` runs (or resumes) one run; ``scripts/train_ppo.py`` is its command line.
``syre_rl.rl.model.build_model`` is the one place a run's model is built; methods plug in through
``syre_rl.policies.choices.POLICY_CHOICES`` (the registry's names).
"""
