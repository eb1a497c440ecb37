"""runbook: the notebooks' and the CLI's side: session start, the local localpod, the papermill
runner, the CLI and the JupyterLab hooks. The top room: it may import any other."""
