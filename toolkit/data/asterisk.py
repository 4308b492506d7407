"""Real recorded human speech from the Debian packages of the Asterisk PBX prompts, fetched into the data cache.

Eight professional voices in five languages (about 3 hours of telephone prompts at 8 kHz, CC-BY-SA-3.0 /
CC-BY; see `VOICES`), with the English, Spanish, French, Italian and Russian transcripts of the
`asterisk-core-sounds-<lang>` packages (`core-sounds-<lang>.txt.gz`: `name: text` per prompt; a bracketed
text such as `[ascending tones]` is a tone, not speech). Every voice has `digits/` (0.wav ... 9.wav and more)
and `letters/` folders.

The packages are fetched with `apt-get download` (no root needed; a Debian package registry must be
reachable) and unpacked per package into `$TOOLKIT_HOME/data/asterisk/<package>/` (`toolkit data fetch
asterisk`, or on first use). Installing them system-wide is not used: the French and Spanish voices of
`asterisk-prompt-fr-armelle` and `asterisk-prompt-es-co` install into `sounds/fr` and `sounds/es`, which
`update-alternatives` turns into links to the other voices' folders, so which files end up where depends on
the install order.

Example:

>>> from toolkit.data.asterisk import VOICES, prompt_name
>>> sorted({voice.language for voice in VOICES})
['en', 'es', 'fr', 'it', 'ru']
>>> prompt_name("digits/7.wav")
'digits/7'
"""

import dataclasses
import gzip
import os
import shutil
import subprocess
import tempfile

from toolkit.errors import DataError

ORIGIN = ("Asterisk PBX prompts, Debian packages asterisk-core-sounds-{en,es,fr,it,ru}(-wav) 1.6.1 (Digium, "
          "CC-BY-SA-3.0), asterisk-prompt-it-menardi-wav (CC-BY-SA), asterisk-prompt-fr-armelle and "
          "asterisk-prompt-es-co (CC-BY / GPL): telephone prompts read by professional speakers, 8 kHz")
SOUNDS = "usr/share/asterisk/sounds"
AUDIO_SUFFIXES = (".wav", ".gsm")
SKIPPED_FOLDERS = ("silence",)  # recorded silences, not speech


@dataclasses.dataclass(frozen=True)
class Voice:
    """One speaker's prompts: which package holds them, in which folder, in which language."""

    name: str  # the folder name Asterisk gives the voice, or the package's own name
    package: str
    folder: str  # under the package's usr/share/asterisk/sounds
    language: str  # ISO 639-1
    speaker: str  # the person; the same person can speak two languages (Allison: en, es)


VOICES = (
    Voice("en_US_f_Allison", "asterisk-core-sounds-en-wav", "en_US_f_Allison", "en", "allison"),
    Voice("es_MX_f_Allison", "asterisk-core-sounds-es-wav", "es_MX_f_Allison", "es", "allison"),
    Voice("es_CO", "asterisk-prompt-es-co", "es", "es", "es-co"),
    Voice("fr_CA_f_June", "asterisk-core-sounds-fr-wav", "fr_CA_f_June", "fr", "june"),
    Voice("fr_FR_f_Armelle", "asterisk-prompt-fr-armelle", "fr", "fr", "armelle"),
    Voice("it_IT_f_Menardi", "asterisk-prompt-it-menardi-wav", "it_IT_f_Menardi", "it", "menardi"),
    Voice("it_IT_m_Carlo", "asterisk-core-sounds-it-wav", "it_IT_m_Carlo", "it", "carlo"),
    Voice("ru_RU_f_IvrvoiceRU", "asterisk-core-sounds-ru-wav", "ru_RU_f_IvrvoiceRU", "ru", "ivrvoice"),
)
LANGUAGES = ("en", "es", "fr", "it", "ru")
TRANSCRIPT_PACKAGES = {language: f"asterisk-core-sounds-{language}" for language in LANGUAGES}
PACKAGES = tuple(sorted({voice.package for voice in VOICES} | set(TRANSCRIPT_PACKAGES.values())))


@dataclasses.dataclass(frozen=True)
class Prompt:
    """One recorded prompt.

    Args:
        name: str. The prompt's name: its path under the voice folder without suffix (`vm-goodbye`, `digits/7`).
        path: str. The audio file (8 kHz WAV, or raw GSM 6.10 `.gsm`).
        voice: Voice.
        text: str or None. The transcript (None where the package ships none: es-co, armelle).
    """

    name: str
    path: str
    voice: Voice
    text: object = None


def prompt_name(relative):
    """The prompt name of a file path relative to its voice folder: no suffix, `/` separators."""
    return os.path.splitext(relative.replace(os.sep, "/"))[0]


def default_root():
    from toolkit.data.fetch import data_cache

    return data_cache("asterisk")


