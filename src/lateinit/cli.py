"""The ``lateinit`` command line: ``lateinit tour``.

``lateinit tour`` tells the story of deferred initialization on the terminal: a network
declared without input sizes, the parameter listing with ``-1`` for unknown dims, the
error on early access, ``initialize()`` that only registers the initializer, the first
batch that infers every shape, then three exercises (input size given, mismatching sizes,
inputs of varying size). Every step is really executed: the code shown is exactly the
code run, in one shared namespace, and the output shown is what it printed (the value of
a last bare expression is shown as the Python prompt would show it).

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


#: The subcommands, in the order ``--help`` lists them (add ``summary`` here).
_COMMANDS: list[Callable[[Any], None]] = [_register_tour]


def build_parser() -> argparse.ArgumentParser:
    """The ``lateinit`` argument parser, with one subparser per command."""
    from . import __version__

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
