"""Score a Flappy Bird game on Unsloth's ten items by playing it headless, each score with its evidence.

Three full sessions (SPACE to start, probes of one and of two quick presses, an autopilot that steers
through pipe gaps, a stop so the bird dies, SPACE to restart, another death, then q or Esc) and three
short looks at the start of the game with other random seeds, for the items that must be random.
Static reading of the code is used only where running cannot tell, and the evidence says so.
"""

from __future__ import annotations

import colorsys
import importlib.util
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from r1run.errors import ToolMissing
from r1run.eval.flappy import ITEMS
from r1run.eval.sandbox import Limits, RunResult, Scenario, run_game

QUIT_FRAME, RESTART_FRAME = 1150, 850
FULL = [Scenario(seed, QUIT_FRAME + 60, {10: ["space"], RESTART_FRAME: ["space"], QUIT_FRAME: [key]},
                 [(11, 700), (RESTART_FRAME + 2, 1000)], [(30, 1), (110, 2)], key, QUIT_FRAME)
        for seed, key in ((1, "q"), (2, "escape"), (3, "q"))]
LOOKS = [Scenario(seed, 150, {10: ["space"]}, [(11, 150)], []) for seed in (4, 5, 6)]


@dataclass(frozen=True)
class Item:
    name: str
    score: float  # 0 to 1 in steps of 0.25
    evidence: str


@dataclass
class Scorecard:
    items: list[Item]
    seconds: float = 0.0
    runs: list[dict] = field(default_factory=list)  # what each run did, in short

    @property
    def total(self) -> float:
        return sum(i.score for i in self.items)


def require_pygame() -> None:
    """The games run on this Python: pygame must be installed here."""
    if importlib.util.find_spec("pygame") is None:
        raise ToolMissing("pygame is not installed, so r1run cannot play the games: pip install 'r1run[eval]'")


def score_source(code: str | None, limits: Limits | None = None, parallel: int | None = None, *,
                 missing: str = "no python block in the answer") -> Scorecard:
    """Play the game and score the ten items; None: the answer held no game, for the reason `missing`."""
    start = time.monotonic()
    if code is None:
        return Scorecard([Item(n, 0.0, missing) for n in ITEMS], 0.0)
    try:
        compile(code, "game.py", "exec")
    except SyntaxError as exc:
        why = f"does not compile: SyntaxError line {exc.lineno}: {exc.msg}"
        items = [Item(n, 0.0, f"could not run ({why})") for n in ITEMS]
        items[0] = _static_pygame(code, why)
        return Scorecard(items, time.monotonic() - start)
    scenarios = FULL + LOOKS
    workers = parallel or max(1, min(len(scenarios), os.cpu_count() or 1))
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        try:
            results = list(pool.map(lambda sc: run_game(code, sc, limits or Limits(), cancel), scenarios))
        except BaseException:  # Ctrl-C: the games still running are killed now, not at their time limit,
            cancel.set()         # and those not started yet never start
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    card = judge(code, results[: len(FULL)], results[len(FULL):])
    card.seconds = time.monotonic() - start
    return card


def _static_pygame(code: str, why: str) -> Item:
    if re.search(r"^\s*(import pygame|from pygame)", code, re.M):
        return Item("Pygame", 0.5, f"static reading: imports pygame, but it {why}")
    return Item("Pygame", 0.0, f"does not import pygame ({why})")


# -- colours ---------------------------------------------------------------------------------------------

def hls(c) -> tuple[float, float, float]:
    h, lum, s = colorsys.rgb_to_hls(*(v / 255 for v in c))
    return h * 360, lum, s


def is_light(c) -> bool:
    return hls(c)[1] >= 0.6


def is_light_blue(c) -> bool:
    h, lum, s = hls(c)
    return 170 <= h <= 250 and lum >= 0.55 and s >= 0.25


def is_dark(c) -> bool:
    return hls(c)[1] <= 0.45


def land_colour(c) -> str | None:
    h, lum, s = hls(c)
    if 40 <= h <= 70 and lum >= 0.35 and s >= 0.5:
        return "yellow"
    if 10 <= h <= 50 and lum <= 0.45 and s >= 0.2:
        return "dark brown"
    return None


