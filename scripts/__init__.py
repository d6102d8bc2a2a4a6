"""The project's command-line tools beside the pipeline (`python -m scripts.<name>`)."""
