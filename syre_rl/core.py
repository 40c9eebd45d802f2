"""syre: remove parameter symmetries with a static random bias (Ziyin, Xu & Chuang, ICLR 2025).

The paper trains ``L(theta + theta0) + gamma * theta^T D theta`` with ``theta0`` a fixed small random vector.
With ``w = theta + theta0`` this is weight decay toward a fixed random anchor, ``L(w) + gamma/2 (w - theta0)^T D
(w - theta0)`` (torch's ``weight_decay`` convention). The map is a translation, so gradients and every optimizer
state are identical step for step. This module implements the anchor form: parameter names and the forward pass
stay untouched, and any ``torch.optim.Optimizer`` applies it through its step hooks.

This module imports only torch and the standard library.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import math
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

__all__ = ["ANCHOR_SCALES", "ANCHOR_STORAGES", "MODES", "Syre", "SyreConfig"]

Mode = Literal["coupled", "decoupled"]
AnchorScale = Literal["init", "fan_in", "absolute"]
AnchorStorage = Literal["tensor", "seed"]
MODES: tuple[str, ...] = get_args(Mode)
ANCHOR_SCALES: tuple[str, ...] = get_args(AnchorScale)
ANCHOR_STORAGES: tuple[str, ...] = get_args(AnchorStorage)
MAX_SEED = 2**62  # anchor seeds are drawn below this

# Optimizer -> ids of the parameters some attached Syre already decays, so that two Syre never act on one tensor.
_ATTACHED: weakref.WeakKeyDictionary[torch.optim.Optimizer, set[int]] = weakref.WeakKeyDictionary()


def _finite_non_negative(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def patterns(name: str, value: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Glob patterns as a tuple (``None`` stays ``None``: no patterns given); ValueError naming ``name``."""
    if value is None:
        return None
    if not isinstance(value, (str, Iterable)):
        raise ValueError(f"{name} must be a glob pattern or a non-empty list of them, got {value!r}")
    found = (value,) if isinstance(value, str) else tuple(value)
    if not found or not all(isinstance(p, str) and p for p in found):
        raise ValueError(f"{name} must be a glob pattern or a non-empty list of them, got {value!r}")
    return found


def matches(name: str, include: tuple[str, ...] | None, exclude: tuple[str, ...] | None) -> bool:
    """Whether parameter ``name`` is selected: it matches an ``include`` pattern (any name when ``None``) and no
    ``exclude`` pattern."""
    if include is not None and not any(fnmatch.fnmatchcase(name, p) for p in include):
        return False
    return not (exclude and any(fnmatch.fnmatchcase(name, p) for p in exclude))


def first_non_finite(named: Iterable[tuple[str, Any]]) -> str | None:
    """The name of the first floating-point tensor that holds a NaN or an infinity (what a divergence check
    names), or None."""
    for name, tensor in named:
        if isinstance(tensor, Tensor) and tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            return name
    return None


def shape_mismatches(state_dict: Mapping[str, Any], own: Mapping[str, Any], prefix: str = "") -> list[str]:
    """torch's "size mismatch" messages for every tensor of ``state_dict`` whose shape differs from ``own``'s
    (keys of ``own`` without ``prefix``): checked before anything is copied, so a failed load changes nothing."""
    return [
        f"size mismatch for {prefix}{key}: copying a param with shape {tuple(state_dict[prefix + key].shape)} "
        f"from checkpoint, the shape in current model is {tuple(tensor.shape)}."
        for key, tensor in own.items()
        if isinstance(tensor, Tensor)
        and isinstance(state_dict.get(prefix + key), Tensor)
        and state_dict[prefix + key].shape != tensor.shape
    ]


def draw_seed() -> int:
    """A seed from torch's global generator (so ``torch.manual_seed`` fixes it); advances the generator."""
    return int(torch.randint(0, MAX_SEED, (1,)).item())


