"""The analysis layer: tables, statistics and plots of simulated results, one home for all of them.

``validate``, ``report``, ``compare`` and the wandb logger build on these files (and ``tune``
will), so a number means the same wherever it is printed:

- ``stats``: confidence intervals over seeds (Student's t) and the difference of two means
  (Welch); numpy only, so ``validate`` keeps running on a bare GPU box.
- ``columns``: which columns of a results table say what was simulated (identity, knobs) and
  which say what came out (metrics, with unit and direction), and the label of each parameter
  combination (seeds pooled).
- ``load``: results.parquet / timeseries.parquet of one or several run or multirun folders.
- ``tables``: per-combination summaries (mean, sd, CI) and ratios to a baseline.
- ``convergence``, ``knob_plots``, ``tradeoff``: the figures (matplotlib, Agg backend).
- ``compare``: two folders (or two groups of one) metric by metric, with a verdict line.

Everything but ``stats`` needs pandas (the ``cli`` extra); it is imported lazily by callers.
"""
