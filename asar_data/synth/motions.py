"""The motion library: one articulated motion per action class, written as data.

A motion is a list of channels, each `part dof amplitude wave`, for instance
`arm_r fwd 165 hold` (raise the right arm forwards to 165 degrees and hold it) or
`root up 0.3 bump[0.4,0.6]` (leave the floor by 30 cm in the middle of the action).

- part: a body segment (`spine chest neck head clav arm forearm hand thigh shin foot`;
  limbs end in `_l`, `_r`, or `_b` for both sides mirrored) or `root`.
- dof: `fwd` (swing the segment's far end forwards), `side` (outwards), `twist`; for
  `root`: `fwd side up` (metres, in the body's starting frame) and `yaw pitch roll`
  (degrees; positive yaw turns left, positive pitch leans forward).
- wave: the time course over the action, `name[:n][@phase][[a,b]]`, n repetitions,
  phase in periods, optionally squeezed into the window [a, b] of the action:
  hold (go, stay, come back), bump, osc (+-), pulse (0..1 n times), jump (n short
  lifts), rise / fall (reach a new state and stay / leave it), ramp (monotone).

Classes are numbered like NTU RGB+D 120: ids 50-60 and 106-120 are two-person
(mutual) actions, the rest single-person. The names describe the synthetic motion.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .skeleton import NUM_JOINTS, axis_angle, rot_y

# A segment moves with the rotation of the joint at its far end (see skeleton.py):
# "arm_r" is the upper arm, turned by the rotation stored at the right elbow.
PART_JOINT = {
    "spine": 1, "chest": 20, "neck": 2, "head": 3,
    "clav_l": 4, "arm_l": 5, "forearm_l": 6, "hand_l": 7,
    "clav_r": 8, "arm_r": 9, "forearm_r": 10, "hand_r": 11,
    "thigh_l": 13, "shin_l": 14, "foot_l": 15,
    "thigh_r": 17, "shin_r": 18, "foot_r": 19,
}  # fmt: skip
DOFS = ("fwd", "side", "twist")
ROOT_DOFS = ("fwd", "side", "up", "yaw", "pitch", "roll")


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _envelope(s: np.ndarray, ramp: float) -> np.ndarray:
    return _smoothstep(s / ramp) * _smoothstep((1 - s) / ramp)


def _cycles(s: np.ndarray, n: int, phase: float) -> np.ndarray:
    return 2 * np.pi * (n * s - phase)


WAVES = {
    "hold": lambda s, n, p: _envelope(s, 0.22),
    "bump": lambda s, n, p: np.sin(np.pi * s) ** 2,
    "osc": lambda s, n, p: np.sin(_cycles(s, n, p)) * _envelope(s, 0.12),
    "pulse": lambda s, n, p: (0.5 - 0.5 * np.cos(_cycles(s, n, p))) * _envelope(s, 0.08),
    "jump": lambda s, n, p: np.maximum(np.sin(_cycles(s, n, p)), 0.0) ** 1.5,
    "rise": lambda s, n, p: _smoothstep((s - 0.15) / 0.7),
    "fall": lambda s, n, p: 1 - _smoothstep((s - 0.15) / 0.7),
    "ramp": lambda s, n, p: _smoothstep(s),
}
_WAVE_RE = re.compile(r"([a-z]+)(?::\d+|@[\d.]+|\[[\d.]+,[\d.]+\])*")


def _wave_option(pattern: str, wave: str, default: tuple) -> tuple:
    m = re.search(pattern, wave)
    return m.groups() if m else default


@dataclass(frozen=True)
class Channel:
    """One animated degree of freedom: joint index (-1 for the root), dof index, amount, wave."""

    joint: int
    dof: int
    amount: float
    wave: str
    cycles: int
    phase: float
    window: tuple[float, float]

    def curve(self, s: np.ndarray, extra_cycles: int = 0) -> np.ndarray:
        """(T,) value over normalised action time s (T,) in [0, 1], before scaling by amount."""
        a, b = self.window
        local = np.clip((s - a) / (b - a), 0.0, 1.0)
        n = self.cycles + (extra_cycles if self.cycles >= 3 else 0)
        return WAVES[self.wave](local, n, self.phase)


def parse_channels(spec: str) -> tuple[Channel, ...]:
    """Channels from a `;`-separated spec (see the module docstring); `_b` parts become two."""
    out = []
    for item in filter(None, (x.strip() for x in spec.split(";"))):
        part, dof, amount, wave = item.split()
        m = _WAVE_RE.fullmatch(wave)
        if not m or m.group(1) not in WAVES:
            raise ValueError(f"motion channel {item!r}: unknown wave {wave!r}")
        (n,) = _wave_option(r":(\d+)", wave, ("1",))
        (ph,) = _wave_option(r"@([\d.]+)", wave, ("0",))
        a, b = _wave_option(r"\[([\d.]+),([\d.]+)\]", wave, ("0", "1"))
        timing = (m.group(1), int(n), float(ph), (float(a), float(b)))
        if part == "root":
            out.append(Channel(-1, ROOT_DOFS.index(dof), float(amount), *timing))
            continue
        parts = [part[:-2] + "_l", part[:-2] + "_r"] if part.endswith("_b") else [part]
        for p in parts:
            if p not in PART_JOINT or dof not in DOFS:
                raise ValueError(f"motion channel {item!r}: unknown part or dof")
            out.append(Channel(PART_JOINT[p], DOFS.index(dof), float(amount), *timing))
    return tuple(out)


@dataclass(frozen=True)
class Motion:
    """An action class: its name, typical active length (frames at 30 fps) and channels.

    Two-person motions have `partner` channels; `gap` is the distance between the two
    pelvises (metres) at the start; the two face each other unless `same_way`.
    """

    name: str
    frames: int
    actor: tuple[Channel, ...]
    partner: tuple[Channel, ...] | None = None
    gap: float = 1.0
    same_way: bool = False

    @property
    def mutual(self) -> bool:
        return self.partner is not None


_STEP = (
    "thigh_l fwd 35 pulse:2; shin_l fwd -45 pulse:2; thigh_r fwd 35 pulse:2@0.5; "
    "shin_r fwd -45 pulse:2@0.5"
)
_WALK = (
    "thigh_l fwd 30 osc:2; thigh_r fwd 30 osc:2@0.5; shin_l fwd -45 pulse:2@0.25; "
    "shin_r fwd -45 pulse:2@0.75; arm_l fwd 22 osc:2@0.5; arm_r fwd 22 osc:2"
)
_PUNCH_R = (
    "arm_r fwd 35 hold; forearm_r fwd 115 hold; arm_r fwd 55 pulse:2; forearm_r fwd -110 pulse:2"
)
_GUARD = "arm_b fwd 40 hold; arm_b side -10 hold; forearm_b fwd 120 hold"

# (name, active frames, actor channels[, partner channels, gap, same_way]); row i is class i+1.
LIBRARY_TABLE: tuple[tuple, ...] = (
    ("raise right arm", 70, "arm_r fwd 165 hold"),
    ("raise left arm", 70, "arm_l fwd 165 hold"),
    ("raise both arms sideways", 80, "arm_b side 160 hold"),
    ("wave right hand", 90, "arm_r side 95 hold; forearm_r side 80 hold; forearm_r side 30 osc:3"),
    ("punch forward with right fist", 60, _PUNCH_R + "; chest twist 15 pulse:2"),
    ("kick forward with right leg", 60,
     "thigh_r fwd 80 bump; shin_r fwd -80 bump[0,0.55]; arm_b side 15 bump"),
    ("bow", 80, "spine fwd 55 hold; chest fwd 10 hold; head fwd 15 hold"),
    ("squat", 90,
     "thigh_b fwd 100 pulse:2; shin_b fwd -115 pulse:2; spine fwd 30 pulse:2; "
     "arm_b fwd 80 pulse:2"),
    ("jump up", 70,
     "thigh_b fwd 45 bump[0.1,0.45]; shin_b fwd -70 bump[0.1,0.45]; thigh_b fwd 40 bump[0.6,0.95]; "
     "shin_b fwd -60 bump[0.6,0.95]; root up 0.3 bump[0.38,0.64]; arm_b fwd 150 bump[0.3,0.7]"),
    ("clap hands", 90,
     "arm_b fwd 75 hold; arm_b side 30 hold; arm_b side -40 pulse:4; forearm_b fwd 30 hold"),
    ("sit down", 100, "thigh_b fwd 90 rise; shin_b fwd -90 rise; spine fwd 12 rise; "
     "arm_b fwd 20 rise"),
    ("stand up", 100, "thigh_b fwd 90 fall; shin_b fwd -90 fall; spine fwd 12 fall; "
     "arm_b fwd 20 fall"),
    ("turn around to the left", 110, "root yaw 180 ramp; " + _STEP),
    ("touch head with right hand", 70, "arm_r fwd 100 hold; arm_r side 45 hold; "
     "forearm_r fwd 125 hold"),
    ("side step to the right", 80,
     "root side 0.45 rise; thigh_r side 25 bump[0,0.5]; thigh_l side 25 bump[0.45,0.95]"),
    ("hop on left foot", 90,
     "thigh_r fwd 40 hold; shin_r fwd -85 hold; root up 0.12 jump:4[0.15,0.85]; "
     "arm_b side 30 hold"),
    ("stretch up on tiptoes", 90, "arm_b fwd 175 hold; foot_b fwd -35 hold; chest fwd -8 hold"),
    ("kick sideways with left leg", 60, "thigh_l side 65 bump; spine side 15 bump; "
     "arm_b side 35 bump"),
    ("twist torso", 100, "arm_b side 85 hold; spine twist 25 osc:2; chest twist 30 osc:2"),
    ("bend sideways", 100, "spine side 30 osc:2; chest side 10 osc:2; arm_b side 20 hold"),
    ("nod head", 60, "head fwd 28 pulse:3; neck fwd 10 pulse:3"),
    ("shake head", 60, "head twist 40 osc:3; neck twist 10 osc:3"),
    ("cheer with both hands", 90, "arm_b side 150 hold; forearm_b side 25 osc:3; "
     "root up 0.05 jump:3"),
    ("punch forward with left fist", 60,
     "arm_l fwd 35 hold; forearm_l fwd 115 hold; arm_l fwd 55 pulse:2; forearm_l fwd -110 pulse:2; "
     "chest twist -15 pulse:2"),
    ("kick forward with left leg", 60,
     "thigh_l fwd 80 bump; shin_l fwd -80 bump[0,0.55]; arm_b side 15 bump"),
    ("circle right arm", 100, "arm_r fwd 90 hold; arm_r fwd 70 osc:3; arm_r side 60 osc:3@0.25"),
    ("march in place", 110,
     "thigh_l fwd 60 pulse:3; shin_l fwd -70 pulse:3; thigh_r fwd 60 pulse:3@0.5; "
     "shin_r fwd -70 pulse:3@0.5; arm_l fwd 30 osc:3@0.5; arm_r fwd 30 osc:3"),
    ("jumping jacks", 100, "arm_b side 165 pulse:3; thigh_b side 22 pulse:3; root up 0.1 jump:6"),
    ("lunge forward with right leg", 90,
     "thigh_r fwd 80 hold; shin_r fwd -85 hold; thigh_l fwd -25 hold; shin_l fwd -75 hold; "
     "root fwd 0.35 hold"),
    ("touch toes", 100, "spine fwd 95 hold; chest fwd 15 hold; arm_b fwd 80 hold; "
     "head fwd 20 hold"),
    ("drink from right hand", 80,
     "arm_r fwd 40 hold; arm_r side -10 hold; forearm_r fwd 135 hold; head fwd -20 hold[0.3,0.8]"),
    ("look at left wrist", 80,
     "arm_l fwd 45 hold; arm_l side -15 hold; forearm_l fwd 95 hold; forearm_l twist 60 hold; "
     "head fwd 25 hold"),
    ("salute with right hand", 70, "arm_r side 80 hold; arm_r fwd 35 hold; forearm_r fwd 135 hold"),
    ("cross arms in front", 80,
     "arm_b fwd 55 hold; arm_b side -25 hold; forearm_b fwd 110 hold; forearm_b side -40 hold"),
    ("throw overhand with right arm", 60,
     "arm_r side 100 bump[0,0.6]; forearm_r fwd 100 bump[0,0.6]; arm_r fwd 70 bump[0.45,1]; "
     "chest twist -25 bump[0,0.55]; chest twist 30 bump[0.45,1]; thigh_l fwd 30 bump[0.3,0.9]"),
    ("pick up from the floor", 100,
     "spine fwd 70 hold; thigh_b fwd 70 hold; shin_b fwd -100 hold; arm_r fwd 75 hold; "
     "head fwd 20 hold"),
    ("point forward with right arm", 70, "arm_r fwd 90 hold; forearm_r fwd -5 hold; "
     "head twist -10 hold"),
    ("phone call with right hand", 90,
     "arm_r fwd 30 hold; arm_r side 20 hold; forearm_r fwd 150 hold; head side -10 hold"),
    ("fan face with right hand", 90,
     "arm_r fwd 50 hold; forearm_r fwd 115 hold; hand_r side 45 osc:5; forearm_r side 15 osc:5"),
    ("palms together", 80, "arm_b fwd 45 hold; arm_b side -22 hold; forearm_b fwd 95 hold"),
    ("rub hands", 90,
     "arm_b fwd 40 hold; arm_b side -20 hold; forearm_b fwd 85 hold; forearm_l side 12 osc:4; "
     "forearm_r side 12 osc:4@0.5"),
    ("stagger", 110,
     "root side 0.35 osc:2; spine side 18 osc:3; thigh_l side 20 pulse:2; "
     "thigh_r side 20 pulse:2@0.5; "
     "arm_b side 40 hold; root yaw 25 osc:1"),
    ("fall down", 100, "root pitch 85 rise; thigh_b fwd 20 rise; arm_b fwd 100 rise"),
    ("hold head with both hands", 80,
     "arm_b fwd 110 hold; arm_b side 40 hold; forearm_b fwd 130 hold; head fwd 20 hold; "
     "spine fwd 10 hold"),
    ("hand on chest", 80,
     "arm_r fwd 25 hold; arm_r side -20 hold; forearm_r fwd 125 hold; forearm_r side -30 hold; "
     "spine fwd 25 hold"),
    ("hands on lower back", 80,
     "arm_b fwd -35 hold; arm_b side 15 hold; forearm_b fwd 80 hold; spine fwd -12 hold"),
    ("right hand on neck", 80,
     "arm_r side 100 hold; arm_r fwd 30 hold; forearm_r fwd 140 hold; head fwd 15 hold"),
    ("bend over, hand to mouth", 90,
     "spine fwd 45 hold; arm_r fwd 45 hold; forearm_r fwd 135 hold; arm_l fwd 30 hold; "
     "thigh_b fwd 15 hold; shin_b fwd -20 hold"),
    ("both hands to top of head", 80, "arm_b fwd 155 bump; arm_b side 20 bump; "
     "forearm_b fwd 95 bump"),
    # 50-60: two people
    ("punch the other person", 70,
     "arm_r fwd 35 hold; forearm_r fwd 115 hold; arm_r fwd 55 bump[0.3,0.7]; "
     "forearm_r fwd -110 bump[0.3,0.7]; root fwd 0.15 bump",
     "root fwd -0.2 bump[0.45,1]; spine fwd -20 bump[0.45,0.9]; head fwd -20 bump[0.45,0.9]", 0.9),
    ("kick the other person", 70,
     "thigh_r fwd 75 bump; shin_r fwd -50 bump[0,0.5]; arm_b side 25 bump",
     "spine fwd 30 bump[0.4,1]; root fwd -0.2 bump[0.4,1]", 1.1),
    ("push the other person", 80,
     "arm_b fwd 85 bump; forearm_b fwd 60 bump[0,0.4]; root fwd 0.25 rise; spine fwd 15 bump",
     "root fwd -0.45 rise[0.35,0.8]; arm_b side 35 bump[0.35,1]; "
     "spine fwd -15 bump[0.35,0.9]", 0.8),
    ("pat the other on the back", 100,
     "root fwd 0.35 hold; arm_r fwd 100 hold; arm_r side 35 hold; forearm_r fwd 40 pulse:3",
     "head fwd 10 hold; spine fwd 10 hold", 1.0),
    ("point at the other person", 70,
     "arm_r fwd 90 hold; forearm_r fwd 5 hold",
     "arm_b fwd 20 hold[0.3,1]; head fwd -10 hold", 1.4),
    ("hug", 110,
     "root fwd 0.25 hold; arm_b fwd 90 hold; arm_b side 35 hold; forearm_b side -50 hold",
     "root fwd 0.25 hold; arm_b fwd 90 hold; arm_b side 35 hold; forearm_b side -50 hold", 1.0),
    ("give an object", 90,
     "arm_r fwd 70 hold[0,0.7]; forearm_r fwd 30 hold[0,0.7]",
     "arm_r fwd 70 hold[0.35,1]; forearm_r fwd 30 hold[0.35,1]", 1.0),
    ("touch the other's pocket", 80,
     "spine fwd 20 hold; arm_r fwd 45 hold; arm_r side -15 hold; root fwd 0.2 hold",
     "head fwd 20 hold[0.3,1]", 0.8),
    ("shake hands", 90,
     "arm_r fwd 55 hold; forearm_r fwd 35 hold; forearm_r fwd 12 osc:3; root fwd 0.1 hold",
     "arm_r fwd 55 hold; forearm_r fwd 35 hold; forearm_r fwd 12 osc:3; root fwd 0.1 hold", 1.0),
    ("walk towards each other", 110, "root fwd 0.5 ramp; "
     "" + _WALK, "root fwd 0.5 ramp; " + _WALK, 2.2),
    ("walk apart", 110,
     "root yaw 180 ramp[0,0.3]; root fwd -0.6 ramp[0.2,1]; "
     "" + _WALK.replace("osc:2", "osc:2[0.2,1]"),
     "root yaw -180 ramp[0,0.3]; root fwd -0.6 ramp[0.2,1]; "
     "" + _WALK.replace("osc:2", "osc:2[0.2,1]"),
     0.9),
    # 61-105: more single-person motions (NTU-120)
    ("raise both arms forward", 70, "arm_b fwd 170 hold"),
    ("raise right arm sideways", 70, "arm_r side 165 hold"),
    ("raise left arm sideways", 70, "arm_l side 165 hold"),
    ("wave left hand", 90, "arm_l side 95 hold; forearm_l side 80 hold; forearm_l side 30 osc:3"),
    ("uppercut with right fist", 60,
     "arm_r fwd 20 hold; forearm_r fwd 100 hold; arm_r fwd 110 pulse:2; chest twist 15 pulse:2"),
    ("alternate punches", 80,
     _PUNCH_R.replace("pulse:2", "pulse:3") + "; arm_l fwd 35 hold; forearm_l fwd 115 hold; "
     "arm_l fwd 55 pulse:3@0.5; forearm_l fwd -110 pulse:3@0.5"),
    ("lift right knee", 70, "thigh_r fwd 100 pulse:2; shin_r fwd -100 pulse:2"),
    ("lift left knee", 70, "thigh_l fwd 100 pulse:2; shin_l fwd -100 pulse:2"),
    ("kick backwards with right leg", 60,
     "thigh_r fwd -45 bump; shin_r fwd -90 bump; spine fwd 20 bump; arm_b fwd 25 bump"),
    ("kick sideways with right leg", 60, "thigh_r side 65 bump; spine side -15 bump; "
     "arm_b side 35 bump"),
    ("turn around to the right", 110, "root yaw -180 ramp; " + _STEP),
    ("side step to the left", 80,
     "root side -0.45 rise; thigh_l side 25 bump[0,0.5]; thigh_r side 25 bump[0.45,0.95]"),
    ("hop on right foot", 90,
     "thigh_l fwd 40 hold; shin_l fwd -85 hold; root up 0.12 jump:4[0.15,0.85]; "
     "arm_b side 30 hold"),
    ("jump forward", 80,
     "thigh_b fwd 50 bump[0.05,0.45]; shin_b fwd -75 bump[0.05,0.45]; root up 0.2 bump[0.38,0.62]; "
     "root fwd 0.6 rise[0.3,0.7]; arm_b fwd 120 bump[0.2,0.7]; thigh_b fwd 50 bump[0.6,0.95]; "
     "shin_b fwd -70 bump[0.6,0.95]"),
    ("squat with arms up", 90,
     "thigh_b fwd 100 pulse:2; shin_b fwd -115 pulse:2; spine fwd 20 pulse:2; arm_b fwd 170 hold"),
    ("circle left arm", 100, "arm_l fwd 90 hold; arm_l fwd 70 osc:3; arm_l side 60 osc:3@0.25"),
    ("circle both arms", 100, "arm_b side 90 hold; arm_b fwd 40 osc:4; arm_b side 35 osc:4@0.25"),
    ("swing both arms", 90, "arm_b fwd 60 osc:3; thigh_b fwd 10 pulse:3; shin_b fwd -20 pulse:3"),
    ("alternate arm raises", 100, "arm_l fwd 170 pulse:2; arm_r fwd 170 pulse:2@0.5"),
    ("shrug shoulders", 60, "clav_b side 18 pulse:3; arm_b side 10 pulse:3; head fwd -5 pulse:3"),
    ("roll head", 90, "head twist 30 osc:2; head fwd 25 osc:2@0.25; neck side 10 osc:2"),
    ("circle hips", 100, "spine side 15 osc:2; spine fwd 15 osc:2@0.25; arm_b side 45 hold"),
    ("lean to the left", 80, "spine side -30 hold; chest side -10 hold; arm_r side 150 hold"),
    ("lean back", 80, "spine fwd -25 hold; chest fwd -10 hold; arm_b side 30 hold; "
     "head fwd -20 hold"),
    ("reach forward with both arms", 80, "arm_b fwd 90 hold; spine fwd 30 hold; "
     "thigh_b fwd 10 hold"),
    ("reach down to the right", 80,
     "spine side 35 hold; spine fwd 20 hold; arm_r fwd 15 hold; arm_l side 90 hold"),
    ("touch head with left hand", 70, "arm_l fwd 100 hold; arm_l side 45 hold; "
     "forearm_l fwd 125 hold"),
    ("hands on hips", 80,
     "arm_b side 40 hold; arm_b fwd -15 hold; forearm_b fwd 100 hold; forearm_b side -60 hold"),
    ("boxing bounce", 100, _GUARD + "; root up 0.04 jump:6; chest twist 10 osc:3"),
    ("throw overhand with left arm", 60,
     "arm_l side 100 bump[0,0.6]; forearm_l fwd 100 bump[0,0.6]; arm_l fwd 70 bump[0.45,1]; "
     "chest twist 25 bump[0,0.55]; chest twist -30 bump[0.45,1]; thigh_r fwd 30 bump[0.3,0.9]"),
    ("rise on tiptoes repeatedly", 90, "foot_b fwd -35 pulse:3; arm_b side 15 pulse:3"),
    ("slow double push", 120,
     "arm_b fwd 80 hold; forearm_b fwd 100 hold; forearm_b fwd -90 pulse:2; thigh_b fwd 25 hold; "
     "shin_b fwd -35 hold"),
    ("breaststroke arms", 100,
     "arm_b fwd 100 hold; arm_b side 70 pulse:3; forearm_b fwd 60 pulse:3@0.25"),
    ("rowing pull", 100,
     "arm_b fwd 80 hold; forearm_b fwd 110 pulse:3; spine fwd 20 osc:3; thigh_b fwd 30 hold; "
     "shin_b fwd -50 hold"),
    ("bounce a ball with right hand", 90,
     "spine fwd 25 hold; arm_r fwd 35 hold; forearm_r fwd 60 pulse:5; thigh_b fwd 20 hold; "
     "shin_b fwd -30 hold"),
    ("wipe face with both hands", 80,
     "arm_b fwd 100 hold; arm_b side 10 hold; forearm_b fwd 135 hold; arm_b fwd 20 osc:2"),
    ("open arms wide then reach up", 100, "arm_b side 90 hold[0,0.6]; arm_b fwd 170 hold[0.45,1]"),
    ("yawn and stretch", 100, "arm_b fwd 170 hold; arm_b side 30 hold; spine fwd -12 hold; "
     "head fwd -25 hold"),
    ("golf swing", 90,
     "spine fwd 35 hold; arm_b fwd 60 hold; arm_b side -25 hold; chest twist 60 bump[0,0.5]; "
     "chest twist -60 bump[0.5,1]"),
    ("tennis forehand", 80,
     "arm_r side 80 hold; chest twist -40 bump[0,0.5]; chest twist 50 bump[0.5,1]; "
     "arm_r fwd 60 bump[0.5,1]; thigh_l fwd 25 bump[0.4,1]"),
    ("bowling throw", 100,
     "spine fwd 40 bump[0.3,1]; thigh_l fwd 60 bump[0.3,1]; shin_l fwd -50 bump[0.3,1]; "
     "arm_r fwd -40 bump[0,0.5]; arm_r fwd 90 bump[0.45,1]"),
    ("deep crouch", 90, "thigh_b fwd 115 hold; shin_b fwd -135 hold; spine fwd 35 hold; "
     "arm_b fwd 60 hold"),
    ("kneel on right knee", 100,
     "thigh_l fwd 90 hold; shin_l fwd -90 hold; shin_r fwd -95 hold; thigh_r fwd -5 hold"),
    ("step forward and back", 90, "root fwd 0.4 bump; " + _STEP),
    ("knee to opposite hand", 80,
     "thigh_r fwd 95 pulse:2; shin_r fwd -90 pulse:2; arm_l fwd 45 pulse:2; "
     "arm_l side -35 pulse:2; "
     "chest twist 20 pulse:2"),
    # 106-120: two people
    ("strike the other from above", 70,
     "arm_r fwd 170 bump[0,0.6]; forearm_r fwd 80 bump[0,0.6]; arm_r fwd 80 bump[0.45,1]",
     "arm_b fwd 150 bump[0.3,1]; spine fwd 25 bump[0.4,1]", 0.9),
    ("thrust at the other", 70,
     "arm_r fwd 20 hold; forearm_r fwd 100 hold; arm_r fwd 60 bump[0.3,0.7]; "
     "forearm_r fwd -95 bump[0.3,0.7]; root fwd 0.2 bump",
     "root fwd -0.25 bump[0.4,1]; spine fwd 30 bump[0.4,1]; arm_b fwd 40 bump[0.4,1]", 1.0),
    ("knock the other over", 90,
     "arm_b fwd 85 bump[0,0.6]; root fwd 0.3 rise[0,0.5]; spine fwd 20 bump[0,0.6]",
     "root pitch -80 rise[0.35,0.9]; root fwd -0.5 rise[0.35,0.9]; "
     "arm_b fwd 90 rise[0.35,0.9]", 0.8),
    ("grab the other's bag", 80,
     "arm_r fwd 70 hold; arm_r side -10 hold; root fwd 0.25 hold; forearm_r fwd 60 bump[0.5,1]",
     "arm_l side 30 hold; forearm_l fwd 70 hold; root fwd -0.15 bump[0.5,1]", 0.9),
    ("aim at the other with both hands", 80,
     "arm_b fwd 90 hold; arm_b side -15 hold; head fwd 10 hold",
     "arm_b fwd 165 hold[0.25,1]", 1.8),
    ("step on the other's foot", 70,
     "thigh_r fwd 40 bump; shin_r fwd -50 bump[0,0.5]; root fwd 0.3 bump; spine fwd 10 bump",
     "spine fwd 25 bump[0.4,1]; thigh_l fwd 40 bump[0.45,1]; shin_l fwd -70 bump[0.45,1]", 0.8),
    ("high five", 70,
     "arm_r fwd 150 bump; forearm_r fwd 20 bump; root fwd 0.1 bump",
     "arm_l fwd 150 bump; forearm_l fwd 20 bump; root fwd 0.1 bump", 1.0),
    ("toast and drink", 100,
     "arm_r fwd 80 hold[0,0.5]; forearm_r fwd 40 hold[0,0.5]; arm_r fwd 40 hold[0.5,1]; "
     "forearm_r fwd 135 hold[0.5,1]",
     "arm_r fwd 80 hold[0,0.5]; forearm_r fwd 40 hold[0,0.5]; arm_r fwd 40 hold[0.5,1]; "
     "forearm_r fwd 135 hold[0.5,1]", 1.0),
    ("carry something together", 110,
     "arm_b fwd 45 hold; forearm_b fwd 40 hold; thigh_b fwd 30 hold[0,0.3]; "
     "shin_b fwd -40 hold[0,0.3]; "
     "root side 0.4 rise[0.3,1]; " + _WALK.replace("osc:2", "osc:2[0.3,1]"),
     "arm_b fwd 45 hold; forearm_b fwd 40 hold; thigh_b fwd 30 hold[0,0.3]; "
     "shin_b fwd -40 hold[0,0.3]; "
     "root side -0.4 rise[0.3,1]; " + _WALK.replace("osc:2", "osc:2[0.3,1]"), 1.2),
    ("take a photo of the other", 80,
     "arm_b fwd 80 hold; arm_b side -20 hold; forearm_b fwd 70 hold; head fwd 10 hold",
     "arm_r side 100 hold[0.3,1]; forearm_r side 80 hold[0.3,1]", 2.0),
    ("follow the other", 110, "root fwd 0.6 ramp; "
     "" + _WALK, "root fwd 0.6 ramp; " + _WALK, 1.2, True),
    ("whisper to the other", 90,
     "root fwd 0.3 hold; spine fwd 15 hold; spine side -15 hold; arm_r fwd 70 hold; "
     "forearm_r fwd 110 hold",
     "head side 15 hold; spine side 10 hold", 1.0),
    ("exchange objects", 100,
     "arm_r fwd 70 hold[0,0.6]; arm_l fwd 70 hold[0.4,1]",
     "arm_r fwd 70 hold[0,0.6]; arm_l fwd 70 hold[0.4,1]", 1.0),
    ("support the other", 110,
     "root fwd 0.35 hold; root side 0.3 hold; arm_r side 120 hold; forearm_r side 60 hold",
     "spine fwd 25 hold; thigh_b fwd 20 hold; shin_b fwd -35 hold; arm_l side 100 hold; "
     "root fwd 0.2 hold",
     1.0),
    ("rock paper scissors", 90,
     "arm_r fwd 45 hold; forearm_r fwd 90 hold; forearm_r fwd 35 pulse:3",
     "arm_r fwd 45 hold; forearm_r fwd 90 hold; forearm_r fwd 35 pulse:3", 1.0),
)


def _motion(row: tuple) -> Motion:
    name, frames, actor, *rest = row
    if not rest:
        return Motion(name, frames, parse_channels(actor))
    partner, gap, *same_way = rest
    return Motion(name, frames, parse_channels(actor), parse_channels(partner), gap, bool(same_way))


LIBRARY: tuple[Motion, ...] = tuple(_motion(row) for row in LIBRARY_TABLE)
MUTUAL_IDS = frozenset([*range(50, 61), *range(106, 121)])
CLASS_NAMES: tuple[str, ...] = tuple(m.name for m in LIBRARY)


@dataclass(frozen=True)
class Animation:
    """One body's motion over T frames, in its own starting frame (see skeleton.py)."""

    angles: np.ndarray  # (T, 25, 3) degrees (fwd, side, twist) per joint
    root_rot: np.ndarray  # (T, 3, 3) pelvis orientation
    root_shift: np.ndarray  # (T, 3) metres, horizontal travel plus lift off the floor


