"""The API reference's promise: every public name has a docstring with an example, every
example runs, and the reference lists every public name.

"Public" is every name in the ``__all__`` of ``lateinit``, ``lateinit.nn``,
``lateinit.init``, ``lateinit.zoo``, ``lateinit.testing`` and ``lateinit.distributed``,
and every public method or property that a public lateinit class adds itself (torch's
inherited ones are torch's to document).
Properties need a docstring, not an example of their own. An example is a doctest
(``>>>`` lines) in the docstring's ``Examples:`` section; each runs on its own, in an
empty namespace, so it can be pasted as it is. ``NO_EXAMPLE`` names the few public names
that cannot carry one, with the reason.
"""

from __future__ import annotations

import doctest
import inspect
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import lateinit
import lateinit.distributed
import lateinit.init
import lateinit.nn
import lateinit.testing
import lateinit.zoo

MODULES = (
    lateinit,
    lateinit.nn,
    lateinit.init,
    lateinit.zoo,
    lateinit.testing,
    lateinit.distributed,
)

# Public names that are not functions or classes: data, a version string, sub-packages
# (documented by their own pages).
NO_EXAMPLE = {
    "lateinit.__version__": "a version string",
    "lateinit.distributed": "a sub-package; its functions are documented (and tested) "
    "in the big-models guide",
    "lateinit.init": "a sub-package; its names are checked one by one",
    "lateinit.nn": "a sub-package; its names are checked one by one",
    "lateinit.nn.F": "a module of Gluon's operators; docs/reference/nn.md runs an example",
    "lateinit.distributed.INTEGRATION": "the registration of the DDP/FSDP2 integration "
    "(internal; the big-models guide runs what it does)",
    "lateinit.testing.CHECKS": "a tuple of the check functions, each with its example",
    "lateinit.zoo.HF_KEY_MAP": "a dict of key-renaming rules; documented by zoo.from_hf's example",
}


def _own_members(cls: type) -> Iterator[tuple[str, Any]]:
    """Public methods and properties ``cls`` adds; an override of a base class's member
    (``forward``, ``extra_repr``, a layer's ``infer_param_shapes``) is documented where
    the base defines it."""
    for name, value in vars(cls).items():
        if name.startswith("_") or any(name in vars(base) for base in cls.__mro__[1:]):
            continue
        if name in getattr(cls, "__dataclass_fields__", {}):
            continue  # a field's default value; fields are documented under Attributes
        if isinstance(value, (staticmethod, classmethod)):
            value = value.__func__
        if isinstance(value, (types.FunctionType, property)):
            yield name, value


def public_objects() -> dict[str, Any]:
    """Qualified public name -> object, each object once (an alias under its first name)."""
    found: dict[str, Any] = {}
    seen: set[int] = set()
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            qual = f"{module.__name__}.{name}"
            if id(obj) in seen and not isinstance(obj, (str, dict)):
                continue
            seen.add(id(obj))
            found[qual] = obj
            if inspect.isclass(obj) and obj.__module__.startswith("lateinit"):
                for member, value in _own_members(obj):
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                    found[f"{qual}.{member}"] = value
    return found


PUBLIC = public_objects()


def _doc(obj: Any) -> str:
    return inspect.getdoc(obj) or ""


def _examples(qual: str, obj: Any) -> list[doctest.DocTest]:
    parser = doctest.DocTestParser()
    test = parser.get_doctest(_doc(obj), {}, qual, None, 0)
    return [test] if test.examples else []


@pytest.mark.parametrize("qual", sorted(PUBLIC))
def test_public_name_has_docstring_and_example(qual: str) -> None:
    obj = PUBLIC[qual]
    if qual in NO_EXAMPLE:
        return
    doc = _doc(obj)
    assert doc.strip(), f"{qual} has no docstring"
    if isinstance(obj, property):
        return  # an attribute: its class's example shows it
    assert ">>>" in doc, (
        f"{qual} has no example: add an `Examples:` section with doctest lines to its "
        "docstring (or list it in NO_EXAMPLE with the reason)"
    )


@pytest.mark.parametrize("qual", sorted(q for q in PUBLIC if q not in NO_EXAMPLE))
def test_public_example_runs(qual: str) -> None:
    tests = _examples(qual, PUBLIC[qual])
    if not tests:
        pytest.skip("no example (the other test fails for it)")
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    out: list[str] = []
    for test in tests:
        runner.run(test, out=out.append)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"the example of {qual} fails:\n" + "".join(out)


def test_no_example_names_are_public() -> None:
    # a stale entry would hide nothing, but keep the list honest
    assert set(NO_EXAMPLE) <= set(PUBLIC) | {
        f"{m.__name__}.{n}" for m in MODULES for n in m.__all__
    }


SPHINX_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj|ref):`")
REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"


@pytest.mark.parametrize("qual", sorted(PUBLIC))
def test_docstring_is_markdown(qual: str) -> None:
    # The reference renders docstrings as Markdown (Google style): a Sphinx role would
    # show up as ":class:`X`"; cross-references are written [`X`][lateinit.X].
    if qual in NO_EXAMPLE:
        return  # not rendered from its docstring (a module, data, an instance)
    doc = _doc(PUBLIC[qual])
    roles = SPHINX_ROLE.findall(doc)
    assert not roles, f"{qual}'s docstring uses Sphinx roles {roles}: write [`name`][lateinit.name]"


def test_every_public_name_has_a_reference_entry() -> None:
    text = "\n".join(p.read_text() for p in REFERENCE.glob("*.md"))
    entries = set(re.findall(r"^::: ([\w.]+)", text, flags=re.M))
    missing = [
        f"{m.__name__}.{n}"
        for m in MODULES
        for n in m.__all__
        if f"{m.__name__}.{n}" not in NO_EXAMPLE
        and not inspect.ismodule(getattr(m, n))
        and not any(
            f"{mm.__name__}.{n}" in entries
            for mm in MODULES
            if getattr(mm, n, None) is getattr(m, n)
        )
    ]
    assert not missing, f"public names without a `::: name` entry in docs/reference/: {missing}"


DOCS = REFERENCE.parent
FENCE = re.compile(r"^( *)```(\w+)([^\n]*)\n(.*?)^\1```", re.M | re.S)


def _python_blocks(page: Path) -> list[tuple[str, str]]:
    return [
        (attrs, body)
        for _, lang, attrs, body in FENCE.findall(page.read_text())
        if lang in ("python", "py", "pycon")
    ]


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: str(p.relative_to(DOCS)))
def test_every_python_block_on_a_page_runs_when_the_site_builds(page: Path) -> None:
    # A page never shows Python that does not run: a block is executed at build time
    # (markdown-exec's exec="1"), or it includes a file that the page itself runs
    # (--8<-- "examples/x.py:section"), or it is another framework's code that cannot run
    # here, titled "... (not run)".
    text = page.read_text()
    for attrs, body in _python_blocks(page):
        if 'exec="1"' in attrs or re.search(r'title="[^"]*\(not run\)"', attrs):
            continue
        includes = re.findall(r'^\s*--8<-- "([^":]+)', body, flags=re.M)
        assert includes and all(
            line.strip().startswith("--8<--") for line in body.splitlines() if line.strip()
        ), f"{page.name}: a python block that does not run:\n{body[:300]}"
        for path in includes:
            runs = re.search(
                r'```python exec="1"[^\n]*\n(?:(?!```).)*' + re.escape(path), text, re.S
            )
            assert runs, f"{page.name} shows {path} but no executed block of the page runs it"
