"""Headline figures: each notebook records what it reached (a resolution, an NLL, a
two-sample statistic) with ``course.record``; the course runner collects them into its
summary table and ``build/course/results.json``."""
import json
import math
import os
from pathlib import Path

RESULTS_ENV = "HEPML_COURSE_RESULTS"


def record(name, value, unit="", fmt=".4g"):
    """Print ``name: value unit`` and, when the course runner asked for it, append the
    figure to its results file. Returns the value (as a float)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"course.record: argument 'value' must be a number, got {type(value).__name__}")
    if not isinstance(name, str) or not name:
        raise TypeError(f"course.record: argument 'name' must be a non-empty string, got {name!r}")
    if not math.isfinite(value):
        shown = str(value)
    elif fmt.endswith("d") and value.is_integer():   # an integer format for a count
        shown = format(int(value), fmt)
    else:
        try:
            shown = format(value, fmt)
        except ValueError:
            raise ValueError(f"course.record: argument 'fmt' {fmt!r} cannot format the number {value!r}") from None
    print(f"{name}: {shown}{' ' + unit if unit else ''}")
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"name": name, "value": value, "unit": unit, "shown": shown}) + "\n")
    return value


def read_results(path):
    """The figures recorded into ``path`` (one JSON object per line), in order."""
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
