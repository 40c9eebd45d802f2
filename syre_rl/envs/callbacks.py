"""SB3 callback that logs the current regime to TensorBoard, read from ``info["regime"]``."""

from __future__ import annotations

from stable_baselines3.common.callbacks import BaseCallback


class RegimeLoggerCallback(BaseCallback):
    """Record ``env/regime_index`` and ``env/<quantity>`` (e.g. ``env/friction``) of the first env every step.

    The logger keeps the last value until it dumps, so each TensorBoard point shows the regime at that time.
    Envs without a regime in ``info`` (stationary tasks) log nothing.
    """

    def _on_step(self) -> bool:
        regime = self.locals["infos"][0].get("regime")
        if regime:
            for key, value in regime.items():
                self.logger.record("env/regime_index" if key == "index" else f"env/{key}", value)
        return True