def peek_seed() -> int:
    """A seed from torch's global generator that leaves the generator where it was, so that building a method
    changes nothing a run draws afterwards (``torch.manual_seed`` still fixes the seed)."""
    with torch.random.fork_rng(devices=[]):
        return draw_seed()


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class SyreConfig:
    """Every setting of :class:`Syre`, each with its one default, validated once here.

    The defaults are the project's: decoupled decay (like AdamW: ``w`` moves toward its anchor by ``lr * gamma`` of
    the distance per step) toward anchors as large as each tensor's own initial spread (so SB3's small-gain output
    heads keep small anchors). Chosen by evidence (docs/results/rl/vec-pendulum): the syre paper's PPO setting
    (coupled 0.002 toward anchors of std 0.01 / sqrt(fan_in)) stopped PPO from learning there and cost half the
    main job's return; gamma 1.0 kept a little more plasticity (not significant over 5 seeds) but cost return on the
    main job; 0.1 and 0.01 do no harm that 5 seeds measure, on the fast task's first regime and on the Ant main job
    (docs/results/rl/main-job); 0.1 acts more.

    Build a changed copy with :func:`dataclasses.replace` (validated again). Each field's ``metadata["help"]`` is its
    command-line help (:func:`syre_rl.flags.add_dataclass_flags`).
    """

    gamma: float = field(
        default=0.1,
        metadata=_help(
            "syre's decay strength toward the anchors (torch's weight_decay convention: penalty "
            "gamma/2 ||w - theta0||^2; not an RL discount)"
        ),
    )
    sigma0: float = field(
        default=1.0,
        metadata=_help(
            "anchor scale: the anchor std is sigma0 times the unit anchor_scale names (each tensor's initial "
            "std for init, 1/sqrt(fan_in) for fan_in, 1 for absolute)"
        ),
    )
    anchor_scale: AnchorScale = field(
        default="init",
        metadata=_help(
            "what sigma0 is relative to: init (each tensor's initial std, when syre is built; a tensor with no spread, such "
            "as a zero bias, falls back to fan_in), fan_in (1/sqrt(fan_in)) or absolute"
        ),
    )
    spread: float = field(
        default=0.0,
        metadata=_help(
            "when > 0, a random diagonal D ~ U(1 - spread, 1 + spread) weights the decay; in [0, 1)"
        ),
    )
    mode: Mode = field(
        default="decoupled",
        metadata=_help(
            "coupled: grad += gamma D (w - theta0) before the step (like Adam's weight_decay); decoupled: "
            "w moves toward theta0 by lr gamma D in the step (like AdamW)"
        ),
    )
    anchor_storage: AnchorStorage = field(
        default="tensor",
        metadata=_help(
            "tensor: anchors kept as buffers; seed: regenerated from a per-tensor seed at every step (no extra "
            "memory, identical values)"
        ),
    )
    seed: int | None = field(
        default=None,
        metadata=_help("base seed of the anchors; none: drawn from torch's global generator", flag=False),
    )
    include: tuple[str, ...] | None = field(
        default=None,
        metadata=_help("glob patterns of parameter names to decay; none: every trainable floating tensor"),
    )
    exclude: tuple[str, ...] | None = field(
        default=None,
        metadata=_help(
            "glob patterns of parameter names to leave alone (the methods and policies also leave SB3's log_std alone)"
        ),
    )
    init_offset: bool = field(
        default=False,
        metadata=_help(
            "add theta0 to the weights when syre is built, so training starts where f(theta + theta0) does"
        ),
    )

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the values once, here
        for name in ("gamma", "sigma0"):
            set_(self, name, _finite_non_negative(name, getattr(self, name)))
        try:
            spread_ok = 0.0 <= float(self.spread) < 1.0
        except (TypeError, ValueError):
            spread_ok = False
        if not spread_ok:
            raise ValueError(f"spread must be a number in [0, 1), got {self.spread!r}")
        set_(self, "spread", float(self.spread))
        _choice("mode", self.mode, MODES)
        _choice("anchor_scale", self.anchor_scale, ANCHOR_SCALES)
        _choice("anchor_storage", self.anchor_storage, ANCHOR_STORAGES)
        seed = self.seed
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        set_(self, "include", patterns("include", self.include))
        set_(self, "exclude", patterns("exclude", self.exclude))
        if not isinstance(self.init_offset, bool):
            raise ValueError(f"init_offset must be true or false, got {self.init_offset!r}")

    @classmethod
    def settings(cls) -> tuple[str, ...]:
        """The field names: what a preset's ``syre`` group or ``syre_kwargs`` may hold."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_mapping(
        cls, values: SyreConfig | Mapping[str, Any] | None, base: SyreConfig | None = None
    ) -> SyreConfig:
        """``values`` (a config, or some settings over ``base``, default :class:`SyreConfig()`) as a config;
        ValueError naming unknown keys."""
        if isinstance(values, SyreConfig):
            return values
        values = dict(values or {})
        unknown = sorted(set(values) - set(cls.settings()))
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(cls.settings())}"
            )
        return dataclasses.replace(base or cls(), **values)

    def as_kwargs(self) -> dict[str, Any]:
        """The settings as a plain dict (patterns as lists), e.g. for a config file."""
        out = dataclasses.asdict(self)
        for key in ("include", "exclude"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


def _named_tensors(source: nn.Module | Iterable[Any]) -> list[tuple[str, Tensor]]:
    """Accept a module, ``(name, tensor)`` pairs, or bare tensors (named by position)."""
    if isinstance(source, nn.Module):
        return list(source.named_parameters())
    items = list(source)
    if all(isinstance(item, Tensor) for item in items):
        return [(str(i), t) for i, t in enumerate(items)]
    if all(isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], Tensor) for item in items):
        return [(str(n), t) for n, t in items]
    raise ValueError("module_or_named_params must be an nn.Module, (name, tensor) pairs, or tensors")


def _shown(value: tuple[str, ...] | None) -> str:
    """Patterns as a caller wrote them: one pattern as a string."""
    return repr(value[0] if value is not None and len(value) == 1 else list(value) if value else value)


def _fan_in(name: str, tensor: Tensor, shapes: Mapping[str, torch.Size]) -> int:
    """torch's fan-in (``shape[1] * receptive field``); a bias takes its layer's weight's fan-in.

    A 1-D tensor with no matrix-shaped ``weight`` beside it (a norm's scale, SB3's ``log_std``) has fan-in 1.
    """
    if tensor.dim() >= 2:
        return tensor.shape[1] * math.prod(tensor.shape[2:])
    prefix = name.rsplit(".", 1)[0] + "." if "." in name else ""
    sibling = shapes.get(prefix + "weight")
    if sibling is not None and len(sibling) >= 2:
        return sibling[1] * math.prod(sibling[2:])
    return 1


def _tensor_seed(seed: int, name: str) -> int:
    """A per-tensor seed from the base seed and the parameter's name: stable across runs and processes."""
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _buffer_key(kind: str, name: str) -> str:
    # Buffer names may not contain dots; parameter names never contain "/".
    return f"{kind}/{name.replace('.', '/')}"


