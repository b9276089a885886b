"""The ``absurd-tui`` command line: the console, every operation, headless workers.

Commands only parse arguments, call the operations (``absurd_tui.ops``), the worker
runtime or the read queries (``absurd_tui.db``), and turn results into text. Nothing
here decides how the engine behaves.

Exit codes: 0 success; 1 the operation failed (the engine refused it, e.g. a retry of a
task that is not failed); 2 bad usage, bad input or an unreachable database. Errors are
one paragraph on stderr, never a traceback (``-v`` logs it). Input is validated before
anything is written, so bad input changes nothing.

Layout: ``entry`` (the parser and ``main``), shared ``session``, ``options``,
``inputs``, ``output`` and ``logs``, and one module per command group. Adding a
command: write ``configure(parser)`` and ``run(args, session) -> int`` in a module here
and append a ``Command`` to ``entry.COMMANDS``. ``configure`` receives a parser that
already has the global options (``--dsn``, ``--data-dir``, ``-v``); ``run`` gets the
parsed arguments and a ``Session`` that opens the database on first use and closes it.
"""

from .entry import main

__all__ = ["main"]
