"""Deprecation warnings caused by amuro's own calls fail the tests; a library's internal ones do not.

The ``filterwarnings`` of pyproject.toml make FutureWarning and DeprecationWarning errors when they are
attributed to a module of amuro or analysis. A library attributes its warning to the caller that its
``stacklevel`` names. For a deprecated argument of a model's ``forward`` (``model(past_key_values=...)``)
that caller is torch's module dispatch, ``Module.__call__``, not the code that passed the argument, so
``blamed_past_module_dispatch`` hands such a warning back to the warnings machinery attributed to the
first frame behind the dispatch, and the filters judge the code that made the call.
"""

from __future__ import annotations

import contextlib
import inspect
import re
import warnings
from collections.abc import Iterator

# Frames that only pass a call on to a module's forward (accelerate's hooks wrap forward for offloading).
DISPATCH_MODULES = frozenset({"torch.nn.modules.module", "accelerate.hooks"})


def _module_name(frame) -> str:
    return frame.f_globals.get("__name__", "")


def _caller_behind_dispatch(filename: str, lineno: int):
    """The frame that called into a module's dispatch, when the warning is attributed to that dispatch."""
    frame = inspect.currentframe()
    while frame is not None and (frame.f_code.co_filename, frame.f_lineno) != (filename, lineno):
        frame = frame.f_back
    if frame is None or _module_name(frame) not in DISPATCH_MODULES:
        return None
    while frame is not None and _module_name(frame) in DISPATCH_MODULES:
        frame = frame.f_back
    return frame


@contextlib.contextmanager
def blamed_past_module_dispatch() -> Iterator[None]:
    """Within this context, a warning attributed to torch's module dispatch is re-issued at its caller."""
    show = warnings.showwarning

    def show_or_reattribute(message, category, filename, lineno, file=None, line=None):
        caller = _caller_behind_dispatch(filename, lineno)
        if caller is None:
            show(message, category, filename, lineno, file, line)
        else:
            warnings.warn_explicit(
                message,
                category,
                caller.f_code.co_filename,
                caller.f_lineno,
                module=_module_name(caller),
                registry=caller.f_globals.setdefault("__warningregistry__", {}),
            )

    with warnings.catch_warnings():
        # Every such warning reaches the caller's filters: the dispatch's own once-per-line registry would
        # otherwise hide a second caller's identical warning.
        warnings.filterwarnings("always", module="|".join(rf"{re.escape(name)}\Z" for name in DISPATCH_MODULES))
        warnings.showwarning = show_or_reattribute
        yield