def fetch_asterisk(root=None, download=True, log=None):
    """Makes sure every package of `PACKAGES` is unpacked under `root`; returns `root`.

    Each package is downloaded with `apt-get download` into a temporary folder and unpacked (its data
    archive, checked member by member with `extract_archive`) into `root/<package>`, renamed into place when
    complete: an interrupted fetch leaves nothing half-written.
    """
    from toolkit.atomic import atomic_path
    from toolkit.data.fetch import extract_archive

    root = os.path.abspath(root or default_root())
    missing = [package for package in PACKAGES if not os.path.isdir(os.path.join(root, package))]
    if not missing:
        return root
    if not download:
        raise DataError(f"{root}: the Asterisk prompt packages {', '.join(missing)} are not there and data.download "
                        "is false; fetch them with: toolkit data fetch asterisk")
    if shutil.which("apt-get") is None:
        raise DataError(f"apt-get not found: the Asterisk prompts come from Debian packages ({', '.join(missing)}); "
                        f"on a Debian or Ubuntu machine run `toolkit data fetch asterisk`, or unpack them with "
                        f"`dpkg-deb -x PACKAGE.deb {root}/PACKAGE`")
    os.makedirs(root, exist_ok=True)
    (log or (lambda message: None))(f"downloading {len(missing)} Debian packages of Asterisk prompts into {root}")
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        result = subprocess.run(["apt-get", "download", *missing], cwd=tmp, capture_output=True, text=True)
        debs = {name.split("_", 1)[0]: os.path.join(tmp, name) for name in os.listdir(tmp) if name.endswith(".deb")}
        absent = [package for package in missing if package not in debs]
        if result.returncode != 0 or absent:
            reason = (result.stderr.strip().splitlines() or ["no package downloaded"])[-1][:200]
            raise DataError(f"apt-get download {' '.join(absent or missing)} failed ({reason}); run `apt-get update` "
                            "(as root) and try again, or unpack the packages with dpkg-deb -x into "
                            f"{root}/<package>")
        for package in missing:
            with atomic_path(os.path.join(root, package), directory=True) as target:
                _unpack_deb(debs[package], target, extract_archive)
    with open(os.path.join(root, "SOURCE.txt"), "w", encoding="utf-8") as f:
        f.write(ORIGIN + "\n")
    return root


def _unpack_deb(path, target, extract_archive):
    """Extracts the data archive of a .deb (an `ar` archive holding data.tar.*) into `target`."""
    import io

    with open(path, "rb") as f:
        blob = f.read()
    if not blob.startswith(b"!<arch>\n"):
        raise DataError(f"{path}: not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(blob):
        header = blob[offset:offset + 60]
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        body = blob[offset + 60:offset + 60 + size]
        if name.startswith("data.tar"):
            extract_archive(io.BytesIO(body), target, name=f"{os.path.basename(path)}:{name}")
            return
        offset += 60 + size + (size % 2)
    raise DataError(f"{path}: no data.tar member; the package is damaged")


def read_transcripts(root, language):
    """({prompt name: text}, {names of tones}) of a language's `core-sounds-<lang>.txt.gz`, or ({}, set())
    when that package is absent."""
    package = TRANSCRIPT_PACKAGES.get(language)
    path = os.path.join(root, str(package), "usr/share/doc", str(package), f"core-sounds-{language}.txt.gz")
    texts, tones = {}, set()
    if not os.path.isfile(path):
        return texts, tones
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(";") or ":" not in line:
                continue
            name, text = (part.strip() for part in line.split(":", 1))
            if text.startswith("[") and text.endswith("]"):
                tones.add(name)
            elif text:
                texts[name] = text
    return texts, tones


def voice_folder(root, voice):
    return os.path.join(root, voice.package, SOUNDS, voice.folder)


def read_prompts(root=None, languages=None, download=True, log=None):
    """Every spoken prompt of the voices of `languages` (default: all), sorted by voice and name.

    Tones (a bracketed transcript in any language) and the `silence/` folder are left out. `root` is an
    unpacked tree as `fetch_asterisk` writes it (fetched there when missing and `download`).

    Returns:
        list of `Prompt`.
    """
    root = fetch_asterisk(root, download=download, log=log)
    wanted = set(languages or LANGUAGES)
    unknown = sorted(wanted - set(LANGUAGES))
    if unknown:
        raise DataError(f"Asterisk prompts: no voice speaks {', '.join(unknown)}; languages: {', '.join(LANGUAGES)}")
    transcripts, tones = {}, set()
    for language in LANGUAGES:
        transcripts[language], language_tones = read_transcripts(root, language)
        tones |= language_tones
    prompts = []
    for voice in VOICES:
        if voice.language not in wanted:
            continue
        folder = voice_folder(root, voice)
        if not os.path.isdir(folder):
            raise DataError(f"{folder}: missing; remove {os.path.join(root, voice.package)} and run "
                            "toolkit data fetch asterisk again")
        for directory, subfolders, files in os.walk(folder):
            subfolders[:] = sorted(name for name in subfolders if name not in SKIPPED_FOLDERS)
            for file in sorted(files):
                if not file.lower().endswith(AUDIO_SUFFIXES):
                    continue
                path = os.path.join(directory, file)
                name = prompt_name(os.path.relpath(path, folder))
                if name in tones:
                    continue
                prompts.append(Prompt(name, path, voice, transcripts[voice.language].get(name)
                                      if voice.package.startswith("asterisk-core-sounds") else None))
    return prompts