def pipe_colour(c) -> str | None:
    h, lum, s = hls(c)
    if s <= 0.15 and 0.1 <= lum <= 0.7:
        return "dark gray"
    if 80 <= h <= 170 and lum <= 0.4:
        return "dark green"
    if 15 <= h <= 50 and 0.4 <= lum <= 0.8:
        return "light brown"
    return None


def fmt(c) -> str:
    return "#%02x%02x%02x" % tuple(c)


# -- what each run shows ---------------------------------------------------------------------------------

def _frames(r: RunResult) -> list[list]:
    return r.data["frames"] if r.data else []


def _size(r: RunResult) -> tuple[int, int] | None:
    if r.data and r.data.get("screen"):
        w, h = r.data["screen"]
        return w, h
    return None


def backgrounds(r: RunResult, lasting: int = 20) -> list[list[int]]:
    """The colours frames start from (a fill or rect covering the screen), in order of change, leaving out those
    that last fewer than `lasting` frames in a row (a start menu before the first SPACE, a flash on a hit)
    unless nothing lasts that long."""
    size = _size(r)
    if size is None:
        return []
    runs: list[list] = []  # [colour, frames in a row]
    birds = (r.data or {}).get("bird", [])
    playing = any(birds)  # judge the frames the game is played on: a game-over or menu screen has no bird
    for i, ops in enumerate(_frames(r)):
        if playing and not (i < len(birds) and birds[i]):
            continue
        for op in ops:
            if op[0] in ("fill", "rect") and op[1] and op[2][2] >= size[0] * 0.95 and op[2][3] >= size[1] * 0.7:
                if runs and runs[-1][0] == op[1]:
                    runs[-1][1] += 1
                else:
                    runs.append([op[1], 1])
                break
    kept = [c for c, n in runs if n >= lasting] or [c for c, _ in runs]
    return [c for i, c in enumerate(kept) if i == 0 or kept[i - 1] != c]


def bird_kinds(r: RunResult) -> tuple[str, list[int]] | None:
    """The bird's usual shape and colour over the run."""
    birds = [b for b in (r.data or {}).get("bird", []) if b]
    if not birds:
        return None
    kinds: dict[tuple, int] = {}
    for b in birds:
        kind = {"rect": "square", "ellipse": "circle", "polygon": "polygon"}.get(b[4], b[4])
        key = (kind, tuple(b[5] or (0, 0, 0)))
        kinds[key] = kinds.get(key, 0) + 1
    (kind, colour), _ = max(kinds.items(), key=lambda kv: kv[1])
    return kind, list(colour)


def land(r: RunResult) -> list[int] | None:
    size = _size(r)
    for ops in _frames(r)[:40]:
        bottom = [op for op in ops if op[0] in ("rect", "fill", "polygon") and op[1] and size
                  and op[2][2] >= 0.6 * size[0] and op[2][1] >= 0.55 * size[1]
                  and op[2][1] + op[2][3] >= 0.95 * size[1] and op[2][3] < 0.45 * size[1]]
        if bottom:
            return max(bottom, key=lambda op: op[2][2] * op[2][3])[1]
    return None


def pipes(r: RunResult) -> list[list]:
    """Tall, narrow filled rectangles that reach the top or the land: [colour, box] per frame seen."""
    size = _size(r)
    out = []
    for ops in _frames(r)[:700]:
        for op in ops:
            if size and op[0] in ("rect", "polygon", "image") and op[1] and 10 <= op[2][2] <= 0.35 * size[0] \
                    and op[2][3] >= 0.08 * size[1] and op[2][0] < size[0] and op[2][0] + op[2][2] > 0:
                out.append(op)
    return out


def texts(r: RunResult, first: int = 0, last: int | None = None) -> list[tuple[int, str, list[int]]]:
    return [(i, op[3], op[2]) for i, ops in enumerate(_frames(r)[first:last], start=first)
            for op in ops if op[0] == "text"]


def number(text: str) -> int | None:
    m = re.search(r"-?\d+", text)
    return int(m.group()) if m else None


# "Best: 4", "High Score 4", "Record - 4"
BEST = re.compile(r"\b(best|high|record)\b(\s*score)?\W*(?P<n>-?\d+)?", re.I)


def score_value(text: str) -> int | None:
    """The running score a text shows, leaving out a best score beside it ("Score: 3  Best: 5" is 3)."""
    return number(BEST.sub("", text))


