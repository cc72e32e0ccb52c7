"""NiceGUI's "does this handler take arguments?" answered once per function instead of on every element.

NiceGUI calls ``helpers.expects_arguments`` (``inspect.signature``) for each observable it creates: an element's
props, classes and style, each of its listeners, each binding. That is about three signature inspections per
element, on every page build, for the same few functions (the elements' own change handlers) over and over:
measured, a sixth of a page's build time. The answer depends only on the function, so it is remembered here, keyed
weakly by the function (a bound method by its function: ``self`` is bound either way), so handlers made per page
(lambdas) are forgotten with it. Anything that cannot be remembered is answered by NiceGUI's own function.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable
from types import MethodType
from typing import Any

from nicegui import helpers

_original = helpers.expects_arguments
_functions: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_methods: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()  # by the bound method's function


def expects_arguments(func: Callable[..., Any]) -> bool:
    """Same answer as ``nicegui.helpers.expects_arguments``, remembered per function."""
    cache, key = (_methods, func.__func__) if isinstance(func, MethodType) else (_functions, func)
    try:
        return cache[key]
    except (KeyError, TypeError):  # not seen yet, or not weakly referenceable (then not remembered)
        pass
    answer = _original(func)
    with contextlib.suppress(TypeError):
        cache[key] = answer
    return answer


def install() -> None:
    """Answer NiceGUI's calls from the memo (NiceGUI looks the function up on ``helpers`` at every call)."""
    helpers.expects_arguments = expects_arguments
