"""The browser suite: JupyterLab driven by Chromium (run alone with `pytest -m browser`)."""