def best_value(text: str) -> int | None:
    m = BEST.search(text)
    return int(m.group("n")) if m and m.group("n") else None


# -- the items -------------------------------------------------------------------------------------------

def judge(code: str, full: list[RunResult], looks: list[RunResult]) -> Scorecard:
    runnable = item_runnable(full)
    ran = [r for r in full + looks if r.data and r.data.get("screen")]
    items = [item_pygame(code, ran, runnable), item_background(ran), item_accelerate(full),
             item_bird(ran), item_land(ran), item_score(code, full), item_pipes(ran, full), item_best(full),
             item_quit(code, full), runnable]
    runs = [{"seed": r.scenario.seed, "frames": len(_frames(r)), "exit": (r.data or {}).get("exit"),
             "error": (r.data or {}).get("error"), "timed_out": r.timed_out, "took_s": round(r.seconds, 2),
             "returncode": r.returncode} for r in full + looks]
    return Scorecard(items, runs=runs)


def item_runnable(full: list[RunResult]) -> Item:
    for r in full:
        if r.timed_out:
            return Item("Runnable", 0.0, f"seed {r.scenario.seed}: still running at the {r.seconds:.0f} s limit; "
                        "its process group was killed")
        if r.data is None:
            tail = r.output_tail[-1] if r.output_tail else f"exit code {r.returncode}"
            return Item("Runnable", 0.0, f"seed {r.scenario.seed}: the game ended the harness ({tail})")
        exit_ = r.data["exit"]
        err = r.data.get("error")
        if err and exit_.get("after_key") not in ("q", "escape"):
            return Item("Runnable", 0.0, f"seed {r.scenario.seed}: {err['trace']} (line {err['line']}) at frame "
                        f"{exit_['frame']}")
        if not r.data.get("screen"):
            return Item("Runnable", 0.0, f"seed {r.scenario.seed}: opened no window ({exit_['how']} at frame "
                        f"{exit_['frame']})")
        if exit_["frame"] < 30 and not exit_.get("after_key"):
            return Item("Runnable", 0.0, f"seed {r.scenario.seed}: ended after {exit_['frame']} frames")
    frames = sum(len(_frames(r)) for r in full)
    return Item("Runnable", 1.0, f"{len(full)} scripted sessions ({frames} frames) ran without an error")


def item_pygame(code: str, ran: list[RunResult], runnable: Item) -> Item:
    if ran:
        w, h = _size(ran[0]) or (0, 0)
        return Item("Pygame", 1.0, f"opened a {w}x{h} pygame window and drew {len(_frames(ran[0]))} frames")
    return _static_pygame(code, "opened no window")


def item_background(ran: list[RunResult]) -> Item:
    per_run = [backgrounds(r) for r in ran]
    starts = [b[0] for b in per_run if b]
    if not starts:
        return Item("Background", 0.0, "no frame starts with a fill of the whole screen")
    every = [c for b in per_run for c in b]
    distinct = {tuple(c) for c in every}
    light = all(is_light(c) for c in every)
    blue_starts = sum(is_light_blue(c) for c in starts)
    blue = blue_starts * 2 >= len(starts)  # "start with a light blue": most runs do, not one by chance
    random_ = len(distinct) > 1
    seen = ", ".join(fmt(c) for c in sorted(distinct)[:6])
    if not light:
        return Item("Background", 0.0 if not blue else 0.25, f"backgrounds {seen}: not all light")
    score = 1.0 if random_ and blue else 0.75 if random_ else 0.5 if blue else 0.25
    started = ("starts light blue" if blue_starts == len(starts) else "never starts light blue" if not blue_starts
               else f"starts light blue in {blue_starts} of {len(starts)} runs")
    return Item("Background", score, f"{len(distinct)} light background(s) over {len(ran)} runs ({seen}); "
                f"{started}; {'random' if random_ else 'never changes'}")


TELEPORT = 20.0  # px in one frame: a restart or a new round moved the bird, not SPACE


