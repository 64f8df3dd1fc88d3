"""pulumi-random's RandomPassword, made with `secrets` as the provider makes it (crypto/rand)."""

from __future__ import annotations

import secrets
import string
from typing import Any

import bcrypt

from harness.errors import UnsupportedInput, require_known

DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


def random_password(inputs: dict[str, Any]) -> dict[str, Any]:
    require_known(
        "random RandomPassword",
        inputs,
        {
            "length",
            "special",
            "upper",
            "lower",
            "numeric",
            "overrideSpecial",
            "minLower",
            "minUpper",
            "minNumeric",
            "minSpecial",
            "keepers",
        },
    )
    length = int(inputs["length"])
    classes = {
        "lower": (inputs.get("lower", True), string.ascii_lowercase, int(inputs.get("minLower", 0))),
        "upper": (inputs.get("upper", True), string.ascii_uppercase, int(inputs.get("minUpper", 0))),
        "numeric": (inputs.get("numeric", True), string.digits, int(inputs.get("minNumeric", 0))),
        "special": (
            inputs.get("special", True),
            inputs.get("overrideSpecial", DEFAULT_SPECIAL),
            int(inputs.get("minSpecial", 0)),
        ),
    }
    chosen: list[str] = []
    alphabet = ""
    for enabled, characters, minimum in classes.values():
        if enabled:
            alphabet += characters
            chosen += [secrets.choice(characters) for _ in range(minimum)]
    if not alphabet or len(chosen) > length:
        raise UnsupportedInput(f"RandomPassword cannot satisfy {inputs}")
    chosen += [secrets.choice(alphabet) for _ in range(length - len(chosen))]
    secrets.SystemRandom().shuffle(chosen)
    result = "".join(chosen)
    return {"id": "none", "result": result, "bcryptHash": bcrypt.hashpw(result.encode(), bcrypt.gensalt()).decode()}


SECRET_OUTPUTS = ("result", "bcryptHash")
