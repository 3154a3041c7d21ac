"""``llem report``: one self-contained offline HTML page and a static SVG/PNG of every figure.

Reads results only (``results``, ``config``). The figures are Vega-Lite specs built here as plain
dicts from pure data functions; ``vl-convert-python`` (the ``report`` extra, imported only while
a report is written) renders them to SVG/PNG without a browser and bundles the JavaScript that
draws them interactively in the page, so nothing is fetched from a network, then or later.
"""
