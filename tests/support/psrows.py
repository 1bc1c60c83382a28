"""`ps --format json` read back: Compose's form, a JSON object per line."""

from __future__ import annotations

import json
from typing import Any


def ps_rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