def _root_rotation(yaw: np.ndarray, pitch: np.ndarray, roll: np.ndarray) -> np.ndarray:
    # pitch about -x (positive leans forward), roll about -z (positive leans right)
    r_pitch = axis_angle(np.array([-1.0, 0.0, 0.0]), np.deg2rad(pitch))
    r_roll = axis_angle(np.array([0.0, 0.0, -1.0]), np.deg2rad(roll))
    return rot_y(np.deg2rad(yaw)) @ r_pitch @ r_roll


def _add_channels(
    angles: np.ndarray, root: np.ndarray, channels: tuple[Channel, ...], s: np.ndarray,
    scale: float | np.ndarray, extra_cycles: int,
) -> None:
    """Add the channels' values over s (T,) into angles (T, 25, 3) and root (T, 6), in place."""
    for ch in channels:
        value = ch.amount * scale * ch.curve(s, extra_cycles)
        if ch.joint < 0:
            root[:, ch.dof] += value
        else:
            angles[:, ch.joint, ch.dof] += value


def _finish(angles: np.ndarray, root: np.ndarray, rng: np.random.Generator) -> Animation:
    """Add a slow wobble of a few degrees to every joint and build the root motion."""
    t = angles.shape[0]
    freq = rng.uniform(0.3, 1.5, (NUM_JOINTS, 3)) * 2 * np.pi / 90.0  # 0.3-1.5 cycles in 3 s
    phase = rng.uniform(0, 2 * np.pi, (NUM_JOINTS, 3))
    amp = rng.uniform(0.5, 3.0, (NUM_JOINTS, 3))
    angles += amp * np.sin(freq * np.arange(t)[:, None, None] + phase)
    root_rot = _root_rotation(root[:, 3], root[:, 4], root[:, 5])
    shift = np.stack([root[:, 1], root[:, 2], -root[:, 0]], axis=1)  # fwd is -z
    return Animation(angles, root_rot, shift)


