"""A drift report a person can read: one self-contained HTML page with the plots behind the verdict.

The page holds the verdict, the table of every test (as ``monitor drift --json`` gives it), one
overlaid histogram per continuous feature, one bar chart per categorical feature, and a scatter
of both sets on the first two principal components of the embedding. Plots are drawn with
matplotlib and embedded as PNG data, so the file opens offline and can be attached to a ticket.
It holds no patient data: only the monitored features (see :mod:`insightray.monitoring.features`).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np

from insightray.errors import ConfigError
from insightray.extras import import_extra
from insightray.monitoring.drift import DriftReport, FeatureTest
from insightray.monitoring.features import FeatureTable
from insightray.monitoring.scoring import DistanceModel

__all__ = ["write_html_report"]

_REFERENCE, _CURRENT = "#1f77b4", "#d62728"
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem}
th{background:#f3f3f3}.drift{color:#b00020;font-weight:600}.ok{color:#1b5e20;font-weight:600}
figure{display:inline-block;margin:.5rem;text-align:center}img{width:22rem}
"""


def write_html_report(
    path: Path, reference: FeatureTable, current: FeatureTable, report: DriftReport
) -> Path:
    """Write the report for ``reference`` against ``current`` to ``path`` and return it.

    Raises:
        OutputError: ``path`` cannot be written.
    """
    import_extra("matplotlib", "explain")
    import matplotlib

    matplotlib.use("Agg")
    by_feature = {test.feature: test for test in report.tests}
    figures = [
        _histogram(name, reference.continuous[name], current.continuous[name], by_feature[name])
        for name in sorted(by_feature)
        if name in reference.continuous
    ]
    figures += [
        _bars(name, reference.categorical[name], current.categorical[name], by_feature[name])
        for name in sorted(by_feature)
        if name in reference.categorical
    ]
    if "embedding" in by_feature:
        figures.append(_scatter(reference.embedding, current.embedding, by_feature["embedding"]))
    page = _page(report, figures)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as error:
        raise ConfigError(
            f"--html {path}", f"cannot be written ({error.strerror})", "give a writable path"
        ) from error
    return path


def _page(report: DriftReport, figures: list[str]) -> str:
    data = report.to_dict()
    drifted = ", ".join(map(html.escape, data["drifted_features"]))
    verdict = (
        f'<span class="drift">drift</span> in {drifted}'
        if report.drift
        else '<span class="ok">no drift</span>'
    )
    rows = "".join(_row(item) for item in data["features"])
    skipped = "".join(
        f"<li>{html.escape(name)}: {html.escape(why)}</li>" for name, why in report.skipped.items()
    )
    return (
        "<!doctype html><html lang=en><meta charset=utf-8><title>Drift report</title>"
        f"<style>{_STYLE}</style><h1>Drift report</h1>"
        f"<p>{verdict} at a false-discovery rate of {report.alpha} (Benjamini-Hochberg), "
        f"{report.sizes[0]} reference and {report.sizes[1]} current images.</p>"
        "<table><tr><th>feature</th><th>test</th><th>statistic</th><th>p</th>"
        f"<th>p (BH)</th><th>PSI</th><th>JS</th></tr>{rows}</table>"
        + (f"<p>Not tested:</p><ul>{skipped}</ul>" if skipped else "")
        + f'<p><span style="color:{_REFERENCE}">&#9632; reference</span> '
        f'<span style="color:{_CURRENT}">&#9632; current</span></p>' + "".join(figures) + "</html>"
    )


def _row(item: dict[str, Any]) -> str:
    css = ' class="drift"' if item["drift"] else ""
    cells = [item["feature"], item["test"], item["statistic"], item["p_value"], item["p_adjusted"]]
    cells += ["-" if item[key] is None else item[key] for key in ("psi", "js")]
    return f"<tr{css}>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells) + "</tr>"


def _histogram(name: str, reference: Any, current: Any, test: FeatureTest) -> str:
    import matplotlib.pyplot as plt

    ref, cur = reference[np.isfinite(reference)], current[np.isfinite(current)]
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=30).tolist()
    figure, axes = plt.subplots(figsize=(4, 2.8))
    axes.hist(ref, bins=edges, density=True, alpha=0.5, color=_REFERENCE)
    axes.hist(cur, bins=edges, density=True, alpha=0.5, color=_CURRENT)
    axes.set_xlabel(name)
    axes.set_ylabel("density")
    return _figure(figure, name, test)


def _bars(name: str, reference: list[str], current: list[str], test: FeatureTest) -> str:
    import matplotlib.pyplot as plt

    categories = sorted(set(reference) | set(current))
    positions = np.arange(len(categories))
    shares = [
        [values.count(category) / max(len(values), 1) for category in categories]
        for values in (reference, current)
    ]
    figure, axes = plt.subplots(figsize=(4, 2.8))
    axes.bar(positions - 0.2, shares[0], width=0.4, color=_REFERENCE)
    axes.bar(positions + 0.2, shares[1], width=0.4, color=_CURRENT)
    axes.set_xticks(positions, categories, rotation=30, ha="right", fontsize=7)
    axes.set_ylabel("share of images")
    return _figure(figure, name, test)


def _scatter(reference: Any, current: Any, test: FeatureTest) -> str:
    import matplotlib.pyplot as plt

    pooled = np.concatenate([reference, current]).astype(np.float64)
    projection = DistanceModel.fit_projection(pooled, 2)
    figure, axes = plt.subplots(figsize=(4, 2.8))
    for rows, colour in ((reference, _REFERENCE), (current, _CURRENT)):
        points = projection.project(np.asarray(rows, dtype=np.float64))
        points = np.pad(points, ((0, 0), (0, max(0, 2 - points.shape[1]))))
        axes.scatter(points[:, 0], points[:, 1], s=6, alpha=0.6, color=colour)
    axes.set_xlabel("principal component 1")
    axes.set_ylabel("principal component 2")
    return _figure(figure, "embedding", test)


def _figure(figure: Any, name: str, test: FeatureTest) -> str:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = f"{name}: {test.test} p (BH) = {test.p_adjusted:.3g}"
    return (
        f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )
