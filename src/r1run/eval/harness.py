"""Runs INSIDE the game's process: limits, no network, pygame patched to record and to play.

    python -E harness.py GAME.py SCENARIO.json OBSERVATIONS.json

It imports nothing of r1run (the scorer starts it by path, in an empty temporary folder; the game's folder,
not the harness's, is first on sys.path, as for `python game.py`; the user's site-packages stay, where
pygame may be installed).
What it does before the game's first line runs:

- resource limits on itself (address space, CPU seconds, file size, no core dumps), inherited by anything
  the game starts;
- socket creation fails (`socket.socket` and `_socket.socket` replaced): the game has no network;
- pygame patched: the screen the game gets is an off-screen Surface subclass copied to the real (dummy)
  display at each flip, so every `fill`, `blit` (of text that `Font.render` made, or of images) and
  `pygame.draw.*` onto it is recorded with its position and colour; each flip/update ends a frame;
- time is virtual: `Clock.tick` advances it by 1000/fps and never sleeps, `get_ticks`, `time.time`,
  `set_timer` follow it, so a game plays at thousands of frames a second and still sees 60 fps;
- input is scripted: SPACE, q or Esc on chosen frames (KEYDOWN/KEYUP events and `key.get_pressed`),
  and between chosen frames an autopilot presses SPACE to keep the bird level with the next pipe gap.

At the end of the script, when the game exits or raises, the observations are written as JSON.
"""

from __future__ import annotations

import _socket
import json
import os
import random
import resource
import runpy
import socket
import sys
import time
import traceback
import weakref

import pygame
import pygame.sysfont

KEYS = {"space": (32, 44, " "), "q": (113, 20, "q"), "escape": (27, 41, "\x1b")}  # keycode, scancode, unicode
SHAPES = ("rect", "circle", "ellipse", "polygon", "triangle", "image")


class NoNetwork(PermissionError):
    pass


