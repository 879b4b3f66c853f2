"""The ``lateinit`` command line: ``lateinit tour``, ``lateinit summary``, ``lateinit plot``.

``lateinit tour`` tells the story of deferred initialization on the terminal: a network
declared without input sizes, the parameter listing with ``-1`` for unknown dims, the
error on early access, ``initialize()`` that only registers the initializer, the first
batch that infers every shape, then three exercises (input size given, mismatching sizes,
inputs of varying size). Every step is really executed: the code shown is exactly the
code run, in one shared namespace, and the output shown is what it printed (the value of
a last bare expression is shown as the Python prompt would show it).

``lateinit summary MODULE:FACTORY --input 1x3x224x224 [--dtype bfloat16] [--kwargs JSON]``
builds a network from a factory and prints its summary (:mod:`lateinit.summary`) without
allocating its parameters. ``--input`` sizes are joined by ``x``, ``N`` for any size, with
an optional dtype suffix for integer inputs (``2x16:int64``); repeat it for several inputs.

``lateinit plot MODULE:FACTORY --input ... [--depth N] [-o net.svg]`` takes the same
arguments and draws the network as SVG (:mod:`lateinit.plot`), to the file or to stdout.

Each subcommand is registered by one small function listed in ``_COMMANDS``.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import sys
import textwrap
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["main", "build_parser", "Step", "TOUR", "run_tour"]

_SOURCE = "<lateinit tour>"
_MAX_WIDTH = 100  # columns: panels wider than this are hard to read


# ---------------------------------------------------------------------------------------
# The tour: a list of steps, each run in one shared namespace.


@dataclass(frozen=True)
class Step:
    """One step of the tour.

    Args:
        title: shown as the step's heading.
        code: Python source, shown and then executed as is.
        explanation: what the output shows (rich markup allowed).
        raises: the name of the exception the code's last statement must raise (its
            message is shown as the output); ``None`` when the code must not raise.
    """

    title: str
    code: str
    explanation: str
    raises: str | None = None


def _step(title: str, code: str, explanation: str, raises: str | None = None) -> Step:
    return Step(title, textwrap.dedent(code).strip("\n"), " ".join(explanation.split()), raises)


TOUR: tuple[Step, ...] = (
    _step(
        "1 · A network with no input sizes",
        """
        import torch
        import lateinit
        from lateinit import nn, init

        torch.manual_seed(0)  # repeatable values
        net = nn.Sequential()
        net.add(nn.Dense(256, activation="relu"))
        net.add(nn.Dense(10))  # no input sizes anywhere
        net
        """,
        """Each Dense layer knows its output size but not its input size, shown as -1:
        Dense(-1 -> 256). The input size will come from the first batch.""",
    ),
    _step(
        "2 · The parameters, with -1 for unknown dims",
        """
        net.collect_params()
        """,
        """Structural names (0.weight, 1.bias...) map to parameters. A weight whose input
        size is unknown is DECLARED, e.g. (256, -1); a bias has its full shape already
        (SHAPED) but no memory yet.""",
    ),
    _step(
        "3 · Using a parameter too early",
        """
        net[0].weight.data
        """,
        """Any use of a parameter that does not exist yet is a DeferredInitializationError
        that says which parameter, why it is not there and the three ways to get it:
        pass one batch, call infer_shape(...), or give the input size.""",
        raises="DeferredInitializationError",
    ),
    _step(
        "4 · initialize() only registers the initializer",
        """
        net.initialize(init.Xavier())
        net.collect_params()
        """,
        """Nothing visible changed for the weights: they still show -1, because nothing of
        unknown size can be created. initialize() registered Xavier as the initializer
        they will get. Only the biases, whose shape was known from the start, were
        created (READY).""",
    ),
    _step(
        "5 · The first batch infers every shape",
        """
        X = torch.rand(2, 20)  # 2 samples, 20 features
        y = net(X)  # shapes inferred layer by layer, then initialized
        print("output:", tuple(y.shape))
        print(net)
        for name, param in net.collect_params().items():
            print(f"{name:9} {tuple(param.shape)}")
        """,
        """Layer 0 read 20 features from X: its weight became (256, 20). Layer 1 read
        layer 0's 256 outputs: (10, 256). Each weight was created with the registered
        Xavier initializer, and is now a plain torch.nn.Parameter (the same object as
        before, so optimizers built earlier keep working).""",
    ),
    _step(
        "Exercise 1 · Input size given",
        """
        net2 = nn.Sequential()
        net2.add(nn.Dense(256, in_units=20, activation="relu"))  # input size given
        net2.add(nn.Dense(10))  # input size inferred
        net2.initialize(init.Xavier())
        print(net2)
        print("0.weight is deferred:", lateinit.is_deferred(net2[0].weight))
        print("1.weight is deferred:", lateinit.is_deferred(net2[1].weight))
        net2.collect_params()
        """,
        """With in_units=20 the first layer's shape is fully known, so initialize() created
        it at once (READY). Only the layer after it still waits for data.""",
    ),
    _step(
        "Exercise 2 · Mismatching sizes",
        """
        net(torch.rand(2, 30))  # the first batch fixed net at 20 input features
        """,
        """Known sizes never change silently. The ShapeMismatchError names the layer by its
        path in the network called ('0', or 'encoder.0' when nested), its type, the size
        it expects, the shape it got, and how to fix it.""",
        raises="ShapeMismatchError",
    ),
    _step(
        "Exercise 2 · ... and the network still works",
        """
        print(net[0])
        print("same output as before:", torch.equal(net(X), y))
        """,
        """The failed call changed nothing: valid input gives exactly the same result as
        before.""",
    ),
    _step(
        "Exercise 3 · Inputs of varying size",
        """
        trunk = nn.Sequential(nn.Dense(64, activation="relu"), nn.Dense(10))
        net20 = nn.Sequential(nn.Dense(64), trunk)  # input layer for 20 features
        net30 = nn.Sequential(nn.Dense(64), trunk)  # input layer for 30 features
        print("20 features ->", tuple(net20(torch.rand(2, 20)).shape))
        print("30 features ->", tuple(net30(torch.rand(2, 30)).shape))
        print("input layers:", net20[0], net30[0])
        print("same trunk weight:", net20[1][0].weight is net30[1][0].weight)

        # Two separately built trunks can be tied by structural name instead:
        twin = nn.Sequential(nn.Dense(64, activation="relu"), nn.Dense(10))
        twin.share_parameters(trunk)
        print("twin shares trunk's weight:", twin[1].weight is trunk[1].weight)
        """,
        """A layer has one input size, so inputs of several sizes get one input layer per
        size in front of one shared trunk: using the same block instance twice shares its
        parameters, and share_parameters ties two blocks' parameters by name.""",
    ),
)


