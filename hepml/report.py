"""Run reports: one self-contained HTML page plus a JSON summary per training run.

A student collects what a run was (configuration, seed), what happened (training
history) and what came out (metrics, validation figures, tables, notes), then writes
it all with one call::

    report = hepml.report.Report("W regression with MMD", seed=42, config=cfg)
    report.add_history(history)                       # dict of lists, or History.as_dict()
    report.add_metric("W mass resolution", 9.7, unit="GeV")
    report.add_figure("W mass", fig, caption="regressed vs true W mass")
    report.add_text("Notes", "The MMD term fixes the *tails* of the mass distribution.")
    report.save("build/runs/mmd_run")                 # -> mmd_run.html, mmd_run.json

The HTML file embeds its images (PNG, base64) and its style sheet and loads nothing
from anywhere: it can be mailed, attached to a hand-in, or opened offline. Every
string a user passes in is HTML-escaped; the text sections understand a small,
safe subset of Markdown (paragraphs, ``-`` lists, numbered lists, ``###`` headings,
fenced code, `code`, **bold**, *italic*) and nothing else (no raw HTML, no links).

The JSON file is strict JSON (non-finite numbers become ``null``, with a note on
metrics) and holds everything but the image data: title, dates, hepml version,
seed, environment, configuration, history, metrics, figure names and captions,
tables and text. ``Report.load_json(path)`` reads it back as a dict.

Both files are written atomically (a temporary file in the same directory, then
``os.replace``): a reader sees the old file or the new one, never half of one.
"""
import base64
import datetime as _dt
import html as _html
import io
import json
import math
import numbers
import os
import platform
import re
from collections import namedtuple
from pathlib import Path

from ._atomic import write_text_atomic

__all__ = ["Report", "SavedReport", "environment", "REPORT_FORMAT", "REPORT_FORMAT_VERSION"]

REPORT_FORMAT = "hepml-report"
REPORT_FORMAT_VERSION = 1

SavedReport = namedtuple("SavedReport", ["html", "json"])
SavedReport.__doc__ = "Paths of the two files ``Report.save`` wrote."


# ----------------------------------------------------------------- environment

def _hepml_version():
    try:
        import hepml
        v = getattr(hepml, "__version__", None)
        if v:
            return str(v)
    except Exception:  # a broken install is exactly what a report should still describe
        pass
    try:
        from importlib.metadata import version
        return version("hepml")
    except Exception:
        return "unknown"


def _dist_version(name):
    try:
        from importlib.metadata import version
        return version(name)
    except Exception:
        return None


def _now():
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def environment():
    """What the run ran on, as a JSON-ready dict: Python, platform, CPU count, hepml's
    thread counts, the BLAS library and kernel (from ``hepml._config.config()``), the
    environment variables that change numerics or speed, package versions and the date.
    Entries that cannot be read are ``None``; this function never raises."""
    env = {
        "date": _now(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_available": None,
        "hepml_version": _hepml_version(),
        "hepml_threads": None,
        "omp_threads": None,
        "blas": None,
        "blas_config": None,
        "blas_kernel": None,
        "blas_threads": None,
        "cpu_avx2": None,
        "cpu_avx512": None,
        "compiler": None,
        "cflags": None,
        "numpy": _dist_version("numpy"),
        "matplotlib": _dist_version("matplotlib"),
        "variables": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                     "OPENBLAS_CORETYPE", "HEPML_PROFILE", "HEPML_DATA_DIR")},
    }
    try:
        env["cpu_available"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        env["cpu_available"] = os.cpu_count()
    try:
        import hepml
        env["hepml_threads"] = int(hepml.get_num_threads())
    except Exception:
        pass
    try:
        from . import _config
        cfg = _config.config()
        env.update(
            omp_threads=cfg.get("omp_threads"),
            blas=cfg.get("blas"),
            blas_config=(cfg.get("blas_config") or "").strip() or None,
            blas_kernel=cfg.get("blas_core"),
            blas_threads=cfg.get("blas_threads"),
            cpu_avx2=None if cfg.get("cpu_avx2") is None else bool(cfg.get("cpu_avx2")),
            cpu_avx512=None if cfg.get("cpu_avx512") is None else bool(cfg.get("cpu_avx512")),
            compiler=cfg.get("compiler"),
            cflags=cfg.get("cflags"),
        )
    except Exception:
        pass
    return _jsonable(env)


# ----------------------------------------------------------------- value checks

def _as_number(value, what):
    """A float from a Python/NumPy real number or a one-element array/tensor; TypeError
    otherwise. bools are refused: a True among metrics is nearly always a mistake."""
    if _is_bool(value):
        raise TypeError(f"{what} must be a number, got a bool ({value!r})")
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)
    size = getattr(value, "size", None)
    if callable(size):  # hepml/torch tensors: size() is a method
        size = None
    numel = getattr(value, "numel", None)
    if callable(item):
        try:
            n = int(numel()) if callable(numel) else (int(size) if size is not None else 1)
        except Exception:
            n = 1
        if n != 1:
            shape = tuple(getattr(value, "shape", ()))
            raise TypeError(f"{what} must be a single number, got {type(value).__name__} of shape {shape}")
        try:
            v = value.item()
        except Exception as e:
            raise TypeError(f"{what} must be a number, got {type(value).__name__} ({e})") from None
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{what} must be a number, got {type(value).__name__} holding {type(v).__name__}")
        return float(v)
    raise TypeError(f"{what} must be a number, got {type(value).__name__} ({_short_repr(value)})")


