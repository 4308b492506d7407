"""What speech recognition adds to the `toolkit` command: `toolkit data synth-speech` (declared in this package's
`__init__.py`, run from here)."""

import os


def synth_speech(args, log):
    """`toolkit data synth-speech`: speaks the espeak corpus of the given settings into a folder."""
    from pydantic import ValidationError

    from toolkit.config.loader import format_validation_error
    from toolkit.errors import RecipeError
    from toolkit.tasks.speech_recognition.config import SpeechDataConfig
    from toolkit.tasks.speech_recognition.sources import espeak_cache_dir, read_corpus_meta, synthesize_corpus

    espeak = {"seed": args.seed}
    if args.utterances is not None:
        espeak["utterances"] = {"train": args.utterances, "validation": max(1, args.utterances // 10),
                                "test": max(1, args.utterances // 10)}
    for split in ("validation", "test"):
        if getattr(args, split) is not None:
            espeak.setdefault("utterances", {})[split] = getattr(args, split)
    for field, value in (("voices", args.voices), ("test_voices", args.test_voices)):
        if value is not None:
            espeak[field] = [voice.strip() for voice in value.split(",") if voice.strip()]
    try:
        config = SpeechDataConfig(source="espeak", sample_rate=args.sample_rate, espeak=espeak)
    except ValidationError as error:
        raise RecipeError(format_validation_error(error, SpeechDataConfig, "synth-speech"))
    output = os.path.abspath(args.output) if args.output else espeak_cache_dir(config)
    existing = read_corpus_meta(output)
    meta = synthesize_corpus(output, config.espeak, sample_rate=config.sample_rate, log=log)
    if existing is not None and existing.get("key") == meta["key"]:
        print("(already there with these settings; kept)")
    counts = ", ".join(f"{split} {count}" for split, count in meta["utterances"].items())
    minutes = sum(meta["audio_seconds"].values()) / 60
    print(f"{sum(meta['utterances'].values())} utterances ({counts}; {minutes:.1f} min of audio at "
          f"{meta['sample_rate']} Hz) in {output}")
    print(f"read it with: data.source: folder, data.path: {output}")
