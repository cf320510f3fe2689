"""Draw each backend operation's cost against queue depth from a pytest-benchmark JSON.

python -m pytest bench/test_bench_backend.py --benchmark-json=bench/results/depth.json
python bench/plot_depth.py bench/results/depth.json
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
_DEPTH = re.compile(r"depth=([\d,]+)")


def load(path: Path) -> dict[str, dict[int, float]]:
    """{operation: {depth: median microseconds}} from a --benchmark-json file."""
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for bench in json.loads(path.read_text())["benchmarks"]:
        found = _DEPTH.search(bench["param"] or "")
        if found is None:
            continue
        operation = bench["name"].split("[", 1)[0].removeprefix("test_")
        curves[operation][int(found.group(1).replace(",", ""))] = bench["stats"]["median"] * 1e6
    return dict(curves)


def table(curves: dict[str, dict[int, float]]) -> str:
    """A Markdown table: one row per operation, one column per depth (median µs)."""
    depths = sorted({depth for curve in curves.values() for depth in curve})
    lines = [
        "| operation | " + " | ".join(f"{d:,} ready" for d in depths) + " |",
        "|---|" + "---:|" * len(depths),
    ]
    for operation, curve in sorted(curves.items()):
        cells = [f"{curve[d]:,.0f} µs" if d in curve else "" for d in depths]
        lines.append(f"| {operation} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def chart(curves: dict[str, dict[int, float]], path: Path) -> None:
    """A log-log chart of median cost per call against depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for operation, curve in sorted(curves.items()):
        depths = sorted(curve)
        axes.plot(depths, [curve[d] for d in depths], marker="o", label=operation)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("ready jobs in the queue")
    axes.set_ylabel("median µs per call")
    axes.set_title("SQLite backend: cost per operation against queue depth (flat is good)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str]) -> int:
    source = Path(argv[1]) if len(argv) > 1 else RESULTS / "depth.json"
    curves = load(source)
    report = table(curves)
    print(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "depth.md").write_text(report + "\n")
    chart(curves, RESULTS / "depth.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
