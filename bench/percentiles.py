#!/usr/bin/env python3
"""Latency percentile plot (SVG, no dependencies) from sockperf --full-log files.

usage: percentiles.py OUT.svg TITLE LABEL=FILE [LABEL=FILE ...]

Each FILE is a sockperf --full-log CSV ("packet, txTime, rxTime, latency(usec)" rows, latency
one-way). The plot puts the percentile on the x axis on a log scale of the tail (50, 90, 99,
99.9, 99.99: each step ten times rarer) and the one-way latency in microseconds on a log y
axis, one line per file, so the tail a reader cares about gets most of the width.
"""
import math
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 420, 70, 170, 40, 50


def latencies(path):
    values = []
    with open(path) as f:
        for line in f:
            parts = line.split(",")
            if len(parts) == 4 and parts[0].strip().isdigit():
                values.append(float(parts[3]))
    values.sort()
    return values


def tail_x(p):
    """Percentile to 'nines': 50 -> 0.3, 90 -> 1, 99 -> 2, 99.9 -> 3..."""
    return -math.log10(max(1e-6, 1 - p / 100))


def at(values, p):
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    out, title, series = sys.argv[1], sys.argv[2], [a.split("=", 1) for a in sys.argv[3:]]
    data = [(label, latencies(path)) for label, path in series]
    data = [(label, v) for label, v in data if v]
    if not data:
        sys.exit("no latencies in " + " ".join(path for _, path in series))
    points = sorted({min(99.99, 100 - 50 * 10 ** (-k / 40)) for k in range(161)})
    xmax = tail_x(99.99)
    lo = min(v[0] for _, v in data)
    hi = max(at(v, 99.99) for _, v in data)
    ylo, yhi = math.log10(max(0.1, lo * 0.8)), math.log10(hi * 1.25)
    px = lambda p: LEFT + (tail_x(p) - tail_x(50)) / (xmax - tail_x(50)) * (WIDTH - LEFT - RIGHT)
    py = lambda us: HEIGHT - BOTTOM - (math.log10(us) - ylo) / (yhi - ylo) * (HEIGHT - TOP - BOTTOM)
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="14">{title}</text>']
    for p in (50, 90, 99, 99.9, 99.99):
        x = px(p)
        svg.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" stroke="#ddd"/>')
        svg.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">p{p:g}</text>')
    decade = math.floor(ylo)
    while decade <= yhi:
        for m in (1, 2, 5):
            v = m * 10 ** decade
            if ylo <= math.log10(v) <= yhi:
                y = py(v)
                svg.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
                svg.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        decade += 1
    svg.append(f'<text x="16" y="{HEIGHT / 2}" transform="rotate(-90 16 {HEIGHT / 2})" text-anchor="middle">one-way latency (us, log)</text>')
    svg.append(f'<text x="{(LEFT + WIDTH - RIGHT) / 2}" y="{HEIGHT - 12}" text-anchor="middle">percentile</text>')
    for i, (label, values) in enumerate(data):
        colour = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{'M' if j == 0 else 'L'}{px(p):.1f},{py(at(values, p)):.1f}" for j, p in enumerate(points))
        svg.append(f'<path d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        y = TOP + 20 + 36 * i
        svg.append(f'<line x1="{WIDTH - RIGHT + 12}" y1="{y}" x2="{WIDTH - RIGHT + 32}" y2="{y}" stroke="{colour}" stroke-width="3"/>')
        svg.append(f'<text x="{WIDTH - RIGHT + 38}" y="{y + 4}">{label}</text>')
        svg.append(f'<text x="{WIDTH - RIGHT + 38}" y="{y + 18}" fill="#555">p50 {at(values, 50):.1f} p99 {at(values, 99):.1f}</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
