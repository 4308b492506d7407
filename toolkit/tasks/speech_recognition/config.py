"""Recipe schema of the speech recognition data: sources, audio and the synthetic espeak-ng corpus.

Example:

>>> from toolkit.tasks.speech_recognition.config import SpeechDataConfig
>>> config = SpeechDataConfig()
>>> config.source, config.sample_rate, config.espeak.utterances.train
('espeak', 16000, 2000)
>>> sorted(set(config.espeak.voices) & set(config.espeak.test_voices))
[]
"""

import re
from typing import Literal, Optional

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, field_validator, model_validator

from toolkit.config.schema import DataConfig, StrictModel

# Characters of the transcripts the recognizer writes: a-z, apostrophe, space.
DEFAULT_VOCABULARY = "abcdefghijklmnopqrstuvwxyz' "

# espeak-ng 1.51 English voices that speak without MBROLA (measured: `espeak-ng --voices=en`,
# the mb-* voices need the mbrola binary and voice files, absent here) and variants
# (`espeak-ng --voices=variant`) that keep speech intelligible (no whisper, croak, robots).
# Training voices and test voices share neither the accent nor the variant.
DEFAULT_VOICES = [
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
    "en-us+f3", "en-gb+m3", "en-us+m7", "en-gb-scotland+f2", "en-029+m2", "en-gb-x-rp+f5",
]
DEFAULT_TEST_VOICES = ["en-us-nyc+m4", "en-gb-x-gbcwmd+f4"]
_VOICE = re.compile(r"^[A-Za-z0-9_\-/]+(\+[A-Za-z0-9_\- ]+)?$")


class UtteranceCounts(StrictModel):
    """How many utterances the synthetic corpus holds per split."""

    train: PositiveInt = Field(2000, description="training utterances (voices)")
    validation: NonNegativeInt = Field(200, description="validation utterances (same voices as train, other texts)")
    test: NonNegativeInt = Field(200, description="test utterances (test_voices only)")


class EspeakConfig(StrictModel):
    """The synthetic corpus spoken by espeak-ng (Debian package espeak-ng), generated once and cached."""

    utterances: UtteranceCounts = Field(default_factory=UtteranceCounts, description="utterances per split")
    voices: list[str] = Field(
        default_factory=lambda: list(DEFAULT_VOICES),
        description="train/validation voices: espeak-ng voice[+variant] (espeak-ng --voices=en, --voices=variant)",
    )
    test_voices: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TEST_VOICES),
        description="voices of the test split only, never used for train or validation",
    )
    speed: tuple[PositiveInt, PositiveInt] = Field((140, 200), description="speaking rate range, words per minute")
    pitch: tuple[NonNegativeInt, NonNegativeInt] = Field((30, 70), description="pitch range (espeak-ng 0-99)")
    kinds: dict[Literal["words", "numbers", "sentences"], float] = Field(
        default_factory=lambda: {"words": 0.3, "numbers": 0.2, "sentences": 0.5},
        description="share of each text kind: words (1-4 random words), numbers (spelled out), sentences",
    )
    seed: int = Field(0, description="seed of texts, voices, speeds and pitches (the corpus is deterministic)")
    processes: Optional[PositiveInt] = Field(None, description="parallel espeak-ng processes (default: CPU cores)")
    cache_dir: Optional[str] = Field(
        None, description="where the corpus is written (default $TOOLKIT_HOME/data/speech/espeak-<settings hash>)"
    )

    @field_validator("voices", "test_voices")
    @classmethod
    def _check_voices(cls, value):
        for voice in value:
            if not _VOICE.match(voice):
                raise ValueError(f"{voice!r} is not an espeak-ng voice name like en-us or en-us+m3")
        if len(set(value)) != len(value):
            raise ValueError("a voice is listed twice")
        return value

    @field_validator("speed", "pitch")
    @classmethod
    def _check_range(cls, value, info):
        low, high = value
        limits = {"speed": (80, 450), "pitch": (0, 99)}[info.field_name]
        if low > high:
            raise ValueError(f"expected [low, high], got [{low}, {high}]")
        if low < limits[0] or high > limits[1]:
            raise ValueError(f"espeak-ng takes {info.field_name} {limits[0]}-{limits[1]}, got [{low}, {high}]")
        return value

    @field_validator("kinds")
    @classmethod
    def _check_kinds(cls, value):
        if any(share < 0 for share in value.values()) or sum(value.values()) <= 0:
            raise ValueError("shares must be >= 0 with a positive sum, e.g. {words: 0.3, numbers: 0.2, sentences: 0.5}")
        return value

    @model_validator(mode="after")
    def _check_held_out(self):
        if not self.voices:
            raise ValueError("voices: give at least one training voice, e.g. [en-us, en-gb+f3]")
        shared = [voice for voice in self.test_voices if voice in self.voices]
        if shared:
            raise ValueError(f"test_voices {shared} are also in voices; a test voice is never used for training")
        if self.utterances.test and not self.test_voices:
            raise ValueError("test_voices: empty but utterances.test > 0; give held-out voices, e.g. [en-us-nyc+m4]")
        return self


class SpeechDataConfig(DataConfig):
    """Speech: (waveform, transcript) utterances."""

    source: str = Field("espeak", description="data source: espeak, folder, asterisk, pocketsphinx or tfds (toolkit list sources)")
    sample_rate: PositiveInt = Field(16000, description="audio is resampled to this rate (Hz)")
    max_seconds: PositiveFloat = Field(12.0, description="longer utterances are skipped (and counted)")
    espeak: EspeakConfig = Field(default_factory=EspeakConfig, description="espeak: the synthetic corpus")
