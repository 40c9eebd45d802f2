"""Ship the preset folders (agents/, envs/, experiments/, grids/) inside the package as syre_rl/preset_files/.

The repository keeps them at the top level, where users edit them; an installed package (pip install ., a wheel)
reads its own copies, see syre_rl.presets.preset_dir. Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PRESET_KINDS = ("agents", "envs", "experiments", "grids")  # as syre_rl.presets.PRESET_KINDS


class BuildWithPresets(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        for kind in PRESET_KINDS:
            target = Path(self.build_lib) / "syre_rl" / "preset_files" / kind
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for path in sorted((root / kind).glob("*.yaml")):
                shutil.copy2(path, target / path.name)


setup(cmdclass={"build_py": BuildWithPresets})
