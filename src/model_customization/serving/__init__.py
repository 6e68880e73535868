"""The OpenAI-compatible endpoint's domain: which model a name means, chat completions, files and fine-tuning jobs."""