def _probe(r: RunResult, frame: int) -> list[float] | None:
    """The bird's vertical speed (px/frame, + is down) from 2 frames before a press at `frame` to 8 after:
    v[1] is the last speed before the press shows, v[2] the first after it (a second press of a two-press
    probe shows at v[4]). None when the bird is missing, or jumps as when a round restarts."""
    birds = (r.data or {}).get("bird", [])
    ys = [b[1] + b[3] / 2 if b else None for b in birds]
    window = ys[frame - 3: frame + 8] if frame >= 3 else []
    if len(window) < 11 or None in window:
        return None
    if len({(b[4], tuple(b[5] or ())) for b in birds[frame - 3: frame + 8]}) > 1:
        return None  # another shape or colour: the bird died and a new round began inside the probe
    vel = [window[i + 1] - window[i] for i in range(len(window) - 1)]  # type: ignore[operator]
    return None if any(abs(v) > TELEPORT for v in vel) else vel


def item_accelerate(full: list[RunResult]) -> Item:
    """Two quick presses must add up: judged by the change of speed the presses make (not how fast the bird ends
    up rising, which depends on how fast it was falling), and by the second press speeding the bird up beyond the
    first (a game that sets the speed on each press gives the same speed twice)."""
    verdicts = []
    for r in full:
        probes = {n: f for _, f, n in (r.data or {}).get("probes", [])}
        one, two = (_probe(r, probes[n]) if n in probes else None for n in (1, 2))
        if one is None or two is None:
            continue
        lift1 = one[1] - min(one[2:])  # the change one press makes
        lift2 = two[1] - min(two[2:])  # the change two presses make
        extra = two[3] - two[4]  # how much faster upwards the second press made the bird than the first
        if lift1 < 0.5:
            verdicts.append((0.0, f"SPACE does not lift the bird (speed {one[1]:+.0f} -> {min(one[2:]):+.0f} "
                                  "px/frame)"))
        elif lift2 >= 1.2 * lift1 and extra >= 1.5:
            verdicts.append((1.0, f"one press changes the speed by {lift1:.0f} px/frame, two quick presses by "
                                  f"{lift2:.0f} (the second adds {extra:.0f})"))
        else:
            verdicts.append((0.5, f"a press lifts the bird ({lift1:.0f} px/frame) but a second quick press adds "
                                  f"{max(extra, 0):.0f} (two presses: {lift2:.0f}): each press sets the speed"))
    if not verdicts:
        return Item("Accelerate SPACE", 0.0, "no bird seen moving around the SPACE presses")
    verdicts.sort(key=lambda v: v[0])
    score, why = verdicts[len(verdicts) // 2]
    return Item("Accelerate SPACE", score, f"{why} (median of {len(verdicts)} runs)")


def item_bird(ran: list[RunResult]) -> Item:
    seen = [k for k in (bird_kinds(r) for r in ran) if k]
    if not seen:
        return Item("Bird shape", 0.0, "no bird found (a small shape near a fixed x)")
    shapes = {k for k, _ in seen}
    valid = shapes & {"square", "circle", "triangle"}
    colours = {tuple(c) for _, c in seen}
    dark = all(is_dark(c) for c in colours)
    score = (0.5 if len(valid) >= 2 else 0.25 if valid else 0.0) + \
            ((0.5 if len(colours) > 1 else 0.25) if dark else 0.0)
    return Item("Bird shape", score, f"over {len(ran)} runs: {', '.join(sorted(shapes))}; colours "
                f"{', '.join(fmt(c) for c in sorted(colours))} ({'dark' if dark else 'not all dark'})")


def item_land(ran: list[RunResult]) -> Item:
    colours = [c for c in (land(r) for r in ran) if c]
    if not colours:
        return Item("Land", 0.0, "nothing wide drawn along the bottom")
    kinds = {land_colour(c) for c in colours}
    distinct = {tuple(c) for c in colours}
    listed = ", ".join(f"{fmt(c)} ({land_colour(c) or 'other'})" for c in sorted(distinct))
    if None in kinds:
        return Item("Land", 0.25, f"land drawn, colours {listed}: not dark brown or yellow")
    return Item("Land", 1.0 if len(distinct) > 1 else 0.5,
                f"land {listed} over {len(ran)} runs; {'random' if len(distinct) > 1 else 'always the same'}")


def item_score(code: str, full: list[RunResult]) -> Item:
    placed, values = [], []
    for r in full:
        size = _size(r)
        for _, text, box in texts(r, 0, 840):
            n = score_value(text)
            if n is None or size is None:
                continue
            # right: clearly right of the middle (centred text is a pixel either side of it)
            placed.append(box[0] + box[2] / 2 > size[0] * 0.6 and box[1] + box[3] / 2 < size[1] / 4)
            values.append(n)
    if not values:
        return Item("Top right score", 0.0, "no number drawn as text while playing")
    top_right = sum(placed) > len(placed) / 2
    where = "top right" if top_right else "not in the top right"
    if max(values) > min(values):
        return Item("Top right score", 1.0 if top_right else 0.5, f"score drawn {where}, rose to {max(values)} "
                    "as the autopilot passed pipes")
    static = bool(re.search(r"score\s*(\+=\s*1|=\s*score\s*\+\s*1)", code))
    if static:
        return Item("Top right score", 0.75 if top_right else 0.25, f"score drawn {where} but never rose in play "
                    "(static reading: the code increments it)")
    return Item("Top right score", 0.5 if top_right else 0.25, f"score drawn {where}, never rose")


def item_pipes(ran: list[RunResult], full: list[RunResult]) -> Item:
    ops = [op for r in ran for op in pipes(r)]
    if not ops:
        return Item("Pipes", 0.0, "no pipes (tall narrow rectangles) drawn")
    colours = {tuple(op[1]) for op in ops}
    kinds = {pipe_colour(c) for c in colours}
    gaps_at = {round(op[2][3] / 10) for op in ops if op[2][1] <= 2}  # heights of pipes hanging from the top
    score = 0.25 + (0.25 if len(gaps_at) > 1 else 0) + (0.25 if None not in kinds else 0) \
        + (0.25 if len(colours) > 1 and None not in kinds else 0)
    listed = ", ".join(f"{fmt(c)} ({pipe_colour(c) or 'other'})" for c in sorted(colours)[:6])
    return Item("Pipes", score, f"pipes in {listed}; {len(gaps_at)} different gap heights")


def item_best(full: list[RunResult]) -> Item:
    shown: list[tuple[int, int, bool]] = []  # frame, value, inside the screen
    restarted = False
    for r in full:
        size = _size(r)
        for frame, text, box in texts(r):
            n = best_value(text)
            if n is not None and size:
                inside = box[0] >= 0 and box[1] >= 0 and box[0] + box[2] <= size[0] and box[1] + box[3] <= size[1]
                shown.append((frame, n, inside))
        ys = [b[1] for b in (r.data or {}).get("bird", [])[RESTART_FRAME + 5: 1000] if b]
        restarted = restarted or len(set(ys)) > 3
    if not shown:
        return Item("Best Score", 0.0, "no best score drawn (text with 'best' or 'high' and a number)")
    inside = all(s[2] for s in shown)
    after = [s for s in shown if s[0] > RESTART_FRAME]
    kept = restarted and bool(after) and max(s[1] for s in after) >= max(s[1] for s in shown if s[0] <= RESTART_FRAME)
    score = 0.5 + (0.25 if inside else 0) + (0.25 if kept else 0)
    return Item("Best Score", score, f"best score shown (up to {max(s[1] for s in shown)}), "
                f"{'inside' if inside else 'partly outside'} the screen; "
                f"{'kept across a restart' if kept else 'no restart with SPACE kept it' if not restarted else 'not shown after the restart'}")  # noqa: E501


def item_quit(code: str, full: list[RunResult]) -> Item:
    parts, notes = 0.0, []
    for key, const in (("q", r"K_q\b|['\"]q['\"]"), ("escape", r"K_ESCAPE|escape")):
        runs = [r for r in full if r.scenario.quit_key == key and r.data]
        reached = [r for r in runs if r.data and r.data["exit"]["frame"] >= QUIT_FRAME]
        if reached:
            quit_ = [r for r in reached if r.data and r.data["exit"]["how"] != "script_end"]
            if quit_:
                parts += 0.5
                notes.append(f"{key} ended the game")
            else:
                notes.append(f"{key} did nothing (still running 60 frames later)")
        elif re.search(const, code):
            parts += 0.25
            notes.append(f"{key}: the game ended before the key could be pressed (static reading: handled)")
        else:
            notes.append(f"{key}: the game ended before the key could be pressed; not in the code")
    return Item("Quit", parts, "; ".join(notes))
