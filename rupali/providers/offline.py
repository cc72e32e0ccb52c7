"""The offline sketch generator: procedural artwork drawn from the words of a prompt. Not AI.

It is the embedded default, so the studio works without an API key, a network connection or model weights. It
reads the prompt for colour words (``red``, ``golden``, ``teal`` …), scene words (``sunset``, ``night``,
``ocean``, ``forest``, ``mountain``, ``city``, ``flower``, ``portrait``) and mood words (``dark``, ``pastel`` …),
and paints a gradient sky, a few layered shapes, a soft glow and a little grain. A colour word right before a scene
word colours that element ("golden mountain"); other colour words lead the palette. Words of the negative prompt
steer away: named colours leave the palette, named scenes are not drawn.

Everything is a pure function of (prompt, negative prompt, size, steps, guidance, seed): the same inputs give
byte-identical PNGs. Only Pillow's C paths are used, and big shapes are drawn at a reduced size and scaled up, so a
1024 x 1024 image takes a few tens of milliseconds on one core.
"""

from __future__ import annotations

import asyncio
import colorsys
import hashlib
import io
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from rupali.providers.base import (
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    InvalidRequest,
    ModelInfo,
    ProgressCallback,
    Reachability,
    SizeRule,
)

MODEL_ID = "sketch-v1"
SIZE_RULE = SizeRule(minimum=64, maximum=2048, multiple=8)
MAX_IMAGES = 4
MODEL = ModelInfo(
    id=MODEL_ID,
    label="Offline sketch (not AI)",
    version="1",
    sizes=((1024, 1024), (768, 1024), (1024, 768), (576, 1024), (1024, 576), (512, 512)),
    size_rule=SIZE_RULE,
    max_images=MAX_IMAGES,
    img2img=True,
    negative_prompt=True,
    progress=True,
    is_ai=False,
    default_steps=20,
    default_guidance=7.0,
)

_WORK_SIDE = 512  # shapes are drawn with at most this many pixels per side, then scaled up: soft edges, fast
_PNG_COMPRESS_LEVEL = 1  # grain compresses poorly: level 6 takes ~3x the time (1024², ~45 → 120 ms) for -25%
_SOURCE_FORMATS = ["PNG", "JPEG", "WEBP"]

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "red": (205, 40, 45), "crimson": (170, 20, 50), "scarlet": (230, 45, 30), "maroon": (115, 20, 35),
    "ruby": (180, 20, 60), "orange": (240, 130, 30), "amber": (245, 170, 30), "yellow": (245, 215, 60),
    "gold": (225, 175, 55), "golden": (225, 175, 55), "green": (60, 160, 80), "emerald": (20, 150, 100),
    "lime": (150, 210, 60), "olive": (120, 130, 50), "teal": (20, 130, 130), "turquoise": (50, 200, 190),
    "cyan": (40, 190, 220), "aqua": (60, 200, 210), "blue": (40, 90, 210), "azure": (60, 140, 230),
    "navy": (20, 35, 100), "cobalt": (0, 70, 170), "sapphire": (25, 55, 160), "indigo": (60, 40, 140),
    "purple": (120, 50, 170), "violet": (140, 80, 200), "lavender": (180, 160, 225), "magenta": (210, 40, 160),
    "pink": (240, 130, 170), "rose": (225, 90, 120), "brown": (120, 75, 40), "copper": (190, 100, 50),
    "bronze": (170, 120, 60), "beige": (225, 205, 170), "white": (240, 240, 235), "silver": (190, 195, 205),
    "grey": (128, 128, 132), "gray": (128, 128, 132), "black": (20, 20, 24),
}

# Scene words, and the colours each scene brings when the prompt names none for it.
SCENES: dict[str, frozenset[str]] = {
    "sunset": frozenset({"sunset", "sunrise", "dusk", "dawn", "evening", "twilight", "sundown"}),
    "night": frozenset({"night", "space", "star", "starry", "galaxy", "cosmos", "midnight", "moon", "nebula",
                        "starlit", "moonlit", "universe"}),
    "ocean": frozenset({"ocean", "sea", "water", "wave", "lake", "river", "beach", "coast", "shore", "bay",
                        "seascape"}),
    "forest": frozenset({"forest", "tree", "woods", "woodland", "jungle", "pine", "grove", "wood"}),
    "mountain": frozenset({"mountain", "hill", "peak", "alps", "ridge", "volcano", "cliff", "valley"}),
    "city": frozenset({"city", "skyline", "town", "building", "street", "urban", "downtown", "metropolis",
                       "tower", "skyscraper", "cityscape"}),
    "flower": frozenset({"flower", "blossom", "bloom", "petal", "garden", "tulip", "daisy", "lotus", "sunflower",
                         "orchid", "lily", "poppy", "rose"}),
    "portrait": frozenset({"portrait", "face", "woman", "man", "person", "girl", "boy", "selfie", "head", "lady",
                           "child", "people"}),
}
_SCENE_OF = {word: scene for scene, words in SCENES.items() for word in words}
_SCENE_COLOURS: dict[str, tuple[RGB, ...]] = {
    "sunset": ((240, 120, 40), (200, 60, 110), (250, 190, 80), (70, 40, 110)),
    "night": ((22, 30, 70), (60, 50, 120), (230, 225, 180)),
    "ocean": ((30, 90, 175), (45, 140, 205), (18, 48, 112)),
    "forest": ((40, 110, 60), (22, 70, 45), (120, 160, 80)),
    "mountain": ((90, 100, 140), (150, 160, 190), (235, 235, 245)),
    "city": ((60, 60, 90), (240, 200, 110), (110, 90, 140)),
    "flower": ((230, 100, 150), (250, 200, 70), (90, 160, 80)),
    "portrait": ((200, 150, 170), (90, 60, 50)),
}
_SKIN_TONES: tuple[RGB, ...] = ((241, 200, 170), (225, 180, 150), (198, 145, 110), (160, 110, 80), (110, 75, 55))
_HAIR_COLOURS: tuple[RGB, ...] = ((60, 40, 32), (35, 28, 26), (120, 60, 35), (170, 130, 80), (150, 150, 155))
_DARK_WORDS = frozenset({"dark", "gloomy", "moody", "noir", "shadow", "shadows", "sombre", "somber", "gothic"})
_BRIGHT_WORDS = frozenset({"bright", "sunny", "pastel", "light", "day", "daylight", "airy", "soft", "morning"})
_VIVID_WORDS = frozenset({"vibrant", "neon", "vivid", "colorful", "colourful", "saturated", "psychedelic"})
_LANDSCAPE = frozenset({"ocean", "forest", "mountain", "city"})
_EXCLUSION_DEGREES = 25.0  # a colour within this hue distance of a colour named in the negative prompt is moved


