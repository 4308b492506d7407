"""Reading, resampling and writing audio as float32 mono waveforms.

- WAV (PCM 8/16/24/32-bit integer, 32/64-bit float, WAVE_FORMAT_EXTENSIBLE)
  is read with `scipy.io.wavfile`; FLAC, OGG, MP3 and other formats with
  `soundfile` when it is installed (`pip install soundfile`, a wheel that
  bundles libsndfile); `.gsm` files are headerless GSM 6.10 at 8 kHz (telephony prompts).
- Samples are scaled to [-1, 1] (integer PCM by its full scale, float
  clipped) and several channels are averaged to mono.
- `resample` uses `scipy.signal.resample_poly` with the exact rational
  ratio of the two rates (22050 -> 16000 is up 320, down 441).

Nothing here imports TensorFlow.

Example:

>>> import os, tempfile
>>> import numpy as np
>>> from toolkit.data.audio_io import load_audio, write_wav
>>> path = os.path.join(tempfile.mkdtemp(), "tone.wav")
>>> time = np.arange(22050) / 22050
>>> write_wav(path, 0.5 * np.sin(2 * np.pi * 440 * time), 22050)
>>> wave = load_audio(path, sample_rate=16000)
>>> wave.dtype, wave.shape
(dtype('float32'), (16000,))
>>> round(float(np.abs(wave).max()), 2)
0.5
"""

import functools
import math
import os
import warnings

import numpy as np

from toolkit.errors import DataError

SOUNDFILE_HINT = "pip install soundfile"
WAV_SUFFIXES = (".wav", ".wave")
GSM_SUFFIXES = (".gsm",)


class UnreadableAudio(DataError):
    """An audio file that cannot be decoded.

    Args:
        path: str. The file.
        detail: str. What went wrong, short (e.g. "not a WAV file").
        fix: str. How to fix it.
    """

    def __init__(self, path, detail, fix="check the file or remove it from the data"):
        self.path, self.detail = str(path), str(detail)
        super().__init__(f"{path}: unreadable audio ({detail}); {fix}")


def to_float_samples(samples):
    """Integer PCM scaled by its full scale (unsigned 8-bit centred on 128), float clipped to [-1, 1]; float32.

    Example:

    >>> to_float_samples(np.array([-32768, 0, 16384], dtype=np.int16))
    array([-1. ,  0. ,  0.5], dtype=float32)
    """
    if samples.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.integer):
        return (samples.astype(np.float64) / float(2 ** (8 * samples.dtype.itemsize - 1))).astype(np.float32)
    samples = samples.astype(np.float32)
    if not np.all(np.isfinite(samples)):
        samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
    return np.clip(samples, -1.0, 1.0)


def _read_wav(path):
    import scipy.io.wavfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.io.wavfile.WavFileWarning)  # unknown chunks (LIST, ...)
        rate, samples = scipy.io.wavfile.read(path)
    return samples, int(rate)


def _read_soundfile(path):
    try:
        import soundfile
    except ImportError:
        raise UnreadableAudio(path, f"{os.path.splitext(path)[1] or 'this format'} needs the soundfile package",
                              f"install it with: {SOUNDFILE_HINT}, or convert the file to WAV")
    try:
        if path.lower().endswith(GSM_SUFFIXES):  # headerless GSM 6.10 (telephony prompts): 8 kHz mono by definition
            samples, rate = soundfile.read(path, dtype="float32", always_2d=True, format="RAW", subtype="GSM610",
                                           samplerate=8000, channels=1)
        else:
            samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except TypeError as error:
        if "samplerate must be specified" in str(error):  # headerless PCM (.raw, .pcm): nothing says its format
            raise UnreadableAudio(path, "headerless raw audio: the file does not say its sample rate or encoding",
                                  "convert it to WAV with its real format, e.g. sox -t raw -r 16000 -e signed -b 16 "
                                  f"-c 1 {path} {os.path.splitext(path)[0]}.wav") from None
        raise UnreadableAudio(path, " ".join(str(error).split())[:160])
    except (RuntimeError, ValueError) as error:  # LibsndfileError is a RuntimeError
        raise UnreadableAudio(path, " ".join(str(error).split())[:160])
    return samples, int(rate)


