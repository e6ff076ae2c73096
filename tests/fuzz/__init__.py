"""Coverage-guided fuzzing of everything that reads bytes or text from the network.

Each *target* (``tests/fuzz/targets.py``) is a function ``one_input(data: bytes)`` that
feeds ``data`` to one parser or to the whole media core the way the server does, lets the
module's documented error type pass (the *expected* rejection) and fails on any other
exception or a broken invariant (:class:`tests.fuzz.harness.InvariantBroken`). Seed corpora
live in ``tests/fuzz/corpus/<target>/`` (made by ``python -m tests.fuzz.seeds``, then grown
and minimised by campaigns); ``python -m tests.fuzz.campaign`` runs atheris (libFuzzer) on
them, and ``tests/fuzz/test_fuzz.py`` replays every corpus file and runs a short campaign per
target inside ``ci/test``. docs/SECURITY.md, "Fuzzing", has the figures.
"""