# A CPU decay step is memory-bound, and the coupled form makes two passes over the gradient. Cut into blocks that
# stay in cache, both passes run on one block before the next is read, so the second pass reads the gradient
# from cache instead of memory. 2**20 float32 elements are 4 MiB per tensor: a block's three or four tensors fit
# a 32 MiB L3, and a 10M-weight model takes about ten blocks (ten Python-level calls per pass). Measured on a
# shared 2-core VM: about a tenth off the coupled hook; 2**17-element blocks no better
# (docs/results/bench/core-variants.txt, core-cpu.txt).
BLOCK_ELEMENTS = 1 << 20

# Per parameter group: blocks, each a list of (tensor index, start, stop) over flattened tensors; None: one block
# of whole tensors (accelerators, where a kernel launch per block would cost more than it saves).
_Plan = list[list[tuple[int, int, int]]] | None


def _plan(lists: list[list[Tensor]]) -> _Plan:
    """Cut parallel lists of same-shaped tensors into blocks of about :data:`BLOCK_ELEMENTS` elements.

    Small tensors share a block whole; a tensor larger than a block is cut into contiguous slices (only when it is
    contiguous in every list). A model that fits in one block gets ``None``: the plain whole-list passes.
    """
    first = lists[0]
    total = sum(t.numel() for t in first)
    if not first or first[0].device.type != "cpu" or total <= BLOCK_ELEMENTS:
        return None
    blocks: list[list[tuple[int, int, int]]] = [[]]
    fill = 0
    for k, tensor in enumerate(first):
        n = tensor.numel()
        cuttable = all(len(ts) <= k or ts[k].is_contiguous() for ts in lists)
        step = BLOCK_ELEMENTS if cuttable else n
        for start in range(0, n, step):
            size = min(step, n - start)
            if fill and fill + size > BLOCK_ELEMENTS:
                blocks.append([])
                fill = 0
            blocks[-1].append((k, start, start + size))
            fill += size
    return blocks


