"""Initializers: objects that fill a tensor in place.

Every initializer has one signature, `init(tensor, *, generator=None, name="")`: it fills
`tensor` in place (under `torch.no_grad()`) drawing random numbers from `generator`
and returns it. `name` is the parameter's structural name, used by
[`Mixed`][lateinit.init.Mixed]. Fans are computed from the tensor's full shape
(`(out, in, *kernel)`), as in torch.

An initializer is registered before any shape is known (on a parameter, a layer, or with
[`Block.initialize`][lateinit.Block.initialize]) and runs when the parameter's shape is
complete, with the parameter's own seeded generator, so values are reproducible.

Wherever an initializer is accepted, a string (`"zeros"`, `"xavier_uniform"`, ...) or
one of torch's in-place `torch.nn.init.*_` functions (or any callable taking a tensor)
is accepted too; [`resolve`][lateinit.init.resolve] turns them into an
[`Initializer`][lateinit.init.Initializer].

Examples:
    >>> import torch
    >>> from lateinit import init
    >>> w = torch.empty(3, 4)
    >>> _ = init.Constant(0.5)(w)
    >>> float(w.sum())
    6.0
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

__all__ = [
    "Initializer",
    "Zero",
    "One",
    "Constant",
    "Uniform",
    "Normal",
    "TruncNormal",
    "Xavier",
    "MSRAPrelu",
    "Orthogonal",
    "Mixed",
    "resolve",
    "linear_default",
]


def _number(value: Any, arg: str, owner: str, *, minimum: float | None = None) -> Any:
    """Validate an initializer's numeric argument: a real, finite number (a bool is not
    one), at least ``minimum`` when given. A TypeError for another type, a ValueError for
    a value out of range; the message names the initializer and the argument."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {arg} must be a number, got {value!r}")
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise ValueError(f"{owner}: {arg} must be a finite number{bound}, got {value!r}")
    return value


