"""Charts from ``bench/results/latest.json`` (matplotlib, Agg backend, small PNGs).

- ``requests.png``: end-to-end req/s per framework, GET and POST, median bars
  with min-max whiskers;
- ``latency.png``: in-process µs per request, GET and POST with its task
  completed (log scale: raw ASGI and a thread hop are two orders apart).

``run.py`` calls :func:`render` at the end; on its own:

    python bench/chart.py [bench/results/latest.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"
COLORS = ("#4878a8", "#e0904a", "#8cb369")  # GET, POST, POST back to back
DPI = 80  # with the small figure sizes below, each PNG stays around 20-30 KB


def _bars(ax: Any, names: list[str], series: dict[str, list[dict[str, Any]]], fmt: str) -> None:
    width = 0.8 / len(series)
    for index, (label, entries) in enumerate(series.items()):
        xs = [i + (index - (len(series) - 1) / 2) * width for i in range(len(names))]
        medians = [e["median"] for e in entries]
        low = [e["median"] - e["min"] for e in entries]
        high = [e["max"] - e["median"] for e in entries]
        bars = ax.bar(
            xs,
            medians,
            width,
            label=label,
            color=COLORS[index % len(COLORS)],
            yerr=[low, high],
            capsize=3,
            error_kw={"elinewidth": 0.8, "ecolor": "#333333"},
        )
        ax.bar_label(bars, labels=[fmt.format(m) for m in medians], fontsize=7, padding=2)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.margins(y=0.25)  # headroom for the legend above the tallest bar
    ax.legend(fontsize=8, frameon=False, loc="upper center", ncols=len(series))


def requests_chart(e2e: dict[str, Any], path: Path) -> Path:
    # GET and POST only (the request-body routes are in latest.md's tables).
    summary = {n: e for n, e in e2e["summary"].items() if {"GET", "POST"} <= e.keys()}
    names = list(summary)
    config = e2e["config"]
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    _bars(
        ax,
        names,
        {route: [summary[n][route] for n in names] for route in ("GET", "POST")},
        "{:,.0f}",
    )
    ax.set_ylabel("requests/s (median, min-max)", fontsize=8)
    ax.set_title(
        f"hypercorn trio worker, 1 worker; wrk -c{config['connections']} "
        f"-d{config['duration_s']:g}s, {config['rounds']} round(s), medians",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def latency_chart(micro: dict[str, Any], path: Path) -> Path:
    routes = micro["requests"]["routes"]
    names = list(routes["GET"])
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    series = {
        "GET": [routes["GET"][n] for n in names],
        "POST (task completed)": [routes["POST"][n] for n in names],
        f"POST x{micro['requests']['burst']:,} back to back (amortised)": [
            routes["POST burst"][n] for n in names
        ],
    }
    _bars(ax, names, series, "{:.1f}")
    ax.set_yscale("log")
    ax.set_ylabel("µs per request (median, min-max, log)", fontsize=8)
    ax.set_title("In-process ASGI call, no server", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def render(results: dict[str, Any], folder: Path = RESULTS) -> list[Path]:
    """Draws whichever charts the results have data for; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = []
    e2e = results.get("e2e")
    if e2e and any({"GET", "POST"} <= entry.keys() for entry in e2e["summary"].values()):
        drawn.append(requests_chart(e2e, folder / "requests.png"))
    if "micro" in results:
        drawn.append(latency_chart(results["micro"], folder / "latency.png"))
    return drawn


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else RESULTS / "latest.json"
    results = json.loads(source.read_text())
    for path in render(results, source.parent):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