# --- reading the prompt --------------------------------------------------------------------------------------------

def _words(text: str) -> list[str]:
    """Lower-case words, plurals folded onto the vocabulary ("waves" → "wave", "trees" → "tree")."""
    known = COLOURS.keys() | _SCENE_OF.keys()
    words = []
    for word in re.findall(r"[a-z]+", text.lower()):
        for candidate in (word, word[:-1] if word.endswith("s") else "", word[:-2] if word.endswith("es") else ""):
            if candidate in known:
                word = candidate
                break
        words.append(word)
    return words


def _stable_int(*parts: object) -> int:
    """A 64-bit number from text: hashlib, because ``hash()`` of a str changes from one process to the next."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _rng(seed: int, layer: str) -> random.Random:
    """One independent stream per layer, so a setting that changes one layer leaves the others' composition."""
    return random.Random(_stable_int(seed, layer))  # noqa: S311 - artwork, not security


def _hsv(hue: float, saturation: float, value: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0.0), 1.0), min(max(value, 0.0), 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


def _scale(colour: RGB, factor: float) -> RGB:
    return (min(255, round(colour[0] * factor)), min(255, round(colour[1] * factor)),
            min(255, round(colour[2] * factor)))


def _alpha(colour: RGB, alpha: int) -> tuple[int, int, int, int]:
    return colour[0], colour[1], colour[2], alpha


def _hue_distance(a: float, b: float) -> float:
    d = abs(a - b) % 360.0
    return min(d, 360.0 - d)


@dataclass(frozen=True)
class _Steer:
    """What the negative prompt rules out: hues (degrees) and achromatic tones ("black", "white", "grey").

    Named colours are applied twice: to every colour the painting picks (so a palette never holds them) and, as a
    lookup table on the hue channel, to the finished painting (so a blend of two allowed colours cannot bring an
    excluded one back, as purple over orange would bring back red). Moving a hue to the nearest edge of its window
    is idempotent, so applying it twice changes nothing that is already allowed.
    """

    hues: tuple[float, ...] = ()
    tones: frozenset[str] = frozenset()

    def hue(self, hue: float) -> float | None:
        """``hue`` (degrees) moved just outside every excluded window; None when no hue nearby is allowed."""
        for _ in range(len(self.hues) + 1):  # moving off one excluded hue may land on another
            near = [centre for centre in self.hues if _hue_distance(hue, centre) < _EXCLUSION_DEGREES]
            if not near:
                return hue
            centre = near[0]
            side = 1.0 if (hue - centre) % 360.0 < 180.0 else -1.0  # keep moving the way it already leans
            hue = (centre + side * (_EXCLUSION_DEGREES + 3.0)) % 360.0
        return None

    def __call__(self, colour: RGB) -> RGB:
        if not self.hues and not self.tones:
            return colour
        h, s, v = colorsys.rgb_to_hsv(*(channel / 255 for channel in colour))
        if "black" in self.tones and v < 0.3:
            v = 0.3
        if "white" in self.tones and v > 0.78 and s < 0.25:
            s = 0.35
        if "grey" in self.tones and s < 0.25:
            s = 0.45
        moved = self.hue(h * 360.0)
        if moved is None:
            s = 0.0  # every nearby hue is ruled out: a grey is the honest answer
        else:
            h = moved / 360.0
        return _hsv(h, s, v)

    def apply(self, image: Image.Image) -> Image.Image:
        """The painting with excluded hues moved out, pixel by pixel (Pillow's 8-bit HSV, a 256-entry table)."""
        if not self.hues:
            return image
        lut = []
        for level in range(256):  # Pillow's hue runs 0…255 for 0…360 degrees
            moved = self.hue(level * 360.0 / 255)
            lut.append(level if moved is None else min(255, round(moved * 255 / 360)))
        h, s, v = image.convert("HSV").split()
        return Image.merge("HSV", (h.point(lut), s, v)).convert("RGB")


@dataclass
class _Plan:
    """What to paint, read from the prompt: scenes, colours by role, mood."""

    scenes: set[str]
    lead: list[RGB]  # colour words not bound to a scene, in prompt order
    bound: dict[str, RGB]  # scene → the colour word just before it ("golden mountain")
    accents: list[RGB]  # hash-derived colours, different for every prompt
    steer: _Steer
    mood: float = 0.0  # -1 dark … +1 bright
    vivid: bool = False

    def colour(self, scene: str, index: int = 0) -> RGB:
        """The colour of a scene element: the colour word bound to it, else the scene's own colours."""
        if index == 0 and scene in self.bound:
            return self.bound[scene]
        defaults = _SCENE_COLOURS[scene]
        return self.steer(defaults[index % len(defaults)])


def _plan(prompt: str, negative: str, seed: int) -> _Plan:
    words, banned = _words(prompt), set(_words(negative))
    steer = _Steer(
        hues=tuple(sorted({colorsys.rgb_to_hsv(*(c / 255 for c in COLOURS[w]))[0] * 360.0
                           for w in banned if w in COLOURS and w not in {"white", "black", "grey", "gray", "silver"}})),
        tones=frozenset({"grey" if w in {"gray", "silver"} else w for w in banned
                         if w in {"white", "black", "grey", "gray", "silver"}}),
    )
    excluded = {_SCENE_OF[w] for w in banned if w in _SCENE_OF}  # "no trees" leaves out the forest
    scenes: set[str] = set()
    lead: list[RGB] = []
    bound: dict[str, RGB] = {}
    for position, word in enumerate(words):
        # A colour followed within two words by a scene word colours that scene ("a golden snowy mountain").
        target = next((_SCENE_OF[w] for w in words[position + 1:position + 3]
                       if w in _SCENE_OF and _SCENE_OF[w] not in excluded), None)
        if word in _SCENE_OF and (word not in COLOURS or target is None):
            scenes.add(_SCENE_OF[word])  # "rose" is a flower, unless it colours what follows ("rose garden")
        elif word in COLOURS and word not in banned:
            colour = steer(COLOURS[word])
            if target is not None and target not in bound:
                bound[target] = colour
            elif colour not in lead:
                lead.append(colour)
    scenes -= excluded
    mood = (sum(w in _BRIGHT_WORDS for w in words) - sum(w in _DARK_WORDS for w in words)
            + sum(w in _DARK_WORDS for w in banned) - sum(w in _BRIGHT_WORDS for w in banned))
    # A palette only the prompt decides (so prompts differ), nudged a little by the seed (so seeds differ too).
    base_hue = (_stable_int(" ".join(words)) % 3600) / 3600 + (_stable_int(seed, "hue") % 100 - 50) / 1000
    harmony = (0.0, 0.08, 0.5, -0.08, 0.42)[: 3 + _stable_int(" ".join(words), "n") % 3]
    accents = [steer(_hsv(base_hue + offset, 0.45 + 0.1 * i, 0.55 + 0.08 * i)) for i, offset in enumerate(harmony)]
    return _Plan(scenes=scenes, lead=lead, bound=bound, accents=accents, steer=steer,
                 mood=max(-1.0, min(1.0, mood / 2)), vivid=any(w in _VIVID_WORDS for w in words))


# --- painting ------------------------------------------------------------------------------------------------------

class _Canvas:
    """The reduced-size painting: the picture, a light layer that becomes the glow, and helpers in 0…1 units."""

    def __init__(self, width: int, height: int, steer: _Steer) -> None:
        self.w, self.h = width, height
        self.steer = steer
        self.image = Image.new("RGB", (width, height))
        self.lights = Image.new("RGB", (width, height))
        self.draw = ImageDraw.Draw(self.image, "RGBA")  # RGBA fills blend onto the RGB picture
        self.glow = ImageDraw.Draw(self.lights, "RGBA")

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return x * self.w, y * self.h

    def box(self, cx: float, cy: float, rx: float, ry: float | None = None) -> tuple[float, float, float, float]:
        """A bounding box around (cx, cy) in 0…1 units; radii relative to the shorter side keep circles round."""
        side = min(self.w, self.h)
        rx_px, ry_px = rx * side, (rx if ry is None else ry) * side
        return cx * self.w - rx_px, cy * self.h - ry_px, cx * self.w + rx_px, cy * self.h + ry_px

    def bloom(self) -> None:
        """Screen the blurred light layer onto the picture and start a fresh one.

        Called once after the sky, so whatever stands in front of the sun hides its glow too, and once at the end.
        The blur runs at a quarter of the size: its cost grows with the radius, and a glow has no detail to lose.
        """
        small = (max(1, self.w // 4), max(1, self.h // 4))
        blurred = self.lights.resize(small, Image.Resampling.BILINEAR).filter(
            ImageFilter.GaussianBlur(max(small) / 28))
        self.image = ImageChops.screen(self.image, blurred.resize((self.w, self.h), Image.Resampling.BILINEAR))
        self.lights = Image.new("RGB", (self.w, self.h))
        self.draw = ImageDraw.Draw(self.image, "RGBA")
        self.glow = ImageDraw.Draw(self.lights, "RGBA")

    def gradient(self, stops: Sequence[RGB], top: float = 0.0, bottom: float = 1.0) -> None:
        """A vertical gradient through ``stops`` between two heights (a 1-pixel column, stretched in C)."""
        y0, y1 = round(top * self.h), round(bottom * self.h)
        rows = max(1, y1 - y0)
        column = Image.new("RGB", (1, rows))
        segments = len(stops) - 1
        # Every row is steered, not just the stops: purple to orange passes through red on the way.
        column.putdata([self.steer(_interpolate(stops, segments, row / max(1, rows - 1))) for row in range(rows)])
        self.image.paste(column.resize((self.w, rows), Image.Resampling.NEAREST), (0, y0))


def _interpolate(stops: Sequence[RGB], segments: int, t: float) -> RGB:
    if segments == 0:
        return stops[0]
    position = min(t * segments, segments - 1e-9)
    index = int(position)
    # smoothstep between stops: no visible bands where the slope changes
    local = position - index
    return _mix(stops[index], stops[index + 1], local * local * (3 - 2 * local))


def _sky(canvas: _Canvas, plan: _Plan, rng: random.Random, horizon: float) -> tuple[RGB, float, float]:
    """Paint the sky; return the colour near the horizon and where a sun or moon sits (x, y)."""
    night, sunset = "night" in plan.scenes, "sunset" in plan.scenes
    steer = plan.steer
    if plan.lead:
        main = plan.lead[0]
    elif sunset:
        main = plan.colour("sunset")
    elif night:
        main = plan.bound.get("night", plan.colour("night", 1))
    elif plan.scenes & {"ocean", "mountain"}:
        main = steer((95, 150, 215))  # a day sky
    elif "forest" in plan.scenes:
        main = steer((150, 185, 160))  # misty green air
    elif "city" in plan.scenes:
        main = steer((110, 90, 150))  # dusk over a city
    else:
        main = plan.accents[0]
    second = plan.lead[1] if len(plan.lead) > 1 else plan.accents[1]
    if night:
        stops = [_scale(main, 0.12), _scale(main, 0.3), _mix(_scale(main, 0.55), second, 0.2)]
    elif sunset:
        stops = [steer(_mix((50, 30, 90), main, 0.25)), steer(_mix(main, (200, 60, 110), 0.3)), main,
                 steer(_mix(main, (255, 215, 120), 0.55))]
    else:
        stops = [_scale(main, 0.55), main, _mix(main, second, 0.3), _mix(main, (255, 250, 240), 0.45)]
    if plan.mood > 0:
        stops = [_mix(stop, (250, 248, 240), 0.3 * plan.mood) for stop in stops]
    elif plan.mood < 0:
        stops = [_scale(stop, 1 + 0.45 * plan.mood) for stop in stops]
    canvas.gradient(stops, 0.0, horizon if plan.scenes & _LANDSCAPE else 1.0)
    if plan.scenes & _LANDSCAPE:
        canvas.gradient([stops[-1], _scale(stops[-1], 0.7)], horizon, 1.0)  # ground, under whatever stands on it
    sun_x = rng.uniform(0.25, 0.75)
    if horizon < 1.0:
        sun_y = horizon - rng.uniform(0.08, 0.25) * horizon
    else:  # no landscape: a setting sun sits low, any other light high in the sky
        sun_y = rng.uniform(0.5, 0.7) if sunset else rng.uniform(0.12, 0.4)
    if sunset or night or ("portrait" not in plan.scenes and rng.random() < 0.5):  # no sun stuck behind a head
        colour = steer((255, 236, 200)) if night else steer(_mix(main, (255, 235, 160), 0.7))
        radius = rng.uniform(0.05, 0.09) if not night else rng.uniform(0.035, 0.06)
        halo = radius * (4.5 if sunset else 3.0)
        canvas.glow.ellipse(canvas.box(sun_x, sun_y, halo), fill=_scale(colour, 0.35))
        canvas.glow.ellipse(canvas.box(sun_x, sun_y, radius * 1.4), fill=_scale(colour, 0.8))
        canvas.draw.ellipse(canvas.box(sun_x, sun_y, radius), fill=_alpha(colour, 235))
    return stops[-1], sun_x, sun_y


def _stars(canvas: _Canvas, plan: _Plan, rng: random.Random, horizon: float, detail: float) -> None:
    tint = plan.steer((255, 250, 235))
    for _ in range(round(140 * detail)):
        x, y = rng.random(), rng.random() ** 1.4 * horizon  # denser high up, where the sky is darkest
        size = rng.choice((0.5, 0.7, 0.7, 1.0, 1.6))
        brightness = rng.uniform(0.45, 1.0)
        px, py = canvas.xy(x, y)
        canvas.draw.ellipse((px - size, py - size, px + size, py + size), fill=_alpha(tint, round(255 * brightness)))
        if size > 1.2:
            canvas.glow.ellipse((px - 4 * size, py - 4 * size, px + 4 * size, py + 4 * size),
                                fill=_scale(tint, 0.5 * brightness))


def _ridge(rng: random.Random, points: int, roughness: float) -> list[float]:
    """A 1-D midpoint-displacement line in -1…1: natural-looking ridges from a handful of random numbers."""
    size = 1
    while size < points - 1:
        size *= 2
    line = [0.0] * (size + 1)
    line[0], line[size] = rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5)
    step, amplitude = size, 1.0
    while step > 1:
        half = step // 2
        for start in range(0, size, step):
            line[start + half] = (line[start] + line[start + step]) / 2 + rng.uniform(-amplitude, amplitude)
        step, amplitude = half, amplitude * roughness
    peak = max(abs(value) for value in line) or 1.0
    return [value / peak for value in line[:points]]


def _mountains(canvas: _Canvas, plan: _Plan, rng: random.Random, horizon: float, haze: RGB, detail: float) -> None:
    rock = plan.colour("mountain")
    if "night" in plan.scenes and "mountain" not in plan.bound:
        rock = _scale(rock, 0.45)  # moonlit rock, not daylight slate
    snow = plan.steer((240, 242, 250))
    layers = 3 if detail < 1.2 else 4
    for layer in range(layers):
        depth = layer / max(1, layers - 1)  # 0 far … 1 near
        colour = _mix(_mix(rock, haze, 0.6 * (1 - depth)), (10, 12, 20), 0.35 * depth)
        base = horizon + 0.02 * depth
        height = rng.uniform(0.18, 0.32) * (1.1 - 0.3 * depth)
        peaks = _ridge(rng, 33, 0.55 - 0.1 * depth)
        shape = [canvas.xy(i / 32, base - height * (0.55 + 0.45 * value)) for i, value in enumerate(peaks)]
        canvas.draw.polygon([*shape, canvas.xy(1, 1), canvas.xy(0, 1)], fill=_alpha(colour, 255))
        if layer == 0 and not plan.steer.tones & {"white"}:
            # snow on the far range: the same outline, lifted, clipped to the upper part of the peaks
            top = min(point[1] for point in shape)
            line = base * canvas.h - height * canvas.h * 0.78
            if line > top:
                caps = [(x, max(y, line)) for x, y in shape]
                canvas.draw.polygon([*shape, *reversed(caps)], fill=_alpha(_mix(snow, haze, 0.25), 220))


def _city(canvas: _Canvas, plan: _Plan, rng: random.Random, horizon: float, haze: RGB, lit: bool,
          detail: float) -> None:
    wall = plan.colour("city")
    window = plan.steer((250, 210, 120))
    for row in range(2):
        colour = _mix(wall, haze, 0.45) if row == 0 else _scale(wall, 0.6)
        x = -rng.uniform(0.0, 0.05)
        while x < 1.0:
            width = rng.uniform(0.04, 0.1)
            height = rng.uniform(0.08, 0.3) * (1.2 if row == 0 else 1.0)
            top = horizon + 0.03 * row - height
            canvas.draw.rectangle((*canvas.xy(x, top), *canvas.xy(x + width, 1.0)), fill=_alpha(colour, 255))
            if rng.random() < 0.25:  # a spire or a rooftop box
                spire = width * rng.uniform(0.15, 0.4)
                canvas.draw.rectangle((*canvas.xy(x + width / 2 - spire / 2, top - height * 0.15),
                                       *canvas.xy(x + width / 2 + spire / 2, top)), fill=_alpha(colour, 255))
            if row == 1:
                chance = (0.45 if lit else 0.12) * detail
                columns = max(2, round(width * 60))
                for wy in range(1, max(2, round(height * 45))):
                    for wx in range(columns):
                        if rng.random() < chance:
                            cx = x + (wx + 0.5) / columns * width
                            cy = top + wy / 45
                            rect = (*canvas.xy(cx - 0.003, cy - 0.004), *canvas.xy(cx + 0.003, cy + 0.004))
                            canvas.draw.rectangle(rect, fill=_alpha(window, 230))
                            if lit:
                                canvas.glow.rectangle(rect, fill=_scale(window, 0.6))
            x += width + rng.uniform(-0.012, 0.004)  # no gaps down to the ground between neighbours
    canvas.draw.rectangle((*canvas.xy(0, horizon + 0.03), *canvas.xy(1, 1)), fill=_alpha(_scale(wall, 0.45), 255))


def _forest(canvas: _Canvas, plan: _Plan, rng: random.Random, horizon: float, haze: RGB, detail: float) -> None:
    leaves = plan.colour("forest")
    trunk = plan.steer((70, 50, 40))
    rows = 3
    for row in range(rows):
        depth = row / (rows - 1)
        colour = _mix(_mix(leaves, haze, 0.55 * (1 - depth)), (5, 12, 8), 0.45 * depth)
        base = horizon + 0.05 + 0.2 * depth
        count = round((22 - 5 * row) * detail)
        for _ in range(count):
            x = rng.random()
            height = rng.uniform(0.12, 0.26) * (0.7 + 0.6 * depth)
            half = height * rng.uniform(0.16, 0.24) * canvas.h / canvas.w
            shade = _scale(colour, rng.uniform(0.85, 1.15))
            # the vertical stroke of a trunk, then a pine: stacked triangles narrowing upwards
            stroke = max(1, round(canvas.w * 0.004 * (1 + depth)))
            canvas.draw.line((*canvas.xy(x, base), *canvas.xy(x, base - height)), fill=_alpha(_mix(trunk, colour, 0.5),
                                                                                               255), width=stroke)
            for tier in range(3):
                bottom = base - height * (0.15 + 0.25 * tier)
                width = half * (1 - 0.25 * tier)
                canvas.draw.polygon([canvas.xy(x - width, bottom), canvas.xy(x + width, bottom),
                                     canvas.xy(x, bottom - height * 0.42)], fill=_alpha(shade, 245))
        canvas.draw.rectangle((*canvas.xy(0, base), *canvas.xy(1, 1)), fill=_alpha(colour, 255))


def _ocean(canvas: _Canvas, plan: _Plan, rng: random.Random, horizon: float, sky: RGB, sun_x: float,
           detail: float) -> None:
    water = plan.colour("ocean")
    deep = _scale(water, 0.55)
    canvas.gradient([_mix(water, sky, 0.45), water, deep], horizon, 1.0)
    bands = round(9 * detail)
    phase = rng.uniform(0, math.tau)
    for band in range(bands):
        t = (band + 1) / (bands + 1)
        y = horizon + (1 - horizon) * t ** 1.6  # bands crowd together towards the horizon: perspective
        amplitude = 0.004 + 0.02 * t
        frequency = rng.uniform(2.5, 5.0) / (0.3 + t)
        colour = _mix(water, (255, 255, 255), 0.25) if band % 2 else _scale(water, 0.8)
        top = [canvas.xy(i / 48, y + amplitude * math.sin(phase + band + i / 48 * frequency * math.tau))
               for i in range(49)]
        canvas.draw.polygon([*top, canvas.xy(1, 1), canvas.xy(0, 1)], fill=_alpha(colour, 70))
    glint = plan.steer(_mix(sky, (255, 245, 220), 0.6))
    for _ in range(round(26 * detail)):  # the sun's reflection: short bright strokes in a column under it
        t = rng.random()
        y = horizon + (1 - horizon) * t
        x = sun_x + rng.gauss(0, 0.02 + 0.05 * t)
        half = rng.uniform(0.01, 0.04) * (0.4 + t)
        line = (*canvas.xy(x - half, y), *canvas.xy(x + half, y))
        canvas.draw.line(line, fill=_alpha(glint, 150), width=max(1, round(canvas.h * 0.004)))
        canvas.glow.line(line, fill=_scale(glint, 0.35), width=max(1, round(canvas.h * 0.006)))


def _petal(cx: float, cy: float, angle: float, length: float, width: float, aspect: float) -> list[tuple[float, float]]:
    """A petal as a polygon: an ellipse from the centre outwards, rotated (ImageDraw cannot rotate ellipses)."""
    cos, sin = math.cos(angle), math.sin(angle)
    points = []
    for i in range(14):
        theta = i / 14 * math.tau
        along, across = length / 2 * (1 + math.cos(theta)), width / 2 * math.sin(theta)
        points.append((cx + (along * cos - across * sin), cy + (along * sin + across * cos) * aspect))
    return points


def _flower(canvas: _Canvas, x: float, y: float, radius: float, petal: RGB, heart: RGB, petals: int,
            turn: float) -> None:
    px, py = canvas.xy(x, y)
    r = radius * min(canvas.w, canvas.h)
    for ring, (scale, shade) in enumerate(((1.0, 0.8), (0.7, 1.05))):
        for i in range(petals):
            angle = turn + (i + 0.5 * ring) / petals * math.tau
            canvas.draw.polygon(_petal(px, py, angle, r * scale, r * scale * 0.55, 1.0),
                                fill=_alpha(_scale(petal, shade), 215))
    canvas.draw.ellipse((px - r * 0.22, py - r * 0.22, px + r * 0.22, py + r * 0.22), fill=_alpha(heart, 255))
    canvas.glow.ellipse((px - r * 0.5, py - r * 0.5, px + r * 0.5, py + r * 0.5), fill=_scale(heart, 0.3))


def _flowers(canvas: _Canvas, plan: _Plan, rng: random.Random, solo: bool, detail: float) -> None:
    petal = plan.colour("flower")
    heart = plan.steer((250, 200, 70)) if petal != plan.steer((250, 200, 70)) else plan.steer((120, 60, 30))
    stem = plan.steer((70, 130, 70))
    if solo:  # the flower is the subject: one big bloom, a few small companions
        blooms = [(rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.55), rng.uniform(0.2, 0.26))]
        blooms += [(rng.random(), rng.uniform(0.65, 0.95), rng.uniform(0.05, 0.09)) for _ in range(round(3 * detail))]
    else:  # flowers in the foreground of a scene
        blooms = [(rng.random(), rng.uniform(0.78, 0.97), rng.uniform(0.03, 0.06)) for _ in range(round(7 * detail))]
    for x, y, radius in blooms:
        canvas.draw.line((*canvas.xy(x, y), *canvas.xy(x + rng.uniform(-0.04, 0.04), 1.05)),
                         fill=_alpha(stem, 230), width=max(1, round(radius * canvas.w * 0.12)))
        _flower(canvas, x, y, radius, _scale(petal, rng.uniform(0.85, 1.1)), heart, rng.choice((5, 6, 7, 8)),
                rng.uniform(0, math.tau))


def _portrait(canvas: _Canvas, plan: _Plan, rng: random.Random) -> None:
    """A quiet silhouette: halo, hair, shoulders and a face ellipse, no features (a sketch, not a likeness)."""
    # People come in every skin tone and hair colour: the seed picks, a colour word never does ("a blue woman"
    # dresses her in blue).
    skin = plan.steer(rng.choice(_SKIN_TONES))
    hair = plan.steer(rng.choice(_HAIR_COLOURS))
    cloth = plan.bound.get("portrait") or (plan.lead[1] if len(plan.lead) > 1 else plan.accents[1])
    cx, cy = 0.5 + rng.uniform(-0.06, 0.06), rng.uniform(0.4, 0.46)
    tilt = rng.uniform(-0.015, 0.015)
    canvas.glow.ellipse(canvas.box(cx, cy, 0.3), fill=_scale(plan.steer((255, 230, 190)), 0.35))
    canvas.bloom()  # the halo goes behind the figure, not over the face
    canvas.draw.ellipse(canvas.box(cx, cy + 0.02, 0.19, 0.23), fill=_alpha(hair, 255))  # hair behind the face
    canvas.draw.ellipse(canvas.box(cx, 1.02, 0.36, 0.2 + 0.1 * canvas.w / canvas.h), fill=_alpha(cloth, 255))
    canvas.draw.rectangle(canvas.box(cx, cy + 0.2, 0.05, 0.08), fill=_alpha(_scale(skin, 0.85), 255))
    canvas.draw.ellipse(canvas.box(cx + tilt, cy, 0.13, 0.17), fill=_alpha(skin, 255))
    side = rng.choice((-1, 1))  # light from one side: the other cheek in shade
    canvas.draw.ellipse(canvas.box(cx + side * 0.06, cy + 0.01, 0.09, 0.16), fill=_alpha(_scale(skin, 0.7), 70))
    canvas.draw.chord(canvas.box(cx, cy - 0.03, 0.15, 0.16), 180, 360, fill=_alpha(hair, 255))  # a fringe


def _abstract(canvas: _Canvas, plan: _Plan, rng: random.Random, count: int) -> None:
    """Soft discs, rings and flowing strokes: the composition when the prompt names no scene."""
    colours = plan.lead + plan.accents
    for _ in range(count):
        colour = rng.choice(colours)
        x, y, r = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
        kind = rng.random()
        if kind < 0.45:
            canvas.draw.ellipse(canvas.box(x, y, r), fill=_alpha(colour, rng.randint(70, 170)))
        elif kind < 0.7:
            canvas.draw.ellipse(canvas.box(x, y, r), outline=_alpha(_mix(colour, (255, 255, 255), 0.3), 190),
                                width=max(1, round(min(canvas.w, canvas.h) * rng.uniform(0.004, 0.015))))
        else:
            amplitude, frequency, phase = rng.uniform(0.03, 0.12), rng.uniform(0.5, 2.0), rng.uniform(0, math.tau)
            points = [canvas.xy(i / 40, y + amplitude * math.sin(phase + frequency * math.tau * i / 40))
                      for i in range(41)]
            canvas.draw.line(points, fill=_alpha(colour, 200), width=max(1, round(canvas.h * rng.uniform(0.01, 0.03))),
                             joint="curve")
            canvas.glow.line(points, fill=_scale(colour, 0.3), width=max(1, round(canvas.h * 0.04)))
        if rng.random() < 0.3:
            canvas.glow.ellipse(canvas.box(x, y, r * 0.6), fill=_scale(colour, 0.4))


def _vignette(size: tuple[int, int], strength: float) -> Image.Image:
    """A multiply mask darkening the corners (Pillow's radial gradient, stretched)."""
    radial = Image.radial_gradient("L").resize(size, Image.Resampling.BILINEAR)
    lut = [round(255 * (1 - strength * min(1.0, (d / 255) ** 2 * 1.3))) for d in range(256)]
    return radial.point(lut).convert("RGB")


def _grain(size: tuple[int, int], seed: int, amplitude: int) -> Image.Image:
    """Sparse monochrome grain centred on 128, from a seeded stream (Pillow's effect_noise is not seedable).

    Only about one pixel in five is touched: it reads as film grain, yet the PNG stays half the size (and takes
    less time to compress) than with noise on every pixel.
    """
    width, height = size
    noise = Image.frombytes("L", size, _rng(seed, "grain").randbytes(width * height))
    lut = [128 - amplitude if value < 24 else 128 + amplitude if value > 231 else 128 for value in range(256)]
    return noise.point(lut).convert("RGB")


def paint(prompt: str, negative: str, width: int, height: int, steps: int, guidance: float, seed: int) -> Image.Image:
    """The artwork for one seed, as an RGB image of the requested size. Pure: same inputs, same pixels."""
    plan = _plan(prompt, negative, seed)
    base = _stable_int(prompt.strip(), seed)  # the negative prompt steers colours, it does not re-roll the layout
    layout = _rng(base, "layout")
    detail = 1 + (min(max(steps, 1), 100) - 20) / 200  # more steps, a little more detail
    scale = min(1.0, _WORK_SIDE / max(width, height))
    canvas = _Canvas(max(8, round(width * scale)), max(8, round(height * scale)), plan.steer)

    horizon = layout.uniform(0.55, 0.68) if plan.scenes & _LANDSCAPE else 1.0
    if plan.scenes & _LANDSCAPE and not plan.scenes & {"ocean", "forest"}:
        horizon = layout.uniform(0.74, 0.84)  # skylines and ranges stand low: no half picture of bare ground
    if "portrait" in plan.scenes and plan.scenes & _LANDSCAPE:
        horizon = layout.uniform(0.62, 0.72)  # keep the landscape low behind a figure
    haze, sun_x, _ = _sky(canvas, plan, _rng(base, "sky"), horizon)
    if "night" in plan.scenes:
        _stars(canvas, plan, _rng(base, "stars"), horizon, detail)
    canvas.bloom()
    if "mountain" in plan.scenes:
        _mountains(canvas, plan, _rng(base, "mountain"), horizon, haze, detail)
    if "city" in plan.scenes:
        _city(canvas, plan, _rng(base, "city"), horizon, haze, bool(plan.scenes & {"night", "sunset"}), detail)
    if "ocean" in plan.scenes:
        _ocean(canvas, plan, _rng(base, "ocean"), horizon, haze, sun_x, detail)
    if "forest" in plan.scenes:
        _forest(canvas, plan, _rng(base, "forest"), horizon, haze, detail)
    if not plan.scenes - {"sunset", "night"}:
        _abstract(canvas, plan, _rng(base, "abstract"), round((5 if plan.scenes else 9) * detail))
    if "flower" in plan.scenes:
        _flowers(canvas, plan, _rng(base, "flower"), solo=not plan.scenes & (_LANDSCAPE | {"portrait"}),
                 detail=detail)
    if "portrait" in plan.scenes:
        _portrait(canvas, plan, _rng(base, "portrait"))

    canvas.bloom()
    picture = ImageChops.multiply(plan.steer.apply(canvas.image), _vignette((canvas.w, canvas.h), 0.28))
    picture = picture.filter(ImageFilter.SMOOTH)  # ImageDraw does not anti-alias: soften the edges
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.BICUBIC)

    # Guidance: a little more (or less) contrast and colour, as a stronger prompt pull would give.
    punch = 1 + min(0.4, max(-0.25, (guidance - 7) * 0.03)) + (0.15 if plan.vivid else 0.0)
    if punch != 1:
        picture = ImageEnhance.Color(ImageEnhance.Contrast(picture).enhance(punch)).enhance(punch)
    return ImageChops.add(picture, _grain((width, height), base, 5), 1.0, -128)


