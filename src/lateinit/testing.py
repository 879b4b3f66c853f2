"""Check a layer against lateinit's promises: the checks every built-in layer passes.

A [`LayerCase`][lateinit.testing.LayerCase] describes one configuration of a layer: how to
build it deferred (no input sizes) and eager (every input size given), a valid batch, the
output shape and parameter count it must give, and optionally a batch of another input
size, a `torch.nn` twin computing the same thing, and what to compare.
[`check_layer`][lateinit.testing.check_layer] runs every check of
[`CHECKS`][lateinit.testing.CHECKS] on it (or the ones given) and raises `AssertionError`
naming the case, the check and what differed; each `check_*` function runs one check.
The checks seed torch's global generator as they need and restore its state afterwards.

The library's own layers are checked this way (`tests/test_layers.py` runs every check
over every row of the table in `tests/cases*.py`); a layer of your own, a `Block` with an
[`infer_param_shapes`][lateinit.Block.infer_param_shapes] hook, can be checked the same
way. The checks use torch only: no test framework is needed (with pytest, call
`check_layer` in a test, or parametrize over `CHECKS` to get one test per check).

Examples:
    >>> import torch
    >>> import lateinit
    >>> from lateinit.testing import LayerCase, check_layer, rand
    >>> class Scale(lateinit.Block):
    ...     '''x * w, one learned weight per feature (the last axis).'''
    ...     def __init__(self, in_features=None):
    ...         super().__init__()
    ...         self.weight = lateinit.Parameter((in_features,), init="normal")
    ...     def infer_param_shapes(self, x):
    ...         self.weight.shape = (x.shape[-1],)
    ...     def forward(self, x):
    ...         return x * self.weight
    ...     def extra_repr(self):
    ...         return str(self.weight.shape[0])
    >>> case = LayerCase("scale", Scale, {}, {"in_features": 5}, rand(3, 5), (3, 5), 5)
    >>> check_layer(case)  # silent when every check passes

    `checks=` runs some of the checks only (here all but the slowest, `torch.compile`):

    >>> from lateinit.testing import CHECKS, check_compile
    >>> check_layer(case, checks=[c for c in CHECKS if c is not check_compile])
"""

from __future__ import annotations

import contextlib
import copy
import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from .parameter import is_deferred, placeholder
from .shapes import ShapeMismatchError, Spec

__all__ = [
    "LayerCase",
    "rand",
    "check_layer",
    "CHECKS",
    "check_deferred_equals_eager",
    "check_output_and_count",
    "check_mismatch",
    "check_state_dict_round_trip",
    "check_compile",
    "check_repr",
    "check_float64",
    "check_twin",
    "check_deepcopy",
    "check_infer_shape",
]


def _same(out: Any) -> Any:
    return out


