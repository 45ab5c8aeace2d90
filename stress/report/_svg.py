"""The counterexample as a picture to explore (after Porcupine's visualizer), as HTML text.

One row per task, one bar per call of the minimized counterexample from invocation to
response; the longest linearization the checker built is drawn through it as a line from
call to call (each call's dot sits at a moment inside its bar, moments in linearization order),
the calls it got stuck on are red and say why on hover. Inline SVG, CSS and a little JS (no
network): hovering a bar shows its details, the slider replays the linearization step by
step, the list under the picture names every step. Without JS the picture and each bar's
tooltip (`<title>`) still show. Pure: a `plots.data.Timeline` in, text out.
"""

from __future__ import annotations

import html

from plots.data import Timeline, TimelineCall
from plots.style import CONFLICT_COLOR, LINEARIZED_COLOR, UNORDERED_COLOR
from plots.timeline import MAX_ROWS, shown_tasks

WIDTH = 1000
LEFT = 70
RIGHT = 30
TOP = 24
ROW = 40
BAR = 16

CSS = """
#cex-explorer { position: relative; }
#cex-explorer svg { border: 1px solid #eee; background: #fff; max-width: 100%; }
#cex-explorer .call rect { stroke: none; }
#cex-explorer .call.stuck rect { stroke: #222; stroke-width: 1.5; }
#cex-explorer .call:hover rect, #cex-explorer .call.hot rect { stroke: #000; stroke-width: 2; }
#cex-explorer .call.future { opacity: 0.25; }
#cex-explorer .call text { font-size: 10px; pointer-events: none; }
#cex-explorer .lin-line { fill: none; stroke: #1b3f73; stroke-width: 1.5; }
#cex-explorer .lin-dot { fill: #1b3f73; }
#cex-explorer .lin-dot.future { opacity: 0.15; }
#cex-explorer .cex-tip { position: absolute; display: none; background: #222; color: #fff;
  padding: 0.3em 0.6em; border-radius: 0.3em; font-size: 0.85em; pointer-events: none;
  white-space: pre-line; max-width: 32em; z-index: 2; }
#cex-explorer ol li.hot { background: #fff3c4; }
#cex-explorer ol li.stuck-step { color: #c62828; }
"""

JS = """
(function () {
  var root = document.getElementById('cex-explorer');
  if (!root) { return; }
  var tip = root.querySelector('.cex-tip');
  var calls = Array.prototype.slice.call(root.querySelectorAll('.call'));
  var dots = Array.prototype.slice.call(root.querySelectorAll('.lin-dot'));
  var line = root.querySelector('.lin-line');
  var points = line ? line.getAttribute('points').trim().split(/\\s+/) : [];
  var steps = root.querySelector('ol.cex-steps');
  var slider = root.querySelector('input.cex-step');
  var shown = root.querySelector('.cex-step-value');
  var items = {};
  function place(ev) {
    var box = root.getBoundingClientRect();
    tip.style.left = (ev.clientX - box.left + 12) + 'px';
    tip.style.top = (ev.clientY - box.top + 12) + 'px';
  }
  function hot(el, on) {
    el.classList.toggle('hot', on);
    var item = items[el.getAttribute('data-id')];
    if (item) { item.classList.toggle('hot', on); }
  }
  calls.forEach(function (el) {
    el.addEventListener('mouseenter', function (ev) {
      tip.textContent = el.getAttribute('data-info');
      tip.style.display = 'block'; place(ev); hot(el, true);
    });
    el.addEventListener('mousemove', place);
    el.addEventListener('mouseleave', function () { tip.style.display = 'none'; hot(el, false); });
  });
  var ordered = calls.filter(function (el) { return el.hasAttribute('data-order'); });
  function order(el) { return Number(el.getAttribute('data-order')); }
  ordered.sort(function (a, b) { return order(a) - order(b); });
  var stuck = calls.filter(function (el) { return el.classList.contains('stuck'); });
  function add(el, cls, text) {
    var li = document.createElement('li');
    li.className = cls; li.textContent = text;
    li.setAttribute('data-id', el.getAttribute('data-id'));
    li.addEventListener('mouseenter', function () { hot(el, true); });
    li.addEventListener('mouseleave', function () { hot(el, false); });
    items[el.getAttribute('data-id')] = li; steps.appendChild(li);
  }
  ordered.forEach(function (el) {
    add(el, 'lin-step',
        'task ' + el.getAttribute('data-task') + ': ' + el.getAttribute('data-label'));
  });
  stuck.forEach(function (el) {
    add(el, 'stuck-step', 'stuck: task ' + el.getAttribute('data-task') + ': ' +
        el.getAttribute('data-label') + ' (' + el.getAttribute('data-reason') + ')');
  });
  function show(k) {
    ordered.forEach(function (el) {
      el.classList.toggle('future', order(el) > k);
    });
    dots.forEach(function (d, i) { d.classList.toggle('future', i >= k); });
    if (line) { line.setAttribute('points', points.slice(0, Math.max(k, 0)).join(' ')); }
    if (shown) { shown.textContent = k + ' of ' + ordered.length; }
  }
  if (slider) {
    slider.max = String(ordered.length); slider.value = String(ordered.length);
    slider.addEventListener('input', function () { show(Number(slider.value)); });
  }
  show(ordered.length);
  root.setAttribute('data-js', 'ready');
})();
"""


