"""The Colab notebooks (notebooks/*.ipynb) run top to bottom in the test suite, shrunk by
TOOLKIT_NOTEBOOK_QUICK=1, and must end with their exported SavedModel and ONNX files; they are stored
without outputs, open with a Colab badge for their own path and are linked from the README."""

import configparser
import os

import pytest

pytestmark = pytest.mark.slow  # trains models: `make test-fast` leaves this module out

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = ["image_classification.ipynb", "object_detection.ipynb", "segmentation.ipynb", "translation.ipynb",
             "audio_classification.ipynb",
             "speech_recognition.ipynb", "recommendation.ipynb", "text_classification.ipynb",
             "anomaly_detection.ipynb"]
GUIDES = ["tune_and_track.ipynb"]  # notebooks across tasks


def repository_url():
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    return config["metadata"]["url"]


def read(name):
    import nbformat

    return nbformat.read(os.path.join(REPO, "notebooks", name), as_version=4)


def test_every_task_has_a_notebook_stored_clean_with_its_badge():
    import nbformat

    from toolkit.tasks import TASKS

    assert sorted(NOTEBOOKS + GUIDES) == sorted(
        n for n in os.listdir(os.path.join(REPO, "notebooks")) if n.endswith(".ipynb"))
    assert {name.split(".")[0] for name in NOTEBOOKS} == set(TASKS.names())
    url = repository_url()
    owner_repo = url.split("github.com/")[1]
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    for name in NOTEBOOKS + GUIDES:
        notebook = read(name)
        nbformat.validate(notebook)
        badge = f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{name}"
        assert badge in notebook.cells[0].source, name
        assert badge in readme, f"README does not link {name} with its Colab badge"
        setup = next(cell.source for cell in notebook.cells if cell.cell_type == "code")
        assert f"git+{url}" in setup and "TOOLKIT_NOTEBOOK_QUICK" in setup, name
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{name} is stored with outputs"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS + GUIDES)
def test_notebook_runs_top_to_bottom(name, tmp_path, monkeypatch):
    import nbclient

    output = tmp_path / "out"
    output.mkdir()
    monkeypatch.setenv("TOOLKIT_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("TOOLKIT_NOTEBOOK_OUTPUT", str(output))
    monkeypatch.delenv("TOOLKIT_HOME")  # the user's data cache (make setup fetched MovieLens there)
    monkeypatch.delenv("KERAS_HOME")
    notebook = read(name)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(output)}}).execute()
    last = notebook.cells[-1]
    printed = "".join(out.get("text", "") for out in last.outputs if out.get("name") == "stdout")
    assert "model.onnx" in printed and "saved_model" in printed and "verify.json" in printed
    runs = [root for root, dirs, _ in os.walk(output) if "export" in dirs and root.count(os.sep) - str(output).count(
        os.sep) <= 2]  # a run directory, or a tune study's final run
    assert runs, "no exported run in the notebook's output directory"
    for run in runs:
        assert os.path.isfile(os.path.join(run, "export", "model.onnx"))
        assert os.path.isfile(os.path.join(run, "export", "saved_model", "saved_model.pb"))