def animate(
    channels: tuple[Channel, ...],
    s: np.ndarray,
    posture: np.ndarray,
    amplitude: float,
    rng: np.random.Generator,
) -> Animation:
    """Evaluate channels over normalised action time s (T,) for one body.

    posture: (25, 3) resting angles, degrees; amplitude: scale of all channel amounts.
    rng adds the idiosyncrasies: a little wobble on every joint, a cycle more or less.
    """
    t = s.shape[0]
    angles = np.broadcast_to(posture, (t, NUM_JOINTS, 3)).copy()
    root = np.zeros((t, len(ROOT_DOFS)))
    _add_channels(angles, root, channels, s, amplitude, int(rng.integers(-1, 2)))
    return _finish(angles, root, rng)


def animate_sequence(
    actions: list[tuple[tuple[Channel, ...], int, int]],
    t: int,
    posture: np.ndarray,
    amplitude: float,
    rng: np.random.Generator,
    settle: int = 30,
) -> Animation:
    """One body over a long video of t frames holding several actions with idle gaps.

    actions: (channels, first frame, frames) each, 0-based. A motion that ends away from
    the rest pose (sitting down, a step aside) settles back over `settle` frames after
    its action, and one that starts away from it gets there over `settle` frames before.
    """
    angles = np.broadcast_to(posture, (t, NUM_JOINTS, 3)).copy()
    root = np.zeros((t, len(ROOT_DOFS)))
    for channels, first, frames in actions:
        lo, hi = max(first - settle, 0), min(first + frames + settle, t)
        if hi <= lo or frames < 2:
            continue
        k = np.arange(lo, hi)
        s = np.clip((k - first) / (frames - 1), 0.0, 1.0)
        fade = np.clip(1 - np.maximum(first - k, k - (first + frames - 1)) / settle, 0.0, 1.0)
        scale = amplitude * math.exp(rng.normal(0, 0.07)) * fade
        _add_channels(angles[lo:hi], root[lo:hi], channels, s, scale, int(rng.integers(-1, 2)))
    return _finish(angles, root, rng)
