"""What a results folder shows, rebuilt from its data at any time.

- :mod:`~tganbench.reporting.statistics`: intervals over seeds and paired differences;
- :mod:`~tganbench.reporting.tables`: the summary table (full for ``summary.md``, compact for a terminal);
- :mod:`~tganbench.reporting.protocol`: the paragraph that says what was run;
- :mod:`~tganbench.reporting.figures`: the curves, final values, time and sample overviews (PNG);
- :mod:`~tganbench.reporting.html`: the self-contained ``report.html``;
- :mod:`~tganbench.reporting.build`: :func:`~tganbench.reporting.build.build_report` writes them all;
- :mod:`~tganbench.reporting.compare`: ``tganbench compare``, the CI gate.

Every module reads a folder through :func:`tganbench.store.read_results` and
follows the metrics the folder records (:attr:`tganbench.store.Results.metrics`).
"""