def _is_bool(v):
    t = type(v)
    return isinstance(v, bool) or (t.__module__ == "numpy" and t.__name__ in ("bool", "bool_"))


def _short_repr(v, n=60):
    r = repr(v)
    return r if len(r) <= n else r[:n - 3] + "..."


def _check_name(name, what):
    if not isinstance(name, str) or not name.strip():
        raise TypeError(f"{what} must be a non-empty string, got {_short_repr(name)}")
    return name.strip()


def _check_str(s, what):
    if s is None:
        return ""
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a string, got {type(s).__name__}")
    return s


def _jsonable(obj, _depth=0):
    """A strict-JSON copy of ``obj``: NaN/inf -> None, NumPy scalars and arrays (and
    tensors, via tolist) -> Python numbers and lists, tuples/sets -> lists, Paths ->
    strings, dict keys -> strings; anything else -> its repr."""
    if _depth > 50:
        return repr(obj)
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if _is_bool(obj):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [_jsonable(v, _depth + 1) for v in items]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "as_dict") and callable(obj.as_dict):
        try:
            return _jsonable(obj.as_dict(), _depth + 1)
        except Exception:
            pass
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        try:
            return _jsonable(tolist(), _depth + 1)
        except Exception:
            pass
    return repr(obj)


def _fmt(v):
    """A number or value for an HTML cell (the caller escapes it)."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        f = float(v)
        return format(f, ".6g") if math.isfinite(f) else str(f)
    if isinstance(v, str):
        return v
    return json.dumps(_jsonable(v), ensure_ascii=False)


def _esc(s):
    return _html.escape(str(s), quote=True)


def _png_size(data):
    # The IHDR chunk follows the 8-byte signature: width and height are big-endian
    # 32-bit integers at offsets 16 and 20.
    if len(data) >= 24 and data[:8] == b"\x89PNG\r\n\x1a\n":
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    return None, None


# ----------------------------------------------------------------- safe markdown

_INLINE = [
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
]


def _inline(text):
    """Escape, then add <code>, <strong>, <em>. The substitutions only wrap text that
    is already escaped in fixed tags, so no user string reaches the page as markup."""
    parts = text.split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 1 and i < len(parts) - 1:   # between a pair of backticks
            out.append("<code>" + _esc(part) + "</code>")
            continue
        if i % 2 == 1:                          # an unpaired backtick: keep it literally
            part = "`" + part
        s = _esc(part)
        for pat, rep in _INLINE:
            s = pat.sub(rep, s)
        out.append(s)
    return "".join(out)


_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _markdown(text):
    """HTML for the safe Markdown subset described in the module docstring."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out, para, i = [], [], 0

    def flush():
        if para:
            out.append("<p>" + "<br>\n".join(_inline(p) for p in para) + "</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            code = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            i += 1  # the closing fence (or the end of the text)
            out.append("<pre><code>" + _esc("\n".join(code)) + "</code></pre>")
            continue
        if not stripped:
            flush()
            i += 1
            continue
        m = _HEADING.match(stripped)
        if m:
            flush()
            level = min(len(m.group(1)) + 2, 6)  # the page uses h1 and h2 itself
            out.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
            continue
        for pat, tag in ((_BULLET, "ul"), (_NUMBERED, "ol")):
            if pat.match(line):
                flush()
                items = []
                while i < len(lines) and pat.match(lines[i]):
                    items.append(pat.match(lines[i]).group(1))
                    i += 1
                    # indented continuation lines belong to the item
                    while (i < len(lines) and lines[i].strip() and lines[i][:1] in (" ", "\t")
                           and not _BULLET.match(lines[i]) and not _NUMBERED.match(lines[i])):
                        items[-1] += " " + lines[i].strip()
                        i += 1
                out.append(f"<{tag}>" + "".join(f"<li>{_inline(it)}</li>" for it in items) + f"</{tag}>")
                break
        else:
            para.append(stripped)
            i += 1
    flush()
    return "\n".join(out)


# ----------------------------------------------------------------- the report

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d2330;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #d6dae3; padding-bottom: 0.2em; margin-top: 1.8em; }
.meta { color: #5a6375; font-size: 0.92em; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em 0; font-size: 0.93em; }
th, td { border: 1px solid #d6dae3; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f1f3f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 1.6em 0; } figure img { max-width: 100%; border: 1px solid #e3e6ec; }
figcaption { color: #3c4454; font-size: 0.93em; margin-top: 0.3em; }
pre { background: #f5f6f9; padding: 0.6em; overflow-x: auto; } code { background: #f5f6f9; padding: 0 0.2em; }
.note { color: #8a4b00; }
"""

_HISTORY_FIGURE = "training history"

# A page that may only show its own inline style and data: images. Even a string that
# slipped past escaping could not load or run anything.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


class Report:
    """Everything about one run, written as ``<name>.html`` + ``<name>.json``.

    ``Report(title, *, seed=None, config=None)``: ``seed`` is recorded, not applied
    (call ``hepml.manual_seed(seed)`` yourself); ``config`` is a dict of the run's
    settings (nested dicts, lists, numbers, strings; other objects are recorded by
    their repr).

    Adding an entry with a name that is already there replaces it (keeping its
    place), so re-running a notebook cell does not duplicate anything.
    """

    def __init__(self, title, *, seed=None, config=None):
        self.title = _check_name(title, "Report(): argument 'title'")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"Report(): argument 'seed' must be an integer or None, got {_short_repr(seed)}")
            seed = int(seed)
        self.seed = seed
        self.created = _now()
        self.config = {}
        self.history = {}
        self._metrics = {}
        self._figures = {}
        self._tables = {}
        self._sections = {}
        if config is not None:
            self.add_config(config)

    # ---------------------------------------------------------- adding content

    def add_config(self, config=None, **settings):
        """Merge settings into the configuration: a dict and/or keyword arguments."""
        if config is not None and not isinstance(config, dict):
            raise TypeError(f"Report.add_config(): argument 'config' must be a dict, got {type(config).__name__}")
        for k, v in dict(config or {}, **settings).items():
            self.config[str(k)] = _jsonable(v)
        return self

    def add_history(self, history, plot=True):
        """The training history: a dict ``{quantity: [value per epoch or step]}`` or an
        object with ``.as_dict()`` returning one (``hepml.training.History``). Entries
        that are not lists (say a best epoch) are kept as they are. With ``plot`` (and
        matplotlib installed) a figure "training history" with one panel per series is
        added too. Replaces an earlier history."""
        if hasattr(history, "as_dict") and callable(history.as_dict):
            history = history.as_dict()
        if not isinstance(history, dict):
            raise TypeError("Report.add_history(): argument 'history' must be a dict of lists or have "
                            f".as_dict(), got {type(history).__name__}")
        clean = {}
        for key, values in history.items():
            key = _check_name(key, "Report.add_history(): every key of 'history'")
            if _is_sequence(values):
                seq = []
                for j, v in enumerate(_to_list(values)):
                    if v is None:
                        seq.append(None)
                        continue
                    f = _as_number(v, f"Report.add_history(): history[{key!r}][{j}]")
                    seq.append(f if math.isfinite(f) else None)
                clean[key] = seq
            else:
                clean[key] = _jsonable(values)
        self.history = clean
        self._figures.pop(_HISTORY_FIGURE, None)  # never keep the plot of an earlier history
        if plot and any(isinstance(v, list) and any(x is not None for x in v) for v in clean.values()):
            fig = _history_figure(clean)
            if fig is not None:
                self.add_figure(_HISTORY_FIGURE, fig,
                                caption="Training history: one panel per recorded quantity, against the "
                                        "entry index (epoch or step).")
        return self

    def add_metric(self, name, value, unit="", note=""):
        """One number with its unit and an optional note. NaN or infinite values are
        kept as ``null`` in the JSON with a note saying what they were."""
        name = _check_name(name, "Report.add_metric(): argument 'name'")
        unit = _check_str(unit, "Report.add_metric(): argument 'unit'")
        note = _check_str(note, "Report.add_metric(): argument 'note'")
        f = _as_number(value, f"Report.add_metric(): value of metric {name!r}")
        if not math.isfinite(f):
            extra = f"value was {f} (not finite)"
            note = f"{note}; {extra}" if note else extra
            f = None
        self._metrics[name] = {"name": name, "value": f, "unit": unit, "note": note}
        return self

    def add_metrics(self, metrics, unit=""):
        """Several metrics from a dict: ``{name: value}``, ``{name: (value, unit)}`` or
        ``{name: {"value": v, "unit": u, "note": n}}``. ``unit`` is the default unit."""
        if hasattr(metrics, "items") and callable(metrics.items):
            items = list(metrics.items())
        else:
            raise TypeError(f"Report.add_metrics(): argument 'metrics' must be a dict, got {type(metrics).__name__}")
        for name, v in items:
            if isinstance(v, dict):
                if "value" not in v:
                    raise ValueError(f"Report.add_metrics(): metric {name!r} is a dict without a 'value' key")
                self.add_metric(name, v["value"], unit=v.get("unit", unit), note=v.get("note", ""))
            elif isinstance(v, tuple):
                if len(v) not in (2, 3):
                    raise ValueError(f"Report.add_metrics(): metric {name!r} must be (value, unit) or "
                                     f"(value, unit, note), got a tuple of {len(v)}")
                self.add_metric(name, *v)
            else:
                self.add_metric(name, v, unit=unit)
        return self

    def add_figure(self, name, fig, caption="", dpi=100):
        """A matplotlib Figure, rendered now to PNG and embedded in the page (the figure
        itself is left open and unchanged)."""
        name = _check_name(name, "Report.add_figure(): argument 'name'")
        caption = _check_str(caption, "Report.add_figure(): argument 'caption'")
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise TypeError("Report.add_figure(): needs matplotlib (pip install matplotlib)") from None
        if not isinstance(fig, Figure):
            hint = ""
            if hasattr(fig, "figure") and isinstance(getattr(fig, "figure", None), Figure):
                hint = " (you passed an Axes: use ax.figure)"
            raise TypeError(f"Report.add_figure(): argument 'fig' must be a matplotlib.figure.Figure, got "
                            f"{type(fig).__name__}{hint}")
        if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not 10 <= dpi <= 600:
            raise ValueError(f"Report.add_figure(): argument 'dpi' must be a number in [10, 600], got {dpi!r}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=float(dpi), bbox_inches="tight", metadata={"Software": None})
        data = buf.getvalue()
        w, h = _png_size(data)
        self._figures[name] = {"name": name, "caption": caption, "format": "png", "width_px": w,
                               "height_px": h, "data": base64.b64encode(data).decode("ascii")}
        return self

    def add_text(self, heading, text):
        """A text section: plain text or the small Markdown subset of this module."""
        heading = _check_name(heading, "Report.add_text(): argument 'heading'")
        if not isinstance(text, str):
            raise TypeError(f"Report.add_text(): argument 'text' must be a string, got {type(text).__name__}")
        self._sections[heading] = {"heading": heading, "text": text}
        return self

    def add_table(self, name, rows, columns):
        """A table: ``rows`` is a list of rows, each a sequence with one value per
        column or a dict keyed by column name (missing keys are empty cells)."""
        name = _check_name(name, "Report.add_table(): argument 'name'")
        if isinstance(columns, str) or not _is_sequence(columns):
            raise TypeError(f"Report.add_table(): argument 'columns' must be a list of column names, got "
                            f"{type(columns).__name__}")
        columns = [str(c) for c in _to_list(columns)]
        if not columns:
            raise ValueError("Report.add_table(): argument 'columns' is empty")
        if isinstance(rows, (str, dict)) or not _is_sequence(rows):
            raise TypeError(f"Report.add_table(): argument 'rows' must be a list of rows, got {type(rows).__name__}")
        clean = []
        for r, row in enumerate(_to_list(rows)):
            if isinstance(row, dict):
                unknown = [k for k in row if str(k) not in columns]
                if unknown:
                    raise ValueError(f"Report.add_table(): row {r} has keys {unknown} that are not columns "
                                     f"{columns}")
                vals = [row.get(c) for c in columns]
            elif _is_sequence(row) and not isinstance(row, str):
                vals = _to_list(row)
                if len(vals) != len(columns):
                    raise ValueError(f"Report.add_table(): row {r} has {len(vals)} values, expected "
                                     f"{len(columns)} (one per column {columns})")
            else:
                raise TypeError(f"Report.add_table(): row {r} must be a sequence or a dict, got "
                                f"{type(row).__name__}")
            clean.append([_jsonable(v) for v in vals])
        self._tables[name] = {"name": name, "columns": columns, "rows": clean}
        return self

    # ---------------------------------------------------------- reading back

    @property
    def metrics(self):
        """The metrics as ``{name: value}`` (None for non-finite values)."""
        return {k: m["value"] for k, m in self._metrics.items()}

    @property
    def figures(self):
        """Names of the figures, in order."""
        return list(self._figures)

    def to_dict(self):
        """The JSON summary as a dict (image data left out)."""
        return {
            "format": REPORT_FORMAT,
            "format_version": REPORT_FORMAT_VERSION,
            "title": self.title,
            "created": self.created,
            "saved": _now(),
            "hepml_version": _hepml_version(),
            "seed": self.seed,
            "environment": environment(),
            "config": _jsonable(self.config),
            "history": _jsonable(self.history),
            "metrics": [dict(m) for m in self._metrics.values()],
            "figures": [{k: v for k, v in f.items() if k != "data"} for f in self._figures.values()],
            "tables": [dict(t) for t in self._tables.values()],
            "sections": [dict(s) for s in self._sections.values()],
        }

    def to_json(self):
        """The JSON summary as a string (strict JSON: no NaN)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"

    def to_html(self, summary=None):
        """The self-contained HTML page as a string."""
        d = self.to_dict() if summary is None else summary
        p = []
        p.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_CSP}\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 f"<meta name=\"generator\" content=\"hepml {_esc(d['hepml_version'])}\">\n"
                 f"<title>{_esc(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n")
        p.append(f"<h1>{_esc(self.title)}</h1>\n")
        seed = "not recorded" if self.seed is None else str(self.seed)
        p.append(f"<p class=\"meta\">hepml {_esc(d['hepml_version'])} &middot; seed {_esc(seed)} &middot; "
                 f"started {_esc(d['created'])} &middot; saved {_esc(d['saved'])}</p>\n")

        if self._metrics:
            p.append("<h2>Metrics</h2>\n<table>\n<tr><th>metric</th><th>value</th><th>unit</th><th>note</th></tr>\n")
            for m in self._metrics.values():
                p.append(f"<tr><td>{_esc(m['name'])}</td><td class=\"num\">{_esc(_fmt(m['value']))}</td>"
                         f"<td>{_esc(m['unit'])}</td><td class=\"note\">{_esc(m['note'])}</td></tr>\n")
            p.append("</table>\n")

        for s in self._sections.values():
            p.append(f"<h2>{_esc(s['heading'])}</h2>\n{_markdown(s['text'])}\n")

        if self._figures:
            p.append("<h2>Figures</h2>\n")
            for f in self._figures.values():
                size = ""
                if f["width_px"] and f["height_px"]:
                    size = f" width=\"{int(f['width_px'])}\" height=\"{int(f['height_px'])}\""
                cap = _esc(f["name"]) if not f["caption"] else \
                    f"<strong>{_esc(f['name'])}.</strong> {_esc(f['caption'])}"
                p.append(f"<figure>\n<img alt=\"{_esc(f['name'])}\"{size} "
                         f"src=\"data:image/png;base64,{f['data']}\">\n<figcaption>{cap}</figcaption>\n</figure>\n")

        for t in self._tables.values():
            p.append(f"<h2>{_esc(t['name'])}</h2>\n<table>\n<tr>"
                     + "".join(f"<th>{_esc(c)}</th>" for c in t["columns"]) + "</tr>\n")
            for row in t["rows"]:
                p.append("<tr>" + "".join(_cell(v) for v in row) + "</tr>\n")
            p.append("</table>\n")

        if self.history:
            p.append("<h2>Training history</h2>\n<table>\n<tr><th>quantity</th><th>entries</th><th>first</th>"
                     "<th>last</th><th>min</th><th>max</th></tr>\n")
            for key, v in self.history.items():
                if isinstance(v, list):
                    vals = [x for x in v if isinstance(x, (int, float)) and not isinstance(x, bool)]
                    first, last = (v[0], v[-1]) if v else (None, None)
                    lo, hi = (min(vals), max(vals)) if vals else (None, None)
                    p.append(f"<tr><td>{_esc(key)}</td><td class=\"num\">{len(v)}</td>"
                             + "".join(_cell(x) for x in (first, last, lo, hi)) + "</tr>\n")
                else:
                    p.append(f"<tr><td>{_esc(key)}</td><td colspan=\"5\">{_esc(_fmt(v))}</td></tr>\n")
            p.append("</table>\n")

        if self.config:
            p.append("<h2>Configuration</h2>\n" + _kv_table(_flatten(d["config"])))
        p.append("<h2>Environment</h2>\n" + _kv_table(_flatten(d["environment"])))
        p.append("</body>\n</html>\n")
        return "".join(p)

    # ---------------------------------------------------------- files

    def save(self, path):
        """Write ``<path>.html`` and ``<path>.json`` (a trailing .html/.json on ``path``
        is dropped), or ``report.html`` and ``report.json`` inside ``path`` when it is an
        existing directory or ends with a path separator. Missing parent directories
        are created. Each file is written to a temporary file first and moved into
        place with ``os.replace``. Returns ``SavedReport(html, json)`` (Paths)."""
        html_path, json_path = _output_paths(path)
        html_path.parent.mkdir(parents=True, exist_ok=True)
        summary = self.to_dict()
        text_json = json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        text_html = self.to_html(summary)
        write_text_atomic(json_path, text_json)
        write_text_atomic(html_path, text_html)
        return SavedReport(html_path, json_path)

    @staticmethod
    def load_json(path):
        """Read a report's JSON summary back as a dict. ``path`` may be the .json file,
        the .html next to it, the prefix given to ``save``, or the directory."""
        p = Path(path).expanduser()
        if p.is_dir():
            p = p / "report.json"
        elif p.suffix.lower() in (".html", ".htm"):
            p = p.with_suffix(".json")
        elif p.suffix.lower() != ".json" and not p.is_file():
            p = p.with_name(p.name + ".json")
        if not p.is_file():
            raise FileNotFoundError(f"Report.load_json(): no report JSON at {p}")
        with open(p, encoding="utf-8") as f:
            try:
                d = json.load(f)
            except ValueError as e:
                raise ValueError(f"Report.load_json(): {p} is not valid JSON ({e})") from None
        if not isinstance(d, dict) or d.get("format") != REPORT_FORMAT:
            raise ValueError(f"Report.load_json(): {p} is not a hepml report (no \"format\": \"{REPORT_FORMAT}\")")
        return d

    def __repr__(self):
        return (f"Report({self.title!r}, seed={self.seed}, {len(self._metrics)} metrics, "
                f"{len(self._figures)} figures, {len(self._tables)} tables, {len(self._sections)} text sections, "
                f"history: {len(self.history)} series)")


# ----------------------------------------------------------------- helpers

def _is_sequence(v):
    if isinstance(v, (str, bytes, dict)):
        return False
    if isinstance(v, (list, tuple)):
        return True
    shape = getattr(v, "shape", None)
    return shape is not None and len(tuple(shape)) == 1 and hasattr(v, "tolist")


def _to_list(v):
    if isinstance(v, (list, tuple)):
        return list(v)
    return list(v.tolist())


def _cell(v):
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    cls = ' class="num"' if num else ""
    return f"<td{cls}>{_esc(_fmt(v))}</td>"


def _flatten(d, prefix=""):
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out


def _kv_table(items):
    rows = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(_fmt(v))}</td></tr>\n" for k, v in items)
    return f"<table>\n<tr><th>setting</th><th>value</th></tr>\n{rows}</table>\n"


def _output_paths(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"Report.save(): argument 'path' must be a path, got {type(path).__name__}")
    raw = os.fspath(path)
    if not raw:
        raise ValueError("Report.save(): argument 'path' is empty")
    p = Path(raw).expanduser()
    if p.is_dir() or raw.endswith(("/", os.sep)):
        return p / "report.html", p / "report.json"
    if p.suffix.lower() in (".html", ".htm", ".json"):
        p = p.with_suffix("")
    # name + ".html" rather than with_suffix: "run.v2" must not lose its ".v2"
    return p.with_name(p.name + ".html"), p.with_name(p.name + ".json")


def _history_figure(history):
    """One panel per quantity; "x" and "val_x" share a panel; an "epoch" series (as in
    hepml.training.History.as_dict()) is the x axis rather than a panel of its own."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None

    def usable(v):
        return isinstance(v, list) and any(x is not None for x in v)

    xs_all = history.get("epoch")
    if not (isinstance(xs_all, list) and xs_all and all(x is not None for x in xs_all)):
        xs_all = None
    keys = [k for k, v in history.items() if usable(v) and not (k == "epoch" and xs_all is not None)]
    groups, seen = [], set()
    for k in keys:
        if k in seen:
            continue
        members = [k]
        if not k.startswith("val_") and f"val_{k}" in keys:
            members.append(f"val_{k}")
        seen.update(members)
        groups.append((k, members))
    groups = groups[:12]
    if not groups:
        return None
    n = len(groups)
    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(4.0 * ncols, 2.8 * nrows), layout="constrained")
    for j, (title, members) in enumerate(groups):
        ax = fig.add_subplot(nrows, ncols, j + 1)
        all_y = []
        for key in members:
            vals = history[key]
            grid = xs_all if xs_all is not None and len(xs_all) == len(vals) else list(range(len(vals)))
            pts = [(x, y) for x, y in zip(grid, vals) if y is not None]
            ys = [y for _, y in pts]
            all_y += ys
            ax.plot([x for x, _ in pts], ys, marker="." if len(ys) <= 50 else None, lw=1.2,
                    label="validation" if key.startswith("val_") and len(members) > 1 else
                    ("training" if len(members) > 1 else None))
        if all_y and min(all_y) > 0 and max(all_y) / min(all_y) > 30:
            ax.set_yscale("log")  # losses falling over decades read better on a log axis
        if len(members) > 1:
            ax.legend(fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch" if xs_all is not None else "entry")
        ax.grid(alpha=0.3)
    return fig