def _blocks(plan: _Plan, *lists: list[Tensor]) -> list[tuple[list[Tensor], ...]]:
    """The tensors of ``lists`` cut as ``plan`` says: one tuple of lists per block (empty lists stay empty).

    One block of whole tensors when ``plan`` is ``None``, or when a gradient that the plan cuts is laid out
    unlike its parameter (not contiguous: it cannot be flattened).
    """
    if plan is None:
        return [lists]
    try:
        flat = [[t.view(-1) if t.numel() > BLOCK_ELEMENTS else t for t in ts] for ts in lists]
    except RuntimeError:
        return [lists]
    return [
        tuple(
            [ts[k] if b - a == ts[k].numel() else fs[k][a:b] for k, a, b in block] if ts else []
            for ts, fs in zip(lists, flat)
        )
        for block in plan
    ]


def _select(
    module_or_named_params: nn.Module | Iterable[Any],
    include: tuple[str, ...] | None,
    exclude: tuple[str, ...] | None,
) -> tuple[list[tuple[str, Tensor]], dict[str, torch.Size]]:
    """The trainable floating-point tensors the patterns select (an error naming the candidates if none),
    and every tensor's shape (the fan-in rule of a bias reads its weight's)."""
    named = _named_tensors(module_or_named_params)
    shapes = {n: t.shape for n, t in named}
    selected = [
        (n, t) for n, t in named if t.requires_grad and t.is_floating_point() and matches(n, include, exclude)
    ]
    if not selected:
        raise ValueError(
            f"include={_shown(include)} / exclude={_shown(exclude)} selected no trainable floating-point parameters "
            f"among: {', '.join(shapes) or '(none)'}"
        )
    return selected, shapes


def _check_fan_in(fan_in: Mapping[str, int] | None, names: list[str]) -> dict[str, int]:
    """Given fan-ins must name selected parameters and be positive integers."""
    fan_in = dict(fan_in or {})
    unknown = sorted(set(fan_in) - set(names))
    if unknown:
        raise ValueError(f"fan_in names parameters that are not selected: {', '.join(unknown)}")
    for name, value in fan_in.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"fan_in[{name!r}] must be a positive integer, got {value!r}")
    return fan_in


