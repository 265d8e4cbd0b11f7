"""What the study scripts (accuracy.py, head_study.py, light_study.py) share.

    runs    one training run as a subprocess, resumable, a few at a time (--jobs);
            the train-then-test step that writes a run's result.json
    stats   paired differences by seed: mean, 95% Student-t interval, wins
    report  markdown tables and plots

The scripts run as `python benchmarks/<name>.py`, so `benchmarks/` is on sys.path and
they import this package as `study`.
"""
