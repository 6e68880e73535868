"""`python -m model_customization ...` is the same as the `model-customization` command."""

from model_customization.cli import main

main()
