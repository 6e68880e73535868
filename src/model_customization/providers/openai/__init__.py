"""OpenAI fine-tuning: files, jobs and chat through the `openai` SDK (imported only when this provider is used).

client.py builds the SDK client from the environment; availability.py refuses early (closed platform, retired base
model, organisation without access); files.py uploads training files once per content; training.py is the
CloudProvider; chat.py answers prompts and judges through chat completions; hyperparameters.py has no SDK import
so the MCP tools can publish its schema.
"""
