"""Together AI fine-tuning: files, jobs, adapters and chat through the official `together` SDK (an optional extra,
imported only when this provider is used).

client.py builds the SDK client from the environment and turns API errors into user-facing text; hyperparameters.py
(no SDK import, so the MCP tools can publish its schema) and pricing.py are pure; files.py renders a dataset in
Together's formats and uploads each content once; training.py is the job life cycle; adapters.py brings a LoRA
adapter home when its base runs here; chat.py answers prompts and judges through chat completions.
"""
