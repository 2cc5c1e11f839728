"""The application's graph laid out on the server, for an SVG the template draws (no script, no
system binary): actions in layers by their distance from the entrypoint, forward transitions
as straight arrows, loops and back edges as curves on the right, conditions as edge labels and
each action's run count in its box. Only numbers and the graph's own strings come out; the
template escapes the strings.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from turnout.integrations.fastapi.ui.schemas import GraphOut

__all__ = ["EdgeBox", "GraphView", "NodeBox", "layout"]

CHAR_PX = 7.2
NODE_H = 34
LAYER_GAP = 76
NODE_GAP = 28
MARGIN = 24
MAX_LABEL = 32


@dataclass(frozen=True, kw_only=True, slots=True)
class NodeBox:
    name: str
    label: str
    x: float
    y: float
    w: float
    h: float
    current: bool
    ran: bool
    chosen: bool = False  # the action the steps table is filtered to


@dataclass(frozen=True, kw_only=True, slots=True)
class EdgeBox:
    path: str
    label: str
    label_x: float
    label_y: float
    on_exception: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class GraphView:
    width: float
    height: float
    nodes: list[NodeBox]
    edges: list[EdgeBox]


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _layers(graph: GraphOut, names: list[str]) -> dict[str, int]:
    following: dict[str, list[str]] = {n: [] for n in names}
    for edge in graph.transitions:
        following[edge.source].append(edge.target)
    layer: dict[str, int] = {}
    start = graph.entrypoint if graph.entrypoint in following else (names[0] if names else None)
    if start is not None:
        layer[start] = 0
        queue = deque([start])
        while queue:
            name = queue.popleft()
            for target in following[name]:
                if target not in layer:
                    layer[target] = layer[name] + 1
                    queue.append(target)
    deepest = max(layer.values(), default=-1)
    for name in names:  # unreachable actions go below the rest
        if name not in layer:
            layer[name] = deepest + 1
    return layer


def layout(
    graph: GraphOut, *, counts: dict[str, int], current: str | None, chosen: str | None = None
) -> GraphView:
    """Positions for every action and transition of ``graph``; ``current`` is filled and
    ``chosen`` (the action the steps are filtered to) outlined."""
    names = [a.name for a in graph.actions]
    for edge in graph.transitions:
        for name in (edge.source, edge.target):
            if name not in names:
                names.append(name)
    layer = _layers(graph, names)
    rows: dict[int, list[str]] = {}
    for name in names:
        rows.setdefault(layer[name], []).append(name)
    labels = {n: _short(n) + (f" \u00d7{counts[n]}" if counts.get(n) else "") for n in names}
    widths = {n: max(70.0, len(labels[n]) * CHAR_PX + 22) for n in names}
    row_width = {
        k: sum(widths[n] for n in row) + NODE_GAP * (len(row) - 1) for k, row in rows.items()
    }
    inner = max(row_width.values(), default=100.0)
    boxes: dict[str, NodeBox] = {}
    for k, row in rows.items():
        x = MARGIN + (inner - row_width[k]) / 2
        for name in row:
            boxes[name] = NodeBox(
                name=name,
                label=labels[name],
                x=round(x, 1),
                y=MARGIN + k * (NODE_H + LAYER_GAP),
                w=round(widths[name], 1),
                h=NODE_H,
                current=name == current,
                ran=bool(counts.get(name)),
                chosen=name == chosen,
            )
            x += widths[name] + NODE_GAP
    edges = []
    loop_offset: dict[str, int] = {}
    for edge in graph.transitions:
        a, b = boxes[edge.source], boxes[edge.target]
        label = "" if edge.condition == "default" else _short(edge.condition)
        if edge.source == edge.target:
            right, top = a.x + a.w, a.y + 8
            path = (
                f"M{right:.1f},{top:.1f} C{right + 40:.1f},{top - 22:.1f} "
                f"{right + 40:.1f},{top + 40:.1f} {right:.1f},{top + 18:.1f}"
            )
            lx, ly = right + 44, top + 12
        elif b.y > a.y:
            x1, y1 = a.x + a.w / 2, a.y + a.h
            x2, y2 = b.x + b.w / 2, b.y
            path = f"M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}"
            lx, ly = (x1 + x2) / 2 + 4, (y1 + y2) / 2
        else:  # back to an earlier layer (or sideways): a curve on the right
            bend = 30 + 18 * loop_offset.get(edge.source, 0)
            loop_offset[edge.source] = loop_offset.get(edge.source, 0) + 1
            x1, y1 = a.x + a.w, a.y + a.h / 2
            x2, y2 = b.x + b.w, b.y + b.h / 2
            far = max(x1, x2) + bend
            path = f"M{x1:.1f},{y1:.1f} C{far:.1f},{y1:.1f} {far:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
            lx, ly = far - 8, (y1 + y2) / 2
        edges.append(
            EdgeBox(
                path=path,
                label=label,
                label_x=round(lx, 1),
                label_y=round(ly, 1),
                on_exception=edge.on_exception,
            )
        )
    label_room = max((len(e.label) * 6.5 + e.label_x for e in edges), default=0.0)
    width = max(inner + 2 * MARGIN + 60, label_room + MARGIN)
    height = MARGIN * 2 + (max(rows, default=0) + 1) * (NODE_H + LAYER_GAP) - LAYER_GAP
    return GraphView(
        width=round(width, 1), height=round(height, 1), nodes=list(boxes.values()), edges=edges
    )
