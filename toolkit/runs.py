"""Run directories: `saved_models/<run>/` and everything in it.

    recipe.yaml       the resolved recipe (written first)
    state.json        status, completed phases, resume records
    model.keras       the trained model (best checkpoint), with toolkit.json inside
    metrics.json      test metrics of the task, data report, timings
    history.csv       one row per epoch
    training_curves.png, confusion_matrix.png, ...
    MODEL_CARD.md     data, backbone, metrics, export parity, limitations
    logs/             TensorBoard
    checkpoints/      best and per-phase weights
    export/           one artifact per format, samples/ and verify.json

Every file is written atomically, so an interrupted run never leaves a
half-written artifact under its final name.
"""

import json
import os

from toolkit.atomic import write_json, write_text
from toolkit.errors import RunError


class RunDirectory:
    """A run directory.

    Args:
        path: str. The run directory.
    """

    def __init__(self, path):
        self.path = os.path.abspath(path)

    def file(self, *parts):
        """Returns the path of a file inside the run."""
        return os.path.join(self.path, *parts)

    @property
    def recipe_path(self):
        return self.file("recipe.yaml")

    @property
    def model_path(self):
        return self.file("model.keras")

    @property
    def export_dir(self):
        return self.file("export")

    @property
    def name(self):
        return os.path.basename(self.path)

    # Creation -----------------------------------------------------------
    @classmethod
    def create(cls, recipe):
        """Creates a new run directory `<output.dir>/<name>[-N]` for a recipe."""
        from toolkit.config import recipe_to_yaml

        parent = recipe.output.dir
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as error:
            raise RunError(f"output.dir {parent}: cannot create it ({error.strerror})")
        base = recipe.name or "run"
        for attempt in range(1, 10000):
            path = os.path.join(parent, base if attempt == 1 else f"{base}-{attempt}")
            try:
                os.mkdir(path)
                break
            except FileExistsError:
                continue
            except OSError as error:
                raise RunError(f"output.dir {parent}: cannot create a run directory ({error.strerror})")
        run = cls(path)
        recipe.name = run.name
        write_text(run.recipe_path, recipe_to_yaml(recipe))
        run.update_state(status="created", completed_phases=[])
        return run

    @classmethod
    def open(cls, path, need_model=False):
        """Opens an existing run directory, with clear errors."""
        if not os.path.isdir(path):
            raise RunError(f"{path}: no such run directory")
        run = cls(path)
        if not os.path.isfile(run.recipe_path):
            raise RunError(f"{path} is not a run directory (no recipe.yaml); give a directory made by toolkit train")
        if need_model and not os.path.isfile(run.model_path):
            raise RunError(
                f"{path} has no model.keras yet (status: {run.state().get('status', 'unknown')}); "
                f"finish it with: toolkit train --resume {path}"
            )
        return run

    def recover(self):
        """Before writing into a run again: cleans up what a killed write left (see `toolkit.atomic.recover`)."""
        from toolkit.atomic import recover

        try:
            return recover(self.path)
        except OSError:  # a read-only run: nothing will be written into it either
            return []

    def load_recipe(self):
        """Loads the run's resolved recipe."""
        from toolkit.config import load_recipe

        return load_recipe(self.recipe_path, name=self.name)

    # State --------------------------------------------------------------
    def state(self):
        path = self.file("state.json")
        if not os.path.isfile(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def update_state(self, **changes):
        state = self.state()
        state.update(changes)
        write_json(self.file("state.json"), state)
        return state

    @property
    def metrics(self):
        """The run's `metrics.json` ({} until training has finished)."""
        path = self.file("metrics.json")
        if not os.path.isfile(path):
            return {}
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    # Looking at a run (notebooks) -----------------------------------------
    def __repr__(self):
        return f"Run({self.path!r}, status={self.state().get('status', 'unknown')!r})"

    def summary(self):
        """The text `toolkit train` prints at the end: test metrics, export parity, files."""
        from toolkit.reports import run_summary

        return run_summary(self)

    def history(self):
        """The per-epoch history: {column: [value per epoch]} from history.csv."""
        from toolkit.plots import read_history

        return read_history(self.file("history.csv"))

    def plots(self):
        """Names of the run's plots (PNG files in the run directory)."""
        return sorted(name for name in os.listdir(self.path) if name.endswith(".png"))

    def show(self, name):
        """Returns a plot of the run as a `Picture` (shown inline in a notebook).

        Args:
            name: str. A PNG file name from `plots()`, with or without ".png".
        """
        from toolkit.plots import Picture

        name = name if name.endswith(".png") else name + ".png"
        if name not in self.plots():
            raise RunError(f"{self.path} has no plot {name}; its plots: {', '.join(self.plots()) or 'none yet'}")
        return Picture(self.file(name))

    def plot_history(self):
        """The training curves (loss and metrics per epoch, train and validation) as a `Picture`."""
        return self.show("training_curves.png")

    def model_card(self):
        """The run's MODEL_CARD.md as Markdown text."""
        with open(self.file("MODEL_CARD.md"), encoding="utf-8") as f:
            return f.read()

    # Using a run ----------------------------------------------------------
    def artifact(self, format_name):
        """Path of an exported artifact (`"saved_model"`, `"onnx"`), checked to exist."""
        from toolkit.exporters.formats import FORMATS

        path = os.path.join(self.export_dir, FORMATS.get(format_name).artifact)
        if not os.path.exists(path):
            raise RunError(f"{self.path} has no {format_name} export; make it with run.export([{format_name!r}]) "
                           f"or toolkit export {self.path} --formats {format_name}")
        return path