@dataclass
class _Outcome:
    output: str
    error: BaseException | None


def _execute(code: str, namespace: dict[str, Any]) -> _Outcome:
    """Run ``code`` in ``namespace``, capturing what it prints (and its warnings).

    Like the Python prompt, the value of a last bare expression is printed (its ``repr``)
    unless it is ``None``.
    """
    tree = ast.parse(code, filename=_SOURCE, mode="exec")
    last: ast.Expression | None = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    buffer = io.StringIO()
    error: BaseException | None = None
    with (
        contextlib.redirect_stdout(buffer),
        contextlib.redirect_stderr(buffer),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        try:
            exec(compile(tree, _SOURCE, "exec"), namespace)
            if last is not None:
                value = eval(compile(last, _SOURCE, "eval"), namespace)
                if value is not None:
                    print(repr(value))
        except Exception as err:
            error = err
    for w in caught:
        buffer.write(f"{w.category.__name__}: {w.message}\n")
    return _Outcome(buffer.getvalue().rstrip("\n"), error)


def run_tour(console: Any, steps: Sequence[Step] = TOUR) -> int:
    """Run and show ``steps`` on a ``rich`` console; 0 when every step behaved, else 1.

    A step that raises when it should not, or does not raise what it should, stops the
    tour: that is a bug in lateinit.
    """
    from rich.panel import Panel
    from rich.syntax import Syntax
    from rich.text import Text

    console.print(
        Panel(
            Text.from_markup(
                "[bold]lateinit[/]: deferred parameter initialization for PyTorch.\n"
                "Layers are declared without their input sizes; shapes are inferred from "
                "the first batch. Every step below is really executed: the code shown is "
                "the code run, and the output is what it printed."
            ),
            title="lateinit tour",
            border_style="cyan",
        )
    )
    namespace: dict[str, Any] = {"__name__": "__lateinit_tour__"}
    for step in steps:
        console.print()
        console.rule(f"[bold]{step.title}", align="left")
        console.print(
            Panel(
                Syntax(step.code, "python", word_wrap=True, background_color="default"),
                title="code",
                title_align="left",
                border_style="blue",
            )
        )
        outcome = _execute(step.code, namespace)
        problem = _check(step, outcome)
        text = outcome.output
        if outcome.error is not None:
            if problem is None:
                shown = f"{type(outcome.error).__name__}: {outcome.error}"
            else:
                shown = "".join(traceback.format_exception(outcome.error)).rstrip("\n")
            text = f"{text}\n{shown}" if text else shown
        failed = problem is not None or outcome.error is not None
        console.print(
            Panel(
                Text(text or "(nothing printed)", style="red" if failed else ""),
                title=f"raises {step.raises}" if step.raises and not problem else "output",
                title_align="left",
                border_style="red" if failed else "green",
            )
        )
        if problem is not None:
            console.print(
                Text(
                    f"The tour stopped: {problem}. This is a bug in lateinit; please report "
                    "it with the output above.",
                    style="bold red",
                )
            )
            return 1
        console.print(Text.from_markup(step.explanation, style="italic"))
    console.print()
    console.print(
        Panel(
            Text(
                "DECLARED (256, -1) --infer--> SHAPED (256, 20) --materialize--> READY\n"
                "Unknown dims are filled from the first batch (or infer_shape), then each "
                "parameter is created on the input's device with its registered "
                "initializer, and stays the same Python object."
            ),
            title="the lifecycle of a parameter",
            border_style="cyan",
        )
    )
    return 0


def _check(step: Step, outcome: _Outcome) -> str | None:
    """Why ``outcome`` is not what ``step`` promises, or ``None`` when it is."""
    error = outcome.error
    if step.raises is None:
        return None if error is None else f"{type(error).__name__} was raised"
    if error is None:
        return f"{step.raises} was expected but nothing was raised"
    if type(error).__name__ != step.raises:
        return f"{step.raises} was expected but {type(error).__name__} was raised"
    return None


# ---------------------------------------------------------------------------------------
# Subcommands: each registers itself on the subparsers and sets ``handler``.


def _cmd_tour(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(highlight=False)
    console.width = min(console.width, _MAX_WIDTH)
    return run_tour(console)


def _register_tour(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tour",
        help="walk through deferred initialization, step by step (runs in seconds)",
        description=(
            "Walk through deferred initialization: a network without input sizes, the "
            "error on early use, initialize(), the first batch, and three exercises. "
            "Every step is really executed."
        ),
    )
    parser.set_defaults(handler=_cmd_tour)


# ---------------------------------------------------------------------------------------
# lateinit summary MODULE:FACTORY --input 2x20


class _UsageError(Exception):
    """A problem with the command's arguments or target: shown as one line, exit 2."""


_INPUT_HELP = (
    "an input's shape, sizes joined by 'x' (1x3x224x224); N for a dim of any size (Nx20); "
    "an optional :DTYPE suffix, e.g. 2x16:int64 for token ids (default: --dtype, else "
    "float32). Repeat for a network with several inputs."
)


def _parse_dtype(name: str, what: str) -> Any:
    import torch

    dtype = getattr(torch, name.removeprefix("torch."), None)
    if not isinstance(dtype, torch.dtype):
        raise _UsageError(
            f"{what}: unknown dtype {name!r}; use a torch dtype name such as float32, "
            "bfloat16, float16 or int64"
        )
    return dtype


def _parse_input(text: str, default_dtype: Any) -> Any:
    """``"1x3x224x224"`` -> ``Spec((1, 3, 224, 224))``; ``"Nx16:int64"`` -> ``Spec((None,
    16), torch.int64)``."""
    from .shapes import Spec

    shape_text, _, dtype_text = text.partition(":")
    dtype = _parse_dtype(dtype_text, f"--input {text!r}") if dtype_text else default_dtype
    dims: list[int | None] = []
    for part in shape_text.lower().split("x"):
        part = part.strip()
        if part in ("n", "none"):
            dims.append(None)
        elif part.isdigit() and int(part) > 0:
            dims.append(int(part))
        else:
            raise _UsageError(
                f"--input {text!r}: {part!r} is not a size; expected positive sizes joined by "
                "'x', such as 1x3x224x224, Nx20 (N: any size) or 2x16:int64"
            )
    return Spec(tuple(dims), dtype)


def _any_batch(spec: Any) -> Any:
    """The spec with any size in its first (batch) dim."""
    return type(spec)((None, *spec.shape[1:]), spec.dtype) if spec.shape else spec


def _parse_kwargs(text: str | None) -> dict[str, Any]:
    import json

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise _UsageError(
            f"--kwargs {text!r} is not valid JSON ({err}); expected an object such as "
            "'{\"num_classes\": 10}'"
        ) from None
    if not isinstance(value, dict):
        raise _UsageError(
            f"--kwargs {text!r} must be a JSON object of keyword arguments, such as "
            "'{\"num_classes\": 10}'"
        )
    return value


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _import_target(target: str) -> tuple[Callable[..., Any], str]:
    """The factory named by ``MODULE:FACTORY`` (a dotted module importable from the
    current directory or ``sys.path``, or a ``.py`` file path) and its display name."""
    import importlib
    import importlib.util
    import os

    module_name, sep, attr = target.rpartition(":")
    if not sep or not module_name or not attr:
        raise _UsageError(
            f"target {target!r} is not MODULE:FACTORY; e.g. lateinit.zoo:resnet18 or "
            "path/to/models.py:build"
        )
    is_file = module_name.endswith(".py") or os.sep in module_name or "/" in module_name
    added = os.path.dirname(os.path.abspath(module_name)) if is_file else os.getcwd()
    sys.path.insert(0, added)
    try:
        if is_file:
            if not os.path.isfile(module_name):
                raise _UsageError(f"target {target!r}: no such file {module_name!r}")
            stem = os.path.splitext(os.path.basename(module_name))[0]
            spec = importlib.util.spec_from_file_location(f"_lateinit_target_{stem}", module_name)
            if spec is None or spec.loader is None:
                raise _UsageError(f"target {target!r}: cannot import {module_name!r}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except _UsageError:
        raise
    except ModuleNotFoundError as err:
        if err.name is not None and module_name.startswith(err.name):
            raise _UsageError(
                f"target {target!r}: no module named {err.name!r} (give a module importable "
                "from the current directory, or a path to a .py file)"
            ) from None
        raise _UsageError(f"target {target!r}: importing it failed: {_one_line(err)}") from None
    except Exception as err:
        raise _UsageError(f"target {target!r}: importing it failed: {_one_line(err)}") from None
    finally:
        sys.path.remove(added)
    factory: Any = module
    for part in attr.split("."):
        if not hasattr(factory, part):
            raise _UsageError(f"target {target!r}: {module_name!r} has no attribute {attr!r}")
        factory = getattr(factory, part)
    if not callable(factory):
        raise _UsageError(f"target {target!r}: {attr!r} is not callable")
    return factory, f"{module_name}:{attr}"


def _load_network(args: argparse.Namespace) -> tuple[Any, list[Any], str]:
    """The network the arguments name (``MODULE:FACTORY``, ``--kwargs``, ``--dtype``), its
    ``--input`` specs and its display name."""
    import torch

    dtype = _parse_dtype(args.dtype, "--dtype") if args.dtype else None
    if dtype is not None and not dtype.is_floating_point:
        raise _UsageError(
            f"--dtype {args.dtype!r} is not a floating dtype (float32, bfloat16, ...)"
        )
    inputs = [_parse_input(text, dtype or torch.get_default_dtype()) for text in args.input]
    kwargs = _parse_kwargs(args.kwargs)
    factory, name = _import_target(args.target)
    try:
        net = factory(**kwargs)
    except Exception as err:
        raise _UsageError(f"{name}(**{kwargs}) raised {_one_line(err)}") from None
    if not isinstance(net, torch.nn.Module):
        raise _UsageError(f"{name}() returned a {type(net).__name__}, not a torch.nn.Module")
    if dtype is not None:
        net.to(dtype)  # deferred parameters stay deferred; they will be created in dtype
    return net, inputs, name


def _inspect(command: str, args: argparse.Namespace, run: Callable[..., Any]) -> Any:
    """``run(net, *inputs)`` for the network and inputs the arguments name; every
    problem is a one-line ``_UsageError``."""
    from .shapes import ShapeMismatchError

    net, inputs, name = _load_network(args)
    try:
        # The first dim of an --input is the batch: the network must take any size there.
        # (A 1x3x224 image for a 2-D CNN would otherwise be read as one unbatched
        # 1-channel 3x224 image and give a wrong summary.)
        try:
            run(net, *(_any_batch(spec) for spec in inputs))
        except ShapeMismatchError as err:
            shapes = ", ".join("x".join(str(d) for d in spec.shape) for spec in inputs)
            raise _UsageError(
                f"{name} does not take --input {shapes} with any size in the first (batch) "
                f"dim: {_one_line(err).rstrip('.')}. The first dim of an --input is the "
                "batch. Fix: give the whole input shape, batch first (e.g. 1x3x224x224 for "
                "images)."
            ) from None
        return run(net, *inputs)
    except _UsageError:
        raise
    except Exception as err:
        hint = ""
        if isinstance(err, TypeError) and "int" in str(err):
            hint = " (an --input takes a dtype suffix, e.g. 1x16:int64)"
        raise _UsageError(f"{command} of {name} failed: {_one_line(err)}{hint}") from None


def _write_stdout(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `lateinit summary ... | head`: the reader has gone
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit


def _cmd_summary(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .summary import summary

    try:
        result = _inspect("summary", args, lambda net, *x: summary(net, *x, max_depth=args.depth))
    except _UsageError as err:
        print(f"lateinit summary: error: {err}", file=sys.stderr)
        return 2
    console = Console(highlight=False)
    if console.is_terminal:
        result.print(console)
    else:  # a file or a pipe: plain text, rows never wrapped
        _write_stdout(result.render() + "\n")
    return 0


def _add_network_arguments(parser: argparse.ArgumentParser, what: str) -> None:
    """The arguments that name a network and its inputs (``summary``, ``plot``)."""
    parser.add_argument(
        "target",
        metavar="MODULE:FACTORY",
        help="a module importable from the current directory or sys.path (or a .py file "
        "path), and a function or class in it that returns the network",
    )
    parser.add_argument(
        "--input", action="append", default=[], metavar="SHAPE[:DTYPE]", help=_INPUT_HELP
    )
    parser.add_argument(
        "--dtype",
        help="the parameters' (and float inputs') dtype, e.g. bfloat16 (net.to(dtype) before "
        "inference; nothing is allocated)",
    )
    parser.add_argument(
        "--kwargs", metavar="JSON", help="keyword arguments for the factory, e.g. '{\"n\": 10}'"
    )
    parser.add_argument(
        "--depth", type=int, metavar="N", help=f"{what} only layers nested at most N deep"
    )


def _register_summary(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "summary",
        help="print a network's layers, shapes, parameters and FLOPs (allocates nothing)",
        description=(
            "Build a network from a factory and print its summary: per layer the output "
            "shape, parameter count and forward FLOPs, then totals (parameters, memory per "
            "dtype, FLOPs). The forward runs on meta tensors: no parameter memory is "
            "allocated, even for a 70B-parameter model. Errors are one line; exit status 2."
        ),
        epilog=(
            "examples: lateinit summary lateinit.zoo:resnet18 --input 1x3x224x224 | "
            "lateinit summary lateinit.zoo:llama --input 1x16:int64 --dtype bfloat16 | "
            "lateinit summary models.py:build --kwargs '{\"num_classes\": 10}' --input Nx20"
        ),
    )
    _add_network_arguments(parser, "show")
    parser.set_defaults(handler=_cmd_summary)


# ---------------------------------------------------------------------------------------
# lateinit plot MODULE:FACTORY --input 2x20 -o net.svg


def _cmd_plot(args: argparse.Namespace) -> int:
    from .plot import plot, svg_path

    try:
        try:
            out = svg_path(args.output) if args.output is not None else None
        except ValueError as err:
            raise _UsageError(f"-o: {err}") from None
        svg = _inspect("plot", args, lambda net, *x: plot(net, *x, max_depth=args.depth))
        if out is not None:
            try:
                out.write_text(svg, encoding="utf-8")
            except OSError as err:
                raise _UsageError(f"cannot write -o {str(out)!r}: {_one_line(err)}") from None
    except _UsageError as err:
        print(f"lateinit plot: error: {err}", file=sys.stderr)
        return 2
    if out is None:
        _write_stdout(svg + "\n")
    return 0


def _register_plot(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="draw a network's layers, shapes and parameters as SVG (allocates nothing)",
        description=(
            "Build a network from a factory and draw it as an SVG picture: one box per "
            "layer in call order with its output shape and parameter count, containers "
            "framed around their children, the totals in the title. The forward runs on "
            "meta tensors: no parameter memory is allocated. Errors are one line; exit "
            "status 2."
        ),
        epilog=(
            "examples: lateinit plot lateinit.zoo:resnet18 --input 1x3x224x224 -o resnet18.svg "
            "| lateinit plot lateinit.zoo:llama --input 1x16:int64 --depth 2 -o llama.svg"
        ),
    )
    _add_network_arguments(parser, "draw")
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE.svg",
        help="write the SVG to this file (default: standard output)",
    )
    parser.set_defaults(handler=_cmd_plot)


#: The subcommands, in the order ``--help`` lists them.
_COMMANDS: list[Callable[[Any], None]] = [_register_tour, _register_summary, _register_plot]


def build_parser() -> argparse.ArgumentParser:
    """The ``lateinit`` argument parser, with one subparser per command."""
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="lateinit",
        description="lateinit: deferred parameter initialization for PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"lateinit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _COMMANDS:
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``lateinit`` command line; returns the exit status.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    A missing command prints the help (which lists the commands) to stderr, an unknown
    one the usage and the error; both return 2.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error
        return exit_.code if isinstance(exit_.code, int) else 1
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.handler(args))
