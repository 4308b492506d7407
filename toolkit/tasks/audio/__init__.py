"""What the audio tasks share: the log-mel front end's recipe section, SpecAugment, reading clips.

Files: `config.py` (FeatureConfig, SpecAugmentConfig), `layers.py` (`toolkit>SpecAugment`). The features
themselves are `toolkit.data.audio_features` (TensorFlow ops and NumPy) and audio files are read by
`toolkit.data.audio_io`.
"""
