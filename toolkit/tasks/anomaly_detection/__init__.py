"""Anomaly detection: networks trained on normal data only (a convolutional autoencoder for images, a Conv1D or
LSTM autoencoder for time-series windows, deep SVDD on a registry backbone), scored by reconstruction error or
embedding distance, with a threshold calibrated on validation data and recorded in the model.

Files: `config.py` (recipe sections), `sources.py` (Fashion-MNIST one-vs-rest, image folders, synthetic NAB-style
series, CSV series, UCR sets), `series.py` (the series generator, CSV reading, windows, UCR files; NumPy),
`model.py` (the networks and the scoring network the exports hold), `scoring.py` (threshold calibration, metrics,
event-level detection, scikit-learn baselines, plots), `task.py` (training side, serving signatures),
`predictor.py` (deployment: score, flag, heat maps and flagged stretches in every runtime; no TensorFlow).
"""

from toolkit.config.tasks import TASKS
from toolkit.model_io import register_saved_layer
from toolkit.tasks.predictor import PREDICTORS

TASKS.register_lazy("anomaly_detection", "toolkit.tasks.anomaly_detection.task:AnomalyDetectionTask")
PREDICTORS.register_lazy("anomaly_detection", "toolkit.tasks.anomaly_detection.predictor:AnomalyPredictor")
register_saved_layer("toolkit>SVDDDistance", "toolkit.tasks.anomaly_detection.model:svdd_distance_class")
register_saved_layer("toolkit>WindowStandardise", "toolkit.tasks.anomaly_detection.model:window_standardise_class")
