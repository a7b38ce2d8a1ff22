"""The ``qdaed`` sub-commands, one module per verb.

Each module parses its options, turns them into the library's calls and prints the result; it
holds no computation of its own. Each exposes ``register(subparsers)``, which adds its parser
and sets ``func`` (the module's ``_run(args)``); ``qdaed.cli`` lists them. Options are imported
at registration, the work's modules only inside ``_run``, so that ``qdaed --help`` stays fast.
"""
