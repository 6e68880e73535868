"""Hugging Face Jobs: this package's own local trainer, run on rented Hugging Face hardware."""
