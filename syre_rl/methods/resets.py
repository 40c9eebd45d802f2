"""Methods that give chosen hidden units a fresh start: ReDo (dormant units) and CBP (low-utility units).

Both read the activations of the model's own training forward pass (forward hooks on the activation modules)
and act in an optimizer step post-hook, so a training loop that only calls ``optimizer.step()`` runs them
unchanged. A reset unit gets new in-weights drawn at the scale of its layer's initialisation, a zero bias and zero
out-weights (so the network's output does not jump), and the optimizer's per-element state of those entries is
cleared; with Adam or AdamW, the reset entries then step as a fresh Adam would (:class:`AdamResetClock`).

Layers are plain (``nn.Linear``: weight ``[out, in]``) or stacked (a module with ``stacked = True`` and weight
``[members, in, out]``, bias ``[members, 1, out]``, see :mod:`syre_rl.supervised.ensemble`). Every member of a
stacked layer has its own utilities, ages, counters and random generator, so it is reset exactly as the same
method would reset that member trained alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from syre_rl.methods.base import SeededMethod
from syre_rl.methods.regularizers import L2
from syre_rl.plasticity.activations import HiddenLayer, hidden_layers
from syre_rl.plasticity.metrics import dormant_mask

__all__ = ["CBP", "AdamResetClock", "ReDo", "in_view", "out_view"]

INITS = ("uniform", "normal")


def _stacked(module: nn.Module) -> bool:
    return bool(getattr(module, "stacked", False))


def in_view(module: nn.Module, t: Tensor, bias: bool = False) -> Tensor:
    """A layer's weight-shaped tensor as ``[members, units, in]`` (its bias-shaped one as ``[members, units]``),
    a view: unit ``u`` of member ``e`` is row ``[e, u]``. A plain layer is one member."""
    if _stacked(module):
        return t.squeeze(1) if bias else t.transpose(1, 2)
    return t.unsqueeze(0)


def out_view(module: nn.Module, t: Tensor, bias: bool = False) -> Tensor:
    """A reader's weight-shaped tensor as ``[members, units, out]`` (its bias-shaped one as ``[members, out]``),
    a view: what reads unit ``u`` of member ``e`` is row ``[e, u]``."""
    if _stacked(module):
        return t.squeeze(1) if bias else t
    return t.unsqueeze(0) if bias else t.T.unsqueeze(0)


def _acts_view(module: nn.Module, t: Tensor) -> Tensor:
    """Activations as ``[members, rows, units]``."""
    return t if _stacked(module) else t.reshape(1, -1, t.shape[-1])


def _flat_rows(param: Tensor, rows: Tensor, units: Tensor) -> Tensor:
    """Flat indices into the contiguous ``param`` of rows ``units`` of ``rows``, a view of it (``[units, width]`` or
    ``[units]``), from the view's strides: no tensor of the parameter's size is made."""
    if not param.is_contiguous():
        raise ValueError("unit resets need contiguous parameters")
    offset = rows.storage_offset() - param.storage_offset()
    flat = offset + units.to(torch.long) * rows.stride(0)
    if rows.dim() == 2:
        columns = torch.arange(rows.shape[1], device=units.device) * rows.stride(1)
        flat = (flat[:, None] + columns[None, :]).reshape(-1)
    return flat


class AdamResetClock:
    """Per-element Adam step counts for reset entries (as Dohare et al.'s ``AdamGnT``), on torch's Adam/AdamW.

    torch keeps one ``step`` per tensor, so after a reset the zeroed moments would be bias-corrected with the
    tensor's step ``t`` instead of the entry's own count ``k``: at ``t = 1000`` the first update of a reset entry is
    2.5 x lr with betas (0.9, 0.999) and 0.1 x lr with (0.99, 0.99). This clock remembers the step at which each
    entry was reset and, after every optimizer step, replaces torch's update of those entries by a fresh Adam's:
    ``lr m / (1 - b1^k) / (sqrt(v / (1 - b2^k)) + eps)`` with ``k = t - t_reset``. Only the reset entries are
    touched (a gather and a scatter of them), and an entry is dropped once both ``b^k`` are below
    :attr:`TOLERANCE`, where the two updates agree to that relative precision. Entries never reset are left
    exactly as torch stepped them. Other optimizers (SGD, ...) need no correction: nothing happens.
    """

    TOLERANCE = 1e-7

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
        # param index -> (flat indices of the tracked entries, possibly repeated; each entry's last reset step,
        # a tensor of the parameter's shape). Appending and correcting never wait for the device; pruning does,
        # once every PRUNE_EVERY steps.
        self.entries: dict[int, tuple[Tensor, Tensor]] = {}
        self._steps_since_prune = 0
        self._tables: dict[tuple[float, float, torch.device], tuple[Tensor, Tensor]] = {}

    PRUNE_EVERY = 100

    @staticmethod
    def applies(optimizer: torch.optim.Optimizer) -> bool:
        return isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)) and not any(
            group.get("amsgrad") for group in optimizer.param_groups
        )

    def _group(self, optimizer: torch.optim.Optimizer, param: Tensor) -> dict[str, Any]:
        return next(g for g in optimizer.param_groups if any(p is param for p in g["params"]))

    def _horizon(self, optimizer: torch.optim.Optimizer, param: Tensor) -> float:
        """Own step counts from which torch's bias correction equals a fresh one's to :attr:`TOLERANCE`."""
        beta = max(self._group(optimizer, param)["betas"])
        return math.log(self.TOLERANCE) / math.log(beta) if 0 < beta < 1 else 1.0

    @torch.no_grad()
    def mark(self, optimizer: torch.optim.Optimizer, index: int, fresh: Tensor) -> None:
        """Entries of parameter ``index`` (flat indices into it) were reset after this step."""
        param = self.params[index]
        state = optimizer.state.get(param, {})
        if "step" not in state or not self.applies(optimizer):
            return
        step = torch.as_tensor(state["step"], dtype=torch.float32).to(param.device).reshape(1)
        if index in self.entries:
            flat, last = self.entries[index]
            flat = torch.cat([flat, fresh])
        else:
            flat, last = fresh, torch.zeros(param.numel(), dtype=torch.float32, device=param.device)
        last.index_copy_(0, fresh, step.expand(fresh.numel()))  # a re-reset entry restarts its count
        self.entries[index] = (flat, last)

    @torch.no_grad()
    def correct(self, optimizer: torch.optim.Optimizer) -> None:
        """Turn torch's last update of reset entries into a fresh Adam's (call right after ``optimizer.step()``)."""
        if not self.entries or not self.applies(optimizer):
            return
        self._steps_since_prune += 1
        prune = self._steps_since_prune >= self.PRUNE_EVERY
        for index, (flat, last) in list(self.entries.items()):
            param = self.params[index]
            state = optimizer.state.get(param, {})
            if "exp_avg" not in state or flat.numel() == 0:
                continue
            group = self._group(optimizer, param)
            (beta1, beta2), lr, eps = group["betas"], float(group["lr"]), group["eps"]
            step = torch.as_tensor(state["step"], dtype=torch.float32).to(param.device)
            own = (step - last[flat]).clamp_(min=1.0)
            m = state["exp_avg"].reshape(-1)[flat].float()
            v = state["exp_avg_sq"].reshape(-1)[flat].float()
            torch_update = m / (1 - beta1**step) / (v.sqrt() / (1 - beta2**step).sqrt() + eps)
            first, second = self._corrections(beta1, beta2, optimizer, param)
            k = own.long()
            fresh_update = m / first.index_select(0, k) / (v.sqrt() / second.index_select(0, k) + eps)
            corrected = param.view(-1)[flat] + (torch_update - fresh_update).mul_(lr).to(param.dtype)
            param.view(-1).index_copy_(0, flat, corrected)  # a repeated index gets the same value twice
            if prune:
                flat = torch.unique(flat[own < self._horizon(optimizer, param)])
                self.entries[index] = (flat, last)
        if prune:
            self._steps_since_prune = 0

    def _corrections(
        self, beta1: float, beta2: float, optimizer: torch.optim.Optimizer, param: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Tables of ``1 - beta1**k`` and ``sqrt(1 - beta2**k)`` for every own count ``k`` a tracked entry can
        have, made once per betas and device with torch's vectorised float32 ``pow``, instead of two ``pow`` over
        every tracked entry at every step. Each count always gets the same value; computed per entry, torch's
        ``pow`` differed from it in the last bit for about 4 in a million entries (the elements its scalar tail
        loop computes), so runs with CBP or ReDo are not bit-identical to those made before the tables, only
        equal in distribution. An entry is pruned once its count passes the horizon, at most
        :attr:`PRUNE_EVERY` steps later: the tables reach that far."""
        key = (beta1, beta2, param.device)
        if key not in self._tables:
            size = math.ceil(self._horizon(optimizer, param)) + self.PRUNE_EVERY + 2
            counts = torch.arange(size, dtype=torch.float32, device=param.device)
            self._tables[key] = (1 - beta1**counts, (1 - beta2**counts).sqrt())
        return self._tables[key]

    def state(self) -> dict[str, Tensor]:
        """The clock as tensors: ``steps_since_prune`` and, per tracked parameter ``i``, ``flat/<i>`` and
        ``last/<i>``."""
        out = {"steps_since_prune": torch.tensor(self._steps_since_prune, dtype=torch.int64)}
        for i, (flat, last) in self.entries.items():
            out[f"flat/{i}"], out[f"last/{i}"] = flat, last
        return out

    def load(self, state: dict[str, Tensor]) -> None:
        """Restore :meth:`state` (each tensor moved to its parameter's device)."""
        indices = sorted(int(k.split("/")[1]) for k in state if k.startswith("flat/"))
        self.entries = {
            i: (
                state[f"flat/{i}"].to(self.params[i].device, torch.int64),
                state[f"last/{i}"].to(self.params[i].device, torch.float32),
            )
            for i in indices
        }
        self._steps_since_prune = int(state["steps_since_prune"])


class UnitResetMethod(SeededMethod):
    """What ReDo and CBP share: the hidden layers, their activations, per-member init scales, an optional L2, the
    fresh draws of reset units and the Adam clock of their entries.

    Settings both take (keyword arguments of :class:`ReDo` and :class:`CBP`):

    :param model: the model; its hidden layers are found by :func:`~syre_rl.plasticity.activations.hidden_layers`.
    :param layers: the hidden layers to act on, when they cannot be found automatically (stacked models).
    :param weight_decay: coupled L2 added alongside (the reference setting 1e-4; 0 for none).
    :param init: fresh in-weights ``"uniform"`` or ``"normal"``, at the layer's initial std.
    :param members: of a stacked model, the members acted on (default all).
    :param include: glob patterns of the parameters the weight decay acts on (default: all).
    :param exclude: patterns the weight decay leaves alone, added to
        :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE`.
    :param seed: seed of the re-initialisation (one per member acted on, for a stacked model).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: Sequence[HiddenLayer] | None = None,
        weight_decay: float = 1e-4,
        init: Literal["uniform", "normal"] = "uniform",
        members: Sequence[int] | None = None,
        include: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        seed: int | Sequence[int] | None = None,
    ) -> None:
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        super().__init__(seed)
        self.layers = list(layers) if layers is not None else hidden_layers(model)
        if not self.layers:
            raise ValueError("no hidden layers to act on")
        self.init = init
        stacked = [_stacked(layer.in_layer) for layer in self.layers]
        if any(stacked) and not all(stacked):
            raise ValueError("layers must be all plain or all stacked")
        total = in_view(self.layers[0].in_layer, self.layers[0].in_layer.weight).shape[0]
        self.members = list(members) if members is not None else list(range(total))
        if not self.members or any(not 0 <= e < total for e in self.members):
            raise ValueError(f"members must be indices below {total}, got {members!r}")
        if len(self.seeds) != len(self.members):
            raise ValueError(f"give one seed per member acted on: {len(self.members)} members")
        # Fresh in-weights have each member's initial std of its layer (float64: a member's value does not
        # depend on the stack it sits in).
        stds = []
        for layer in self.layers:
            weight = in_view(layer.in_layer, layer.in_layer.weight.detach()).double()
            stds.append([float(weight[e].std()) for e in self.members])
        self.register_buffer("init_std", torch.tensor(stds, dtype=torch.float64))
        self.l2 = (
            L2(model, weight_decay=weight_decay, include=include, exclude=exclude)
            if weight_decay > 0
            else None
        )
        # The latest training forward pass's activations of each layer: what the step that follows used.
        self._acts: list[Tensor | None] = [None] * len(self.layers)
        self._index: Tensor | None = None
        params: dict[int, Tensor] = {}  # every tensor a reset touches, once
        for layer in self.layers:
            for p in (layer.in_layer.weight, layer.in_layer.bias, *(o.weight for o in layer.out_layers)):
                if p is not None:
                    params.setdefault(id(p), p)
        self.clock = AdamResetClock(list(params.values()))

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        if self.l2 is not None:
            self.l2.attach(optimizer)
        for i, layer in enumerate(self.layers):
            self._handles.append(layer.activation.register_forward_hook(self._recorder(i)))
        self._handles.append(optimizer.register_step_post_hook(self._post_step))

    def _detach(self) -> None:
        self._acts = [None] * len(self.layers)
        if self.l2 is not None:
            self.l2.detach()

    def _recorder(self, i: int) -> Any:
        module = self.layers[i].in_layer

        def hook(_: nn.Module, args: Any, output: Tensor) -> None:
            if torch.is_grad_enabled():  # a training pass, not a rollout or an evaluation
                self._acts[i] = _acts_view(module, output.detach())

        return hook

    def activations(self, i: int) -> Tensor | None:
        """Layer ``i``'s latest training activations of the members acted on, ``[members, rows, units]``."""
        acts = self._acts[i]
        if acts is None:
            return None
        if acts.shape[0] == len(self.members) and self.members == list(range(acts.shape[0])):
            return acts
        return acts[self._member_index(acts.device)]

    def _member_index(self, device: torch.device) -> Tensor:
        """The members acted on, as an index tensor on ``device`` (made once)."""
        if self._index is None or self._index.device != device:
            self._index = torch.tensor(self.members, device=device)
        return self._index

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.clock.correct(optimizer)
        self._act(optimizer)

    def _act(self, optimizer: torch.optim.Optimizer) -> None:
        raise NotImplementedError

    def _param_index(self, param: Tensor) -> int:
        return next(i for i, p in enumerate(self.clock.params) if p is param)

    @torch.no_grad()
    def reset(
        self,
        i: int,
        k: int,
        units: Tensor,
        optimizer: torch.optim.Optimizer | None,
        bias_shift: Tensor | None = None,
    ) -> None:
        """Re-initialise ``units`` of layer ``i`` in member ``self.members[k]``: in-weights fresh, bias 0,
        out-weights 0 (after adding ``W_out[units]^T bias_shift`` to each reader's bias, if given); the optimizer's
        state of those entries zeroed and, for Adam, its per-element step restarted."""
        layer, e = self.layers[i], self.members[k]
        module = layer.in_layer
        weight = in_view(module, module.weight)[e]  # [units, in]
        gen = self.generator(weight.device, k)
        shape = (units.numel(), weight.shape[1])
        std = float(self.init_std[i, k])
        # "uniform": U(-b, b) of the same std, the shape of torch's default and Dohare's (LeCun/Kaiming) init.
        if self.init == "uniform":
            fresh = torch.rand(shape, generator=gen, device=weight.device, dtype=weight.dtype)
            fresh = fresh.mul_(2 * 3**0.5 * std).sub_(3**0.5 * std)
        else:
            fresh = torch.randn(shape, generator=gen, device=weight.device, dtype=weight.dtype).mul_(std)
        weight.index_copy_(0, units, fresh)
        # (parameter, its view of unit-major rows of member e)
        touched: list[tuple[Tensor, Any]] = [(module.weight, lambda t: in_view(module, t)[e])]
        if module.bias is not None:
            in_view(module, module.bias, bias=True)[e].index_fill_(0, units, 0.0)
            touched.append((module.bias, lambda t: in_view(module, t, bias=True)[e]))
        for out in layer.out_layers:
            w_out = out_view(out, out.weight)[e]  # [units, out]
            if bias_shift is not None and out.bias is not None:
                b_out = out_view(out, out.bias, bias=True)[e]
                b_out.add_((w_out[units].T.to(bias_shift.dtype) @ bias_shift).to(b_out.dtype))
            w_out.index_fill_(0, units, 0.0)
            touched.append((out.weight, lambda t, out=out: out_view(out, t)[e]))
        if optimizer is None:
            return
        for param, view in touched:
            for value in optimizer.state.get(param, {}).values():
                if isinstance(value, Tensor) and value.shape == param.shape:
                    view(value).index_fill_(0, units, 0.0)
            self.clock.mark(optimizer, self._param_index(param), _flat_rows(param, view(param), units))

    def _state_tensors(self) -> dict[str, Tensor]:
        clock = {f"clock/{k}": v for k, v in self.clock.state().items()}
        return {**super()._state_tensors(), **clock}

    def _load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        super()._load_state_tensors(tensors)
        clock = {k.removeprefix("clock/"): v for k, v in tensors.items() if k.startswith("clock/")}
        clock.setdefault("steps_since_prune", torch.tensor(0))
        self.clock.load(clock)


class ReDo(UnitResetMethod):
    """ReDo (Sokar et al. 2023): every ``every`` updates, reset the units that are dormant on the latest batch.

    Dormant is the shared definition :func:`~syre_rl.plasticity.metrics.dormant_mask` (mean ``|a|`` over the
    batch / layer mean ``<= tau``), on the activations of the training forward pass just before the step. With
    ``window=True`` the mean ``|a|`` is taken over every training batch since the last check instead: ReDo scores
    units on a batch of many samples, which online learning at batch 1 never sees in one step (a ReLU unit is then
    "dormant" whenever the single example happens not to excite it).

    :param tau: dormancy threshold (0.1 in RL).
    :param every: optimizer steps between checks.
    :param window: score dormancy over all batches since the last check (equal-sized batches weigh alike).
    :param shared: ``layers``, ``weight_decay``, ``init``, ``members``, ``include``, ``exclude``, ``seed``: see
        :class:`UnitResetMethod`.
    """

    name = "redo"

    def __init__(
        self,
        model: nn.Module,
        *,
        tau: float = 0.1,
        every: int = 100,
        window: bool = False,
        **shared: Any,
    ) -> None:
        if not isinstance(window, bool):
            raise ValueError(f"window must be true or false, got {window!r}")
        if not tau >= 0:
            raise ValueError(f"tau must be >= 0, got {tau!r}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        super().__init__(model, **shared)
        self.tau, self.every, self.window = float(tau), every, window
        self.updates = 0
        self._score_sums: list[Tensor | None] = [None] * len(self.layers)  # window: sum of per-batch mean |a|
        self.resets = [[0] * len(self.members) for _ in self.layers]  # per layer, per member

    @property
    def resets_per_layer(self) -> list[int]:
        return [sum(r) for r in self.resets]

    @torch.no_grad()
    def _act(self, optimizer: torch.optim.Optimizer) -> None:
        self.updates += 1
        if self.window:
            for i in range(len(self.layers)):
                acts = self.activations(i)
                if acts is not None:
                    score = acts.abs().mean(1)  # [members, units]
                    total = self._score_sums[i]
                    self._score_sums[i] = score if total is None else total.add_(score)
        if self.updates % self.every:
            return
        for i in range(len(self.layers)):
            acts = self.activations(i)
            if self.window and self._score_sums[i] is not None:
                acts = self._score_sums[i].unsqueeze(1)  # one row per member: the window's mean |a|, scaled
                self._score_sums[i] = None
            if acts is None:
                continue
            for k in range(len(self.members)):
                units = dormant_mask(acts[k], self.tau).nonzero().squeeze(1)
                if units.numel():
                    self.reset(i, k, units, optimizer)
                    self.resets[i][k] += units.numel()

    def _state_tensors(self) -> dict[str, Tensor]:
        out = {
            **super()._state_tensors(),
            "updates": torch.tensor(self.updates, dtype=torch.int64),
            "resets": torch.tensor(self.resets, dtype=torch.int64),  # [layers, members]
        }
        for i, total in enumerate(self._score_sums):
            if total is not None:
                out[f"score_sum/{i}"] = total
        return out

    def _load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        super()._load_state_tensors(tensors)
        self.updates = int(tensors["updates"])
        self.resets = [[int(n) for n in layer] for layer in tensors["resets"].tolist()]
        self._score_sums = [
            tensors[f"score_sum/{i}"].to(layer.in_layer.weight.device).clone()
            if f"score_sum/{i}" in tensors
            else None
            for i, layer in enumerate(self.layers)
        ]


class CBP(UnitResetMethod):
    """Continual backprop (Dohare et al. 2024): replace mature units of low contribution utility.

    After each step, per hidden layer and member, with ``f`` the unit's activations on the step's batch:
    ``utility = decay * utility + (1 - decay) * mean|f| * mean|w_out|`` (mean over every reader's outputs),
    ``mean_act = decay * mean_act + (1 - decay) * mean f``, and every unit ages by one. Units older than
    ``maturity_threshold`` are eligible; ``replacement_rate`` times their number accumulates each step, and each
    whole unit of it replaces the eligible unit of lowest bias-corrected utility ``utility / (1 - decay^age)``.
    Before its out-weights are zeroed, ``W_out[:, u] * mean_act[u] / (1 - decay^age[u])`` is added to each
    reader's bias, so the output's mean does not jump (``bias_correction``); utility, mean and age restart at 0.

    :param replacement_rate: units replaced per eligible unit per step.
    :param maturity_threshold: steps a unit is protected after it is (re)initialised.
    :param decay: utility's running-average decay.
    :param bias_correction: move the replaced unit's mean contribution into the readers' biases.
    :param shared: ``layers``, ``weight_decay``, ``init``, ``members``, ``include``, ``exclude``, ``seed``: see
        :class:`UnitResetMethod`.
    """

    name = "cbp"

    def __init__(
        self,
        model: nn.Module,
        *,
        replacement_rate: float = 1e-4,
        maturity_threshold: int = 10_000,
        decay: float = 0.99,
        bias_correction: bool = True,
        **shared: Any,
    ) -> None:
        if not 0.0 <= replacement_rate <= 1.0:
            raise ValueError(f"replacement_rate must be in [0, 1], got {replacement_rate!r}")
        if not isinstance(maturity_threshold, int) or maturity_threshold < 0:
            raise ValueError(f"maturity_threshold must be a non-negative integer, got {maturity_threshold!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        super().__init__(model, **shared)
        self.replacement_rate, self.maturity_threshold, self.decay = (
            float(replacement_rate),
            maturity_threshold,
            decay,
        )
        self.bias_correction = bool(bias_correction)
        n = len(self.members)
        for i, layer in enumerate(self.layers):
            device = layer.in_layer.weight.device
            self.register_buffer(f"utility_{i}", torch.zeros(n, layer.width, device=device))
            self.register_buffer(f"mean_act_{i}", torch.zeros(n, layer.width, device=device))
            self.register_buffer(f"age_{i}", torch.zeros(n, layer.width, dtype=torch.long, device=device))
        # Fractional replacements carried to the next step, per layer and member.
        self.pending = [[0.0] * n for _ in self.layers]
        self.replaced = [[0] * n for _ in self.layers]
        # The eligible count without reading the device: steps each layer has aged, and per member the recent
        # replacements [step, count] (a unit replaced at step r is eligible again once step - r > maturity).
        self.steps = [0] * len(self.layers)
        self.recent: list[list[list[list[int]]]] = [[[] for _ in range(n)] for _ in self.layers]

    def utility(self, i: int) -> Tensor:
        """Layer ``i``'s utilities, ``[members, units]`` (``[1, units]`` for a plain model)."""
        return getattr(self, f"utility_{i}")

    def mean_act(self, i: int) -> Tensor:
        return getattr(self, f"mean_act_{i}")

    def age(self, i: int) -> Tensor:
        return getattr(self, f"age_{i}")

    @property
    def replaced_per_layer(self) -> list[int]:
        return [sum(r) for r in self.replaced]

    @torch.no_grad()
    def _act(self, optimizer: torch.optim.Optimizer) -> None:
        for i, layer in enumerate(self.layers):
            features = self.activations(i)
            if features is None:
                continue
            features = features.float()
            utility, mean_act, age = self.utility(i), self.mean_act(i), self.age(i)
            member_index = self._member_index(features.device)
            out_mag = sum(out_view(o, o.weight.detach()).float().abs().sum(-1) for o in layer.out_layers)
            n_out = sum(out_view(o, o.weight).shape[-1] for o in layer.out_layers)
            contribution = features.abs().mean(1)
            if layer.out_layers:
                contribution = contribution * out_mag[member_index] / n_out
            utility.mul_(self.decay).add_(contribution, alpha=1.0 - self.decay)
            mean_act.mul_(self.decay).add_(features.mean(1), alpha=1.0 - self.decay)
            age.add_(1)
            self.steps[i] += 1
            eligible = age > self.maturity_threshold
            for k in range(len(self.members)):
                n_eligible = self._eligible(i, k)
                if n_eligible == 0:
                    continue
                self.pending[i][k] += n_eligible * self.replacement_rate
                n_replace = min(int(self.pending[i][k]), n_eligible)
                if n_replace == 0:
                    continue
                self.pending[i][k] -= n_replace
                corrected = 1.0 - self.decay ** age[k].double()
                score = (utility[k].double() / corrected).masked_fill(~eligible[k], float("inf"))
                units = score.topk(n_replace, largest=False).indices
                shift = mean_act[k, units].double() / corrected[units] if self.bias_correction else None
                self.reset(i, k, units, optimizer, shift)
                utility[k].index_fill_(0, units, 0.0)
                mean_act[k].index_fill_(0, units, 0.0)
                age[k].index_fill_(0, units, 0)
                self.replaced[i][k] += n_replace
                self.recent[i][k].append([self.steps[i], n_replace])

    def _eligible(self, i: int, k: int) -> int:
        """Units of layer ``i`` in member ``k`` older than the maturity threshold, counted on the host: every unit
        but those replaced within the last ``maturity_threshold`` steps, once the layer itself is that old."""
        if self.steps[i] <= self.maturity_threshold:
            return 0
        recent = self.recent[i][k]
        while recent and self.steps[i] - recent[0][0] > self.maturity_threshold:
            recent.pop(0)
        return self.layers[i].width - sum(n for _, n in recent)

    def _state_tensors(self) -> dict[str, Tensor]:
        out = {
            **super()._state_tensors(),
            "pending": torch.tensor(self.pending, dtype=torch.float64),  # [layers, members], exact for floats
            "replaced": torch.tensor(self.replaced, dtype=torch.int64),
            "steps": torch.tensor(self.steps, dtype=torch.int64),  # [layers]
        }
        for i, layer in enumerate(self.recent):
            for k, member in enumerate(layer):
                if member:  # [replacements, 2]: (step, count)
                    out[f"recent/{i}/{k}"] = torch.tensor(member, dtype=torch.int64)
        return out

    def _load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        super()._load_state_tensors(tensors)
        self.pending = [[float(x) for x in layer] for layer in tensors["pending"].tolist()]
        self.replaced = [[int(n) for n in layer] for layer in tensors["replaced"].tolist()]
        self.steps = [int(n) for n in tensors["steps"].tolist()]
        self.recent = [
            [
                [list(map(int, e)) for e in tensors[f"recent/{i}/{k}"].tolist()]
                if f"recent/{i}/{k}" in tensors
                else []
                for k in range(len(self.members))
            ]
            for i in range(len(self.layers))
        ]