def _fit_source(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The img2img source, centre-cropped and resized to the requested size, as RGB on white where transparent."""
    try:
        with Image.open(io.BytesIO(data), formats=_SOURCE_FORMATS) as source:
            source.load()
            rgba = source.convert("RGBA")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest("The source image could not be read. Please upload it again.") from None
    flat = Image.new("RGB", rgba.size, (255, 255, 255))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return ImageOps.fit(flat, size, method=Image.Resampling.LANCZOS)


def render(request: GenerationRequest, index: int) -> GeneratedImage:
    """Image ``index`` of ``request`` (seed ``request.seed + index``) as PNG bytes, with no text chunks."""
    seed = request.seed + index
    size = (request.width, request.height)
    image = paint(request.prompt, request.negative_prompt, *size, request.steps, request.guidance, seed)
    if request.source_image is not None:
        strength = min(1.0, max(0.0, request.strength))
        if strength < 1.0:  # at 1 the source is ignored entirely: skip decoding it
            image = Image.blend(_fit_source(request.source_image, size), image, strength)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return GeneratedImage(data=buffer.getvalue(), format="PNG", seed=seed, width=request.width,
                          height=request.height, provider_nsfw=None)


def _check(request: GenerationRequest) -> None:
    if request.model != MODEL_ID:
        raise InvalidRequest("The offline sketch generator has no such model.", detail=f"model={request.model!r}")
    if not SIZE_RULE.allows(request.width, request.height):
        raise InvalidRequest(f"The offline sketch generator draws sizes of {SIZE_RULE.describe()}.")
    if not 1 <= request.count <= MAX_IMAGES:
        raise InvalidRequest(f"The offline sketch generator draws 1 to {MAX_IMAGES} images at a time.")


class OfflineGenerator:
    """The built-in, always-available provider: procedural sketches on this server, not AI, nothing sent anywhere."""

    name = "offline"
    label = "Offline sketch generator"

    async def models(self) -> list[ModelInfo]:
        return [MODEL]

    async def generate(self, request: GenerationRequest, progress: ProgressCallback | None = None) -> GenerationResult:
        """Draw ``request.count`` images, one worker thread each in turn so the event loop stays responsive."""
        _check(request)
        if progress is not None:
            progress(0.0)
        images = []
        for index in range(request.count):
            images.append(await asyncio.to_thread(render, request, index))
            if progress is not None:
                progress((index + 1) / request.count)
        return GenerationResult(images=images, model_version=MODEL_ID, cost=None)

    async def reachable(self, timeout: float = 0.0) -> Reachability:
        """Always usable: it draws on this server."""
        return True, "built in: draws on this server, nothing to reach"

    async def aclose(self) -> None:
        """Nothing to release: no connections, no files."""


__all__ = ["MODEL", "MODEL_ID", "OfflineGenerator", "paint", "render"]