def limit_resources(memory_bytes: int, cpu_seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 20, 32 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def block_network() -> None:
    class Blocked(socket.socket):
        def __init__(self, *args, **kwargs):
            raise NoNetwork("network access is disabled while r1run scores a game")

    socket.socket = Blocked  # type: ignore[misc]
    _socket.socket = Blocked  # type: ignore[misc]


class Recorder:
    """Frames of what was drawn on the screen, the bird found in each, the script of key presses."""

    def __init__(self, scenario: dict, out_path: str) -> None:
        self.sc = scenario
        self.out_path = out_path
        self.frame = 0
        self.ops: list[list] = []
        self.frames: list[list] = []
        self.bird: list[list | None] = []
        self.presses: list[list] = []
        self.screen_size: list[int] | None = None
        self.vt = 0.0  # virtual milliseconds
        self.ticked = False
        self.pending: list[str] = []
        self.held: set[str] = set()
        self.released: list[str] = []
        self.polls_since_frame = 0
        self.last_press = -100
        self.after_key: str | None = None
        self.timers: dict[int, list] = {}
        self.written = False
        self.scripted = {int(f): keys for f, keys in scenario.get("presses", {}).items()}
        # Probes of "SPACE accelerates": from a frame on, once the bird is low and falling, 1 or 2 presses.
        self.probes = [list(p) for p in scenario.get("probes", [])]
        self.probed: list[list[int]] = []
        self._start_frame()

    # -- frames and input -------------------------------------------------------------------------------

    def _start_frame(self) -> None:
        keys = list(self.scripted.get(self.frame, []))
        if not keys:
            keys = self._probe_keys()
        if not keys and self._autopilot_on() and self._autopilot_wants_flap():
            keys = ["space"]
        self.released = sorted(self.held)
        self.held = set(keys)
        self.pending = keys
        for k in keys:
            self.presses.append([self.frame, k])
            if k == "space":
                self.last_press = self.frame
            if k in ("q", "escape"):
                self.after_key = k

    def end_frame(self) -> None:
        if not self.ticked:
            self.vt += 1000 / 60
        self.ticked = False
        self.frames.append(self.ops)
        self.bird.append(self._find_bird(self.ops))
        self.ops = []
        self.frame += 1
        self.polls_since_frame = 0
        if self.frame >= self.sc["end_frame"]:
            self.finish({"how": "script_end", "frame": self.frame})
        self._start_frame()

    def poll_input(self) -> None:
        """A loop that waits for a key without drawing still moves the script on."""
        self.polls_since_frame += 1
        if self.polls_since_frame > 5:
            self.end_frame()

    def _probe_keys(self) -> list[str]:
        for start, n in self.probes:
            if self.frame >= start and not any(p[0] == start for p in self.probed):
                if self._low_and_falling() or self.frame >= start + 60:
                    self.probed.append([start, self.frame, n])
                    if n == 2:
                        self.scripted.setdefault(self.frame + 2, []).append("space")
                    return ["space"]
        return []

    def _low_and_falling(self) -> bool:
        if len(self.bird) < 2 or self.bird[-1] is None or self.bird[-2] is None or self.screen_size is None:
            return False
        return self.bird[-1][1] >= 0.45 * self.screen_size[1] and self.bird[-1][1] >= self.bird[-2][1]

    def _autopilot_on(self) -> bool:
        waiting = any(self.frame >= start and not any(p[0] == start for p in self.probed) for start, _ in self.probes)
        settling = any(self.frame < p[1] + 14 for p in self.probed)
        return not waiting and not settling and any(a <= self.frame < b for a, b in self.sc.get("autopilot", []))

    def _autopilot_wants_flap(self) -> bool:
        if self.screen_size is None or self.frame - self.last_press < 4:
            return False
        recent = self.bird[-12:]
        if len(recent) == 12 and (None in recent or len({b[1] for b in recent if b}) == 1):
            # no bird, or a bird that does not move: a start or game-over screen; SPACE now and then
            return self.frame - self.last_press >= 15
        if self.bird[-1] is None:
            return False
        x, y, w, h = self.bird[-1][:4]
        cy = y + h / 2
        prev = self.bird[-2] if len(self.bird) > 1 and self.bird[-2] is not None else None
        vy = cy - (prev[1] + prev[3] / 2) if prev else 0
        if vy < 0:  # rising: wait until it falls (flaps may add up)
            return False
        target = self._gap_target(x, w)
        return cy > target

    def _gap_target(self, bx: float, bw: float) -> float:
        sw, sh = self.screen_size or (1, 1)
        last = self.frames[-1] if self.frames else []
        pipes = [op[2] for op in last if op[0] in ("rect", "polygon", "image") and op[2][3] >= 0.1 * sh
                 and 8 <= op[2][2] <= 0.35 * sw and op[2][0] + op[2][2] >= bx - 5]
        if not pipes:
            return sh * 0.45
        nx = min(p[0] for p in pipes)
        near = [p for p in pipes if p[0] <= nx + 20]
        tops = [p[1] + p[3] for p in near if p[1] <= 2]
        bottoms = [p[1] for p in near if p[1] > 2]
        if not tops or not bottoms:
            return sh * 0.45
        top, bottom = max(tops), min(bottoms)
        return top + (bottom - top) * 0.6

    def _find_bird(self, ops: list[list]) -> list | None:
        """The bird: the biggest small shape drawn near where the bird was (its x barely changes)."""
        if self.screen_size is None:
            return None
        sw, sh = self.screen_size
        cands = [op for op in ops if op[0] in SHAPES and 5 <= op[2][2] <= 0.2 * sw and 5 <= op[2][3] <= 0.2 * sh
                 and op[2][0] + op[2][2] / 2 < 0.6 * sw]
        prev = next((b for b in reversed(self.bird[-30:]) if b is not None), None)
        if prev is not None:
            px = prev[0] + prev[2] / 2
            cands = [op for op in cands if abs(op[2][0] + op[2][2] / 2 - px) <= 30]
            if not cands:
                return None
            # the same size as before: a pipe's end passing by is no bird
            op = min(cands, key=lambda o: (abs(o[2][2] - prev[2]) + abs(o[2][3] - prev[3]), -o[2][2] * o[2][3]))
        elif cands:
            op = max(cands, key=lambda o: o[2][2] * o[2][3])
        else:
            return None
        return [*op[2], op[0], op[1], op[3]]

    # -- output -----------------------------------------------------------------------------------------

    def finish(self, exit_info: dict) -> None:
        """Write the observations and end the process: the game's own `except:` must not catch the end."""
        self.write(exit_info)
        os._exit(0)

    def write(self, exit_info: dict, error: dict | None = None) -> None:
        if self.written:
            return
        self.written = True
        if self.ops:
            self.frames.append(self.ops)
            self.bird.append(self._find_bird(self.ops))
        exit_info.setdefault("after_key", self.after_key)
        data = {"seed": self.sc["seed"], "screen": self.screen_size, "frames": self.frames, "bird": self.bird,
                "presses": self.presses, "probes": self.probed, "exit": exit_info, "error": error}
        tmp = self.out_path + ".part"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(tmp, self.out_path)


def rgb(color, surface=None) -> list[int] | None:
    try:
        if isinstance(color, int) and surface is not None:
            c = surface.unmap_rgb(color)
        else:
            c = pygame.Color(color)
        return [c.r, c.g, c.b]
    except (ValueError, TypeError):
        return None


def patch_pygame(rec: Recorder, real_time) -> None:
    texts: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    state: dict = {"screen": None, "display": None}
    BaseSurface = pygame.Surface

    def bbox(r) -> list[int]:
        r = pygame.Rect(r)
        return [r.x, r.y, r.w, r.h]

    def coverage_shape(src) -> str:
        """Square, circle or triangle from how much of its box an image fills (1, pi/4, 1/2)."""
        w, h = src.get_size()
        if w * h == 0 or w * h > 40000:
            return "image"
        filled = pygame.mask.from_surface(src).count() / (w * h)
        return "rect" if filled > 0.9 else "circle" if filled > 0.65 else "triangle" if filled > 0.3 else "image"

    class RecSurface(BaseSurface):  # type: ignore[misc, valid-type]
        def fill(self, color, rect=None, special_flags=0):
            res = super().fill(color, rect, special_flags)
            if self is state["screen"]:
                rec.ops.append(["fill", rgb(color, self), bbox(rect) if rect is not None else [0, 0, *self.get_size()],
                                1])
            return res

        def blit(self, source, dest, area=None, special_flags=0):
            res = super().blit(source, dest, area, special_flags)
            if self is state["screen"]:
                try:
                    w, h = source.get_size()
                    pos = dest[:2] if not isinstance(dest, pygame.Rect) else dest.topleft
                    box = [int(pos[0]), int(pos[1]), w, h]
                except (TypeError, ValueError, IndexError):
                    box = bbox(res)
                text = texts.get(source)
                if text is not None:
                    rec.ops.append(["text", text[1], box, text[0]])
                else:
                    center = source.get_at((w // 2, h // 2)) if w and h else None
                    rec.ops.append([coverage_shape(source) if w * h < 40000 else "image",
                                    [center.r, center.g, center.b] if center is not None else None, box, 1])
            return res

        def blits(self, blit_sequence, doreturn=1):
            out = [self.blit(*item) for item in blit_sequence]
            return out if doreturn else None

        def fblits(self, blit_sequence, special_flags=0):
            for item in blit_sequence:
                self.blit(item[0], item[1], None, special_flags)

    pygame.Surface = RecSurface  # type: ignore[misc]
    pygame.surface.Surface = RecSurface  # type: ignore[misc]

    def record_draw(name, fn):
        def wrapper(surface, color, *args, **kwargs):
            res = fn(surface, color, *args, **kwargs)
            if surface is state["screen"]:
                width = kwargs.get("width", 0)
                extra = 1
                if name == "rect":
                    box = bbox(args[0] if args else kwargs["rect"])
                    width = args[1] if len(args) > 1 else width
                elif name == "circle":
                    center = args[0] if args else kwargs["center"]
                    radius = args[1] if len(args) > 1 else kwargs["radius"]
                    width = args[2] if len(args) > 2 else width
                    box = [int(center[0] - radius), int(center[1] - radius), int(2 * radius), int(2 * radius)]
                elif name == "polygon":
                    pts = list(args[0] if args else kwargs["points"])
                    width = args[1] if len(args) > 1 else width
                    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
                    box = [int(min(xs)), int(min(ys)), int(max(xs) - min(xs)), int(max(ys) - min(ys))]
                    extra = len(pts)
                elif name == "ellipse":
                    box = bbox(args[0] if args else kwargs["rect"])
                    width = args[1] if len(args) > 1 else width
                else:
                    box = bbox(res)
                kind = name if name in ("rect", "circle", "polygon", "ellipse") and not width else "line"
                if kind == "polygon" and extra == 3:
                    kind = "triangle"
                rec.ops.append([kind, rgb(color, surface), box, extra])
            return res
        return wrapper

    for name in ("rect", "circle", "polygon", "ellipse", "line", "lines", "aaline", "aalines", "arc"):
        setattr(pygame.draw, name, record_draw(name, getattr(pygame.draw, name)))

    RealFont = pygame.font.Font

    class RecFont(RealFont):  # type: ignore[misc, valid-type]
        def render(self, text, antialias, color, background=None, *args):
            surf = super().render(text, antialias, color, background, *args)
            texts[surf] = (str(text), rgb(color))
            return surf

    pygame.font.Font = RecFont  # type: ignore[misc]
    pygame.sysfont.Font = RecFont  # type: ignore[misc]

    real_set_mode, real_flip, real_update = pygame.display.set_mode, pygame.display.flip, pygame.display.update

    def set_mode(size=(0, 0), flags=0, *args, **kwargs):
        display = real_set_mode(size, flags, *args, **kwargs)
        screen = RecSurface(display.get_size())
        state["display"], state["screen"] = display, screen
        rec.screen_size = list(display.get_size())
        return screen

    def present() -> None:
        if state["screen"] is not None:
            BaseSurface.blit(state["display"], state["screen"], (0, 0))
        rec.end_frame()

    def flip():
        real_flip()
        present()

    def update(*args, **kwargs):
        real_update()
        present()

    pygame.display.set_mode = set_mode
    pygame.display.get_surface = lambda: state["screen"]
    pygame.display.flip = flip
    pygame.display.update = update

    Event, KEYDOWN, KEYUP = pygame.event.Event, pygame.KEYDOWN, pygame.KEYUP
    real_get, real_poll = pygame.event.get, pygame.event.poll

    def injected() -> list:
        events = [Event(KEYUP, key=KEYS[k][0], scancode=KEYS[k][1], mod=0, unicode="") for k in rec.released]
        events += [Event(KEYDOWN, key=KEYS[k][0], scancode=KEYS[k][1], mod=0, unicode=KEYS[k][2])
                   for k in rec.pending]
        rec.released, rec.pending = [], []
        for etype, timer in list(rec.timers.items()):
            event, every, due, loops = timer
            while due <= rec.vt and loops != 0:
                events.append(event if isinstance(event, Event) else Event(etype))
                due += every
                loops -= 1
            timer[2], timer[3] = due, loops
        return events

    def get(eventtype=None, pump=True, exclude=None):
        rec.poll_input()
        real = list(real_get(eventtype, pump, exclude) if eventtype is not None or exclude is not None
                    else real_get(pump=pump))
        ours = injected()
        if eventtype is not None:
            wanted = set(eventtype) if isinstance(eventtype, (list, tuple)) else {eventtype}
            ours = [e for e in ours if e.type in wanted]
        return real + ours

    queue: list = []

    def poll():
        rec.poll_input()
        queue.extend(injected())
        return queue.pop(0) if queue else real_poll()

    def wait(timeout=0):
        rec.end_frame()
        queue.extend(injected())
        return queue.pop(0) if queue else Event(pygame.NOEVENT)

    class Pressed(tuple):
        def __getitem__(self, key):
            return any(KEYS[k][0] == key for k in rec.held)

    def get_pressed():
        rec.poll_input()
        return Pressed([False] * 512)

    pygame.event.get, pygame.event.poll, pygame.event.wait = get, poll, wait
    pygame.key.get_pressed = get_pressed

    class Clock:
        def __init__(self):
            self.last = 1000 / 60

        def tick(self, framerate=0):
            self.last = 1000 / framerate if framerate else 1000 / 60
            rec.vt += self.last
            rec.ticked = True
            return int(self.last)

        tick_busy_loop = tick

        def get_time(self):
            return int(self.last)

        get_rawtime = get_time

        def get_fps(self):
            return 1000 / self.last

    def delay(ms):
        rec.vt += ms
        return int(ms)

    def set_timer(event, millis, loops=0):
        etype = event.type if isinstance(event, Event) else int(event)
        if millis <= 0:
            rec.timers.pop(etype, None)
        else:
            rec.timers[etype] = [event, millis, rec.vt + millis, loops or -1]

    pygame.time.Clock = Clock  # type: ignore[misc, assignment]
    pygame.time.get_ticks = lambda: int(rec.vt)
    pygame.time.delay = pygame.time.wait = delay
    pygame.time.set_timer = set_timer
    start = real_time()
    time.time = lambda: start + rec.vt / 1000
    time.monotonic = time.perf_counter = lambda: rec.vt / 1000


def error_info(exc: BaseException, game: str) -> dict:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == game]
    line = frames[-1].lineno if frames else getattr(exc, "lineno", None)
    return {"type": type(exc).__name__, "message": str(exc)[:300], "line": line,
            "trace": traceback.format_exception_only(type(exc), exc)[-1].strip()[:300]}


def main(argv: list[str]) -> int:
    game, scenario_path, out_path = argv[1:4]
    with open(scenario_path, encoding="utf-8") as f:
        scenario = json.load(f)
    limit_resources(scenario["memory_bytes"], scenario["cpu_seconds"])
    block_network()
    random.seed(scenario["seed"])
    rec = Recorder(scenario, out_path)
    patch_pygame(rec, time.time)
    real_exit = os._exit

    def guarded_exit(code):
        rec.write({"how": "os_exit", "frame": rec.frame, "code": code})
        real_exit(code)

    os._exit = guarded_exit
    sys.argv = [game]
    sys.path[0] = os.path.dirname(os.path.abspath(game))
    try:
        runpy.run_path(game, run_name="__main__")
    except SystemExit as exc:
        rec.write({"how": "exit", "frame": rec.frame, "code": exc.code if isinstance(exc.code, int) else 0})
    except BaseException as exc:  # the game's own error, whatever it is: the observation that matters
        rec.write({"how": "exception", "frame": rec.frame}, error_info(exc, game))
    else:
        rec.write({"how": "returned", "frame": rec.frame})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
