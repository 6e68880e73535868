"""`python -m model_customization.cli`: the same as the model-customization command."""

from model_customization.cli import main

main()