@dataclass(frozen=True)
class LayerCase:
    """One configuration of a layer, with what the checks need to know about it.

    The deferred build is `cls(**kwargs)`; the eager build, `cls(**kwargs, **eager)`,
    is given every input size and initialized with `initialize()`. The checks seed
    torch's global generator before each build and before each call of `inputs`, so
    both builds must create the same values under the same seed.

    Attributes:
        id: the case's name in failure messages (and `str(case)`, e.g. for pytest ids).
        cls: the layer class, or any callable taking `kwargs` (and `eager`) that returns
            the layer (e.g. a function building a small network around it).
        kwargs: keyword arguments of the deferred build, without input sizes.
        eager: the keyword arguments that give every input size, added to `kwargs` for
            the eager build (e.g. `{"in_units": 20}`); `{}` for a layer without any.
        inputs: a callable without arguments that returns a valid batch: the tuple of
            positional arguments of the layer's forward (e.g. `rand(4, 20)`). The
            checks call it several times; it draws from torch's global generator.
        output_shape: the shape of the output, as a tuple of ints; for several outputs
            (a tuple or list), a tuple of their shapes, nested as the outputs are.
            Compared after `output` has picked what to compare.
        n_params: the total number of parameter elements once the layer is READY
            (buffers not counted).
        bad_inputs: a callable returning a batch with another input size, which the
            READY layer must reject with a `ShapeMismatchError` naming it, changing
            nothing; `None` skips [`check_mismatch`][lateinit.testing.check_mismatch].
        twin: a callable returning a `torch.nn` module that computes the same thing
            (e.g. `lambda: torch.nn.Linear(20, 16)`); `None` skips
            [`check_twin`][lateinit.testing.check_twin]. When the layer is an instance
            of the twin's class (a lateinit layer inheriting its torch class), the
            weights go through `state_dict` both ways, strictly.
        copy_to_twin: `copy_to_twin(layer, twin)` copies the READY layer's weights into
            the twin, for a twin whose class the layer does not inherit; `None`
            leaves the twin's own weights (right for a layer without parameters).
        twin_inputs: maps the layer's inputs (a tuple) to the twin's (e.g. channels-last
            to channels-first); `None` gives the twin the same inputs.
        output: picks what to compare from the layer's output (default: all of it;
            e.g. `lambda out: out[0]` to leave out a recurrent layer's states).
        twin_output: picks what to compare from the twin's output (default: all of it).
        atol: the absolute tolerance of the comparison with the twin (gradients:
            ten times it).
        compile: `False` skips [`check_compile`][lateinit.testing.check_compile], for a
            layer that cannot run under `torch.compile(fullgraph=True)`.
        float64: `False` skips [`check_float64`][lateinit.testing.check_float64], for a
            layer that does not run in float64 after `.to(torch.float64)`.
        mismatch_layer: the text the `ShapeMismatchError` for `bad_inputs` must contain
            (default: the layer's class name); e.g. `"'0' (Dense)"` when the layer that
            rejects the input is the first child of the built network.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_layer, rand
        >>> case = LayerCase(
        ...     "dense",
        ...     nn.Dense,
        ...     {"units": 4},
        ...     {"in_units": 3},
        ...     inputs=rand(2, 3),
        ...     output_shape=(2, 4),
        ...     n_params=4 * 3 + 4,
        ...     bad_inputs=rand(2, 5),
        ...     twin=lambda: torch.nn.Linear(3, 4),
        ... )
        >>> str(case)
        'dense'
        >>> case.build(eager=True)
        Dense(3 -> 4)
        >>> check_layer(case)
    """

    id: str
    cls: Callable[..., Any]
    kwargs: dict[str, Any]
    eager: dict[str, Any]
    inputs: Callable[[], tuple[Any, ...]]
    output_shape: Any
    n_params: int
    bad_inputs: Callable[[], tuple[Any, ...]] | None = None
    twin: Callable[[], torch.nn.Module] | None = None
    copy_to_twin: Callable[[Any, torch.nn.Module], None] | None = None
    twin_inputs: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
    output: Callable[[Any], Any] = field(default=_same)
    twin_output: Callable[[Any], Any] = field(default=_same)
    atol: float = 1e-5
    compile: bool = True
    float64: bool = True
    mismatch_layer: str = ""

    def __post_init__(self) -> None:
        for name in ("cls", "inputs", "bad_inputs", "twin", "copy_to_twin", "twin_inputs"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(
                    f"LayerCase {self.id!r}: {name} must be callable, got "
                    f"{type(value).__name__}"
                    + (
                        ". Fix: pass a function that returns the tuple of inputs, e.g. "
                        "rand(4, 20) or lambda: (torch.randn(4, 20),)"
                        if name in ("inputs", "bad_inputs")
                        else ""
                    )
                )

    def __str__(self) -> str:
        return self.id

    def build(self, eager: bool = False) -> Any:
        """The layer: deferred, `cls(**kwargs)`, or eager, `cls(**kwargs, **eager)`.

        Args:
            eager: give every input size (`eager`); the layer is not initialized.

        Returns:
            The new layer, not initialized.

        Examples:
            >>> from lateinit import nn
            >>> from lateinit.testing import LayerCase, rand
            >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3},
            ...                  rand(2, 3), (2, 4), 16)
            >>> case.build()
            Dense(-1 -> 4)
            >>> case.build(eager=True)
            Dense(3 -> 4)
        """
        return self.cls(**self.kwargs, **(self.eager if eager else {}))


def rand(*shape: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    """Inputs for a [`LayerCase`][lateinit.testing.LayerCase]: one random tensor.

    Args:
        *shape: the tensor's shape.

    Returns:
        A callable without arguments that returns `(torch.randn(*shape),)`, drawn from
        torch's global generator when called.

    Examples:
        >>> from lateinit.testing import rand
        >>> make = rand(2, 3)
        >>> (x,) = make()
        >>> tuple(x.shape), x.dtype
        ((2, 3), torch.float32)
    """
    return lambda: (torch.randn(*shape),)


# ---------------------------------------------------------------------------------------
# Helpers.


def _check(fn: Callable[[LayerCase], None]) -> Callable[[LayerCase], None]:
    """A check whose failure, of any kind, is an `AssertionError` whose message starts
    with the case and the check (`"dense: check_repr: ..."`); another exception is kept
    as its cause. The check seeds torch's global generator as it needs: its state is
    restored afterwards."""

    @functools.wraps(fn)
    def run(case: LayerCase) -> None:
        prefix = f"{case.id}: {getattr(fn, '__name__', 'check')}: "
        try:
            with torch.random.fork_rng(devices=[]):
                fn(case)
        except AssertionError as err:
            if not str(err).startswith(prefix):
                err.args = (prefix + str(err), *err.args[1:])
            raise
        except Exception as err:
            raise AssertionError(f"{prefix}raised {type(err).__name__}: {err}") from err

    return run


@contextlib.contextmanager
def _step(what: str) -> Iterator[None]:
    """Say which step of a check failed: an exception becomes an `AssertionError`
    naming the step (`what`), with the exception as its cause."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as err:
        raise AssertionError(f"{what} raised {type(err).__name__}: {err}") from err


def _tensors(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for item in out for t in _tensors(item)]
    return []


def _shape_of(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return tuple(out.shape)
    if isinstance(out, (list, tuple)):
        return tuple(_shape_of(o) for o in out)
    return out


def _state(layer: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in layer.state_dict().items()}


def _built(case: LayerCase, eager: bool = False) -> str:
    name = getattr(case.cls, "__name__", "cls")
    return f"{name}(**kwargs, **eager)" if eager else f"{name}(**kwargs)"


def _inputs(case: LayerCase, bad: bool = False) -> tuple[Any, ...]:
    what = "bad_inputs" if bad else "inputs"
    with _step(f"{what}()"):
        inputs = case.bad_inputs() if bad and case.bad_inputs is not None else case.inputs()
    if not isinstance(inputs, tuple):
        raise AssertionError(
            f"{what}() returned a {type(inputs).__name__}, not a tuple. Fix: return the "
            f"tuple of the forward's arguments, e.g. (x,), or use rand(...)"
        )
    return inputs


def _ready(case: LayerCase, eager: bool = False, seed: int = 0) -> tuple[Any, tuple[Any, ...]]:
    """A layer made READY by one batch (deferred) or by initialize() (eager), in eval mode."""
    torch.manual_seed(seed + 1)
    inputs = _inputs(case)
    torch.manual_seed(seed)
    with _step(f"building the {'eager' if eager else 'deferred'} layer, {_built(case, eager)},"):
        layer = case.build(eager)
    if eager:
        with _step(f"initialize() of the eager layer, {_built(case, True)},"):
            layer.initialize()
    layer.eval()
    with torch.no_grad(), _step(f"the {'eager' if eager else 'deferred'} layer's first call"):
        layer(*inputs)
    return layer, inputs


def _outputs(layer: Any, inputs: tuple[Any, ...], what: str) -> list[torch.Tensor]:
    with torch.no_grad(), _step(what):
        return _tensors(layer(*inputs))


def _compare_outputs(
    want: list[torch.Tensor], got: list[torch.Tensor], what: str, fix: str, exact: bool = True
) -> None:
    """Outputs of two runs, tensor by tensor: equal (or close, `exact=False`)."""
    if len(want) != len(got):
        raise AssertionError(
            f"{what}: {len(want)} output tensors against {len(got)}." + (f" {fix}" if fix else "")
        )
    for i, (a, b) in enumerate(zip(want, got, strict=True)):
        if exact:
            if a.shape != b.shape or not torch.equal(a, b):
                raise AssertionError(
                    f"{what}: output tensor {i} differs (shapes {tuple(a.shape)} and "
                    f"{tuple(b.shape)})." + (f" {fix}" if fix else "")
                )
        else:
            try:
                torch.testing.assert_close(b, a)
            except AssertionError as err:
                raise AssertionError(
                    f"{what}: output tensor {i} differs: {err}" + (f"\n{fix}" if fix else "")
                ) from None


def _tensor_kinds(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*module.named_parameters(), *module.named_buffers()]


# ---------------------------------------------------------------------------------------
# The checks.


@_check
def check_deferred_equals_eager(case: LayerCase) -> None:
    """The deferred build, made READY by its first batch, and the eager build, given
    every input size and initialized by `initialize()`, hold the same `state_dict` under
    the same seed: the same keys, shapes and values.

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and the first entry that differs.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_deferred_equals_eager, rand
        >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16)
        >>> check_deferred_equals_eager(case)
    """
    deferred, _ = _ready(case, eager=False)
    eager, _ = _ready(case, eager=True)
    a, b = _state(deferred), _state(eager)
    if list(a) != list(b):
        raise AssertionError(
            f"the deferred and eager builds have other state_dict keys: deferred {list(a)}, "
            f"eager {list(b)}. Fix: declare the same parameters and buffers, under the same "
            "names, whether or not the input sizes are given"
        )
    for name in a:
        if a[name].shape != b[name].shape:
            raise AssertionError(
                f"{name!r} has shape {tuple(a[name].shape)} deferred but "
                f"{tuple(b[name].shape)} eager. Fix: make `eager` give the sizes the batch "
                "implies, and make infer_param_shapes fill in the same shape"
            )
        if not torch.equal(a[name], b[name]):
            raise AssertionError(
                f"the deferred and eager builds differ in {name!r} under the same seed (the "
                "deferred one initialized by its first batch, the eager one by "
                "initialize()). Fix: declare every parameter as a lateinit.Parameter, in "
                "the same order and with the same initializer, whether its sizes are given "
                "(a known dim) or inferred (-1 or None); never create values in the "
                "constructor or draw random numbers in the forward"
            )


@_check
def check_output_and_count(case: LayerCase) -> None:
    """The READY layer's output has `output_shape`, it has `n_params` parameter elements,
    every parameter is a plain `torch.nn.Parameter` (nothing deferred is left) and no
    module carries a `forward` of its own (an instance attribute).

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and what differed.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_output_and_count, rand
        >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16)
        >>> check_output_and_count(case)
        >>> wrong = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 12)
        >>> check_output_and_count(wrong)
        Traceback (most recent call last):
        ...
        AssertionError: d: check_output_and_count: the layer has 16 parameter elements
        (weight (4, 3), bias (4,)), the case's n_params says 12. Fix: ...
    """
    layer, inputs = _ready(case)
    with _step("the READY layer's call"):
        out = layer(*inputs)
    shape = _shape_of(case.output(out))
    if shape != case.output_shape:
        raise AssertionError(
            f"the output has shape {shape}, the case's output_shape says "
            f"{case.output_shape}. Fix: correct output_shape (nested as the outputs that "
            "the case's output picks), or the forward"
        )
    params = list(layer.named_parameters())
    count = sum(p.numel() for _, p in params)
    if count != case.n_params:
        listed = ", ".join(f"{n} {tuple(p.shape)}" for n, p in params) or "none"
        raise AssertionError(
            f"the layer has {count} parameter elements ({listed}), the case's n_params "
            f"says {case.n_params}. Fix: correct n_params, or the shapes infer_param_shapes "
            "fills in"
        )
    deferred = [n for n, t in _tensor_kinds(layer) if is_deferred(t)]
    if deferred:
        raise AssertionError(
            f"{deferred} are still deferred after a call. Fix: infer_param_shapes must "
            "fill in every unknown dim of the layer's own parameters"
        )
    odd = [f"{n} ({type(p).__name__})" for n, p in params if type(p) is not torch.nn.Parameter]
    if odd:
        raise AssertionError(
            f"parameters that are not plain torch.nn.Parameter once READY: {odd}. Fix: "
            "declare them as lateinit.Parameter (which becomes a torch.nn.Parameter)"
        )
    patched = [n or "the layer" for n, m in layer.named_modules() if "forward" in m.__dict__]
    if patched:
        raise AssertionError(
            f"{patched} carry a forward of their own (an instance attribute). Fix: define "
            "forward on the class, never assign self.forward"
        )


@_check
def check_mismatch(case: LayerCase) -> None:
    """After a valid batch, `bad_inputs` (another input size) raises a
    `ShapeMismatchError` that names the layer (`mismatch_layer`) and says how to fix it,
    changes no parameter or buffer, and the layer then gives the same outputs on the
    valid batch as before. Skipped when the case has no `bad_inputs`.

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and what the layer did instead.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_mismatch, rand
        >>> case = LayerCase(
        ...     "d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16,
        ...     bad_inputs=rand(2, 5),
        ... )
        >>> check_mismatch(case)
    """
    if case.bad_inputs is None:
        return
    layer, inputs = _ready(case)
    before = _state(layer)
    good = _outputs(layer, inputs, "the READY layer's call")
    bad = _inputs(case, bad=True)
    expected = case.mismatch_layer or type(layer).__name__
    try:
        with torch.no_grad():
            out = layer(*bad)
    except ShapeMismatchError as err:
        message = str(err)
        if expected not in message:
            raise AssertionError(
                f"the ShapeMismatchError does not name {expected!r}: {message!r}. Fix: "
                "raise it bare from infer_param_shapes (lateinit adds the layer's name), "
                "or set the case's mismatch_layer to the text that names the layer"
            )
        if "Fix" not in message:
            raise AssertionError(
                f"the ShapeMismatchError says no fix ('Fix: ...'): {message!r}. Fix: end "
                "the message with how to fix the input"
            )
    except Exception as err:
        raise AssertionError(
            f"an input of another size (bad_inputs) raised {type(err).__name__}, not "
            f"lateinit.ShapeMismatchError: {err}. Fix: wrap the forward's kernels in "
            "try/except and raise self.explain_error(err, *inputs) (it runs "
            "infer_param_shapes on the input to tell what disagrees), or check the input in "
            "forward"
        ) from err
    else:
        raise AssertionError(
            f"an input of another size (bad_inputs: {_shape_of(bad)}) did not raise; the "
            f"layer returned {_shape_of(out)}. Fix: reject inputs that disagree with the "
            "known sizes with a ShapeMismatchError (or make bad_inputs an input the layer "
            "cannot take)"
        )
    after = _state(layer)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if changed:
        raise AssertionError(
            f"the rejected input changed {changed}. Fix: check the input before changing "
            "any parameter or buffer"
        )
    _compare_outputs(
        good,
        _outputs(layer, inputs, "the call after the rejected one"),
        "after the rejected input, the layer computes other outputs on the valid batch",
        "Fix: keep no state of a call that failed",
    )


@_check
def check_state_dict_round_trip(case: LayerCase) -> None:
    """The READY deferred layer's `state_dict`, loaded into an eager build with other
    values, makes it compute the same outputs: the `state_dict` holds everything the
    forward uses.

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and the output that differs.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_state_dict_round_trip, rand
        >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16)
        >>> check_state_dict_round_trip(case)
    """
    deferred, inputs = _ready(case, seed=0)
    eager, _ = _ready(case, eager=True, seed=123)
    with _step("load_state_dict of the deferred layer's state_dict into the eager one"):
        eager.load_state_dict(deferred.state_dict())
    _compare_outputs(
        _outputs(deferred, inputs, "the deferred layer's call"),
        _outputs(eager, inputs, "the eager layer's call after load_state_dict"),
        "after load_state_dict, the eager layer's outputs differ from the deferred one's",
        "Fix: register every tensor the forward uses as a parameter or a (persistent) "
        "buffer, and read it from there",
    )


@_check
def check_compile(case: LayerCase) -> None:
    """The READY layer runs under `torch.compile(fullgraph=True, backend="eager")` (one
    graph, no graph break) and gives the outputs of the plain call. Skipped when the
    case says `compile=False`.

    It calls `torch.compiler.reset()` before and after, so that what earlier checks
    compiled does not count against torch's recompile limit and nothing compiled stays
    behind: code compiled before in the process is compiled again at its next call.

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and the compiler's error or the
            output that differs.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_compile, rand
        >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16)
        >>> check_compile(case)
    """
    if not case.compile:
        return
    layer, inputs = _ready(case)
    torch.compiler.reset()
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    want = _outputs(layer, inputs, "the READY layer's call")
    try:
        got = _outputs(
            compiled,
            inputs,
            'the call of torch.compile(layer, fullgraph=True, backend="eager") (a graph '
            "break fails it; set compile=False in the case for a layer that cannot run in "
            "one graph)",
        )
    finally:
        del compiled
        torch.compiler.reset()  # drop what was compiled while the layer's module lives
    _compare_outputs(
        want, got, "the compiled layer's outputs differ from the plain call's", "", exact=False
    )


@_check
def check_repr(case: LayerCase) -> None:
    """The `repr` of a layer with unknown sizes shows no `-1` (lateinit's unknown size)
    once its first batch has inferred them: a `repr` that shows sizes shows the inferred
    ones. Every built-in layer shows its sizes (`Dense(-1 -> 4)`, then `Dense(3 -> 4)`);
    a layer whose `repr` shows none (no `extra_repr`) passes.

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and both `repr`s.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_repr, rand
        >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16)
        >>> check_repr(case)  # Dense(-1 -> 4), then Dense(3 -> 4)
    """
    torch.manual_seed(0)
    with _step(f"building the deferred layer, {_built(case)},"):
        layer = case.build()
    before = repr(layer)
    has_unknown = any(is_deferred(t) and -1 in tuple(t.shape) for _, t in _tensor_kinds(layer))
    inputs = _inputs(case)
    with _step("the first call"):
        layer(*inputs)
    after = repr(layer)
    if has_unknown and "-1" in after:
        raise AssertionError(
            f"the repr still shows -1 after the first batch inferred the unknown sizes: "
            f"{before!r} before, {after!r} after. Fix: read the sizes in extra_repr from "
            "the parameters' shapes (e.g. `return f'{self.weight.shape[0]}'`), not from "
            "the constructor's arguments"
        )


@_check
def check_float64(case: LayerCase) -> None:
    """A deferred layer moved by `.to(torch.float64)` creates float64 parameters at its
    first float64 batch and computes in float64. Skipped when the case says
    `float64=False`.

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and the tensor of another dtype.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_float64, rand
        >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16)
        >>> check_float64(case)
    """
    if not case.float64:
        return
    torch.manual_seed(0)
    with _step(f"building the deferred layer, {_built(case)},"):
        layer = case.build()
    with _step("layer.to(torch.float64) before the first batch"):
        layer.to(torch.float64)

    def check_params(when: str) -> None:
        params = layer.named_parameters()
        other = [f"{n} ({p.dtype})" for n, p in params if p.dtype != torch.float64]
        if other:
            raise AssertionError(
                f"{when}, parameters are not float64: {other}. Fix: declare them as "
                "lateinit.Parameter without a fixed dtype (or with the layer's dtype "
                "argument), so .to() reaches them"
            )

    check_params("after .to(torch.float64)")
    inputs = tuple(
        t.double() if isinstance(t, torch.Tensor) and t.is_floating_point() else t
        for t in _inputs(case)
    )
    with _step("the first call with float64 inputs"):
        out = layer(*inputs)
    check_params("after the first float64 batch")
    outs = [t for t in _tensors(case.output(out)) if t.is_floating_point()]
    other = [f"output {i} ({t.dtype})" for i, t in enumerate(outs) if t.dtype != torch.float64]
    if other:
        raise AssertionError(
            f"on float64 inputs, outputs are not float64: {other}. Fix: create the "
            "forward's tensors with the input's dtype (e.g. torch.zeros(..., dtype=x.dtype))"
        )


@_check
def check_twin(case: LayerCase) -> None:
    """The READY layer gives the outputs and input gradients of its `torch.nn` twin
    with the same weights. When the layer is an instance of the twin's torch class, the
    weights go through `state_dict` strictly, both ways (the same keys, shapes and
    values); else `copy_to_twin` copies them. Skipped when the case has no `twin`.

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and what differs from the twin.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_twin, rand
        >>> case = LayerCase(
        ...     "d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16,
        ...     twin=lambda: torch.nn.Linear(3, 4),
        ... )
        >>> check_twin(case)
    """
    if case.twin is None:
        return
    layer, inputs = _ready(case)
    with _step("twin()"):
        twin = case.twin().eval()
    twin_name = type(twin).__name__
    if isinstance(layer, type(twin)) and type(twin).__module__.startswith("torch.nn"):
        ours_keys, twin_keys = list(layer.state_dict()), list(twin.state_dict())
        if ours_keys != twin_keys:
            raise AssertionError(
                f"the state_dict keys differ from the twin's ({twin_name}): ours "
                f"{ours_keys}, the twin's {twin_keys}. Fix: name (and order) the "
                f"parameters and buffers as torch's {twin_name} does"
            )
        with _step(f"loading the layer's state_dict into the twin ({twin_name}), strictly,"):
            twin.load_state_dict(layer.state_dict(), strict=True)
        with _step(f"building the deferred layer, {_built(case)}, and its first call"):
            back = case.build().eval()
            back(*inputs)  # READY, with values of its own
        with _step(f"loading the twin's ({twin_name}) state_dict into the layer, strictly,"):
            back.load_state_dict(twin.state_dict(), strict=True)
        for name, value in back.state_dict().items():
            if not torch.equal(value, layer.state_dict()[name]):
                raise AssertionError(
                    f"{name!r} changed on its way through the twin's ({twin_name}) "
                    "state_dict. Fix: store it as torch's class does (same layout)"
                )
    elif case.copy_to_twin is not None:
        with _step("copy_to_twin(layer, twin)"):
            case.copy_to_twin(layer, twin)
    ours_in = tuple(t.clone().requires_grad_(t.is_floating_point()) for t in inputs)
    twin_leaves = tuple(t.clone().requires_grad_(t.is_floating_point()) for t in inputs)
    with _step("twin_inputs(inputs)"):
        twin_in = case.twin_inputs(twin_leaves) if case.twin_inputs is not None else twin_leaves
    with _step("the layer's call"):
        ours_out = _tensors(case.output(layer(*ours_in)))
    with _step(f"the twin's ({twin_name}) call"):
        twin_out = _tensors(case.twin_output(twin(*twin_in)))
    hint = (
        "Fix: make the forward compute what the twin computes"
        + ("" if case.copy_to_twin is None else ", and copy_to_twin copy every weight")
        + "; check the case's twin_inputs, output and twin_output"
        + (
            " (no copy_to_twin: the twin keeps weights of its own)"
            if case.copy_to_twin is None and not isinstance(layer, type(twin))
            else ""
        )
    )
    if len(ours_out) != len(twin_out):
        raise AssertionError(
            f"the layer gives {len(ours_out)} output tensors, the twin ({twin_name}) "
            f"{len(twin_out)}. {hint}"
        )
    for i, (a, b) in enumerate(zip(ours_out, twin_out, strict=True)):
        try:
            torch.testing.assert_close(a, b, atol=case.atol, rtol=1e-4)
        except AssertionError as err:
            raise AssertionError(
                f"output tensor {i} differs from the twin's ({twin_name}): {err}\n{hint}"
            ) from None
    floating = [t for t in ours_out if t.is_floating_point()]
    if not any(t.requires_grad for t in floating):
        return
    with _step("the layer's backward"):
        sum(t.sum() for t in ours_out if t.requires_grad).backward()
    with _step(f"the twin's ({twin_name}) backward"):
        sum(t.sum() for t in twin_out if t.requires_grad).backward()
    for i, (a, b) in enumerate(zip(ours_in, twin_leaves, strict=True)):
        if a.grad is None and b.grad is None:
            continue
        if a.grad is None or b.grad is None:
            has, lacks = ("the twin", "the layer") if a.grad is None else ("the layer", "the twin")
            raise AssertionError(
                f"{has} gives input {i} a gradient, {lacks} none ({twin_name}).\n{hint}"
            )
        try:
            torch.testing.assert_close(a.grad, b.grad, atol=case.atol * 10, rtol=1e-3)
        except AssertionError as err:
            raise AssertionError(
                f"the gradient of input {i} differs from the twin's ({twin_name}): {err}\n{hint}"
            ) from None


@_check
def check_deepcopy(case: LayerCase) -> None:
    """A deferred layer's `copy.deepcopy` is a copy: both, each made READY by the same
    batch, compute the same outputs (a deferred copy keeps its declaration's seed).

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and the output that differs.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_deepcopy, rand
        >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16)
        >>> check_deepcopy(case)
    """
    torch.manual_seed(0)
    with _step(f"building the deferred layer, {_built(case)},"):
        layer = case.build().eval()
    with _step("copy.deepcopy of the deferred layer"):
        clone = copy.deepcopy(layer)
    inputs = _inputs(case)
    _compare_outputs(
        _outputs(layer, inputs, "the layer's first call"),
        _outputs(clone, inputs, "the deep copy's first call"),
        "the deep copy of the deferred layer computes other outputs than the layer",
        "Fix: keep no state outside parameters, buffers and plain attributes, and draw "
        "no random numbers in the forward in eval mode",
    )


@_check
def check_infer_shape(case: LayerCase) -> None:
    """[`Block.infer_shape`][lateinit.Block.infer_shape] on specs of the case's inputs
    gives the real forward's output shapes and dtypes (`None` where they depend on a
    `None` leading dim), leaves every parameter SHAPED, unallocated and with the real
    forward's shapes, changes no random state, and `initialize()` then creates the same
    values as the real forward under the same seed.

    Args:
        case: the layer to check.

    Raises:
        AssertionError: naming the case, the check, and what differs from the real
            forward.

    Examples:
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_infer_shape, rand
        >>> case = LayerCase("d", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16)
        >>> check_infer_shape(case)
    """

    def specs(inputs: tuple[Any, ...], free: frozenset[int] = frozenset()) -> tuple[Any, ...]:
        return tuple(
            Spec(((None,) if i in free else tuple(t.shape[:1])) + tuple(t.shape[1:]), t.dtype)
            if isinstance(t, torch.Tensor)
            else t
            for i, t in enumerate(inputs)
        )

    def shapes(out: Any) -> Any:  # Specs and tensors alike: shapes and dtypes
        if isinstance(out, (torch.Tensor, Spec)):
            return (tuple(out.shape), out.dtype)
        if isinstance(out, (list, tuple)):
            return tuple(shapes(o) for o in out)
        return out

    def merge(a: Any, b: Any) -> Any:  # two real runs: dims that differ become None
        if isinstance(a, tuple) and len(a) == 2 and isinstance(a[1], torch.dtype):
            return (tuple(x if x == y else None for x, y in zip(a[0], b[0], strict=True)), a[1])
        return tuple(merge(x, y) for x, y in zip(a, b, strict=True))

    def tensor_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
        return {n: tuple(t.shape) for n, t in _tensor_kinds(module)}

    def grow(inputs: tuple[Any, ...], which: frozenset[int]) -> tuple[Any, ...]:
        return tuple(torch.cat([t, t]) if i in which else t for i, t in enumerate(inputs))

    torch.manual_seed(1)
    inputs = _inputs(case)
    torch.manual_seed(0)
    with _step(f"building the deferred layer, {_built(case)},"):
        real = case.build().eval()
    with torch.no_grad(), _step("the real forward (the first call)"):
        want = shapes(case.output(real(*inputs)))

    torch.manual_seed(0)
    layer = case.build().eval()
    deferred = [(n, t) for n, t in _tensor_kinds(layer) if is_deferred(t)]
    ids = {n: id(t) for n, t in _tensor_kinds(layer)}
    rng = torch.get_rng_state()

    def assert_shaped_not_allocated(after: str) -> None:
        if {n: id(t) for n, t in _tensor_kinds(layer)} != ids:
            raise AssertionError(
                f"{after} replaced parameters or buffers of the layer; it must only fill "
                "in their shapes"
            )
        for n, t in deferred:
            if not is_deferred(t) or placeholder(t).numel() or t.device.type != "cpu":
                raise AssertionError(
                    f"{after}, {n!r} was allocated ({t!r}); infer_shape allocates nothing. "
                    "Fix: never compute on parameter values in infer_param_shapes"
                )
            if -1 in tuple(t.shape):
                raise AssertionError(
                    f"{after}, {n!r} still has unknown dims {tuple(t.shape)}. Fix: "
                    "infer_param_shapes must fill in every unknown dim"
                )
        got, real_shapes = tensor_shapes(layer), tensor_shapes(real)
        if got != real_shapes:
            raise AssertionError(
                f"{after}, the parameter and buffer shapes are {got}; the real forward "
                f"gave {real_shapes}. Fix: infer_param_shapes must read the sizes from the "
                "inputs only (shapes and dtypes, not values)"
            )

    with _step("infer_shape on Specs of the inputs"):
        got = shapes(case.output(layer.infer_shape(*specs(inputs))))
    if got != want:
        raise AssertionError(
            f"infer_shape gives {got}, the real forward {want} (shapes, dtypes). Fix: make "
            "the output's shape depend on the inputs' shapes and the parameters only"
        )
    assert_shaped_not_allocated("after infer_shape")
    if not torch.equal(torch.get_rng_state(), rng):
        raise AssertionError(
            "infer_shape changed torch's random state. Fix: draw no random numbers in "
            "infer_param_shapes or in a forward on meta tensors (dropout in eval mode only)"
        )

    # A None leading dim: on every tensor input whose dim 0 the READY layer accepts at
    # another size (all of them together, else the first one alone; an unbatched conv's
    # dim 0 is its channels, a recurrent layer's initial states' dim 0 its layers).
    tensors = frozenset(i for i, t in enumerate(inputs) if isinstance(t, torch.Tensor) and t.dim())
    free: frozenset[int] = frozenset()
    for which in [tensors, *(frozenset({i}) for i in sorted(tensors))]:
        try:
            with torch.no_grad():
                grown = shapes(case.output(real(*grow(inputs, which))))
        except Exception:
            continue
        free = which
        break
    if free:
        with _step("infer_shape on Specs with a None batch dim"):
            got = shapes(case.output(layer.infer_shape(*specs(inputs, free))))
        expected = merge(want, grown)
        if got != expected:
            raise AssertionError(
                f"with a None batch dim, infer_shape gives {got}; two real runs at two "
                f"batch sizes give {expected} (None: depends on the batch size)"
            )
        assert_shaped_not_allocated("after infer_shape with a None batch dim")

    with _step("initialize() after infer_shape"):
        layer.initialize()
    still = [n for n, t in _tensor_kinds(layer) if is_deferred(t)]
    if still:
        raise AssertionError(f"{still} are still deferred after infer_shape and initialize()")
    odd = [n for n, p in layer.named_parameters() if type(p) is not torch.nn.Parameter]
    if odd:
        raise AssertionError(
            f"after infer_shape and initialize(), {odd} are not plain torch.nn.Parameter"
        )
    a, b = _state(layer), _state(real)
    if list(a) != list(b):
        raise AssertionError(
            f"after infer_shape and initialize(), the state_dict keys are {list(a)}; after "
            f"the real forward, {list(b)}"
        )
    for name in a:
        if a[name].device.type != "cpu":
            raise AssertionError(
                f"after infer_shape and initialize(), {name!r} is on {a[name].device}, not "
                "on the CPU"
            )
        if not torch.equal(a[name], b[name]):
            raise AssertionError(
                f"{name!r} differs between infer_shape + initialize() and the real forward "
                "under the same seed. Fix: declare every parameter as a lateinit.Parameter "
                "with its initializer, and draw no random numbers in infer_param_shapes"
            )
    _compare_outputs(
        _outputs(real, inputs, "the real layer's call"),
        _outputs(layer, inputs, "the call after infer_shape and initialize()"),
        "after infer_shape and initialize(), the outputs differ from the real forward's",
        "",
    )


CHECKS: tuple[Callable[[LayerCase], None], ...] = (
    check_deferred_equals_eager,
    check_output_and_count,
    check_mismatch,
    check_state_dict_round_trip,
    check_compile,
    check_repr,
    check_float64,
    check_twin,
    check_deepcopy,
    check_infer_shape,
)
"""Every check, in the order [`check_layer`][lateinit.testing.check_layer] runs them."""


def check_layer(
    case: LayerCase, checks: Iterable[Callable[[LayerCase], None]] | None = None
) -> None:
    """Run every check of [`CHECKS`][lateinit.testing.CHECKS] (or the given ones) on a
    layer case.

    Every check runs, even after one has failed; the failures are reported together.

    Args:
        case: the layer to check.
        checks: the checks to run, in order: functions of `CHECKS`, or your own taking a
            `LayerCase` (its failures, and any exception it raises, are reported as the
            others are); `None` runs all of `CHECKS`.

    Raises:
        AssertionError: when a check fails. The message names the case, each failed
            check and what differed, and says how to fix it; a failure that was another
            exception (the layer raised) has it as its cause.

    Examples:
        >>> import torch
        >>> from lateinit import nn
        >>> from lateinit.testing import LayerCase, check_layer, rand
        >>> case = LayerCase(
        ...     "dense", nn.Dense, {"units": 4}, {"in_units": 3}, rand(2, 3), (2, 4), 16,
        ...     bad_inputs=rand(2, 5), twin=lambda: torch.nn.Linear(3, 4),
        ... )
        >>> check_layer(case)  # silent: every check passes

        A wrong expectation fails with a message naming the case and the check:

        >>> from lateinit.testing import check_output_and_count, check_repr
        >>> wrong = LayerCase("dense", nn.Dense, {"units": 4}, {}, rand(2, 3), (2, 5), 16)
        >>> check_layer(wrong, checks=[check_repr, check_output_and_count])
        Traceback (most recent call last):
        ...
        AssertionError: dense: check_output_and_count: the output has shape (2, 4), the
        case's output_shape says (2, 5). Fix: ...
    """
    if callable(checks) or isinstance(checks, str):
        raise TypeError(
            f"check_layer: checks must be a list of checks, got {checks!r}. Fix: "
            "check_layer(case, checks=[check_repr]) (or call the check itself)"
        )
    chosen = list(CHECKS if checks is None else checks)
    failures: list[AssertionError] = []
    for check in chosen:
        try:
            _check(check)(case)  # a check of your own: its failures named as ours are
        except AssertionError as err:
            failures.append(err)
    if not failures:
        return
    if len(failures) == 1:
        raise failures[0]
    lines = "\n".join(f"- {str(err).removeprefix(f'{case.id}: ')}" for err in failures)
    raise AssertionError(
        f"{case.id}: {len(failures)} of {len(chosen)} checks failed:\n{lines}"
    ) from failures[0]
