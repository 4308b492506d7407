"""Recipe schema of the audio classification data: sources, windows, background noise and the offline sets.

Example:

>>> from toolkit.tasks.audio_classification.config import AudioClassDataConfig
>>> config = AudioClassDataConfig()
>>> config.source, config.sample_rate, config.window_seconds
('folder', 16000, 1.0)
>>> config.asterisk.test_speakers["fr"]
'armelle'
"""

from typing import Literal, Optional

from pydantic import (
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
    model_validator,
)

from toolkit.config.schema import DataConfig, StrictModel

# espeak-ng voices that speak the five languages of the Asterisk prompts (espeak-ng --voices=<lang>), and
# variants (espeak-ng --voices=variant) that keep speech intelligible.
DIGIT_VOICES = {
    "en": ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc"],
    "es": ["es", "es-419"],
    "fr": ["fr-fr", "fr-be", "fr-ch"],
    "it": ["it"],
    "ru": ["ru", "ru-lv"],
}
DIGIT_VARIANTS = ["", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4"]
DIGIT_VALIDATION_VARIANTS = ["m8", "f5"]


class NoiseConfig(StrictModel):
    """Background noise mixed into training windows (never into validation or test)."""

    probability: float = Field(0.0, ge=0.0, le=1.0, description="share of training windows that get noise")
    snr_db: tuple[float, float] = Field((5.0, 25.0), description="signal-to-noise ratio range (dB), drawn per window")
    path: Optional[str] = Field(None, description="a folder of noise recordings (WAV/FLAC/OGG/MP3, any rate, "
                                                  "searched recursively); without it: white, pink and brown noise")

    @field_validator("snr_db")
    @classmethod
    def _check_range(cls, value):
        if value[0] > value[1]:
            raise ValueError(f"expected [low, high] in dB, got [{value[0]}, {value[1]}]")
        return value


class AsteriskLanguageConfig(StrictModel):
    """`data.source: asterisk_language`: spoken language identification over the Asterisk prompts."""

    languages: list[Literal["en", "es", "fr", "it", "ru"]] = Field(
        default_factory=lambda: ["en", "es", "fr", "it", "ru"], description="languages (the classes)")
    test_speakers: dict[Literal["en", "es", "fr", "it", "ru"], str] = Field(
        default_factory=lambda: {"es": "es-co", "fr": "armelle", "it": "carlo"},
        description="language -> the speaker held out as its test split (never heard in training); a language "
                    "without one (one speaker only) is split by prompt name instead")
    path: Optional[str] = Field(None, description="an unpacked Asterisk root (default: the data cache; "
                                                  "toolkit data fetch asterisk)")
    synthetic_per_language: NonNegativeInt = Field(
        0, description="training clips per language spoken by espeak-ng voices (male and female variants) from "
                       "the transcripts of training prompts only: many voices per language, so that a voice does "
                       "not identify its language (0: none)")
    seed: int = Field(0, description="seed of the synthetic clips' texts, voices, speeds and pitches")


class SpokenDigitsConfig(StrictModel):
    """`data.source: spoken_digits`: digits 0-9 spoken by espeak-ng voices for training, tested on the real
    human digits of the Asterisk prompts."""

    languages: list[Literal["en", "es", "fr", "it", "ru"]] = Field(
        default_factory=lambda: ["en", "es", "fr", "it", "ru"], description="languages spoken in training and test")
    per_digit: PositiveInt = Field(60, description="synthetic training utterances per digit and language")
    validation_per_digit: PositiveInt = Field(6, description="synthetic validation utterances per digit and language "
                                                             "(held-out voice variants)")
    speed: tuple[PositiveInt, PositiveInt] = Field((110, 220), description="espeak-ng words per minute range")
    pitch: tuple[int, int] = Field((20, 80), description="espeak-ng pitch range (0-99)")
    seed: int = Field(0, description="seed of voices, variants, speeds and pitches (the corpus is deterministic)")
    cache_dir: Optional[str] = Field(None, description="where the synthetic digits are written (default "
                                                       "$TOOLKIT_HOME/data/audio/digits-<settings hash>)")


class AudioClassDataConfig(DataConfig):
    """Audio clips with one label each."""

    source: str = Field("folder", description="data source: folder, manifest, tfds, asterisk_language, "
                                              "spoken_digits (toolkit list sources)")
    sample_rate: PositiveInt = Field(16000, description="audio is resampled to this rate (Hz)")
    window_seconds: PositiveFloat = Field(1.0, description="the network hears windows of this length; shorter "
                                                           "clips are zero-padded, longer ones cut into windows")
    hop_seconds: PositiveFloat = Field(0.5, description="hop between the windows of a long clip (evaluation, "
                                                        "prediction, serving)")
    aggregate: Literal["mean", "max"] = Field("mean", description="clip scores from window scores: mean or max of "
                                                                  "the window probabilities")
    max_seconds: PositiveFloat = Field(60.0, description="longer clips are skipped (and counted)")
    min_seconds: NonNegativeFloat = Field(0.05, description="shorter clips are skipped (and counted)")
    classes: Optional[list[str]] = Field(None, description="class names in index order (default: sorted labels "
                                                           "of the training split)")
    speaker_pattern: Optional[str] = Field(
        None, description="folder/manifest: a regular expression whose first group is the speaker in a file name, "
                          "e.g. '^([^_]+)_' for speech_commands' <speaker>_nohash_<n>.wav; speakers never cross "
                          "splits")
    label_column: str = Field("label", description="manifest: the label column")
    path_column: str = Field("path", description="manifest: the audio path column")
    noise: NoiseConfig = Field(default_factory=NoiseConfig, description="background noise in training")
    gsm_probability: float = Field(0.0, ge=0.0, le=1.0, description="share of training windows passed through the "
                                                                    "GSM 6.10 telephone codec (encoded and decoded "
                                                                    "again): channel augmentation for telephone audio")
    speed_perturb: tuple[PositiveFloat, PositiveFloat] = Field(
        (1.0, 1.0), description="training windows are resampled by a random factor in this range (speed and pitch "
                                "change together, as in Kaldi's speed perturbation); (1, 1): off")
    asterisk: AsteriskLanguageConfig = Field(default_factory=AsteriskLanguageConfig,
                                             description="asterisk_language source")
    digits: SpokenDigitsConfig = Field(default_factory=SpokenDigitsConfig, description="spoken_digits source")

    @field_validator("speaker_pattern")
    @classmethod
    def _check_pattern(cls, value):
        if value is not None:
            import re

            try:
                if re.compile(value).groups < 1:
                    raise ValueError(f"{value!r} has no group; write the speaker part in parentheses, e.g. '^([^_]+)_'")
            except re.error as error:
                raise ValueError(f"{value!r} is not a regular expression ({error})")
        return value

    @model_validator(mode="after")
    def _check(self):
        if self.hop_seconds > self.window_seconds:
            raise ValueError(f"hop_seconds ({self.hop_seconds}) is above window_seconds ({self.window_seconds}); "
                             "windows would leave gaps")
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError("classes: a class is listed twice")
        return self