class Syre(nn.Module):
    """Weight decay toward a fixed random anchor: the anchor form of syre, for any model and optimizer.

    Being an ``nn.Module`` whose buffers are the anchors, it travels with a model it is a submodule of:
    ``state_dict`` saves the anchors (tensors only; the settings are constructor arguments), ``.to(device)`` moves
    them, and ``load_state_dict`` follows torch's ``strict`` contract. It holds references to the model's
    parameters without registering them, so ``syre.parameters()`` is empty. A copy is detached (see
    :meth:`__getstate__`).

    :param module_or_named_params: the model, or ``(name, tensor)`` pairs, or tensors.
    :param config: the settings (:class:`SyreConfig`, whose fields document them); default ``SyreConfig()``.
    :param settings: single settings over ``config`` (``Syre(model, gamma=0.5, mode="coupled")``).
    :param fan_in: fan-in per parameter name, for layouts torch's convention does not cover (stacked ensembles).
    :param anchors: given anchors (name -> tensor, copied; names not selected are ignored) instead of random ones,
        for decay toward a chosen point (the initial weights for L2-Init); ``sigma0`` and ``anchor_scale`` are
        then unused.
    :param diagonals: a given non-negative ``D`` (name -> tensor of the parameter's shape) instead of a random
        one, e.g. per-member decay strengths of a stacked ensemble; excludes ``spread``.
    """

    def __init__(
        self,
        module_or_named_params: nn.Module | Iterable[Any],
        config: SyreConfig | None = None,
        *,
        fan_in: Mapping[str, int] | None = None,
        anchors: Mapping[str, Tensor] | None = None,
        diagonals: Mapping[str, Tensor] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__()
        if config is not None and not isinstance(config, SyreConfig):
            raise TypeError(f"config must be a SyreConfig, got {type(config).__name__}")
        config = (
            dataclasses.replace(config or SyreConfig(), **settings) if settings else config or SyreConfig()
        )
        seed = config.seed if config.seed is not None else draw_seed()
        self.config = dataclasses.replace(config, seed=seed) if config.seed is None else config
        self.gamma, self.sigma0, self.spread = config.gamma, config.sigma0, config.spread
        if diagonals is not None and self.spread > 0:
            raise ValueError("give spread (a random D) or diagonals (a given D), not both")
        self._has_diag = self.spread > 0 or diagonals is not None
        self.mode, self.anchor_scale, self.anchor_storage = (
            config.mode,
            config.anchor_scale,
            config.anchor_storage,
        )
        self.seed = seed
        selected, shapes = _select(module_or_named_params, config.include, config.exclude)
        self._names = [n for n, _ in selected]
        self._params = [t for _, t in selected]
        self._stds = self._anchor_stds(selected, shapes, _check_fan_in(fan_in, self._names))
        self._seeds = [_tensor_seed(self.seed, n) for n in self._names]
        given = self._check_given("anchors", anchors) if anchors is not None else None
        given_diags = self._check_given("diagonals", diagonals) if diagonals is not None else None
        if given_diags is not None and not all(
            bool(torch.isfinite(d).all() and (d >= 0).all()) for d in given_diags.values()
        ):
            raise ValueError("diagonals must be finite and non-negative")
        self._register_anchors(given, given_diags)
        self._given_anchors = given is not None
        self._optimizer: weakref.ref[torch.optim.Optimizer] | None = None
        self._handles: list[Any] = []
        self._groups: list[tuple[dict[str, Any], list[int]]] = []
        self._step_lists: (
            list[tuple[dict[str, Any], list[int], list[Tensor], list[Tensor], list[Tensor], _Plan]] | None
        ) = None
        if config.init_offset:
            self.init_offset()

    def _anchor_stds(
        self, selected: list[tuple[str, Tensor]], shapes: dict[str, torch.Size], fan_in: dict[str, int]
    ) -> list[float]:
        """Each selected tensor's anchor std: ``sigma0`` times the unit :attr:`anchor_scale` names."""
        stds = [
            self.sigma0 / math.sqrt(fan_in.get(n, _fan_in(n, t, shapes)))
            if self.anchor_scale != "absolute"
            else self.sigma0
            for n, t in selected
        ]
        if self.anchor_scale == "init":  # relative to each tensor's own spread at construction
            spreads = [float(t.detach().double().std()) if t.numel() > 1 else 0.0 for _, t in selected]
            stds = [self.sigma0 * sp if sp > 0 else std for sp, std in zip(spreads, stds)]
        if any(not std * 10 < torch.finfo(p.dtype).max for (_, p), std in zip(selected, stds)):
            raise ValueError(f"sigma0={self.sigma0!r} is too large: the anchors would not be finite")
        return stds

    def _register_anchors(
        self, given: Mapping[str, Tensor] | None, given_diags: Mapping[str, Tensor] | None
    ) -> None:
        """The anchors (and diagonals) as buffers, drawn or given; with seed storage, only the seed."""
        if self.anchor_storage != "tensor":  # the seed regenerates every anchor: it is the state that must travel
            self.register_buffer("anchor_seed", torch.tensor(self.seed, dtype=torch.int64))
            return
        for name, param, std, tensor_seed in zip(self._names, self._params, self._stds, self._seeds):
            anchor, diag = self._draw(param, std, tensor_seed)
            if given is not None:
                anchor = given[name].detach().to(param.device, param.dtype, copy=True)
            self.register_buffer(_buffer_key("theta0", name), anchor)
            if given_diags is not None:
                diag = given_diags[name].detach().to(param.device, param.dtype, copy=True)
            if diag is not None:
                self.register_buffer(_buffer_key("D", name), diag)

    # ----------------------------------------------------------------------------------------- anchors
    def _check_given(self, what: str, tensors: Mapping[str, Tensor]) -> Mapping[str, Tensor]:
        """Given anchors or diagonals must cover the selection with the parameters' shapes."""
        if self.anchor_storage != "tensor":
            raise ValueError(
                f"{what} can only be given with anchor_storage='tensor' (seeds cannot regenerate them)"
            )
        missing = sorted(set(self._names) - set(tensors))
        if missing:
            raise ValueError(f"{what} must hold every selected parameter; missing: {', '.join(missing)}")
        for name, param in zip(self._names, self._params):
            if tuple(tensors[name].shape) != tuple(param.shape):
                raise ValueError(
                    f"{what}[{name!r}] has shape {tuple(tensors[name].shape)}, the parameter {tuple(param.shape)}"
                )
        return tensors

    def _draw(self, param: Tensor, std: float, tensor_seed: int) -> tuple[Tensor, Tensor | None]:
        """Draw one tensor's anchor (and diagonal) from its own seed: the same numbers on every call."""
        gen = torch.Generator(device=param.device).manual_seed(tensor_seed)
        anchor = torch.randn(param.shape, generator=gen, device=param.device, dtype=param.dtype).mul_(std)
        if self.spread == 0:
            return anchor, None
        diag = torch.rand(param.shape, generator=gen, device=param.device, dtype=param.dtype)
        return anchor, diag.mul_(2 * self.spread).add_(1 - self.spread)

    def _anchor(self, i: int) -> tuple[Tensor, Tensor | None]:
        if self.anchor_storage == "seed":
            return self._draw(self._params[i], self._stds[i], self._seeds[i])
        name = self._names[i]
        diag = getattr(self, _buffer_key("D", name)) if self._has_diag else None
        return getattr(self, _buffer_key("theta0", name)), diag

    @property
    def anchors(self) -> dict[str, Tensor]:
        """Parameter name -> anchor ``theta0``."""
        return {name: self._anchor(i)[0] for i, name in enumerate(self._names)}

    @property
    def diagonals(self) -> dict[str, Tensor] | None:
        """Parameter name -> ``D`` (``None`` when no diagonal is used)."""
        if not self._has_diag:
            return None
        return {name: self._anchor(i)[1] for i, name in enumerate(self._names)}  # type: ignore[misc]

    @property
    def param_names(self) -> list[str]:
        """Names of the decayed parameters, in order."""
        return list(self._names)

    @torch.no_grad()
    def init_offset(self) -> None:
        """Add ``theta0`` to the weights, so the anchor form starts exactly where ``f(theta + theta0)`` starts."""
        for i, param in enumerate(self._params):
            param.add_(self._anchor(i)[0])

    def penalty(self) -> Tensor:
        """``gamma/2 * sum D (w - theta0)^2``, differentiable, for those who add it to the loss themselves."""
        total = self._params[0].new_zeros(())
        for i, param in enumerate(self._params):
            anchor, diag = self._anchor(i)
            sq = (param - anchor).square()
            total = total + (sq.mul(diag) if diag is not None else sq).sum()
        return total * (self.gamma / 2)

    def summary(self) -> dict[str, float | int | str]:
        """What a run log should say about the anchors: how many, how large, which settings."""
        numel = sum(p.numel() for p in self._params)
        stds = self._stds
        if self._given_anchors:  # given (or since loaded) anchors: their own spread, not a drawing scale
            stds = [float(a.double().std()) if a.numel() > 1 else 0.0 for a in self.anchors.values()]
        return {
            "count": len(self._params),
            "numel": numel,
            "mean_std": sum(s * p.numel() for s, p in zip(stds, self._params)) / numel,
            "max_std": max(stds),
            **self._config(),
        }

    def _config(self) -> dict[str, Any]:
        return {
            "gamma": self.gamma,
            "sigma0": self.sigma0,
            "spread": self.spread,
            "diagonal": self._has_diag,
            "mode": self.mode,
            "anchor_scale": self.anchor_scale,
            "anchor_storage": self.anchor_storage,
            "seed": self.seed,
        }

    def extra_repr(self) -> str:
        return (
            f"tensors={len(self._params)}, gamma={self.gamma}, sigma0={self.sigma0}, spread={self.spread}, "
            f"mode={self.mode!r}, anchor_storage={self.anchor_storage!r}"
        )

    # ------------------------------------------------------------------------------------ optimizer
    def attach(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Make ``optimizer`` apply syre inside every ``step()`` from now on; returns the optimizer."""
        if self._handles:
            raise ValueError("this Syre is already attached to an optimizer; call detach() first")
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [n for n, p in zip(self._names, self._params) if id(p) not in held]
        if missing:
            raise ValueError(f"the optimizer does not hold the selected parameters: {', '.join(missing)}")
        taken = _ATTACHED.setdefault(optimizer, set())
        mine = {id(p) for p in self._params}
        if taken & mine:
            raise ValueError(
                "the optimizer already decays some of these parameters toward an anchor (a Syre, or L2/L2-Init "
                "built on it, is attached for them): attached twice"
            )
        taken |= mine
        self._optimizer = weakref.ref(optimizer)
        self._index_groups(optimizer)
        # Optimizer.load_state_dict (SB3's load, a resumed run) replaces the param-group dicts whose lr we read.
        self._handles = [
            optimizer.register_step_pre_hook(self._pre_step),
            optimizer.register_load_state_dict_post_hook(self._index_groups),
        ]
        return optimizer

    def detach(self) -> None:
        """Stop applying syre; the optimizer behaves as if it had never been attached."""
        if not self._handles:
            return
        for handle in self._handles:
            handle.remove()
        self._handles = []
        optimizer = self._optimizer() if self._optimizer is not None else None
        if optimizer is not None and optimizer in _ATTACHED:
            _ATTACHED[optimizer] -= {id(p) for p in self._params}
        self._optimizer = None
        self._groups = []
        self._step_lists = None

    def _index_groups(self, optimizer: torch.optim.Optimizer) -> None:
        """Which of our tensors sit in which parameter group (the group's lr applies in decoupled mode)."""
        position = {id(p): i for i, p in enumerate(self._params)}
        self._groups = []
        for group in optimizer.param_groups:
            idx = [position[id(p)] for p in group["params"] if id(p) in position]
            if idx:
                self._groups.append((group, idx))
        self._n_groups = len(optimizer.param_groups)
        self._step_lists = None

    def _apply(self, fn: Any, recurse: bool = True) -> Syre:
        # .to()/.double() replace the buffer tensors: the per-step lists must be rebuilt from the new ones.
        self._step_lists = None
        return super()._apply(fn, recurse)

    def _lists(
        self,
    ) -> list[tuple[dict[str, Any], list[int], list[Tensor], list[Tensor], list[Tensor], _Plan]]:
        """Per parameter group: our indices, params, anchors, diagonals and block plan, built once so a step
        does no lookups."""
        if self._step_lists is None:
            self._step_lists = []
            for group, idx in self._groups:
                params = [self._params[i] for i in idx]
                pairs = [self._anchor(i) for i in idx] if self.anchor_storage == "tensor" else []
                anchors, diags = [a for a, _ in pairs], [d for _, d in pairs if d is not None]
                self._step_lists.append((group, idx, params, anchors, diags, _plan([params, anchors, diags])))
        return self._step_lists

    @torch.no_grad()
    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.gamma == 0:  # no decay: leave the step exactly as the plain optimizer's
            return
        if len(optimizer.param_groups) != self._n_groups:  # add_param_group was called since attach
            self._index_groups(optimizer)
        for group, idx, params, anchors, diags, plan in self._lists():
            if any(p.grad is None for p in params):
                # Like torch's optimizers, a parameter without a gradient is left alone (no decay either).
                keep = [k for k, p in enumerate(params) if p.grad is not None]
                idx, params = [idx[k] for k in keep], [params[k] for k in keep]
                anchors, diags = [anchors[k] for k in keep if anchors], [diags[k] for k in keep if diags]
                if not params:
                    continue
                plan = None
            if self.anchor_storage == "seed":
                self._regenerated_step(idx, float(group["lr"]))
            elif self.mode == "coupled":
                self._coupled(params, anchors, diags, plan)
            else:
                self._decoupled(params, anchors, diags, float(group["lr"]), plan)

    def _coupled(
        self, params: list[Tensor], anchors: list[Tensor], diags: list[Tensor], plan: _Plan = None
    ) -> None:
        """``grad += gamma D (w - theta0)`` as two in-place passes with no temporary, block by block."""
        grads = [p.grad for p in params]
        for g, w, a, d in _blocks(plan, grads, params, anchors, diags):
            if not self._has_diag:
                torch._foreach_add_(g, w, alpha=self.gamma)
                torch._foreach_add_(g, a, alpha=-self.gamma)
            else:
                torch._foreach_addcmul_(g, d, w, value=self.gamma)
                torch._foreach_addcmul_(g, d, a, value=-self.gamma)

    def _decoupled(
        self,
        params: list[Tensor],
        anchors: list[Tensor],
        diags: list[Tensor],
        lr: float,
        plan: _Plan = None,
    ) -> None:
        """``w -= lr gamma D (w - theta0)``: one ``lerp_`` pass toward the anchor (two passes with ``D``, block by
        block)."""
        rate = lr * self.gamma
        if not self._has_diag:
            torch._foreach_lerp_(params, anchors, rate)
            return
        for w, a, d in _blocks(plan, params, anchors, diags):
            torch._foreach_addcmul_(w, d, w, value=-rate)
            torch._foreach_addcmul_(w, d, a, value=rate)

    def _regenerated_step(self, idx: list[int], lr: float) -> None:
        """Seed storage: draw each anchor again (one tensor at a time, so memory stays at one tensor's size)."""
        for i in idx:
            anchor, diag = self._anchor(i)
            diags = [diag] if diag is not None else []
            if self.mode == "coupled":
                self._coupled([self._params[i]], [anchor], diags)
            else:
                self._decoupled([self._params[i]], [anchor], diags, lr)

    # ---------------------------------------------------------------------------------------- state
    # The state dict holds tensors only: the anchors and diagonals (tensor storage) or the base seed as a 0-d int64
    # tensor (seed storage). Settings (gamma, sigma0, mode, selection, ...) are constructor arguments: build the
    # Syre the same way, then load. Missing, unexpected and mis-shaped entries are torch's own load errors.

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Check every shape first, so that a mismatch leaves all of this Syre's tensors as they were.
        mismatched = shape_mismatches(state_dict, self._buffers, prefix)
        if mismatched:
            error_msgs.extend(mismatched)
            return
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if self.anchor_storage == "seed" and prefix + "anchor_seed" in state_dict:
            self._set_seed(int(self.anchor_seed))

    def _set_seed(self, seed: int) -> None:
        self.seed = seed
        self._seeds = [_tensor_seed(seed, n) for n in self._names]
        self._step_lists = None

    # ------------------------------------------------------------------------------------------ copies
    def __getstate__(self) -> dict[str, Any]:
        """A copy (``copy.deepcopy``, pickle) is detached: torch's optimizers do not copy their step hooks, so the
        copy's optimizer (if any) would not call it. Whoever owns the copy attaches it again (the SB3 policies
        here do so for their copied optimizers)."""
        state = dict(super().__getstate__())
        state.update(_optimizer=None, _handles=[], _groups=[], _step_lists=None)
        return state
