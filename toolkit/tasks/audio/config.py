"""Recipe sections shared by the audio tasks (speech recognition, audio classification): the log-mel front end
computed in the graph (`toolkit.data.audio_features`) and SpecAugment.

Example:

>>> from toolkit.tasks.audio.config import FeatureConfig
>>> FeatureConfig().num_mel_bins
80
"""

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from toolkit.config.schema import StrictModel


class FeatureConfig(StrictModel):
    """Log-mel spectrogram computed inside the model's graph."""

    num_mel_bins: PositiveInt = Field(80, description="mel bands")
    frame_ms: PositiveFloat = Field(25.0, description="analysis window (ms)")
    step_ms: PositiveFloat = Field(10.0, description="hop between frames (ms)")
    fft_length: PositiveInt = Field(512, description="FFT size (>= the window in samples)")
    lower_hz: float = Field(20.0, ge=0.0, description="lowest mel band edge (Hz)")
    upper_hz: PositiveFloat = Field(7600.0, description="highest mel band edge (Hz, below sample_rate / 2)")


class SpecAugmentConfig(StrictModel):
    """SpecAugment masks, applied during training only."""

    freq_masks: NonNegativeInt = Field(2, description="frequency masks per utterance")
    freq_width: NonNegativeInt = Field(10, description="max mel bands per frequency mask")
    time_masks: NonNegativeInt = Field(2, description="time masks per utterance")
    time_width: NonNegativeInt = Field(12, description="max frames per time mask")


def check_features(features, sample_rate):
    """Raises ValueError (a recipe error) when `features` cannot run at `sample_rate`: an FFT shorter than the
    analysis window, or a mel band above half the sample rate."""
    frame = int(sample_rate * features.frame_ms / 1000)
    if features.fft_length < frame:
        raise ValueError(f"features.fft_length ({features.fft_length}) is below the window ({frame} samples at "
                         f"{sample_rate} Hz); raise it to at least {frame}")
    if features.upper_hz > sample_rate / 2:
        raise ValueError(f"features.upper_hz ({features.upper_hz}) is above half the sample rate ({sample_rate / 2:g}); "
                         "lower it")