def _info(c: TimelineCall, origin: int, unit: str) -> str:
    lines = [f"task {c.task}: {c.label}"]
    ret = "never (pending)" if c.ret is None else f"{c.ret - origin} {unit}"
    lines.append(f"invoked at {c.call - origin} {unit}, returned {ret}")
    if c.order is not None:
        lines.append(f"linearized as step {c.order}")
    if c.conflict:
        lines.append(f"stuck: {c.reason or 'cannot come next'}")
    elif c.order is None:
        lines.append("not in the linearization")
    return "\n".join(lines)


def explorer(cex: Timeline, max_rows: int = MAX_ROWS) -> str:
    """The interactive counterexample: a `<div id="cex-explorer">` with its SVG, slider, step
    list, and the inline CSS and JS it needs."""
    unit = "steps" if cex.clock == "steps" else "ns"
    tasks = shown_tasks(cex, max_rows)
    hidden = len({c.task for c in cex.calls}) - len(tasks)
    row = {task: i for i, task in enumerate(tasks)}
    calls = [c for c in cex.calls if c.task in row]
    origin = min((c.call for c in calls), default=0)
    last = max([c.call for c in calls] + [c.ret for c in calls if c.ret is not None] + [origin])
    span = max(last - origin, 1)
    inner = WIDTH - LEFT - RIGHT
    pending_end = span * 1.08

    def x(t: float) -> float:
        return LEFT + (t / pending_end) * inner

    height = TOP + ROW * max(len(tasks), 1) + 28
    parts = [
        f'<svg class="cex-svg" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-label="{html.escape(cex.title)}">',
        '<defs><pattern id="cex-pending" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#555" stroke-width="2"/></pattern></defs>',
    ]
    for task, i in row.items():
        y = TOP + ROW * i + ROW / 2
        parts.append(
            f'<text class="task-label" x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11">task {task}</text>'
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#f0f0f0"/>'
        )
    axis_y = TOP + ROW * max(len(tasks), 1) + 4
    parts.append(
        f'<line x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}" stroke="#999"/>'
        f'<text x="{LEFT}" y="{axis_y + 16}" font-size="10">0</text>'
        f'<text x="{x(span):.1f}" y="{axis_y + 16}" font-size="10" text-anchor="end">'
        f"{span} {unit} after the first call</text>"
    )
    for n, c in enumerate(sorted(calls, key=lambda c: (c.call, c.task))):
        y = TOP + ROW * row[c.task] + (ROW - BAR) / 2 + 4
        start = x(c.call - origin)
        end = x(pending_end) if c.ret is None else x(c.ret - origin)
        width = max(end - start, 3.0)
        if c.conflict:
            fill, cls = CONFLICT_COLOR, "call stuck"
        elif c.order is not None:
            fill, cls = LINEARIZED_COLOR, "call linearized"
        else:
            fill, cls = UNORDERED_COLOR, "call"
        if c.ret is None:
            cls += " pending"
        info = _info(c, origin, unit)
        attrs = (
            f'class="{cls}" data-id="c{n}" data-task="{c.task}" '
            f'data-label="{html.escape(c.label)}" data-info="{html.escape(info)}"'
        )
        if c.order is not None:
            attrs += f' data-order="{c.order}"'
        if c.conflict:
            attrs += f' data-reason="{html.escape(c.reason or "cannot come next")}"'
        text = c.label if c.order is None else f"{c.order}. {c.label}"
        pending = (
            f'<rect x="{start:.1f}" y="{y:.1f}" width="{width:.1f}" height="{BAR}" '
            'fill="url(#cex-pending)" opacity="0.5"/>'
            if c.ret is None
            else ""
        )
        parts.append(
            f"<g {attrs}><title>{html.escape(info)}</title>"
            f'<rect x="{start:.1f}" y="{y:.1f}" width="{width:.1f}" height="{BAR}" '
            f'rx="2" fill="{fill}"/>{pending}'
            f'<text x="{start + 2:.1f}" y="{y - 3:.1f}" fill="#222">{html.escape(text)}</text></g>'
        )
    # the linearization: a dot per linearized call at a moment inside its bar, in order
    moment = float(-1)
    points = []
    for c in sorted((c for c in calls if c.order is not None), key=lambda c: c.order or 0):
        end = pending_end if c.ret is None else c.ret - origin
        moment = min(max(c.call - origin, moment + span * 0.01), end)
        y = TOP + ROW * row[c.task] + (ROW - BAR) / 2 + 4 + BAR / 2
        points.append((x(moment), y))
    if points:
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        parts.append(f'<polyline class="lin-line" points="{coords}"/>')
        parts.extend(
            f'<circle class="lin-dot" cx="{px:.1f}" cy="{py:.1f}" r="3.5"/>' for px, py in points
        )
    parts.append("</svg>")
    note = (
        f"<p>{len(tasks)} tasks shown, {hidden} more not drawn (see the table).</p>"
        if hidden > 0
        else ""
    )
    linearized = sum(c.order is not None for c in calls)
    return (
        f"<style>{CSS}</style>"
        '<div id="cex-explorer" data-js="static">'
        f"{note}{''.join(parts)}"
        '<div class="cex-tip"></div>'
        '<p><label>linearization step <input class="cex-step" type="range" min="0" '
        f'max="{linearized}" value="{linearized}"></label> '
        f'<span class="cex-step-value">{linearized} of {linearized}</span></p>'
        '<ol class="cex-steps"></ol>'
        f"<script>{JS}</script></div>"
    )