def read_audio(path):
    """Reads an audio file as float32 mono samples in [-1, 1] and its sample rate.

    Args:
        path: str. A WAV file (any PCM or float encoding), or FLAC, OGG, MP3
            and other libsndfile formats when `soundfile` is installed.

    Returns:
        (np.ndarray of shape (samples,), float32; int sample rate).

    Raises:
        UnreadableAudio (a DataError) naming the file when it is missing,
        not audio, of an unsupported encoding or holds no samples.

    Example:

    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "quiet.wav")
    >>> write_wav(path, np.zeros(800), 8000)
    >>> wave, rate = read_audio(path)
    >>> rate, wave.shape
    (8000, (800,))
    """
    from toolkit.data.files import check_input_file

    path = os.fspath(path)
    if not os.path.lexists(path):
        raise UnreadableAudio(path, "no such file", "check the path")
    check_input_file(path)  # a FIFO, a device or a huge file is refused before it is opened
    if os.path.getsize(path) == 0:
        raise UnreadableAudio(path, "empty file")
    if path.lower().endswith(WAV_SUFFIXES):
        try:
            samples, rate = _read_wav(path)
        except Exception as error:  # noqa: BLE001 - scipy raises ValueError, EOFError, even UnboundLocalError
            detail = " ".join(str(error).split())[:160] or type(error).__name__
            try:  # libsndfile reads some WAV encodings scipy does not (ADPCM, A-law, ...)
                import soundfile  # noqa: F401
            except ImportError:
                raise UnreadableAudio(path, detail)
            try:
                samples, rate = _read_soundfile(path)
            except UnreadableAudio:
                raise UnreadableAudio(path, detail)
    else:
        samples, rate = _read_soundfile(path)
    if samples.ndim == 2:
        samples = to_float_samples(samples).mean(axis=1)
    else:
        samples = to_float_samples(samples)
    if samples.size == 0:
        raise UnreadableAudio(path, "no audio samples")
    if rate <= 0:
        raise UnreadableAudio(path, f"sample rate {rate}")
    return np.ascontiguousarray(samples, dtype=np.float32), rate


def resample(wave, from_rate, to_rate):
    """Resamples a waveform with a polyphase filter at the exact rational rate ratio.

    Args:
        wave: 1-D array. The samples.
        from_rate: int. Their sample rate.
        to_rate: int. The wanted sample rate.

    Returns:
        float32 array of `ceil(len(wave) * to_rate / from_rate)` samples
        (`wave` itself, as float32, when the rates are equal).

    Example:

    >>> resample(np.ones(441), 44100, 16000).shape
    (160,)
    """
    from_rate, to_rate = int(from_rate), int(to_rate)
    if from_rate <= 0 or to_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    wave = np.asarray(wave, dtype=np.float32)
    if from_rate == to_rate:
        return wave
    from scipy.signal import resample_poly

    divisor = math.gcd(from_rate, to_rate)
    up, down = to_rate // divisor, from_rate // divisor
    return resample_poly(wave, up, down, window=_lowpass(up, down)).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _lowpass(up, down):
    """resample_poly's default anti-aliasing filter (Kaiser, beta 5), designed once per ratio.

    Designing it takes most of the time of a short clip (10 ms for 22050 -> 16000).
    """
    from scipy.signal import firwin

    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def gsm_round_trip(wave, rate):
    """`wave` (at `rate`) encoded with the GSM 6.10 telephone codec and decoded again (at 8 kHz, resampled there
    and back): the sound of a GSM-coded recording, for channel augmentation. Needs `soundfile`."""
    import io

    import soundfile

    narrow = resample(wave, rate, 8000)
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(narrow, -1.0, 1.0), 8000, format="RAW", subtype="GSM610")
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, format="RAW", subtype="GSM610", samplerate=8000, channels=1, dtype="float32")
    decoded = resample(decoded[: len(narrow)], 8000, rate)
    out = np.zeros(len(wave), np.float32)
    out[: min(len(wave), len(decoded))] = decoded[: len(wave)]
    return out


def load_audio(path, sample_rate=16000):
    """Reads an audio file as float32 mono samples at `sample_rate`.

    Args:
        path: str. Any file `read_audio` reads.
        sample_rate: int. The wanted sample rate (resampled when different).

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> write_wav(path, np.zeros(4800), 48000)
    >>> load_audio(path, 16000).shape
    (1600,)
    """
    wave, rate = read_audio(path)
    return resample(wave, rate, sample_rate)


def write_wav(path, wave, rate):
    """Writes a mono waveform in [-1, 1] as a 16-bit PCM WAV file (values beyond are clipped).

    Args:
        path: str. The file to write (or a binary file object, e.g. io.BytesIO).
        wave: 1-D array of floats.
        rate: int. Sample rate.

    Example:

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "silence.wav")
    >>> write_wav(path, np.zeros(160), 16000)
    >>> os.path.getsize(path)
    364
    """
    import wave as wave_module

    samples = np.asarray(wave, dtype=np.float64).reshape(-1)
    pcm = np.round(np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave_module.open(path if hasattr(path, "write") else os.fspath(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(rate))
        f.writeframes(pcm.tobytes())
