"""Numbers in transcripts spelled out as English words, so "press 1" is a transcript the recognizer can write.

A small self-written speller (no dependency), American style, what telephone prompts and short texts need:

- cardinals 0 to 999,999,999,999 (`1234` -> "one thousand two hundred thirty four"; no "and", no hyphens:
  hyphens become spaces in transcripts anyway); thousands separators (`1,000`) are accepted;
- a leading zero reads digit by digit (`007` -> "zero zero seven"), as do numbers of 13 or more digits;
- decimals read the fraction digit by digit (`28.8` -> "twenty eight point eight");
- ordinals with an English suffix (`1st`, `22nd`, `3rd`, `4th` -> "first", "twenty second", ...);
- a number glued to letters is split off (`3D` -> "three d", `IAX2` -> "IAX two").

Not covered: negative signs, currencies, dates, times, fractions (`1/2`), roman numerals, years read in pairs
("1999" is "one thousand nine hundred ninety nine"), and any knowledge of how a speaker actually read a digit
string (a phone extension such as 1234 may have been read "one two three four"): the spelling is one plausible
reading.

Example:

>>> from toolkit.tasks.speech_recognition.spoken_numbers import spell_numbers, number_words
>>> spell_numbers("Press 1 to mute, 4 or 6 for volume; dial 8500.")
'Press one to mute, four or six for volume; dial eight thousand five hundred.'
>>> spell_numbers("a 28.8 kilobit modem in 3D on the 21st")
'a twenty eight point eight kilobit modem in three D on the twenty first'
>>> number_words(1_000_017)
'one million seventeen'
"""

import re

ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen").split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
SCALES = ((10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"))
LARGEST = 10 ** 12 - 1
_ORDINAL = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
            "twelve": "twelfth"}
_NUMBER = re.compile(r"(?<!\d)(?<!\d[.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th)?(?![\d])", re.IGNORECASE)


def _below_thousand(value):
    words = []
    if value >= 100:
        words += [ONES[value // 100], "hundred"]
        value %= 100
    if value >= 20:
        words.append(TENS[value // 10])
        value %= 10
        if value:
            words.append(ONES[value])
    elif value or not words:
        words.append(ONES[value])
    return words


def number_words(value):
    """The cardinal `value` (0 <= value <= 999,999,999,999) in English words.

    Example:

    >>> number_words(0), number_words(115), number_words(20_000_000)
    ('zero', 'one hundred fifteen', 'twenty million')
    """
    value = int(value)
    if not 0 <= value <= LARGEST:
        raise ValueError(f"{value}: number_words spells 0 to {LARGEST:,}")
    if value < 1000:
        return " ".join(_below_thousand(value))
    words = []
    for scale, name in SCALES:
        if value >= scale:
            words += _below_thousand(value // scale) + [name]
            value %= scale
    if value:
        words += _below_thousand(value)
    return " ".join(words)


def ordinal_words(value):
    """The ordinal of `value` in English words.

    Example:

    >>> ordinal_words(1), ordinal_words(12), ordinal_words(40), ordinal_words(103)
    ('first', 'twelfth', 'fortieth', 'one hundred third')
    """
    words = number_words(value).split()
    last = words[-1]
    if last in _ORDINAL:
        words[-1] = _ORDINAL[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def digit_words(digits):
    """`digits` read one by one ("042" -> "zero four two")."""
    return " ".join(ONES[int(digit)] for digit in digits)


def _spell(match):
    whole, fraction, suffix = match.group(1).replace(",", ""), match.group(2), match.group(3)
    if suffix and not fraction and not (len(whole) > 1 and whole.startswith("0")) and len(whole) <= 12:
        words = ordinal_words(int(whole))
    elif (len(whole) > 1 and whole.startswith("0")) or len(whole) > 12:
        words = digit_words(whole) + (f" {suffix}" if suffix else "")
    else:
        words = number_words(int(whole)) + (f" {suffix}" if suffix and fraction else "")
    if fraction:
        words = f"{words} point {digit_words(fraction)}" if not suffix else \
            f"{number_words(int(whole))} point {digit_words(fraction)} {suffix}"
    start, end = match.span()
    text = match.string
    before = " " if start > 0 and text[start - 1].isalpha() else ""
    after = " " if end < len(text) and text[end].isalpha() else ""
    return before + words + after


def spell_numbers(text):
    """`text` with every number written in English words (see the module docstring for what is covered).

    Example:

    >>> spell_numbers("extension 1,234, room 042, version 2.5")
    'extension one thousand two hundred thirty four, room zero four two, version two point five'
    """
    return _NUMBER.sub(_spell, text)
