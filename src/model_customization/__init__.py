"""model-customization: turn agent memory into fine-tuned models, through MCP."""

__version__ = "0.1.0"
