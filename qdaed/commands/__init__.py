"""The ``qdaed`` sub-commands, one module per verb.

Each module parses its options, turns them into the library's calls and prints the result; it
holds no computation of its own and imports no other command: what commands share — the
parent parsers of the common options (``--out``, ``--seed(s)``, ``--jobs``,
``--dask-scheduler``, ``--resume``, ``--quiet``, ``--expect-sha256``, the event options), each
with one default, and the checks of options several commands take — is
:mod:`qdaed.commands.options`. Each exposes ``register(subparsers)``, which adds its parser and
sets ``func`` (the module's ``_run(args)``); ``qdaed.cli`` lists them and imports only the
module of the command being run, so ``qdaed --help`` stays fast while each module imports
what it uses at its top.
"""
