"""lateinit.testing, the public layer checks: a correct layer of one's own passes them,
and a broken one fails with a message naming the case, the check and what differed.

The checks themselves run over every built-in layer in ``test_layers.py``.
"""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import re
import subprocess
import sys

import pytest
import torch

import lateinit
import lateinit.testing
from lateinit.testing import (
    CHECKS,
    LayerCase,
    check_compile,
    check_deferred_equals_eager,
    check_layer,
    check_mismatch,
    check_output_and_count,
    check_repr,
    check_twin,
    rand,
)


class Scale(lateinit.Block):
    """``x * weight``: one learned weight per feature (the last axis), its size inferred."""

    def __init__(self, in_features: int | None = None) -> None:
        super().__init__()
        self.weight = lateinit.Parameter((in_features,), init="normal")

    def infer_param_shapes(self, x: torch.Tensor) -> None:
        self.weight.shape = (x.shape[-1],)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return x * self.weight
        except RuntimeError as err:  # a wrong size: named by the hook, run on the input
            raise self.explain_error(err, x)

    def extra_repr(self) -> str:
        return str(self.weight.shape[0])


class TorchScale(torch.nn.Module):
    """The torch twin of Scale, with its own weights (copied over by the case)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


def copy_scale(ours: Scale, twin: TorchScale) -> None:
    with torch.no_grad():
        twin.weight.copy_(ours.weight)


def scale_case(cls: type = Scale, **changes) -> LayerCase:
    case = LayerCase(
        "scale",
        cls,
        {},
        {"in_features": 5},
        rand(3, 5),
        (3, 5),
        5,
        bad_inputs=rand(3, 6),
        twin=lambda: TorchScale(5),
        copy_to_twin=copy_scale,
    )
    return dataclasses.replace(case, **changes)


# -- broken layers -----------------------------------------------------------------------
class EagerDiffers(Scale):
    """Creates its weight itself when the size is given: other values than deferred."""

    def __init__(self, in_features: int | None = None) -> None:
        super().__init__(in_features)
        if in_features is not None:
            self.weight = torch.nn.Parameter(torch.ones(in_features))


class RawKernelError(Scale):
    """Lets torch's broadcasting error through on an input of another size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class SilentlyCrops(Scale):
    """Takes an input of another size without a word (scales its first features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.weight.shape[0]
        return torch.cat([x[..., :n] * self.weight, x[..., n:]], dim=-1)


class StaleRepr(Scale):
    """Shows the size given to the constructor: -1 for ever when it was inferred."""

    def __init__(self, in_features: int | None = None) -> None:
        super().__init__(in_features)
        self.in_features = in_features

    def extra_repr(self) -> str:
        return str(-1 if self.in_features is None else self.in_features)


class NoRepr(Scale):
    def extra_repr(self) -> str:
        return ""


class Crashes(Scale):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise ValueError("boom")


# -- a correct layer passes ----------------------------------------------------------------
def test_a_correct_layer_of_ones_own_passes_every_check():
    check_layer(scale_case())


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
def test_each_check_passes_alone(check):
    check(scale_case())


def test_checks_are_the_public_check_functions_in_order():
    names = [c.__name__ for c in CHECKS]
    public = [n for n in lateinit.testing.__all__ if n.startswith("check_")]
    assert names == [n for n in public if n != "check_layer"]
    assert all(getattr(lateinit.testing, n) is c for n, c in zip(names, CHECKS, strict=True))


# -- broken layers fail, with a message that says what to fix -------------------------------
def _failure(case: LayerCase, checks=None) -> str:
    with pytest.raises(AssertionError) as info:
        check_layer(case, checks)
    return str(info.value)


@pytest.mark.filterwarnings("ignore:Parameter 'weight' is already initialized")
def test_eager_build_with_other_values_fails():
    message = _failure(scale_case(EagerDiffers))
    assert message.startswith("scale: check_deferred_equals_eager: ")
    assert "differ in 'weight'" in message
    assert "Fix: declare every parameter as a lateinit.Parameter" in message


def test_bad_input_not_reported_as_shape_mismatch_fails():
    message = _failure(scale_case(RawKernelError))
    assert message.startswith("scale: check_mismatch: ")
    assert "raised RuntimeError, not lateinit.ShapeMismatchError" in message
    assert "raise self.explain_error(err, *inputs)" in message
    assert "size of tensor a (6) must match" in message  # torch's own words
    assert "Fix:" in message


def test_bad_input_taken_silently_fails():
    message = _failure(scale_case(SilentlyCrops))
    assert message.startswith("scale: check_mismatch: ")
    assert "an input of another size (bad_inputs: ((3, 6),)) did not raise; the layer " in message
    assert "returned (3, 6). Fix: reject inputs" in message


def test_wrong_parameter_count_in_the_case_fails():
    message = _failure(scale_case(n_params=6))
    assert message.startswith("scale: check_output_and_count: ")
    assert "the layer has 5 parameter elements (weight (5,)), the case's n_params says 6" in (
        message
    )


def test_wrong_output_shape_in_the_case_fails():
    message = _failure(scale_case(output_shape=(3, 4)))
    assert "scale: check_output_and_count: the output has shape (3, 5), the case's " in message
    assert "output_shape says (3, 4)" in message


def test_error_that_names_another_layer_fails():
    message = _failure(scale_case(mismatch_layer="'encoder' (Dense)"))
    assert message.startswith("scale: check_mismatch: the ShapeMismatchError does not name ")
    assert "\"'encoder' (Dense)\"" in message


def test_repr_with_a_stale_size_fails():
    message = _failure(scale_case(StaleRepr), checks=[check_repr])
    assert message.startswith(
        "scale: check_repr: the repr still shows -1 after the first batch inferred the "
        "unknown sizes: 'StaleRepr(-1)' before, 'StaleRepr(-1)' after. Fix: read the sizes"
    )


def test_repr_without_sizes_passes():
    check_repr(scale_case(NoRepr))  # it says nothing wrong


def test_every_built_in_layer_shows_its_sizes_in_its_repr():
    # what check_repr cannot ask of every layer, the built-in ones promise: -1 for an
    # unknown size before the first batch, the inferred size after
    from cases import CASES

    silent = []
    for case in CASES:
        layer = case.build()
        unknown = any(
            lateinit.is_deferred(t) and -1 in tuple(t.shape)
            for t in [*layer.parameters(), *layer.buffers()]
        )
        before = repr(layer)
        layer(*case.inputs())
        if unknown and ("-1" not in before or repr(layer) == before):
            silent.append(case.id)
    assert silent == []


def test_twin_without_copied_weights_fails():
    message = _failure(scale_case(copy_to_twin=None), checks=[check_twin])
    assert message.startswith("scale: check_twin: output tensor 0 differs from the twin's ")
    assert "(TorchScale)" in message
    assert "no copy_to_twin: the twin keeps weights of its own" in message


def test_a_layer_that_raises_fails_with_the_step_and_the_cause():
    with pytest.raises(AssertionError) as info:
        check_deferred_equals_eager(scale_case(Crashes))
    assert str(info.value) == (
        "scale: check_deferred_equals_eager: the deferred layer's first call raised "
        "ValueError: boom"
    )
    assert isinstance(info.value.__cause__, ValueError)


def test_several_failures_are_reported_together():
    message = _failure(scale_case(RawKernelError, n_params=6))
    first, *lines = message.splitlines()
    assert first == "scale: 2 of 10 checks failed:"
    assert lines[0].startswith("- check_output_and_count: the layer has 5 parameter")
    assert lines[1].startswith("- check_mismatch: an input of another size")


def test_checks_selects_what_runs():
    broken = scale_case(RawKernelError, n_params=6)
    check_layer(broken, checks=[check_repr, check_compile])  # neither looks at those
    message = _failure(broken, checks=[check_mismatch])
    assert message.startswith("scale: check_mismatch: ")


def test_a_check_of_ones_own_is_reported_as_the_others():
    def check_no_bias(case: LayerCase) -> None:
        if hasattr(case.build(), "bias"):
            raise AssertionError("the layer has a bias")

    def check_builds_twice(case: LayerCase) -> None:
        raise RuntimeError("cannot")

    message = _failure(scale_case(), checks=[check_no_bias, check_builds_twice])
    assert message == "scale: check_builds_twice: raised RuntimeError: cannot"
    message = _failure(scale_case(), checks=[*CHECKS, lambda case: 1 / 0])
    assert message == "scale: <lambda>: raised ZeroDivisionError: division by zero"


def test_checks_must_be_a_list():
    with pytest.raises(TypeError, match=r"checks must be a list of checks.*checks=\[check_repr\]"):
        check_layer(scale_case(), check_repr)  # type: ignore[arg-type]


def test_a_check_called_alone_names_the_case_and_itself():
    with pytest.raises(AssertionError, match=r"^scale: check_output_and_count: the layer has"):
        check_output_and_count(scale_case(n_params=6))


def test_checks_leave_the_global_random_state_as_it_was():
    torch.manual_seed(7)
    state = torch.get_rng_state()
    check_layer(scale_case())
    assert torch.equal(torch.get_rng_state(), state)


def test_skipped_checks_pass_without_what_they_need():
    case = scale_case(RawKernelError, bad_inputs=None, twin=None, compile=False, float64=False)
    check_layer(case)


# -- LayerCase ------------------------------------------------------------------------------
def test_layer_case_is_frozen_and_prints_its_id():
    case = scale_case()
    assert str(case) == "scale"
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.n_params = 6  # type: ignore[misc]


def test_layer_case_builds_deferred_and_eager():
    case = scale_case()
    assert lateinit.is_deferred(case.build().weight)
    assert tuple(case.build().weight.shape) == (-1,)
    assert tuple(case.build(eager=True).weight.shape) == (5,)


def test_inputs_that_are_not_callable_are_refused_at_construction():
    with pytest.raises(TypeError, match=r"LayerCase 'scale': inputs must be callable, got tuple"):
        scale_case(inputs=(torch.randn(3, 5),))


def test_inputs_that_return_no_tuple_fail_with_the_fix():
    message = _failure(scale_case(inputs=lambda: torch.randn(3, 5)), checks=[check_repr])
    assert message == (
        "scale: check_repr: inputs() returned a Tensor, not a tuple. Fix: return the tuple "
        "of the forward's arguments, e.g. (x,), or use rand(...)"
    )


def test_every_field_of_layer_case_is_documented():
    doc = inspect.getdoc(LayerCase) or ""
    attributes = doc.split("Attributes:", 1)[1].split("Examples:", 1)[0]
    documented = re.findall(r"^    (\w+):", attributes, flags=re.M)
    assert documented == [f.name for f in dataclasses.fields(LayerCase)]


# -- the module as a public one ---------------------------------------------------------------
def test_it_needs_no_pytest_and_no_assert_statements():
    # lateinit does not import it; pytest is no runtime dependency; under `python -O`
    # assert statements vanish, and the checks must fail all the same
    code = (
        "import sys\n"
        "from lateinit import nn\n"
        "print('lateinit.testing' in sys.modules)\n"
        "from lateinit.testing import LayerCase, check_layer, rand\n"
        "print('pytest' in sys.modules)\n"
        "case = LayerCase('d', nn.Dense, {'units': 4}, {'in_units': 3}, rand(2, 3), (2, 4), 1)\n"
        "try:\n"
        "    check_layer(case)\n"
        "except AssertionError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run(
        [sys.executable, "-O", "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == [
        "False",  # import lateinit does not import lateinit.testing
        "False",
        "d: check_output_and_count: the layer has 16 parameter elements (weight (4, 3), bias "
        "(4,)), the case's n_params says 1. Fix: correct n_params, or the shapes "
        "infer_param_shapes fills in",
    ]


PUBLIC = {
    "lateinit.testing": lateinit.testing,
    **{f"lateinit.testing.{n}": getattr(lateinit.testing, n) for n in lateinit.testing.__all__},
    "lateinit.testing.LayerCase.build": LayerCase.build,
}
NO_EXAMPLE = {"lateinit.testing.CHECKS"}  # a tuple: its docstring is check_layer's example


@pytest.mark.parametrize("qual", sorted(set(PUBLIC) - NO_EXAMPLE))
def test_public_example_runs_in_an_empty_namespace(qual):
    doc = inspect.getdoc(PUBLIC[qual]) or ""
    assert "Examples:" in doc and ">>>" in doc, f"{qual} has no example"
    assert not re.search(r":(?:func|class|meth|mod|data|attr|exc|obj|ref):`", doc), qual
    test = doctest.DocTestParser().get_doctest(doc, {}, qual, None, 0)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.summarize(verbose=False).failed == 0, "".join(out)