def _fans(shape: Sequence[int]) -> tuple[int, int]:
    """Return ``(fan_in, fan_out)`` of a weight of ``shape`` = ``(out, in, *kernel)``."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


class Initializer:
    """Base class: fill a tensor in place; subclasses implement ``_fill``.

    Gluon's way works too: a subclass that implements ``_init_weight(name, arr)`` (and
    optionally ``_init_bias``, ``_init_gamma``, ``_init_beta``, ``_init_default``) instead
    of ``_fill`` is dispatched by the parameter's name as Gluon's ``InitDesc`` does:
    names ending in (or, torch's recurrent names, starting with) ``weight`` go to
    ``_init_weight``, ``bias`` to ``_init_bias`` (zeros), ``gamma`` to ones, ``beta`` to
    zeros, ``running_mean``/``moving_mean`` to zeros, ``running_var``/``moving_var`` to
    ones, anything else to ``_init_default``. ``arr`` is the tensor, filled in place
    (``arr[:] = ...``) under ``no_grad``; torch's global RNG is seeded from the
    parameter's own seed around the call, so values stay reproducible.

    Calling an initializer, `init(tensor, *, generator=None, name="")`, fills `tensor`
    in place and returns it; `name` is the parameter's structural name (`"0.weight"`).

    Args:
        **kwargs: kept for `repr` and equality (a Gluon-style subclass may pass its
            arguments here).

    Examples:
        >>> import torch
        >>> from lateinit import init
        >>> class Twos(init.Initializer):
        ...     def _init_weight(self, name, arr):
        ...         arr[:] = 2.0
        >>> w, b = torch.empty(2, 2), torch.empty(2)
        >>> Twos()(w, name="0.weight").sum().item(), Twos()(b, name="0.bias").sum().item()
        (8.0, 0.0)
    """

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs

    def __call__(
        self, tensor: torch.Tensor, *, generator: torch.Generator | None = None, name: str = ""
    ) -> torch.Tensor:
        grad = torch.is_grad_enabled()
        if grad:
            torch._C._set_grad_enabled(False)  # torch.no_grad(), without its wrapper objects
        try:
            if type(self)._fill is Initializer._fill:  # a Gluon-style subclass
                _seeded_global(tensor, generator, lambda t: self._init_by_name(name, t))
            else:
                self._fill(tensor, generator)
        finally:
            if grad:
                torch._C._set_grad_enabled(True)
        return tensor

    @property
    def draws(self) -> bool:
        """Whether filling draws random numbers (so the caller seeds a generator for it):
        False only for a [`Constant`][lateinit.init.Constant] that keeps its fill."""
        return type(self)._fill is not Constant._fill

    def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        raise NotImplementedError  # replaced by the name dispatch above

    def _init_by_name(self, name: str, arr: torch.Tensor) -> None:
        """Gluon's ``InitDesc`` dispatch on the parameter's (last) name."""
        last = name.rpartition(".")[2]
        if last in ("running_mean", "moving_mean", "moving_avg") or last.endswith("min"):
            self._init_zero(name, arr)
        elif last in ("running_var", "moving_var") or last.endswith("max"):
            self._init_one(name, arr)
        elif last.endswith("weight") or last.startswith("weight"):
            self._init_weight(name, arr)
        elif last.endswith("bias") or last.startswith("bias"):
            self._init_bias(name, arr)
        elif last.endswith("gamma"):
            self._init_gamma(name, arr)
        elif last.endswith("beta"):
            self._init_beta(name, arr)
        else:
            self._init_default(name, arr)

    def _init_zero(self, name: str, arr: torch.Tensor) -> None:
        arr.fill_(0.0)

    def _init_one(self, name: str, arr: torch.Tensor) -> None:
        arr.fill_(1.0)

    def _init_bias(self, name: str, arr: torch.Tensor) -> None:
        arr.fill_(0.0)

    def _init_gamma(self, name: str, arr: torch.Tensor) -> None:
        arr.fill_(1.0)

    def _init_beta(self, name: str, arr: torch.Tensor) -> None:
        arr.fill_(0.0)

    def _init_weight(self, name: str, arr: torch.Tensor) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} cannot initialize {name or 'a weight'!r}: an Initializer "
            "subclass implements _fill(tensor, generator), or Gluon's "
            "_init_weight(name, arr) filling arr in place"
        )

    def _init_default(self, name: str, arr: torch.Tensor) -> None:
        raise ValueError(
            f"{type(self).__name__}: unknown initialization pattern for {name!r} (not a "
            "weight, bias, gamma, beta or running statistic). Fix: implement "
            "_init_default(name, arr), or give this parameter its own initializer"
        )

    def _args(self) -> dict[str, Any]:
        return dict(getattr(self, "_kwargs", {}))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._args() == other._args()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self._args().items()))))


class Constant(Initializer):
    """Fill with `value`.

    Args:
        value: the number every element gets (a finite `int` or `float`).

    Examples:
        >>> import torch
        >>> from lateinit import nn, init
        >>> init.Constant(0.5)(torch.empty(2, 3)).tolist()
        [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]
        >>> layer = nn.Dense(2, weight_initializer=init.Constant(0.5))
        >>> layer(torch.ones(1, 3)).tolist()  # 3 * 0.5, bias 0
        [[1.5, 1.5]]
    """

    def __init__(self, value: float) -> None:
        self.value = _number(value, "value", type(self).__name__)

    def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        tensor.fill_(self.value)

    def _args(self) -> dict[str, Any]:
        return {"value": self.value}


class Zero(Constant):
    """Fill with zeros (the names `"zeros"` and `"zero"` resolve to it).

    Examples:
        >>> import torch
        >>> from lateinit import init
        >>> init.Zero()(torch.empty(3)).tolist()
        [0.0, 0.0, 0.0]
        >>> init.resolve("zeros")
        Zero()
    """

    def __init__(self) -> None:
        super().__init__(0.0)

    def _args(self) -> dict[str, Any]:
        return {}


class One(Constant):
    """Fill with ones (the names `"ones"` and `"one"` resolve to it).

    Examples:
        >>> import torch
        >>> from lateinit import nn, init
        >>> init.One()(torch.empty(2, 2)).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
        >>> net = nn.Sequential(nn.Dense(4))
        >>> _ = net.initialize(init.One())  # registered now, run at the first batch
        >>> _ = net(torch.zeros(1, 3))
        >>> net[0].weight.sum().item()
        12.0
    """

    def __init__(self) -> None:
        super().__init__(1.0)

    def _args(self) -> dict[str, Any]:
        return {}


class Uniform(Initializer):
    """Draw from `U(-scale, scale)` (Gluon's default scale 0.07).

    Args:
        scale: the bound of the interval (a finite number >= 0).

    Examples:
        >>> import torch
        >>> from lateinit import init
        >>> w = init.Uniform(0.1)(torch.empty(1000), generator=torch.Generator().manual_seed(0))
        >>> bool(w.abs().max() <= 0.1), bool(w.min() < 0 < w.max())
        (True, True)
    """

    def __init__(self, scale: float = 0.07) -> None:
        self.scale = _number(scale, "scale", "Uniform", minimum=0)

    def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        tensor.uniform_(-self.scale, self.scale, generator=generator)

    def _args(self) -> dict[str, Any]:
        return {"scale": self.scale}


class Normal(Initializer):
    """Draw from `N(0, sigma**2)` (Gluon's default sigma 0.01).

    Args:
        sigma: the standard deviation (a finite number >= 0).

    Examples:
        >>> import torch
        >>> from lateinit import init
        >>> w = init.Normal(0.01)(torch.empty(10000), generator=torch.Generator().manual_seed(0))
        >>> round(w.std().item(), 3)
        0.01
    """

    def __init__(self, sigma: float = 0.01) -> None:
        self.sigma = _number(sigma, "sigma", "Normal", minimum=0)

    def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        tensor.normal_(0.0, self.sigma, generator=generator)

    def _args(self) -> dict[str, Any]:
        return {"sigma": self.sigma}


class TruncNormal(Initializer):
    """Draw from ``N(mean, stdev**2)`` truncated to ``mean ± 2*stdev``.

    Arguments in GluonNLP's (``TruncNorm(mean, stdev)``) and Keras's
    (``TruncatedNormal(mean, stddev)``) order, mean first; the standard deviation is also
    accepted as ``sigma=`` (Gluon's ``Normal(sigma)``). Draws with
    ``torch.nn.init.trunc_normal_``.

    Args:
        mean: the mean of the distribution.
        stdev: the standard deviation (default 0.01).
        sigma: the standard deviation under Gluon's name; give `stdev` or `sigma`, not
            both.

    Examples:
        >>> from lateinit import init
        >>> init.TruncNormal(0.0, 0.02) == init.TruncNormal(stdev=0.02)
        True
        >>> init.TruncNormal(sigma=0.02).stdev
        0.02
    """

    def __init__(
        self, mean: float = 0.0, stdev: float | None = None, *, sigma: float | None = None
    ) -> None:
        if stdev is not None and sigma is not None:
            raise TypeError("TruncNormal: give the standard deviation once, as stdev= or sigma=")
        spread = stdev if stdev is not None else (sigma if sigma is not None else 0.01)
        self.mean = _number(mean, "mean", "TruncNormal")
        self.stdev = _number(spread, "stdev", "TruncNormal", minimum=0)

    def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        lo, hi = self.mean - 2 * self.stdev, self.mean + 2 * self.stdev
        torch.nn.init.trunc_normal_(tensor, self.mean, self.stdev, lo, hi, generator=generator)

    def _args(self) -> dict[str, Any]:
        return {"mean": self.mean, "stdev": self.stdev}


class Xavier(Initializer):
    """Xavier/Glorot initialization, as in Gluon.

    ``scale = sqrt(magnitude / factor)`` where ``factor`` is ``fan_in``, ``fan_out`` or
    their average (``factor_type``); values are drawn from ``U(-scale, scale)``
    (``rnd_type="uniform"``) or ``N(0, scale**2)`` (``"gaussian"``).
    ``Xavier("uniform", "in", 1.0)`` is the distribution of ``torch.nn.Linear``'s weight
    (lateinit's default, [`linear_default`][lateinit.init.linear_default]). The fans come
    from the full shape, so a weight whose input size is inferred from the first batch
    gets the right scale.

    Args:
        rnd_type: `"uniform"` or `"gaussian"`.
        factor_type: `"avg"`, `"in"` or `"out"`: which fan divides `magnitude`.
        magnitude: the numerator of the scale (a finite number >= 0).

    Examples:
        >>> import math, torch
        >>> from lateinit import nn, init
        >>> w = init.Xavier()(torch.empty(4, 8), generator=torch.Generator().manual_seed(0))
        >>> bool(w.abs().max() <= math.sqrt(3.0 / ((4 + 8) / 2)))
        True
        >>> layer = nn.Dense(4, weight_initializer=init.Xavier("gaussian", "in", 2.0))
        >>> layer.weight.initializer  # registered while the shape is (4, -1)
        Xavier(rnd_type='gaussian', factor_type='in', magnitude=2.0)
    """

    def __init__(
        self, rnd_type: str = "uniform", factor_type: str = "avg", magnitude: float = 3.0
    ) -> None:
        if rnd_type not in ("uniform", "gaussian"):
            raise ValueError(f"Xavier: rnd_type must be 'uniform' or 'gaussian', got {rnd_type!r}")
        if factor_type not in ("avg", "in", "out"):
            raise ValueError(
                f"Xavier: factor_type must be 'avg', 'in' or 'out', got {factor_type!r}"
            )
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(_number(magnitude, "magnitude", type(self).__name__, minimum=0))

    def _scale(self, shape: Sequence[int]) -> float:
        fan_in, fan_out = _fans(shape)
        kind = self.factor_type
        factor = fan_in if kind == "in" else fan_out if kind == "out" else (fan_in + fan_out) / 2.0
        return math.sqrt(self.magnitude / max(factor, 1))

    def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        scale = self._scale(tensor.shape)
        if self.rnd_type == "uniform":
            tensor.uniform_(-scale, scale, generator=generator)
        else:
            tensor.normal_(0.0, scale, generator=generator)

    def _args(self) -> dict[str, Any]:
        return {
            "rnd_type": self.rnd_type,
            "factor_type": self.factor_type,
            "magnitude": self.magnitude,
        }


class MSRAPrelu(Xavier):
    """He/Kaiming initialization for PReLU of slope `slope` (Gluon's `MSRAPrelu`).

    Draws from `N(0, scale**2)` with `scale = sqrt(2 / (1 + slope**2) / factor)`: a
    [`Xavier`][lateinit.init.Xavier] with `rnd_type="gaussian"` and magnitude
    `2 / (1 + slope**2)`. `slope=0` is He initialization for ReLU.

    Args:
        factor_type: `"avg"`, `"in"` or `"out"`, as for `Xavier`.
        slope: the negative slope of the PReLU (or leaky ReLU) that follows.

    Examples:
        >>> import torch
        >>> from lateinit import init
        >>> init.MSRAPrelu(factor_type="in", slope=0.0).magnitude
        2.0
        >>> w = init.MSRAPrelu("in", 0.0)(
        ...     torch.empty(256, 512), generator=torch.Generator().manual_seed(0)
        ... )
        >>> round(w.std().item(), 2)  # sqrt(2 / 512)
        0.06
    """

    def __init__(self, factor_type: str = "avg", slope: float = 0.25) -> None:
        slope = _number(slope, "slope", "MSRAPrelu")
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope**2))
        self.slope = slope

    def _args(self) -> dict[str, Any]:
        return {"factor_type": self.factor_type, "slope": self.slope}


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times `scale`, over the flattened trailing dims.

    The tensor is viewed as a `(shape[0], -1)` matrix; its rows (or columns, whichever
    are fewer) are orthonormal, then multiplied by `scale`. Needs at least 2 dims (use
    [`Mixed`][lateinit.init.Mixed] to give biases another initializer).

    Args:
        scale: the factor applied to the orthogonal matrix (Gluon's default 1.414).
        rand_type: `"uniform"` or `"normal"`: the distribution of the random matrix
            that is orthogonalized (QR decomposition).

    Examples:
        >>> import torch
        >>> from lateinit import init
        >>> g = torch.Generator().manual_seed(0)
        >>> w = init.Orthogonal(scale=1.0)(torch.empty(3, 5), generator=g)
        >>> torch.allclose(w @ w.T, torch.eye(3), atol=1e-5)
        True
    """

    def __init__(self, scale: float = 1.414, rand_type: str = "uniform") -> None:
        if rand_type not in ("uniform", "normal"):
            raise ValueError(
                f"Orthogonal: rand_type must be 'uniform' or 'normal', got {rand_type!r}"
            )
        self.scale = _number(scale, "scale", "Orthogonal")
        self.rand_type = rand_type

    def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        if tensor.dim() < 2:
            raise ValueError(
                f"Orthogonal needs a tensor of at least 2 dims, got shape {tuple(tensor.shape)}; "
                "use another initializer for biases (e.g. Mixed(['.*bias', '.*'], ['zeros', "
                "Orthogonal()]))"
            )
        rows, cols = tensor.shape[0], tensor.numel() // tensor.shape[0]
        work = torch.float64 if tensor.dtype == torch.float64 else torch.float32
        flat = torch.empty(rows, cols, dtype=work, device=tensor.device)
        if self.rand_type == "uniform":
            flat.uniform_(-1.0, 1.0, generator=generator)
        else:
            flat.normal_(0.0, 1.0, generator=generator)
        if rows < cols:
            flat = flat.t()
        q, r = torch.linalg.qr(flat)
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
        if rows < cols:
            q = q.t()
        tensor.copy_(q.reshape(tensor.shape) * self.scale)

    def _args(self) -> dict[str, Any]:
        return {"scale": self.scale, "rand_type": self.rand_type}


class Mixed(Initializer):
    """Pick an initializer by the parameter's name: the first regex of `patterns` that
    matches (`re.match`) decides.

    The name is the parameter's structural name in the network that was initialized or
    called (`"0.weight"`, `"body.1.bias"`). A name that matches no pattern is a
    `ValueError`: end with a catch-all `".*"`.

    Args:
        patterns: regular expressions, tried in order.
        initializers: one initializer (or name, or callable) per pattern.

    Examples:
        >>> import torch
        >>> from lateinit import nn, init
        >>> mixed = init.Mixed(["0.weight", ".*"], [init.One(), init.Constant(0.5)])
        >>> net = nn.Sequential(nn.Dense(2, use_bias=False), nn.Dense(2, use_bias=False))
        >>> _ = net.initialize(mixed)
        >>> _ = net(torch.ones(1, 3))
        >>> net[0].weight[0].tolist(), net[1].weight[0].tolist()
        ([1.0, 1.0, 1.0], [0.5, 0.5])
        >>> mixed(torch.empty(2), name="1.bias").tolist()
        [0.5, 0.5]
    """

    def __init__(self, patterns: Sequence[str], initializers: Sequence[Any]) -> None:
        for arg, value in (("patterns", patterns), ("initializers", initializers)):
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise TypeError(f"Mixed: {arg} must be a list, got {value!r}")
        if len(patterns) != len(initializers):
            raise ValueError(
                f"Mixed: got {len(patterns)} patterns but {len(initializers)} initializers; "
                "give one initializer per pattern"
            )
        self.patterns = [re.compile(p) for p in patterns]
        self.initializers = [resolve(i) for i in initializers]

    def __call__(
        self, tensor: torch.Tensor, *, generator: torch.Generator | None = None, name: str = ""
    ) -> torch.Tensor:
        for pattern, initializer in zip(self.patterns, self.initializers, strict=True):
            if pattern.match(name):
                return initializer(tensor, generator=generator, name=name)
        raise ValueError(
            f"Mixed: parameter {name!r} matches none of the patterns "
            f"{[p.pattern for p in self.patterns]}; add a catch-all pattern '.*' at the end"
        )

    def _args(self) -> dict[str, Any]:
        return {"patterns": [p.pattern for p in self.patterns], "initializers": self.initializers}

    def __hash__(self) -> int:
        return id(self)


def _seeded_global(
    tensor: torch.Tensor, generator: torch.Generator | None, fn: Callable[[torch.Tensor], Any]
) -> None:
    """Run ``fn(tensor)``, code that draws from torch's global RNG, with that RNG seeded
    from ``generator``'s seed inside a fork that restores it (values stay reproducible
    and the caller's random stream is untouched); without a generator, as it is."""
    if generator is None:
        fn(tensor)
        return
    # Seed only the generator of the tensor's device, inside a fork that restores it.
    seed = generator.initial_seed()
    on_cuda = tensor.device.type == "cuda"
    devices = [tensor.device] if on_cuda else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        torch.default_generator.manual_seed(seed)
        if on_cuda:
            with torch.cuda.device(tensor.device):
                torch.cuda.manual_seed(seed)
        fn(tensor)


class _Callable(Initializer):
    """Adapter for torch's ``torch.nn.init.*_`` functions and any ``fn(tensor)`` callable.

    A function that takes ``generator=`` gets the parameter's own generator; one that does
    not runs with torch's global RNG forked and seeded from it, so values stay reproducible.
    """

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        try:
            self._takes_generator = "generator" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            self._takes_generator = False

    def _fill(self, tensor: torch.Tensor, generator: torch.Generator | None) -> None:
        if self._takes_generator:
            self.fn(tensor, generator=generator)
            return
        _seeded_global(tensor, generator, self.fn)

    def __repr__(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))

    def _args(self) -> dict[str, Any]:
        return {"fn": self.fn}

    def __hash__(self) -> int:
        return hash(self.fn)


_NAMES: dict[str, Callable[[], Initializer]] = {
    "zeros": Zero,
    "zero": Zero,
    "ones": One,
    "one": One,
    "uniform": Uniform,
    "normal": Normal,
    "truncnormal": TruncNormal,
    "trunc_normal": TruncNormal,
    "xavier": Xavier,
    "xavier_uniform": lambda: Xavier("uniform", "avg", 3.0),
    "xavier_normal": lambda: Xavier("gaussian", "avg", 1.0),
    "glorot_uniform": lambda: Xavier("uniform", "avg", 3.0),
    "glorot_normal": lambda: Xavier("gaussian", "avg", 1.0),
    "msra": MSRAPrelu,
    "msraprelu": MSRAPrelu,
    "kaiming_normal": lambda: Xavier("gaussian", "in", 2.0),
    "kaiming_uniform": lambda: Xavier("uniform", "in", 6.0),
    "he_normal": lambda: Xavier("gaussian", "in", 2.0),
    "he_uniform": lambda: Xavier("uniform", "in", 6.0),
    "lecun_uniform": lambda: Xavier("uniform", "in", 3.0),
    "lecun_normal": lambda: Xavier("gaussian", "in", 1.0),
    "torch_default": lambda: linear_default(),
    "orthogonal": Orthogonal,
}


def linear_default() -> Xavier:
    """The distribution of ``torch.nn.Linear``'s (and ``ConvNd``'s) weight,
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: the default of lateinit's weights.

    Used when a parameter has no initializer of its own, none was registered with
    `initialize(init)`, and its layer sets no default; the name `"torch_default"`
    resolves to it.

    Returns:
        `Xavier("uniform", "in", 1.0)`.

    Examples:
        >>> from lateinit import init
        >>> init.linear_default()
        Xavier(rnd_type='uniform', factor_type='in', magnitude=1.0)
    """
    return Xavier("uniform", "in", 1.0)


def resolve(obj: Any) -> Initializer:
    """Turn an initializer, a name, or a callable into an
    [`Initializer`][lateinit.init.Initializer].

    What every `init=` argument goes through: an `Initializer` is returned as it is, an
    `Initializer` subclass is instantiated with no arguments, a name (case-insensitive:
    `"zeros"`, `"ones"`, `"uniform"`, `"normal"`, `"trunc_normal"`, `"xavier"`,
    `"xavier_uniform"`, `"xavier_normal"`, `"glorot_uniform"`, `"glorot_normal"`,
    `"msra"`, `"kaiming_uniform"`, `"kaiming_normal"`, `"he_uniform"`, `"he_normal"`,
    `"lecun_uniform"`, `"lecun_normal"`, `"orthogonal"`, `"torch_default"`...) gives that
    initializer, and a callable (`torch.nn.init.zeros_`, any `fn(tensor)` filling it in
    place) is wrapped; one that takes `generator=` gets the parameter's own generator.

    Args:
        obj: an initializer, an `Initializer` subclass, a name, or a callable.

    Returns:
        An `Initializer`.

    Raises:
        ValueError: an unknown name (the message lists the known ones).
        TypeError: anything else that is not callable.

    Examples:
        >>> import torch
        >>> from lateinit import init
        >>> init.resolve("kaiming_normal")
        Xavier(rnd_type='gaussian', factor_type='in', magnitude=2.0)
        >>> init.resolve(torch.nn.init.zeros_)
        zeros_
        >>> init.resolve("glorot")
        Traceback (most recent call last):
        ...
        ValueError: unknown initializer 'glorot'; known names: ...
    """
    if isinstance(obj, Initializer):
        return obj
    if isinstance(obj, str):
        key = obj.lower()
        if key not in _NAMES:
            raise ValueError(
                f"unknown initializer {obj!r}; known names: {', '.join(sorted(_NAMES))}, "
                "or pass an Initializer or a torch.nn.init function"
            )
        return _NAMES[key]()
    if isinstance(obj, type) and issubclass(obj, Initializer):
        return obj()
    if callable(obj):
        return _Callable(obj)
    raise TypeError(
        f"an initializer must be an Initializer, a name such as 'zeros', or a callable "
        f"filling a tensor in place; got {type(obj).__name__}"
    )
