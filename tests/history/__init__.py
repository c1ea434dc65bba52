"""History checking: concurrent workers record every operation, a checker holds the whole
history to a sequential log model (``_history.py`` records, ``_checker.py`` checks,
``_workers.py`` and ``_phases.py`` produce histories against lite)."""
