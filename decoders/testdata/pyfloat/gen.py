#!/usr/bin/env python3
"""Writes vectors.jsonl: what Python's float() makes of each input below.

shovel's decoders must accept exactly what float() accepts (Carbon calls
float() on every value it receives). TestPyFloatVectors reads the vectors
and, where python3 is installed, runs this script again and requires the
same output, so the expectations are Python's, never hand-written.

Usage: python3 gen.py > vectors.jsonl
"""
import json
import math

INPUTS = [
    # Plain numbers.
    "0", "1", "-1", "+1", "12.5", "-12.5", "007", "00.5", "-0", "+0.0",
    "1.", ".5", "-.5", "+.5", "1.e5", "1e5", "1E5", "1e+5", "1e-5", "1E+05",
    "1.5e3", ".5e1", "123456789012345678901234567890", "0.1", "2.5e-324",
    "4.9e-324", "1e-400", "1.7976931348623157e308", "1.8e308", "1e999",
    "-1e999", "9" * 100, "0." + "0" * 90 + "1", "1" + "0" * 400,
    # Not numbers: the inputs issue 11 found accepted.
    ".", "-.", "+.", "+-1", "-+1", "--1", "++1", ".e5", "-.e5", "e5", "1e",
    "1e+", "1e-", "1.5.5", "1..5", "1e5.5", "1e5e5", "", " ", "-", "+",
    # Underscores between digits only.
    "1_000", "1_000.5", "1_0.0_1", "1e1_0", "1__0", "_1", "1_", "1_.5",
    "1._5", "1e_1", "1_e1", "._5", "1.5_", "_", "+_1", "-1_0",
    # Non-finite, in float()'s spellings.
    "inf", "-inf", "+inf", "Inf", "INF", "infinity", "-Infinity",
    "INFINITY", "nan", "-nan", "+NaN", "NAN", "in", "infinit", "infinityy",
    "nan1", "na", "nann", "inf1", "1inf", "-infinity ", "+ inf",
    # White space around, and inside.
    " 1", "1 ", " 1 ", "\t1\n", "\v1\f", "\r1", "1 1", "1\t.5", "+ 1",
    "\u00a01", "1\u0085", "\u20001\u3000", "\u20281\u2029", "\u16801",
    "\u202f1\u205f", "\x1c1", "1\x1f", "\u200b1", "\ufeff1", "\u180e1",
    "1\x00", "\x001",
    # Other bases and forms Go or JSON know and float() does not.
    "0x10", "0X1p4", "0b1", "0o7", "1f", "1d", "1L", "1,5", "١,٥",
    "Infinity1", "nan(123)", "1e5L", "٫5",
    # Unicode decimal digits stand for ASCII ones.
    "١٢", "١.٥", "-١٢e١", "１", "１２.５", "𝟏", "𝟘.𝟝", "१०", "1_١",
    "1e١", "ｉｎｆ", "Ⅻ", "½", "²", "1²",
]


def result(s):
    try:
        v = float(s)
    except ValueError:
        return None
    if math.isnan(v):
        return "nan"
    return repr(v)


for s in INPUTS:
    print(json.dumps({"in": s, "float": result(s)}))
